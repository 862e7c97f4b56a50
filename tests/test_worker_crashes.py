"""Crashes are the infrastructure's failures, not the customer's: workers killed with -9
never use up a job's model attempts, a dead worker's jobs are reclaimed at once, a worker
that waits out a database stall keeps its own jobs, and database errors stay in the log.

Real worker processes, real signals; on the embedded default and, where they differ, on
PostgreSQL and Redis.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Job, WorkerHeartbeat
from echopilot.procs import Stamp
from echopilot.queue.recovery import sweep
from echopilot.runtime import Runtime
from tests.api_support import TEST_KEY, assert_ok, running
from tests.conftest import env_for, run_cli, start_cli, wait_for
from tests.fakes.model_server import FakeModelServer, Reply
from tests.test_worker import job_of, status_of, submit

pytestmark = pytest.mark.slow


def statuses(rt: Runtime) -> dict[str, int]:
    with read_session(rt.sessions) as session:
        rows = session.execute(select(Job.status, Job.id)).all()
    counts: dict[str, int] = {}
    for status, _ in rows:
        counts[status] = counts.get(status, 0) + 1
    return counts


def extra(**values: Any) -> dict[str, str]:
    return {f"ECHOPILOT_{name.upper()}": str(value) for name, value in values.items()}


@pytest.mark.parametrize("backend", ["embedded", "postgres", "redis", "production"], indirect=True)
def test_workers_killed_again_and_again_never_make_a_job_dead(
    make_runtime: Callable[..., Runtime],
) -> None:
    # One model attempt per job: before lost leases were counted apart, a single crash
    # under a job made it dead.
    rt = make_runtime(ai_provider="offline", offline_latency_ms=150, max_attempts=1)
    ids = [submit(rt, f"storm {i}") for i in range(40)]
    for _ in range(4):
        worker = start_cli(rt.settings, "worker", "--concurrency", "8")
        wait_for(lambda: statuses(rt).get("processing", 0) >= 4, timeout=30)
        time.sleep(0.3)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finished = run_cli(rt.settings, "worker", "--burst", timeout=300)
    assert finished.returncode == 0, finished.stderr

    assert statuses(rt) == {"done": len(ids)}
    logs = [[a["status"] for a in job_of(rt, i)["attempt_log"]] for i in ids]  # type: ignore[union-attr]
    crashed = [log for log in logs if "lost" in log]
    assert crashed, "the storm killed workers mid-job"
    assert all(log[-1] == "ok" and log.count("ok") == 1 for log in logs), logs


def test_a_job_that_keeps_killing_its_worker_dies_at_its_own_limit(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    # A long lease: recovery must not wait for it, the dead worker is known dead at once.
    rt = openai_rt(lease_seconds=600, max_lost_leases=2)
    model_server.on("task", *[Reply.ok("never answered", delay=60)] * 3)
    job_id = submit(rt, "poison")
    env = extra(max_lost_leases=2)
    for crash in range(1, 3):
        worker = start_cli_env(rt, env, "worker")
        wait_for(lambda c=crash: model_server.count("task") >= c, timeout=30)  # type: ignore[misc]
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    started = time.monotonic()
    result = run_cli(rt.settings, "worker", "--burst", extra_env=env)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60, "no wait for the 600 s lease"

    job = job_of(rt, job_id)
    assert job["status"] == "dead"
    assert "ECHOPILOT_MAX_LOST_LEASES" in str(job["error"])
    assert [a["status"] for a in job["attempt_log"]] == ["lost", "lost"]  # type: ignore[union-attr]
    assert model_server.count("task") == 2


@pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
def test_burst_finishes_a_job_left_processing_by_a_dead_worker(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(lease_seconds=600)
    model_server.on("task", Reply.ok("never delivered", delay=60))
    job_id = submit(rt)
    worker = start_cli(rt.settings, "worker")
    wait_for(lambda: model_server.count("task") >= 1 and status_of(rt, job_id) == "processing")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)

    result = run_cli(rt.settings, "worker", "--burst", timeout=60)
    assert result.returncode == 0, result.stderr
    job = job_of(rt, job_id)
    assert job["status"] == "done"
    assert [a["status"] for a in job["attempt_log"]] == ["lost", "ok"]  # type: ignore[union-attr]


def start_cli_env(rt: Runtime, env: dict[str, str], *args: str) -> Any:
    import subprocess
    import sys
    import uuid

    rt.settings.home.mkdir(parents=True, exist_ok=True)
    log = (rt.settings.home / f"child-{uuid.uuid4().hex[:6]}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "echopilot", *args],
        env={**env_for(rt.settings), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=rt.settings.home.parent,
    )


@contextlib.contextmanager
def stalled_database(rt: Runtime, seconds: float) -> Iterator[None]:
    """Hold the whole database for `seconds` in another thread, as a stuck disk or a long
    migration would; the block runs while it is held."""
    ready = threading.Event()

    def hold() -> None:
        if rt.engine.dialect.name == "sqlite":
            conn = sqlite3.connect(rt.settings.home / "echopilot.db", isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            ready.set()
            time.sleep(seconds)
            conn.rollback()
            conn.close()
            return
        with rt.engine.connect() as conn:
            conn.exec_driver_sql(
                "LOCK TABLE jobs, job_attempts, job_events, worker_heartbeats "
                "IN ACCESS EXCLUSIVE MODE"
            )
            ready.set()
            time.sleep(seconds)
            conn.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    ready.wait(10)
    try:
        yield
    finally:
        holder.join()


@pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
def test_a_stall_longer_than_the_lease_never_makes_a_worker_discard_its_own_work(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", offline_latency_ms=2500, lease_seconds=2)
    ids = [submit(rt, f"stalled {i}") for i in range(4)]
    env = extra(sweep_interval_seconds=1)
    worker = start_cli_env(rt, env, "worker", "--concurrency", "4")
    try:
        wait_for(lambda: statuses(rt).get("processing", 0) == len(ids), timeout=30)
        with stalled_database(rt, 6.0):  # three leases long
            pass
        wait_for(lambda: statuses(rt) == {"done": len(ids)}, timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    for job_id in ids:
        attempts = [a["status"] for a in job_of(rt, job_id)["attempt_log"]]  # type: ignore[union-attr]
        assert attempts == ["ok"], (job_id, attempts)


def test_the_system_status_lists_only_live_workers_and_old_rows_are_pruned(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", dashboard_key=TEST_KEY)
    first = start_cli(rt.settings, "worker")
    second = start_cli(rt.settings, "worker")
    wait_for(lambda: _heartbeats(rt) >= 2, timeout=30)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    try:
        with running(rt.settings, "serve", env={"DASHBOARD_KEY": TEST_KEY}) as api:
            system = assert_ok(httpx.get(api.url + "/api/system", headers={"X-Dash-Key": TEST_KEY}))
        listed = [Stamp.parse(w["worker"]) for w in system["workers"]]
        assert [stamp.pid for stamp in listed if stamp] == [second.pid]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    with write_session(rt.sessions) as session:
        session.execute(update(WorkerHeartbeat).values(heartbeat_at=utcnow() - timedelta(days=2)))
    assert sweep(rt).pruned_heartbeats >= 1
    assert _heartbeats(rt) == 0


def _heartbeats(rt: Runtime) -> int:
    with read_session(rt.sessions) as session:
        return len(session.scalars(select(WorkerHeartbeat.worker)).all())


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_database_error_mid_job_is_a_short_reason_with_the_detail_in_the_log(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("task", Reply.ok("The summary.", delay=1.0))
    job_id = submit(rt, "interrupted")
    worker = start_cli(rt.settings, "worker")
    try:
        wait_for(lambda: model_server.count("task") >= 1)
        with rt.engine.connect() as conn:
            # Block the worker's next write to its attempt, then cut its connection there.
            conn.exec_driver_sql(f"SELECT id FROM job_attempts WHERE job_id = {job_id} FOR UPDATE")
            blocked = wait_for(lambda: _waiting_backend(rt), timeout=30)
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({blocked})")
            conn.rollback()
        wait_for(lambda: status_of(rt, job_id) == "done", timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    first = job_of(rt, job_id)["attempt_log"][0]  # type: ignore[index]
    assert first["status"] == "failed"
    assert first["error"].startswith("internal error: database error"), first["error"]
    for fragment in ("SQL", "UPDATE", "job_attempts", "[parameters"):
        assert fragment not in first["error"]
    log = (rt.settings.home / "logs" / "worker.log").read_text()
    assert "UPDATE job_attempts" in log, "the detail is kept in the log"


def _waiting_backend(rt: Runtime, on: str = "", besides: set[int] | None = None) -> int | None:
    """A session waiting for a lock, whose statement names `on`, other than `besides`."""
    with rt.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid() "
            f"AND strpos(query, '{on}') > 0"
        ).all()
    pids = [int(row[0]) for row in rows if int(row[0]) not in (besides or set())]
    return pids[0] if pids else None


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_job_whose_end_and_failure_both_fail_to_record_is_handed_back_and_finished(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    # The worker lives, so no sweep takes the job from it: it must give the job back itself
    # once the database answers, or the job stays `processing` for as long as it runs.
    rt = openai_rt(lease_seconds=6)
    model_server.on("task", Reply.ok("The summary.", delay=1.0))
    job_id = submit(rt, "unrecorded")
    worker = start_cli(rt.settings, "worker")
    try:
        wait_for(lambda: model_server.count("task") >= 1)
        with rt.engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT id FROM job_attempts WHERE job_id = {job_id} FOR UPDATE")
            cut: set[int] = set()
            for _ in range(2):  # the attempt's end, then the failure that replaces it
                blocked = wait_for(
                    lambda: _waiting_backend(rt, on="job_attempts", besides=cut), timeout=30
                )
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({blocked})")
                cut.add(blocked)
            conn.rollback()
        wait_for(lambda: status_of(rt, job_id) == "done", timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    job = job_of(rt, job_id)
    attempts = job["attempt_log"]
    assert [a["status"] for a in attempts] == ["handed_back", "ok"]  # type: ignore[union-attr]
    assert "could not be recorded" in attempts[0]["error"]  # type: ignore[index]
    assert model_server.count("task") == 2
    # The unrecorded attempt's calls were paid for: each is on its attempt, with its cost.
    first_calls = model_server.count() - len(attempts[1]["calls"])  # type: ignore[index]
    assert first_calls >= 1 and len(attempts[0]["calls"]) == first_calls  # type: ignore[index]
    assert Decimal(attempts[0]["cost_usd"]) > 0  # type: ignore[index, arg-type]
    costs = sum(Decimal(a["cost_usd"]) for a in attempts)  # type: ignore[union-attr]
    assert Decimal(job["cost_usd"]) == costs  # type: ignore[arg-type]
