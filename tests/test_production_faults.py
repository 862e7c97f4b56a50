"""Production mode under fire: several API, worker and scheduler processes on PostgreSQL and
Redis while workers and a scheduler are killed, database connections are cut and Redis
restarts; a model that times out for a minute; the embedded default's disk filling up.

Real processes, real services, real signals. The bar: every job final, none done twice,
none dead from crashes alone, every slot run once, a clear error for what was refused.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from echopilot.config import Settings
from echopilot.db.engine import read_session
from echopilot.db.migrate import current_revision, head_revision
from echopilot.db.models import (
    FinanceDaily,
    Job,
    JobAttempt,
    PriceRule,
    PriceRuleHistory,
    ScheduleRun,
    TaskType,
    WorkerHeartbeat,
)
from echopilot.runtime import Runtime
from tests.api_support import TEST_KEY, free_port
from tests.conftest import builtin_tasks_off, env_for, run_cli, wait_for
from tests.fakes.model_server import FakeModelServer
from tests.fleet import Fleet, wait_healthy
from tests.services import PostgresServer, RedisServer, fill, small_disk
from tests.test_scheduler_processes import elsewhere, scheduler_env

pytestmark = pytest.mark.slow
PRODUCTION = pytest.mark.parametrize("backend", ["production"], indirect=True)
# Slots far enough apart that a probe run (a forked process) ends before the next slot even
# on a machine the test loads flat out: a run still going when its next slot comes makes
# that slot skip (no overlap), by design.
PROBE_SECONDS = 3
TEXT = "Quarterly figures: revenue rose, costs held, and the team shipped two features."


@contextlib.contextmanager
def fleet_of(rt: Runtime) -> Iterator[Fleet]:
    fleet = Fleet(rt.settings.home.parent / "fleet")
    fleet.root.mkdir(parents=True, exist_ok=True)
    try:
        yield fleet
    finally:
        fleet.stop_all()


def production_env(rt: Runtime, **settings: Any) -> dict[str, str]:
    """The environment of one machine of the fleet: the probe task every PROBE_SECONDS, no
    built-in task, the dashboard key, and `settings` as ECHOPILOT_* variables."""
    env = scheduler_env(rt, probe=f"every {PROBE_SECONDS}s")
    env["DASHBOARD_KEY"] = TEST_KEY
    env.update({f"ECHOPILOT_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@dataclass
class Submitted:
    """What the clients of the API were told: the ids of accepted jobs by name, and the
    error codes of refused ones."""

    ids: dict[str, int] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    answers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def post_job(client: httpx.Client, url: str, name: str, into: Submitted, *, patient: bool) -> bool:
    """POST one job; True when it was accepted. `patient` retries over-capacity answers
    (which save nothing) until the job is taken."""
    while True:
        response = client.post(
            url + "/api/jobs",
            json={"name": name, "task_type": "summary", "input": f"{name}: {TEXT}"},
            headers={"X-Dash-Key": TEST_KEY},
        )
        body = response.json()
        if response.status_code == 201 or response.status_code == 200:
            with into.lock:
                assert name not in into.ids, f"{name} accepted twice"
                into.ids[name] = int(body["data"]["id"])
            return True
        assert response.status_code == 503, (response.status_code, response.text)
        assert response.headers.get("retry-after") == "1", response.headers
        code, message = body["error"]["code"], body["error"]["message"]
        with into.lock:
            into.refused[code] += 1
            into.answers.append(f"{code}: {message}")
        if not (patient and code == "overloaded"):
            return False
        time.sleep(0.2)


def jobs_by_status(rt: Runtime) -> Counter[str]:
    with read_session(rt.sessions) as session:
        return Counter(
            dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        )


def attempt_statuses(rt: Runtime) -> dict[int, list[str]]:
    with read_session(rt.sessions) as session:
        rows = session.execute(
            select(JobAttempt.job_id, JobAttempt.status).order_by(JobAttempt.job_id, JobAttempt.n)
        ).all()
    found: dict[int, list[str]] = {}
    for job_id, status in rows:
        found.setdefault(job_id, []).append(status)
    return found


def probe_runs(rt: Runtime) -> list[ScheduleRun]:
    with read_session(rt.sessions) as session:
        return list(
            session.scalars(
                select(ScheduleRun).where(ScheduleRun.task == "probe").order_by(ScheduleRun.slot)
            )
        )


def assert_every_slot_once(rt: Runtime, homes: list[Path], killed_pids: set[int]) -> int:
    """Every probe slot from the first to the last has one run, the probe ran at most once
    per slot, and only a run whose scheduler was killed under it is abandoned."""
    runs = probe_runs(rt)
    slots = [r.slot for r in runs]
    assert len(slots) == len(set(slots)), "a slot recorded twice"
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(slots)}
    assert gaps == {float(PROBE_SECONDS)}, f"missed slots: gaps {sorted(gaps)}"
    lines = [
        datetime.fromisoformat(line.split()[0])
        for home in homes
        if (home / "probe.log").exists()
        for line in (home / "probe.log").read_text().splitlines()
    ]
    twice = [slot for slot, n in Counter(lines).items() if n > 1]
    assert twice == [], f"slots run twice: {twice}"
    for run in runs:
        if run.status == "abandoned":
            assert run.pid in killed_pids, (run.slot, run.pid, run.error)
        else:
            assert run.status == "ok", (run.slot, run.status, run.error, run.note)
            assert run.slot in lines, f"slot {run.slot} recorded ok but never ran"
    return len(runs)


def assert_each_job_completed_once(
    rt: Runtime, ids: list[int], also: frozenset[str] | set[str] = frozenset()
) -> Counter[str]:
    """Every job done with one successful attempt, the others lost to crashes (or `also`);
    billed once in the finance totals."""
    attempts = attempt_statuses(rt)
    for job_id in ids:
        log = attempts.get(job_id, [])
        assert log.count("ok") == 1 and log[-1] == "ok", (job_id, log)
        assert set(log) <= {"ok", "lost", *also}, (job_id, log)
    with read_session(rt.sessions) as session:
        billed, cost = session.execute(
            select(func.sum(Job.price_cents), func.sum(Job.cost_micros))
        ).one()
        totals = session.execute(
            select(
                func.sum(FinanceDaily.done),
                func.sum(FinanceDaily.billed),
                func.sum(FinanceDaily.billed_cents),
                func.sum(FinanceDaily.cost_micros),
            ).where(FinanceDaily.dim == "all")
        ).one()
    # The totals are kept by triggers on each change of a job: a second completion of a
    # job would count it, its price and its cost again.
    assert tuple(totals) == (len(ids), len(ids), billed, cost), (tuple(totals), billed, cost)
    assert billed > 0 and cost > 0
    return Counter(status for log in attempts.values() for status in log)


@PRODUCTION
def test_2000_jobs_through_two_apis_while_workers_and_a_scheduler_are_killed(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    # One model attempt per job: a crash that counted as one would make the job dead.
    rt = openai_rt(max_attempts=1, lease_seconds=30)
    env = production_env(rt, max_attempts=1, sweep_interval_seconds=2)
    machines = [rt.settings.home.parent / f"machine-{n}" for n in range(4)]
    names = [f"storm-{n:04d}" for n in range(2000)]
    submitted = Submitted()
    killed_schedulers: set[int] = set()
    worker_kills = 0
    with fleet_of(rt) as fleet:
        apis = [fleet.api(f"api{n}", elsewhere(env, machines[n])) for n in range(2)]
        workers = [fleet.start(f"worker{n}", env, "worker", "--concurrency", "8") for n in range(3)]
        schedulers = [
            fleet.start(f"scheduler{n}", elsewhere(env, machines[2 + n]), "scheduler", "run")
            for n in range(2)
        ]
        wait_for(lambda: len(probe_runs(rt)) >= 2, timeout=60)

        def submit_share(share: list[str]) -> None:
            with httpx.Client(timeout=30) as client:
                for n, name in enumerate(share):
                    post_job(client, apis[n % 2].url, name, submitted, patient=True)

        pool = ThreadPoolExecutor(8)
        futures = [pool.submit(submit_share, names[i::8]) for i in range(8)]
        started = time.monotonic()
        chaos = random.Random(14)
        scheduler_killed = False
        while jobs_by_status(rt).get("done", 0) < len(names) and time.monotonic() - started < 600:
            time.sleep(chaos.uniform(2.0, 4.0))
            victim = chaos.randrange(len(workers))
            fleet.kill(workers[victim])
            worker_kills += 1
            workers[victim] = fleet.restart(workers[victim])
            if not scheduler_killed and time.monotonic() - started > 8:
                killed_schedulers.add(schedulers[0].process.pid)
                fleet.kill(schedulers[0])
                time.sleep(2)
                schedulers[0] = fleet.restart(schedulers[0])
                scheduler_killed = True
        for future in futures:
            future.result(timeout=60)
        pool.shutdown()
        wait_for(lambda: jobs_by_status(rt) == {"done": len(names)}, timeout=120)
        time.sleep(2 * PROBE_SECONDS)  # more slots with both schedulers back
        codes = fleet.stop_all()

    assert set(codes.values()) <= {0, -signal.SIGKILL, -signal.SIGTERM}, codes
    assert scheduler_killed and worker_kills >= 3
    assert sorted(submitted.ids) == names, "every job was accepted, once"
    assert set(submitted.refused) <= {"overloaded"}, submitted.answers[:5]
    seen = assert_each_job_completed_once(rt, list(submitted.ids.values()))
    assert seen["lost"] > 0, "the kills hit workers in the middle of jobs"
    slots = assert_every_slot_once(rt, machines[2:], killed_schedulers)
    assert slots >= 8
    print(
        f"2000 jobs in {time.monotonic() - started:.0f} s; {worker_kills} worker kills; "
        f"attempts {dict(seen)}; {slots} slots; refused {dict(submitted.refused)}"
    )


# -- Outages of PostgreSQL and Redis ---------------------------------------------------


def cut_database_connections(rt: Runtime) -> int:
    """pg_terminate_backend on every other connection to the test database."""
    with rt.engine.connect() as conn:
        cut = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
        conn.commit()
    return int(cut)


def test_cut_connections_and_restarts_of_postgresql_and_redis_are_survived_without_a_restart(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer, tmp_path: Path
) -> None:
    # Servers of the test's own, so that it may stop and start them.
    pg = PostgresServer().init().start()
    redis = RedisServer(tmp_path / "redis").start()
    try:
        _survive_outages(openai_rt, pg, redis)
    finally:
        redis.stop()
        pg.remove()


def _survive_outages(
    openai_rt: Callable[..., Runtime], pg: PostgresServer, redis: RedisServer
) -> None:
    rt = openai_rt(database_url=pg.url, queue_url=redis.url, queue_name="outages")
    env = production_env(rt, sweep_interval_seconds=1)
    machines = [rt.settings.home.parent / f"machine-{n}" for n in range(2)]
    submitted = Submitted()
    stop = threading.Event()
    outages: list[str] = []
    windows: dict[str, int] = {}

    def submit_steadily() -> None:
        with httpx.Client(timeout=30) as client:
            for n in itertools.count():
                if stop.is_set():
                    return
                try:
                    post_job(client, api.url, f"steady-{n:04d}", submitted, patient=False)
                except httpx.TransportError as exc:
                    submitted.answers.append(f"transport error: {exc!r}")
                time.sleep(0.05)

    def away(name: str, down: Callable[[], Any], up: Callable[[], Any], seconds: float) -> None:
        down()  # a request that committed while the server was stopping counts as before
        accepted, refused = len(submitted.ids), sum(submitted.refused.values())
        time.sleep(seconds)
        windows[f"{name} taken"] = len(submitted.ids) - accepted
        windows[f"{name} refused"] = sum(submitted.refused.values()) - refused
        up()

    with fleet_of(rt) as fleet:
        api = fleet.api("api", elsewhere(env, machines[0]))
        for n in range(2):
            fleet.start(f"worker{n}", env, "worker", "--concurrency", "4")
        fleet.start("scheduler", elsewhere(env, machines[1]), "scheduler", "run")
        wait_for(lambda: len(probe_runs(rt)) >= 2, timeout=60)
        submitter = threading.Thread(target=submit_steadily)
        submitter.start()
        try:
            for _ in range(2):
                time.sleep(3)
                outages.append(f"cut {cut_database_connections(rt)} connections")
            time.sleep(3)
            away("postgres", pg.stop, pg.start, 4)
            time.sleep(4)
            away("redis", redis.stop, redis.start, 4)
            slots_after = len(probe_runs(rt))
            time.sleep(4)
        finally:
            stop.set()
            submitter.join(timeout=60)

        ids = list(submitted.ids.values())
        wait_for(lambda: jobs_by_status(rt) == {"done": len(ids)}, timeout=180)
        # The scheduler goes on after the outages.
        wait_for(lambda: len(probe_runs(rt)) >= slots_after + 2, timeout=4 * PROBE_SECONDS)
        alive = [p.name for p in fleet.alive()]
        assert alive == ["api", "worker0", "worker1", "scheduler"], "each recovered by itself"
        codes = fleet.stop_all()

    # uvicorn ends on SIGTERM by raising it again once it has shut down cleanly.
    assert set(codes.values()) <= {0, -signal.SIGTERM}, codes
    assert not [a for a in submitted.answers if a.startswith("transport")], submitted.answers
    # With PostgreSQL down a job cannot be saved: the client is told so, and retries.
    assert windows["postgres refused"] > 0 and windows["postgres taken"] == 0, windows
    assert set(submitted.refused) <= {"database_unavailable", "overloaded"}, submitted.answers
    assert any("the database cannot be reached right now" in a for a in submitted.answers)
    # With Redis down a job is saved, and queued by the recovery sweep once Redis is back.
    assert windows["redis taken"] > 0 and windows["redis refused"] == 0, windows
    # A cut or a stopped server under a write may fail an attempt, or leave its end
    # unrecorded (handed back): still one ok attempt a job, billed once.
    seen = assert_each_job_completed_once(rt, ids, also={"failed", "handed_back"})
    assert seen["ok"] == len(ids)
    print(f"{len(ids)} jobs; {outages}; {windows}; attempts {dict(seen)}")


# -- A model that times out for a minute ------------------------------------------------

OUTAGE_SECONDS = 60
RETRY = {
    "ai_timeout_seconds": 2,
    "ai_max_retries": 2,
    "ai_retry_base_seconds": 1,
    "ai_retry_max_seconds": 8,
    "retry_delay_seconds": 5,
    "max_attempts": 5,
}


@PRODUCTION
def test_a_model_that_times_out_for_a_minute_is_waited_out_with_backoff(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(**RETRY)
    env = production_env(rt, **RETRY)
    jobs = 12
    # More worker threads than jobs: a retry without backoff would have a free thread.
    model_server.stall(OUTAGE_SECONDS, hang=2 * RETRY["ai_timeout_seconds"] + 1)
    outage_ends = model_server.stalled_until
    with fleet_of(rt) as fleet:
        api = fleet.api("api", env)
        names = [f"patient-{n:02d}" for n in range(jobs)]
        submitted = Submitted()
        with httpx.Client(timeout=30) as client:
            for name in names:
                assert post_job(client, api.url, name, submitted, patient=True)
        for n in range(2):
            fleet.start(f"worker{n}", env, "worker", "--concurrency", "16")
        wait_for(
            lambda: jobs_by_status(rt) == {"done": jobs}, timeout=OUTAGE_SECONDS + 120, every=0.5
        )
        codes = fleet.stop_all()
    assert set(codes.values()) <= {0, -signal.SIGTERM}, codes

    calls_per_attempt = RETRY["ai_max_retries"] + 1
    for name, job_id in submitted.ids.items():
        calls = [
            seen.at
            for seen in model_server.requests
            if seen.stage == "task" and f"{name}:" in str(seen.body)
        ]
        during = [at for at in calls if at < outage_ends]
        attempts = _attempts(rt, job_id)
        statuses = [a.status for a in attempts]
        assert statuses[-1] == "ok" and set(statuses[:-1]) == {"failed"}, (name, statuses)
        # Calls: within an attempt at most 1 + ai_max_retries, each after a backoff.
        assert len(during) <= calls_per_attempt * (len(attempts) - 1) + 1, (name, len(during))
        for a, b in itertools.pairwise(calls):
            assert b - a >= RETRY["ai_timeout_seconds"] * 0.9, (name, "calls back to back")
        # Between attempts, the job waits retry_delay_seconds, doubling each time.
        for n, (a, b) in enumerate(itertools.pairwise(attempts), start=1):
            wait = (b.started_at - a.finished_at).total_seconds()
            assert wait >= 0.8 * RETRY["retry_delay_seconds"] * 2 ** (n - 1) - 0.1, (name, n, wait)
    stalled = [seen for seen in model_server.requests if seen.at < outage_ends]
    # Each job: at most 4 attempts of 3 calls start within the minute (0, ~14, ~33, ~58 s).
    assert len(stalled) <= jobs * 4 * calls_per_attempt, len(stalled)
    print(f"{len(stalled)} calls in the {OUTAGE_SECONDS} s outage for {jobs} jobs")


def _attempts(rt: Runtime, job_id: int) -> list[JobAttempt]:
    with read_session(rt.sessions) as session:
        return list(
            session.scalars(
                select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.n)
            )
        )


# -- The disk under var/ filling up -----------------------------------------------------


def integrity(database: Path) -> str:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_full_disk_under_var_is_a_clear_error_and_work_resumes_when_space_returns(
    make_runtime: Callable[..., Runtime], home: Path
) -> None:
    with small_disk(home, 24):
        rt = make_runtime(ai_provider="offline")
        env = {**env_for(rt.settings), "DASHBOARD_KEY": TEST_KEY}
        before = [f"before-{n}" for n in range(5)]
        for name in before:
            run_cli(
                rt.settings,
                "jobs",
                "submit",
                "--name",
                name,
                "--type",
                "summary",
                "--input",
                TEXT,
                check=True,
            )
        with fleet_of(rt) as fleet:
            api = fleet.api("api", env)
            filler = fill(home / "filler.bin")

            refused = run_cli(
                rt.settings,
                "jobs",
                "submit",
                "--name",
                "refused",
                "--type",
                "summary",
                "--input",
                TEXT,
                "--json",
            )
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert "no space left on a disk that holds the data" in refused.stdout + refused.stderr
            with httpx.Client(timeout=30) as client:
                submitted = Submitted()
                assert not post_job(client, api.url, "refused-api", submitted, patient=False)
            assert submitted.refused == {"disk_full": 1}, submitted.answers
            assert "free some space" in submitted.answers[0]
            full_run = run_cli(rt.settings, "worker", "--burst", timeout=120)
            # A worker cannot record anything: it stops with the reason, and the jobs wait.
            assert full_run.returncode == 1, full_run.stderr[-2000:]
            assert "error: no space left on a disk that holds the data" in full_run.stderr
            assert "Traceback" not in full_run.stderr
            assert jobs_by_status(rt) == {"queued": len(before)}
            assert integrity(home / "echopilot.db") == "ok"

            filler.unlink()
            with httpx.Client(timeout=30) as client:
                assert post_job(client, api.url, "after-api", submitted, patient=False)
            run_cli(rt.settings, "worker", "--burst", timeout=120, check=True)
            assert api.process.poll() is None, "the API lived through the full disk"
            fleet.stop_all()

        assert integrity(home / "echopilot.db") == "ok"
        listing = run_cli(rt.settings, "jobs", "list", "--json", check=True).stdout
        assert "refused" not in listing.replace("refused-api", "")
        assert "refused-api" not in listing
        statuses = jobs_by_status(rt)
        assert statuses == {"done": len(before) + 1}, (statuses, full_run.stderr[-2000:])
        attempts = attempt_statuses(rt)
        assert all(log.count("ok") == 1 for log in attempts.values()), attempts


# -- Many processes starting together on a fresh database --------------------------------


@PRODUCTION
def test_apis_workers_and_schedulers_started_together_migrate_a_fresh_database_once(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(ai_provider="offline")
    blank = Runtime(settings)
    try:
        assert current_revision(blank.engine) is None, "the database starts empty"
        env = {**env_for(settings), "DASHBOARD_KEY": TEST_KEY}
        env.update({f"ECHOPILOT_SCHEDULE_{t.upper()}": s for t, s in builtin_tasks_off().items()})
        machines = [settings.home.parent / f"machine-{n}" for n in range(6)]
        fleet = Fleet(tmp_path / "fleet")
        fleet.root.mkdir()
        try:
            # All at once: nobody waits for anybody's migration to finish.
            apis = [
                fleet.start(f"api{n}", elsewhere(env, machines[n]), "serve", port=free_port())
                for n in range(2)
            ]
            for n in range(2):
                fleet.start(f"worker{n}", elsewhere(env, machines[2 + n]), "worker")
                fleet.start(f"scheduler{n}", elsewhere(env, machines[4 + n]), "scheduler", "run")
            for api in apis:
                wait_healthy(api)
            wait_for(lambda: len(_live_heartbeats(blank)) == 2, timeout=60)
            assert len(fleet.alive()) == 6, [fleet.output(p.name)[-2000:] for p in fleet.procs]
        finally:
            codes = fleet.stop_all()
        assert set(codes.values()) <= {0, -signal.SIGTERM}, codes

        reference = Runtime(make_settings(home=tmp_path / "reference", database_url=None))
        try:
            reference.migrate()
            assert current_revision(blank.engine) == head_revision()
            assert _catalogue(blank) == _catalogue(reference), "seeded once, as by one upgrade"
        finally:
            reference.close()
    finally:
        blank.close()


def _live_heartbeats(rt: Runtime) -> list[str]:
    with contextlib.suppress(Exception), read_session(rt.sessions) as session:
        return list(session.scalars(select(WorkerHeartbeat.worker)))
    return []


def _catalogue(rt: Runtime) -> tuple[list[Any], list[Any], int | None]:
    with read_session(rt.sessions) as session:
        types = session.execute(select(TaskType.name).order_by(TaskType.name)).all()
        rules = session.execute(
            select(PriceRule.task_type, PriceRule.unit, PriceRule.rate_micros).order_by(
                PriceRule.task_type
            )
        ).all()
        history = session.scalar(select(func.count()).select_from(PriceRuleHistory))
    return [tuple(t) for t in types], [tuple(r) for r in rules], history
