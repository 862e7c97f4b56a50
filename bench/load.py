"""Jobs per second with 1, 2 and 4 worker processes on PostgreSQL + Redis, and the API's
reads on PostgreSQL, against a model that takes 200 ms a call.

    .venv/bin/python bench/load.py                 # full run, about 4 minutes
    .venv/bin/python bench/load.py --quick         # smoke run, under a minute
    .venv/bin/python bench/load.py --jobs 3000 --workers 1 4 --no-backlog --api-seconds 0

The production set-up, on this machine: each worker count gets a fresh PostgreSQL database
(made for the run, dropped after) and a Redis queue name of its own (its keys deleted
after), a temporary ECHOPILOT_HOME, the test suite's fake OpenAI-compatible model server
(tests/fakes/model_server.py, spoken to through the real `openai` SDK) answering every call
after 200 ms, and N `echopilot worker --concurrency 16` processes. Jobs go in from a child
process through jobs.intake.submit (what POST /api/jobs calls; `--submit api` posts them to
an `echopilot serve` instead, the slower path), all at once: a warm-up of one job per
worker thread, then --jobs jobs while the workers run ("live": jobs/s from the first
submit to the last finish, the issue's figure), then --jobs more while the workers are
paused with SIGSTOP ("backlog": jobs/s from their SIGCONT to the last finish). Measured:

- jobs/s against the ideal of N x 16 threads / 0.4 s (two model calls a job: the task and
  the QA judge), and the scaling against one worker measured in the same run;
- p50/p99 from submit to done (created_at to finished_at, queue wait included) and the
  time inside a worker (the ok attempt's latency_ms);
- exactly once: every job done, with exactly one `ok` row in job_attempts, and the model
  calls the fake server received;
- CPU (from /proc): the workers, PostgreSQL, Redis, this process (the fake model server's
  threads), the submitting process, and the whole machine; PostgreSQL's counters per job
  and its sessions' lock waits (pg_stat_activity, sampled).

Then, on the last run's database, `echopilot serve` with 2 processes (ECHOPILOT_API_WORKERS)
and closed loops (wrk, or bench/loadgen.py) on GET /health (the baseline),
GET /api/jobs?limit=50 and GET /api/metrics-summary, and --jobs jobs through POST /api/jobs.

The figures are printed, never asserted. The exit code is 1 when the set-up failed or a job
was not done exactly once. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402
from tests.fakes.model_server import FakeModelServer, Reply  # noqa: E402

from api import (  # noqa: E402
    DASHBOARD_KEY,
    HEALTH,
    JOBS,
    KEY_HEADER,
    SUMMARY,
    LoadFigure,
    Server,
    measure,
)
from common import (  # noqa: E402
    PROSE,
    STOP_TIMEOUT_SECONDS,
    SetupError,
    answers,
    machine,
    percentile,
)
from echopilot.clock import ensure_utc  # noqa: E402

PG_URL = os.environ.get(
    "ECHOPILOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ECHOPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
MODEL_SECONDS = 0.2  # every model call
CALLS_PER_JOB = 2  # the task and the QA judge
CONCURRENCY = 16  # threads of each worker process
# Submitting threads: connections to the API, or threads calling intake (which does about
# 500 jobs/s with 4 threads on this machine; POST /api/jobs about 200/s).
SUBMIT_CONNECTIONS = {"api": 8, "intake": 4}
TARGET_SCALING = 3.0  # issue 14: 4 workers finish at least 3x the jobs/s of 1
TARGET_WORKERS = 4
FULL_JOBS, QUICK_JOBS = 1500, 120
FULL_WORKERS = [1, 2, 4]
FULL_API_SECONDS, QUICK_API_SECONDS = 10.0, 2.0
API_CLIENTS = 50
API_PROCESSES = 2
API_TIMEOUT = 30.0
READY_TIMEOUT_SECONDS = 60.0
SAMPLE_SECONDS = 0.1  # pg_stat_activity sampling
STALL_SECONDS = 60.0  # no job finished for this long: the run is given up
CPU_BOUND_PERCENT = 85.0  # the machine this busy over a run: its cores set the pace
OTHER_SHOWN_PERCENT = 10.0  # CPU outside the set-up above this (of one core): name its users
POLL_SECONDS = 0.1
FINAL = ("done", "needs_review", "dead", "cancelled")
API_KEY = "sk-bench-load-0123456789abcdef"  # the fake model server takes any key
# Settings a developer's shell may hold that must not reach the children (as in the tests).
FOREIGN_ENV = (
    "ECHOPILOT_",
    "OPENAI_",
    "SCHED_",
    "DASHBOARD_KEY",
    "SMTP_",
    "ALERT_TO",
    "TELEGRAM_",
    "STRIPE_",
    "NOTION_",
)
API_ENDPOINTS = (HEALTH, JOBS, SUMMARY)


# -- CPU from /proc ---------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    comm: str
    ppid: int
    cpu: float  # user + system seconds


def processes() -> dict[int, Proc]:
    """Every process's name, parent and CPU seconds, from /proc/<pid>/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        head, tail = stat.rsplit(")", 1)
        fields = tail.split()
        comm = head.split("(", 1)[1]
        found[int(entry.name)] = Proc(
            comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
        )
    return found


def machine_cpu() -> tuple[float, float, float]:
    """(busy, steal, all) CPU seconds of the whole machine since boot, every core."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    every = user + nice + system + idle + iowait + irq + softirq + steal
    busy = user + nice + system + irq + softirq
    return busy / tick, steal / tick, every / tick


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class Snapshot:
    at: float
    procs: dict[int, Proc]
    machine: tuple[float, float, float]
    own: float

    @classmethod
    def take(cls) -> Snapshot:
        return cls(time.monotonic(), processes(), machine_cpu(), _own_cpu())


def tree(procs: dict[int, Proc], root: int) -> set[int]:
    """`root` and every process descending from it."""
    found = {root}
    grew = True
    while grew:
        more = {pid for pid, p in procs.items() if p.ppid in found} - found
        found |= more
        grew = bool(more)
    return found


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent between two snapshots, by part of the set-up."""

    seconds: float  # wall time between the snapshots
    parts: dict[str, float]
    machine_busy: float  # every core, every process
    machine_steal: float
    machine_all: float  # wall seconds x cores

    @property
    def other(self) -> float:
        return max(0.0, self.machine_busy - sum(self.parts.values()))

    def percent(self, cpu: float) -> float:
        """`cpu` as a share of one core over the window."""
        return 100 * cpu / self.seconds if self.seconds > 0 else 0.0

    @property
    def busy_share(self) -> float:
        """The machine's busy time against all its cores' time (100 % = every core busy)."""
        return 100 * self.machine_busy / self.machine_all if self.machine_all > 0 else 0.0


def cpu_use(
    before: Snapshot, after: Snapshot, groups: dict[str, set[int]], own: str | None
) -> CpuUse:
    """CPU of each group of pids between the snapshots; a process that started in between
    counts whole, one that ended in between is lost. `own` names this process's part."""
    parts: dict[str, float] = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            if pid in after.procs:
                start = before.procs[pid].cpu if pid in before.procs else 0.0
                total += max(0.0, after.procs[pid].cpu - start)
        parts[name] = total
    if own:
        parts[own] = after.own - before.own
    busy = after.machine[0] - before.machine[0]
    return CpuUse(
        seconds=after.at - before.at,
        parts=parts,
        machine_busy=busy,
        machine_steal=after.machine[1] - before.machine[1],
        machine_all=after.machine[2] - before.machine[2],
    )


def by_name(procs: dict[int, Proc], *names: str) -> set[int]:
    return {pid for pid, p in procs.items() if p.comm in names}


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def pg_backends(procs: dict[int, Proc], database: str) -> set[int]:
    """The PostgreSQL server processes serving `database` (their title names it)."""
    return {pid for pid in by_name(procs, "postgres") if f" {database} " in f" {_cmdline(pid)} "}


def busiest_others(
    before: Snapshot, after: Snapshot, accounted: set[int], shown: int = 3
) -> list[str]:
    """The processes outside `accounted` (and this one) that used the most CPU between the
    snapshots: what the machine also ran (another user's tests, a backup...)."""
    used = []
    for pid, proc in after.procs.items():
        if pid in accounted or pid == os.getpid():
            continue
        start = before.procs[pid].cpu if pid in before.procs else 0.0
        if proc.cpu - start > 0:
            used.append((proc.cpu - start, pid))
    seconds = after.at - before.at
    lines = []
    for cpu, pid in sorted(used, reverse=True)[:shown]:
        command = _cmdline(pid) or after.procs[pid].comm
        lines.append(f"{100 * cpu / seconds:.0f}% pid {pid} {command[:90]}")
    return lines


# -- PostgreSQL + Redis -----------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    database_url: str
    name: str  # of the database, and of the Redis queue


@contextmanager
def backend() -> Iterator[Backend]:
    """A fresh PostgreSQL database and a Redis queue name of this run's own; the database
    is dropped and the queue's keys deleted afterwards."""
    import redis

    # Underscores only: Huey's Redis storage strips other characters from the name, and
    # the keys are found again by it.
    name = f"ep_bench_load_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        yield Backend(url, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"*{name}*"):
            client.delete(key)
        client.close()


def child_env(home: Path, db: Backend, model_url: str, **extra: str) -> dict[str, str]:
    """The environment of every `echopilot` child: this one's without any EchoPilot
    setting, pinned to the run's home, database, queue and the fake model server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    env.update(
        {
            "ECHOPILOT_HOME": str(home),
            "ECHOPILOT_DATABASE_URL": db.database_url,
            "ECHOPILOT_QUEUE_URL": REDIS_URL,
            "ECHOPILOT_QUEUE_NAME": db.name,
            "ECHOPILOT_AI_PROVIDER": "openai",
            "OPENAI_BASE_URL": model_url,
            "OPENAI_API_KEY": API_KEY,
            "DASHBOARD_KEY": DASHBOARD_KEY,
            **extra,
        }
    )
    return env


def migrate(env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "echopilot", "db", "upgrade"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(f"db upgrade exited {done.returncode}: {done.stderr.strip()[-2000:]}")


PG_STATS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted")


def pg_stats(name: str) -> dict[str, int]:
    """The database's transaction and row counters (pg_stat_database), read from another
    database so that reading them adds nothing. A server process adds its counts when it
    ends (or at most once a second while busy), so read them once the others ended."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            row = conn.execute(
                text(f"SELECT {', '.join(PG_STATS)} FROM pg_stat_database WHERE datname = :n"),
                {"n": name},
            ).one()
    finally:
        admin.dispose()
    return {key: int(value or 0) for key, value in zip(PG_STATS, row, strict=True)}


class SessionSampler:
    """Samples the run database's sessions in pg_stat_activity every SAMPLE_SECONDS (from
    another database): how many were running a statement, waiting for a lock or for the
    disk, or idle inside a transaction (its locks held while the client works)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.samples = 0
        self.seen: Counter[str] = Counter()  # state or wait -> sessions summed over samples
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pg-sampler", daemon=True)

    def start(self) -> SessionSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _loop(self) -> None:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        query = text(
            "SELECT state, wait_event_type, wait_event, count(*) FROM pg_stat_activity "
            "WHERE datname = :n AND pid <> pg_backend_pid() GROUP BY 1, 2, 3"
        )
        try:
            with admin.connect() as conn:
                while not self._stop.wait(SAMPLE_SECONDS):
                    rows = conn.execute(query, {"n": self.name}).all()
                    self.samples += 1
                    for state, wait_type, wait, count in rows:
                        if state == "active":
                            self.seen["active"] += count
                            if wait_type in ("Lock", "LWLock", "IO"):
                                self.seen[f"{wait_type}:{wait}"] += count
                        elif state == "idle in transaction":
                            self.seen["idle in transaction"] += count
        finally:
            admin.dispose()

    def mean(self, key: str) -> float:
        return self.seen[key] / self.samples if self.samples else 0.0

    def lock_waits(self) -> float:
        return sum(self.mean(k) for k in self.seen if k.startswith("Lock:"))

    def summary(self) -> str:
        waits = sorted((k for k in self.seen if ":" in k), key=lambda k: -self.seen[k])
        locks = self.lock_waits()
        shown = ", ".join(f"{k} {self.mean(k):.2f}" for k in waits[:4]) or "none"
        return (
            f"running a statement {self.mean('active'):.2f} (of which waiting for a lock "
            f"{locks:.2f}; waits: {shown}), idle in a transaction "
            f"{self.mean('idle in transaction'):.2f}"
        )


# -- the fake model server --------------------------------------------------------------


def model_server(calls: int) -> FakeModelServer:
    """The test suite's fake, every reply scripted to take MODEL_SECONDS: its default
    replies answer at once, so `calls` of each stage are queued (the run needs one task
    and one QA call a job; more are queued so that a retry is slow too)."""
    server = FakeModelServer()
    score = Reply.score(*server.default_score)
    server.on("task", *[Reply.ok(server.default_text, delay=MODEL_SECONDS)] * calls)
    server.on("qa", *[replace(score, delay=MODEL_SECONDS)] * calls)
    return server.start()


# -- worker processes -------------------------------------------------------------------


def start_worker(env: dict[str, str], cwd: Path, n: int) -> subprocess.Popen[bytes]:
    with (cwd / f"worker-{n}.out").open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "echopilot",
                "worker",
                "--concurrency",
                str(CONCURRENCY),
            ],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _check_alive(workers: list[subprocess.Popen[bytes]], cwd: Path) -> None:
    for n, worker in enumerate(workers):
        if worker.poll() is not None:
            tail = (cwd / f"worker-{n}.out").read_text(errors="replace")[-2000:]
            raise SetupError(f"worker {n} exited ({worker.returncode}): {tail}")


def wait_ready(engine: Engine, workers: list[subprocess.Popen[bytes]], cwd: Path) -> float:
    """Seconds until every worker has written its heartbeat row."""
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_SECONDS:
        _check_alive(workers, cwd)
        with engine.connect() as conn:
            beats = conn.execute(text("SELECT count(*) FROM worker_heartbeats")).scalar_one()
        if beats >= len(workers):
            return time.monotonic() - started
        time.sleep(0.1)
    raise SetupError(f"the workers did not start within {READY_TIMEOUT_SECONDS:.0f} s")


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(STOP_TIMEOUT_SECONDS + 30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(STOP_TIMEOUT_SECONDS)


def finished_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM jobs WHERE status = ANY(:final)"),
                {"final": list(FINAL)},
            ).scalar_one()
        )


def wait_finished(
    engine: Engine, total: int, workers: list[subprocess.Popen[bytes]], cwd: Path
) -> bool:
    """Wait until `total` jobs are in a final status; False when none finished for
    STALL_SECONDS."""
    last, progress_at = -1, time.monotonic()
    while True:
        count = finished_count(engine)
        if count >= total:
            return True
        if count != last:
            last, progress_at = count, time.monotonic()
        elif time.monotonic() - progress_at > STALL_SECONDS:
            return False
        _check_alive(workers, cwd)
        time.sleep(POLL_SECONDS)


# -- submitting jobs (a child process: its own GIL) -------------------------------------


def _submit_child(spec: dict[str, Any], conn: Connection) -> None:
    """POST /api/jobs (spec["url"]) or call jobs.intake.submit (spec["env"]: the settings
    of the workers) from spec["connections"] threads, one batch per ("go", first, jobs)
    message, until "bye"."""
    runtime = None
    try:
        if spec["kind"] == "intake":
            from echopilot.config import load_settings
            from echopilot.runtime import Runtime

            os.environ.clear()
            os.environ.update(spec["env"])
            pool = spec["connections"] + 2
            runtime = Runtime(load_settings(_env_file=None), pool_size=pool)
        conn.send("ready")
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message == "bye":
                return
            _, first, jobs = message
            conn.send(_batch(spec, runtime, first, jobs))
    finally:
        # Closed only now: the parent reads the CPU of this process and of its database
        # connections before it says bye (a process that ended is lost to /proc).
        if runtime is not None:
            runtime.close()
        conn.close()


def _batch(spec: dict[str, Any], runtime: Any, first: int, jobs: int) -> dict[str, Any]:
    """Submit jobs `first` to `first + jobs - 1` from spec["connections"] threads."""
    counter = iter(range(first, first + jobs))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    shed = [0]

    def post_all() -> None:
        headers = {KEY_HEADER: DASHBOARD_KEY}
        with httpx.Client(headers=headers, timeout=API_TIMEOUT) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                body = {"name": f"load job {i}", "task_type": "summary", "input": PROSE}
                while True:
                    sent = time.perf_counter()
                    try:
                        answer = client.post(f"{spec['url']}/api/jobs", json=body)
                    except httpx.HTTPError as exc:
                        # Not sent again: the job may have been made.
                        statuses[f"error {type(exc).__name__}"] += 1
                        break
                    if answer.status_code == 503:  # shed before any work: safe to resend
                        shed[0] += 1
                        time.sleep(float(answer.headers.get("Retry-After", "1")))
                        continue
                    code = answer.status_code
                    statuses["created" if code == 201 else str(code)] += 1
                    latencies.append((time.perf_counter() - sent) * 1000)
                    break

    def submit_all() -> None:
        from echopilot.jobs.intake import JobRequest, submit

        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            request = JobRequest(
                name=f"load job {i}", task_type="summary", input=PROSE, source="cli"
            )
            sent = time.perf_counter()
            try:
                submit(runtime, request, actor="bench")
            except Exception as exc:
                statuses[f"error {type(exc).__name__}"] += 1
                continue
            statuses["created"] += 1
            latencies.append((time.perf_counter() - sent) * 1000)

    target = submit_all if runtime is not None else post_all
    threads = [threading.Thread(target=target) for _ in range(spec["connections"])]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "seconds": time.perf_counter() - started,
        "statuses": dict(statuses),
        "shed": shed[0],
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


@dataclass(frozen=True)
class Submitted:
    kind: str
    jobs: int
    seconds: float
    statuses: dict[str, int]
    shed: int
    p50_ms: float | None
    p99_ms: float | None

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0

    @property
    def created(self) -> int:
        return self.statuses.get("created", 0)


class Submitter:
    """A child process (its own GIL) that submits batches of jobs when told to go, through
    POST /api/jobs at `url`, or, when `url` is None, through jobs.intake.submit with the
    settings of `env`. Its imports and set-up happen before the first batch."""

    def __init__(self, url: str | None, env: dict[str, str], connections: int) -> None:
        self.kind = "api" if url else "intake"
        self._jobs = 0
        spec = {"kind": self.kind, "url": url, "env": env, "connections": connections}
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=_submit_child, args=(spec, child_conn))
        self.process.start()
        child_conn.close()
        try:
            ready = self._conn.poll(READY_TIMEOUT_SECONDS) and self._conn.recv() == "ready"
        except EOFError:
            ready = False
        if not ready:
            self.close()
            raise SetupError(f"the submitting process did not start ({self.process.exitcode})")

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def go(self, first: int, jobs: int) -> None:
        """Start submitting jobs named `load job <first>` onwards."""
        self._jobs = jobs
        self._conn.send(("go", first, jobs))

    def result(self) -> Submitted:
        """The batch's figures, once all its jobs are submitted."""
        try:
            data = self._conn.recv()
        except EOFError:
            raise SetupError(
                f"the submitting process died (exit code {self.process.exitcode})"
            ) from None
        return Submitted(
            kind=self.kind,
            jobs=self._jobs,
            seconds=data["seconds"],
            statuses=data["statuses"],
            shed=data["shed"],
            p50_ms=data["p50_ms"],
            p99_ms=data["p99_ms"],
        )

    def submit(self, first: int, jobs: int) -> Submitted:
        self.go(first, jobs)
        return self.result()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("bye")
        self._conn.close()
        self.process.join(STOP_TIMEOUT_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_TIMEOUT_SECONDS)


# -- one worker count -------------------------------------------------------------------


@dataclass(frozen=True)
class Exactly:
    """Every job's outcome in the database."""

    statuses: dict[str, int]
    one_ok: int  # with exactly one ok attempt
    no_ok: int  # without an ok attempt
    many_ok: int  # more than one ok attempt: a duplicate completion
    retried: int  # jobs with more than one attempt row

    def clean(self, jobs: int) -> bool:
        return self.statuses == {"done": jobs} and self.one_ok == jobs and not self.many_ok


@dataclass(frozen=True)
class Phase:
    """One batch of measured jobs on one worker count's processes."""

    kind: str  # "live": submitted while the workers run; "backlog": while they were paused
    workers: int
    jobs: int
    submitted: Submitted
    finished: bool  # every job reached a final status (else the run stalled)
    # Seconds from the start (the first created_at; for a backlog, the workers' resumption)
    # to each done job's finished_at, sorted.
    finishes: list[float]
    done_ms: list[float]  # created_at to finished_at of each done job
    worker_ms: list[float]  # each job's ok attempt's latency_ms
    per_worker: list[int]  # jobs finished by each worker process
    cpu: CpuUse
    others: list[str]  # the busiest processes outside the set-up meanwhile
    sessions: str  # what the database's sessions did, sampled
    lock_waits: float  # sessions waiting for a lock, mean of the samples

    @property
    def rate(self) -> float:
        return len(self.finishes) / self.finishes[-1] if self.finishes else 0.0

    @property
    def steady_rate(self) -> float | None:
        """Jobs/s between the (threads)-th finish and the (jobs - threads)-th, as
        bench/pipeline.py counts it: the first wave (start-up) and the last (threads running
        out of work) left out; None with fewer than 3 x threads jobs."""
        threads = self.workers * CONCURRENCY
        begin, end = threads, len(self.finishes) - threads
        if end - begin < threads:
            return None
        seconds = self.finishes[end - 1] - self.finishes[begin - 1]
        return (end - begin) / seconds if seconds > 0 else None

    @property
    def ideal(self) -> float:
        return self.workers * CONCURRENCY / (CALLS_PER_JOB * MODEL_SECONDS)

    @property
    def worker_cpu_ms_per_job(self) -> float:
        return 1000 * self.cpu.parts["workers"] / self.jobs

    @property
    def setup_cpu_ms_per_job(self) -> float:
        """CPU of every part of the set-up (workers, API, PostgreSQL, Redis, the fake model
        server, the submitter) over the jobs."""
        return 1000 * sum(self.cpu.parts.values()) / self.jobs

    def cpu_bound_rate(self, cores: int) -> float:
        """Jobs/s if `cores` cores did nothing but this work at this cost a job."""
        per_job = self.setup_cpu_ms_per_job
        return 1000 * cores / per_job if per_job > 0 else 0.0


@dataclass(frozen=True)
class RunFigure:
    workers: int
    warmup: int
    live: Phase
    backlog: Phase | None
    exactly: Exactly  # over every job of the run, warm-up included
    all_jobs: int
    model_calls: dict[str, int]  # the fake's count by stage, over every job
    pg: dict[str, int]  # pg_stat_database counters over the whole run
    problems: list[str] = field(default_factory=list)

    @property
    def phases(self) -> list[Phase]:
        return [self.live] + ([self.backlog] if self.backlog else [])


def _seconds(later: datetime, earlier: datetime) -> float:
    return (ensure_utc(later) - ensure_utc(earlier)).total_seconds()


def read_rows(engine: Engine, first_id: int = 1) -> tuple[list[Any], list[Any]]:
    """The job rows (id, status, created_at, finished_at) from `first_id` on, and their
    attempt rows (job_id, status, latency_ms, worker)."""
    with engine.connect() as conn:
        jobs = conn.execute(
            text(
                "SELECT id, status, created_at, finished_at FROM jobs WHERE id >= :first "
                "ORDER BY id"
            ),
            {"first": first_id},
        ).all()
        attempts = conn.execute(
            text(
                "SELECT job_id, status, latency_ms, worker FROM job_attempts WHERE job_id >= :first"
            ),
            {"first": first_id},
        ).all()
    return list(jobs), list(attempts)


def exactly_once(jobs: list[Any], attempts: list[Any]) -> Exactly:
    ok: Counter[int] = Counter(a.job_id for a in attempts if a.status == "ok")
    rows: Counter[int] = Counter(a.job_id for a in attempts)
    return Exactly(
        statuses=dict(Counter(j.status for j in jobs)),
        one_ok=sum(1 for j in jobs if ok[j.id] == 1),
        no_ok=sum(1 for j in jobs if ok[j.id] == 0),
        many_ok=sum(1 for j in jobs if ok[j.id] > 1),
        retried=sum(1 for j in jobs if rows[j.id] > 1),
    )


def log_problems(home: Path, shown: int = 6) -> list[str]:
    """Warnings and errors in every log of the home (workers' and server's), alike ones
    counted once."""
    problems: Counter[str] = Counter()
    for path in sorted((home / "logs").glob("*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if line.strip():
                    problems[f"{path.stem}: {line[:200]}"] += 1
                continue
            if entry.get("level") in ("warning", "error", "critical"):
                event = " ".join(str(entry.get("event", line)).split())[:200]
                exception = str(entry.get("exception") or "").strip().splitlines()
                if exception:
                    event += f": {exception[-1][:200]}"
                problems[f"{path.stem} {entry.get('level')}: {event}"] += 1
    lines = [f"x{count} {what}" for what, count in problems.most_common(shown)]
    if len(problems) > shown:
        lines.append(f"... and {len(problems) - shown} other kinds")
    return lines


@dataclass
class Rig:
    """What one worker count runs on."""

    db: Backend
    engine: Engine
    workers: list[subprocess.Popen[bytes]]
    cwd: Path
    submitter: Submitter
    server: Server | None
    submitted: int = 0  # jobs submitted so far (their names' numbers)

    def signal_workers(self, signum: int) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    def groups(self, after: Snapshot) -> dict[str, set[int]]:
        workers: set[int] = set()
        for worker in self.workers:
            workers |= tree(after.procs, worker.pid)
        return {
            "workers": workers,
            "API": tree(after.procs, self.server.pid) if self.server is not None else set(),
            "PostgreSQL": pg_backends(after.procs, self.db.name),
            "Redis": by_name(after.procs, "redis-server"),
            "submitter": {self.submitter.pid},
        }


def measure_phase(rig: Rig, kind: str, jobs: int) -> Phase:
    """`jobs` jobs submitted while the workers run ("live"), or while they are paused
    with SIGSTOP and then resumed ("backlog": the workers drain a full queue)."""
    with rig.engine.connect() as conn:
        first_id = int(conn.execute(text("SELECT max(id) FROM jobs")).scalar_one()) + 1
        earlier = int(conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())
    first, rig.submitted = rig.submitted, rig.submitted + jobs
    sampler = SessionSampler(rig.db.name)
    started_at: datetime | None = None
    try:
        if kind == "backlog":
            rig.signal_workers(signal.SIGSTOP)
            try:
                submitted = rig.submitter.submit(first, jobs)
                sampler.start()
                before = Snapshot.take()
                started_at = datetime.now(UTC)
            finally:
                rig.signal_workers(signal.SIGCONT)
        else:
            sampler.start()
            before = Snapshot.take()
            rig.submitter.go(first, jobs)
            submitted = rig.submitter.result()
        finished = wait_finished(rig.engine, earlier + submitted.created, rig.workers, rig.cwd)
        after = Snapshot.take()
    finally:
        sampler.stop()
    groups = rig.groups(after)
    cpu = cpu_use(before, after, groups, own="fake model")
    job_rows, attempt_rows = read_rows(rig.engine, first_id)
    ok = {a.job_id: a for a in attempt_rows if a.status == "ok"}
    done = [j for j in job_rows if j.status == "done" and j.finished_at is not None]
    if started_at is None and job_rows:
        started_at = ensure_utc(min(j.created_at for j in job_rows))
    return Phase(
        kind=kind,
        workers=len(rig.workers),
        jobs=len(job_rows),
        submitted=submitted,
        finished=finished,
        finishes=sorted(_seconds(j.finished_at, started_at) for j in done) if started_at else [],
        done_ms=[1000 * _seconds(j.finished_at, j.created_at) for j in done],
        worker_ms=[float(a.latency_ms) for a in ok.values() if a.latency_ms is not None],
        per_worker=sorted(Counter(a.worker for a in ok.values()).values()),
        cpu=cpu,
        others=busiest_others(before, after, set().union(*groups.values())),
        sessions=sampler.summary(),
        lock_waits=sampler.lock_waits(),
    )


def run_workers(
    count: int,
    jobs: int,
    db: Backend,
    tmp: Path,
    fake: FakeModelServer,
    through: str,
    backlog: bool,
) -> RunFigure:
    """`count` worker processes on `db`: a warm-up, then `jobs` jobs submitted `through`
    the API (one `echopilot serve`) or intake while they run, then (with `backlog`) `jobs`
    more while they are paused."""
    home = tmp / "home"
    env = child_env(home, db, fake.url)
    migrate(env, tmp)
    stats_before = pg_stats(db.name)
    engine = create_engine(db.database_url, pool_size=2)
    server = Server(env, tmp) if through == "api" else None
    workers: list[subprocess.Popen[bytes]] = []
    submitter: Submitter | None = None
    try:
        if server is not None:
            server.start()
        workers = [start_worker(env, tmp, n) for n in range(count)]
        wait_ready(engine, workers, tmp)
        submitter = Submitter(
            server.url if server is not None else None, env, SUBMIT_CONNECTIONS[through]
        )
        rig = Rig(db, engine, workers, tmp, submitter, server)
        # One job a thread: each worker builds its model client and fills its connection
        # pool before the measured jobs (a one-off cost of every process start).
        warmup = count * CONCURRENCY
        rig.submitter.submit(0, warmup)
        rig.submitted = warmup
        if not wait_finished(engine, warmup, workers, tmp):
            raise SetupError(f"the {warmup} warm-up jobs did not finish")
        live = measure_phase(rig, "live", jobs)
        drained = measure_phase(rig, "backlog", jobs) if backlog and live.finished else None
        job_rows, attempt_rows = read_rows(engine)
    finally:
        for worker in workers:  # a paused worker would not hear SIGTERM
            if worker.poll() is None:
                worker.send_signal(signal.SIGCONT)
        if submitter is not None:
            submitter.close()
        stop_workers(workers)
        if server is not None:
            server.stop()
        engine.dispose()
    time.sleep(0.5)  # the server processes of the ended connections add their counts
    stats_after = pg_stats(db.name)
    return RunFigure(
        workers=count,
        warmup=warmup,
        live=live,
        backlog=drained,
        exactly=exactly_once(job_rows, attempt_rows),
        all_jobs=len(job_rows),
        model_calls={stage: fake.count(stage) for stage in ("task", "qa")},
        pg={k: stats_after[k] - stats_before[k] for k in PG_STATS},
        problems=log_problems(home),
    )


# -- the API on PostgreSQL --------------------------------------------------------------


@dataclass(frozen=True)
class ApiFigure:
    load: LoadFigure
    cpu: CpuUse


@dataclass(frozen=True)
class PostFigure:
    submitted: Submitted
    cpu: CpuUse


def run_api(
    db: Backend, tmp: Path, model_url: str, processes: int, seconds: float, tool: str, posts: int
) -> tuple[list[ApiFigure], PostFigure | None]:
    """Closed loops on the API reads, then `posts` jobs through POST /api/jobs, on one
    `echopilot serve` of `processes` processes; no worker runs."""
    env = child_env(tmp / "home", db, model_url, ECHOPILOT_API_WORKERS=str(processes))
    server = Server(env, tmp)
    server.start()
    figures = []
    post = None
    try:
        for endpoint in API_ENDPOINTS:
            print(
                f"  {endpoint.label}: {API_CLIENTS} clients for {seconds:g} s ({tool}) ...",
                end="",
                flush=True,
            )
            before = Snapshot.take()
            children_before = _children_cpu()
            figure = measure(
                endpoint, server.url, server.pid, tool, API_CLIENTS, seconds, API_TIMEOUT
            )
            after = Snapshot.take()
            cpu = cpu_use(before, after, _api_groups(after, server.pid, db), own="bench")
            cpu.parts["load generator"] = _children_cpu() - children_before
            figure = replace(figure, server_cpu_seconds=cpu.parts["API"])
            figures.append(ApiFigure(figure, cpu))
            print(f" {figure.ok_rate:.1f} req/s, p99 {_ms(figure.p99_ms)} ms", flush=True)
        if posts:
            connections = SUBMIT_CONNECTIONS["api"]
            print(
                f"  POST /api/jobs: {posts} jobs from {connections} connections ...",
                end="",
                flush=True,
            )
            submitter = Submitter(server.url, env, connections)
            try:
                before = Snapshot.take()
                submitter.go(10**6, posts)
                submitted = submitter.result()
                after = Snapshot.take()
                groups = _api_groups(after, server.pid, db)
                groups["load generator"] = {submitter.pid}
            finally:
                submitter.close()
            cpu = cpu_use(before, after, groups, own=None)
            post = PostFigure(submitted, cpu)
            print(f" {submitted.rate:.1f} jobs/s, p99 {_ms(submitted.p99_ms)} ms", flush=True)
    finally:
        server.stop()
    return figures, post


def _api_groups(after: Snapshot, server_pid: int, db: Backend) -> dict[str, set[int]]:
    return {
        "API": tree(after.procs, server_pid),
        "PostgreSQL": pg_backends(after.procs, db.name),
        "Redis": by_name(after.procs, "redis-server"),
    }


def _children_cpu() -> float:
    """CPU of this process's children that ended and were waited for (wrk, loadgen)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the report -------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _s(value_ms: float | None) -> str:
    return "-" if value_ms is None else f"{value_ms / 1000:.2f}"


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


PHASE_TITLES = {
    "live": "jobs submitted while the workers run (first submit to last finish)",
    "backlog": "a backlog: jobs queued while the workers were paused, then drained "
    "(resumption to last finish)",
}


def print_run(f: RunFigure) -> None:
    for p in f.phases:
        s = p.submitted
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(s.statuses.items()))
        shed = f"; {s.shed} shed (503) and sent again" if s.shed else ""
        print(
            f"    {p.kind}: submitted {p.jobs} through {s.kind} in {s.seconds:.2f} s "
            f"({s.rate:.0f}/s; {statuses}{shed}; p50 {_ms(s.p50_ms)} / p99 "
            f"{_ms(s.p99_ms)} ms a job)"
        )
        print(
            f"      jobs/s {p.rate:.1f} of an ideal {p.ideal:.0f}; submit to done p50 "
            f"{_s(percentile(p.done_ms, 50))} s / p99 {_s(percentile(p.done_ms, 99))} s; "
            f"in a worker p50 {_ms(percentile(p.worker_ms, 50))} / p99 "
            f"{_ms(percentile(p.worker_ms, 99))} ms; jobs per worker {p.per_worker}"
        )
        print(f"      PostgreSQL sessions, mean of samples: {p.sessions}")
        if not p.finished:
            print(f"      STALLED: no job finished for {STALL_SECONDS:.0f} s")
        if p.cpu.percent(p.cpu.other) >= OTHER_SHOWN_PERCENT:
            print(f"      other processes busy meanwhile: {'; '.join(p.others)}")
    e = f.exactly
    print(
        f"    exactly once ({f.all_jobs} jobs, warm-up included): statuses {e.statuses}; "
        f"one ok attempt {e.one_ok}, none {e.no_ok}, more than one {e.many_ok}; "
        f"more than one attempt {e.retried}; model calls task {f.model_calls['task']}, "
        f"QA {f.model_calls['qa']}"
    )
    per_job = ", ".join(
        f"{key.removeprefix('xact_').removeprefix('tup_')} {value / f.all_jobs:.1f}"
        for key, value in f.pg.items()
    )
    print(f"    PostgreSQL a job (whole run, warm-up and polling included): {per_job}")
    for problem in f.problems:
        print(f"    log {problem}")


def print_report(
    runs: list[RunFigure],
    api: list[ApiFigure],
    post: PostFigure | None,
    tool: str,
    processes: int,
) -> None:
    cores = os.cpu_count() or 1
    print()
    print("EchoPilot load benchmark (PostgreSQL + Redis)")
    print(f"machine: {machine()}; {cores} CPUs in /proc/stat")
    if runs:
        through = runs[0].live.submitted.kind
        how = (
            "POST /api/jobs to one `echopilot serve`"
            if through == "api"
            else "jobs.intake.submit (what POST /api/jobs calls), without HTTP"
        )
        print(
            f"model: the fake OpenAI-compatible server, {1000 * MODEL_SECONDS:.0f} ms a call, "
            f"{CALLS_PER_JOB} calls a job; each worker `echopilot worker --concurrency "
            f"{CONCURRENCY}`; jobs submitted all at once from a child process "
            f"({SUBMIT_CONNECTIONS[through]} threads) through {how}"
        )
    for kind in ("live", "backlog"):
        phases = [p for r in runs for p in r.phases if p.kind == kind]
        if phases:
            print()
            print(PHASE_TITLES[kind])
            _print_phases(phases, runs)
    if runs:
        print(
            "  (jobs/s: the jobs done over the phase; ideal: workers x "
            f"{CONCURRENCY} threads / {CALLS_PER_JOB * MODEL_SECONDS:g} s; steady: jobs/s "
            "without the first and last wave of finishes; done: created_at to finished_at, "
            "queue wait included; worker: the ok attempt's latency_ms; locks: database "
            "sessions waiting for a lock, mean of samples)"
        )
    print()
    print("CPU of each phase (its start to its last finish), % of one core")
    parts = ("workers", "API", "PostgreSQL", "Redis", "fake model", "submitter")
    print(
        f"  {'workers':>7}  {'phase':>7}  {'seconds':>7}  "
        + "  ".join(f"{p:>10}" for p in parts)
        + f"  {'other':>6}  {'machine':>7}  {'steal':>5}  {'worker ms/job':>13}  "
        f"{'all ms/job':>10}  {'CPU-bound jobs/s':>16}"
    )
    for r in runs:
        for p in r.phases:
            c = p.cpu
            print(
                f"  {r.workers:>7}  {p.kind:>7}  {c.seconds:>7.1f}  "
                + "  ".join(f"{c.percent(c.parts[n]):>9.0f}%" for n in parts)
                + f"  {c.percent(c.other):>5.0f}%  {c.busy_share:>6.0f}%  "
                f"{c.percent(c.machine_steal):>4.0f}%  {p.worker_cpu_ms_per_job:>13.1f}  "
                f"{p.setup_cpu_ms_per_job:>10.1f}  {p.cpu_bound_rate(cores):>16.0f}"
            )
    print(
        f"  (PostgreSQL: the server processes of the run's database; machine: the whole "
        f"machine from /proc/stat, 100% = all {cores} cores busy; other: its busy time no "
        "column accounts for; all ms/job: the columns' CPU over the phase's jobs; "
        f"CPU-bound jobs/s: {cores} cores' time over that)"
    )
    print()
    _print_targets(runs, cores)
    if api or post:
        _print_api(api, post, tool, processes)


def _print_phases(phases: list[Phase], runs: list[RunFigure]) -> None:
    print(
        f"  {'workers':>7}  {'jobs':>5}  {'submit/s':>8}  {'jobs/s':>7}  {'ideal':>6}  "
        f"{'% ideal':>7}  {'x 1 worker':>10}  {'steady':>6}  {'done p50 s':>10}  "
        f"{'p99 s':>6}  {'worker p50 ms':>13}  {'p99 ms':>7}  {'locks':>5}  "
        f"{'exactly once':>12}"
    )
    base = next((p for p in phases if p.workers == 1), None)
    for p in phases:
        run = next(r for r in runs if p in r.phases)
        steady = "-" if p.steady_rate is None else f"{p.steady_rate:.1f}"
        scaling = "-"
        if base is not None and base.rate > 0:
            scaling = "baseline" if p is base else f"{p.rate / base.rate:.2f}x"
        once = "yes" if run.exactly.clean(run.all_jobs) else "NO"
        print(
            f"  {p.workers:>7}  {p.jobs:>5}  {p.submitted.rate:>8.0f}  {p.rate:>7.1f}  "
            f"{p.ideal:>6.0f}  {100 * p.rate / p.ideal:>6.0f}%  {scaling:>10}  {steady:>6}  "
            f"{_s(percentile(p.done_ms, 50)):>10}  {_s(percentile(p.done_ms, 99)):>6}  "
            f"{_ms(percentile(p.worker_ms, 50)):>13}  {_ms(percentile(p.worker_ms, 99)):>7}  "
            f"{p.lock_waits:>5.2f}  {once:>12}"
        )


def _print_targets(runs: list[RunFigure], cores: int) -> None:
    for kind in ("live", "backlog"):
        phases = [p for r in runs for p in r.phases if p.kind == kind]
        base = next((p for p in phases if p.workers == 1), None)
        top = next((p for p in phases if p.workers == TARGET_WORKERS), None)
        if base is None or base.rate <= 0:
            continue
        ratios = ", ".join(
            f"{p.workers} workers {p.rate / base.rate:.2f}x (ideal {p.workers}x)"
            for p in phases
            if p is not base
        )
        print(f"scaling, {kind}: {ratios}")
        if top is not None:
            ratio = top.rate / base.rate
            print(
                f"target ({kind}): {TARGET_WORKERS} workers >= {TARGET_SCALING:g}x the "
                f"jobs/s of 1: {ratio:.2f}x: {_verdict(ratio >= TARGET_SCALING)}"
            )
    every = all(r.exactly.clean(r.all_jobs) for r in runs)
    print(f"every job done exactly once (one ok attempt each, all done): {every}")
    if not runs:
        return
    last = max(runs, key=lambda r: r.workers)
    print(f"where the limit is, at {last.workers} workers:")
    for p in last.phases:
        c = p.cpu
        shares = ", ".join(
            f"{n} {1000 * c.parts[n] / p.jobs:.1f}"
            for n in sorted(c.parts, key=lambda n: -c.parts[n])
            if c.parts[n] > 0
        )
        bound = (
            "CPU-bound: the cores set the pace"
            if c.busy_share >= CPU_BOUND_PERCENT
            else "not CPU-bound: waiting (model, locks, queue) sets the pace"
        )
        print(
            f"  {p.kind}: {p.rate:.1f} jobs/s of the model's {p.ideal:.0f}; the machine "
            f"{c.busy_share:.0f}% busy ({bound}); a job cost {p.setup_cpu_ms_per_job:.1f} "
            f"CPU ms ({shares}): {cores} cores finish at most about "
            f"{p.cpu_bound_rate(cores):.0f} jobs/s; {p.lock_waits:.2f} database sessions "
            "waiting for a lock on average"
        )
        if c.percent(c.other) >= OTHER_SHOWN_PERCENT:
            print(
                f"    ({c.percent(c.other):.0f}% of a core went to processes outside the "
                "set-up: repeat on a quiet machine)"
            )


def _print_api(
    figures: list[ApiFigure], post: PostFigure | None, tool: str, processes: int
) -> None:
    print()
    print(
        f"API on PostgreSQL: `echopilot serve` with {processes} processes, closed loop "
        f"({tool}), {API_CLIENTS} clients; no worker running"
    )
    print(
        f"  {'endpoint':<26}  {'seconds':>7}  {'2xx/s':>7}  {'of health':>9}  {'p50 ms':>7}  "
        f"{'p99 ms':>7}  {'errors':>6}  {'1-client ms':>11}  {'API CPU':>7}  "
        f"{'PostgreSQL':>10}  {'loadgen':>7}  {'machine':>7}"
    )
    health = next((f for f in figures if f.load.endpoint.baseline), None)
    for f in figures:
        load, c = f.load, f.cpu
        share = "baseline"
        if not load.endpoint.baseline:
            share = "-"
            if health is not None and health.load.ok_rate > 0:
                share = f"{100 * load.ok_rate / health.load.ok_rate:.0f}%"
        print(
            f"  {load.endpoint.label:<26}  {load.seconds:>7.1f}  {load.ok_rate:>7.1f}  "
            f"{share:>9}  {_ms(load.p50_ms):>7}  {_ms(load.p99_ms):>7}  {load.errors:>6}  "
            f"{load.idle_p50_ms:>11.1f}  {c.percent(c.parts['API']):>6.0f}%  "
            f"{c.percent(c.parts['PostgreSQL']):>9.0f}%  "
            f"{c.percent(c.parts['load generator']):>6.0f}%  {c.busy_share:>6.0f}%"
        )
    if post is not None:
        s, c = post.submitted, post.cpu
        share = "-"
        if health is not None and health.load.ok_rate > 0:
            share = f"{100 * s.rate / health.load.ok_rate:.0f}%"
        failed = s.jobs - s.created
        print(
            f"  {'POST /api/jobs':<26}  {s.seconds:>7.1f}  {s.rate:>7.1f}  {share:>9}  "
            f"{_ms(s.p50_ms):>7}  {_ms(s.p99_ms):>7}  {failed:>6}  {'-':>11}  "
            f"{c.percent(c.parts['API']):>6.0f}%  {c.percent(c.parts['PostgreSQL']):>9.0f}%  "
            f"{c.percent(c.parts['load generator']):>6.0f}%  {c.busy_share:>6.0f}%"
        )
        per_job = 1000 * (c.parts["API"] + c.parts["PostgreSQL"] + c.parts["Redis"]) / s.jobs
        print(
            f"    POST /api/jobs: {s.jobs} jobs from {SUBMIT_CONNECTIONS['api']} connections "
            f"(httpx, keep-alive; {s.shed} answered 503 and were sent again after "
            "Retry-After); "
            f"{per_job:.1f} CPU ms a job in the API, PostgreSQL and Redis"
        )
    for f in figures:
        for note in f.load.notes:
            print(f"    {f.load.endpoint.label}: {note}")
    print(
        "  (API CPU: every serve process, % of one core; PostgreSQL: the run's database's "
        "server processes; machine: all cores, 100% = all busy; 1-client ms: median of 20 "
        "sequential requests before the load)"
    )


# -- main -------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Jobs/s with 1, 2 and 4 worker processes on PostgreSQL + Redis against a "
        "200 ms model, and the API's reads on PostgreSQL (prints, never asserts, figures; "
        "exit code 1 when the set-up failed or a job was not done exactly once)."
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help=f"jobs of each phase (live, backlog) of each worker count (default {FULL_JOBS}, "
        f"{QUICK_JOBS} with --quick), after a warm-up of one job per worker thread",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        metavar="N",
        help="worker process counts, one run each (default "
        f"{' '.join(map(str, FULL_WORKERS))}; 1 is the baseline of the scaling)",
    )
    parser.add_argument(
        "--api-seconds",
        type=float,
        help=f"closed loop per API endpoint (default {FULL_API_SECONDS:g}, "
        f"{QUICK_API_SECONDS:g} with --quick; 0 skips the API part)",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=API_PROCESSES,
        help=f"`echopilot serve` processes of the API part (default {API_PROCESSES})",
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "loadgen"),
        default="auto",
        help="closed-loop load generator of the API part: wrk when installed (auto), else "
        "bench/loadgen.py",
    )
    parser.add_argument(
        "--submit",
        choices=("intake", "api"),
        default="intake",
        help="how the worker runs' jobs go in: jobs.intake.submit from 4 threads (the "
        "default: it does about 500 jobs/s, the API about 200) or POST /api/jobs to one "
        "`echopilot serve` from 8 connections",
    )
    parser.add_argument(
        "--no-backlog",
        dest="backlog",
        action="store_false",
        help="skip the second phase of each worker count (--jobs more jobs queued while the "
        "workers are paused with SIGSTOP, then drained)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    args = parser.parse_args(argv)
    if args.jobs is None:
        args.jobs = QUICK_JOBS if args.quick else FULL_JOBS
    if args.workers is None:
        args.workers = list(FULL_WORKERS)
    if args.api_seconds is None:
        args.api_seconds = QUICK_API_SECONDS if args.quick else FULL_API_SECONDS
    if args.jobs < 1 or min(args.workers) < 1 or args.api_seconds < 0 or args.api_processes < 1:
        parser.error("--jobs, --workers and --api-processes must be at least 1, --api-seconds 0+")
    args.workers = list(dict.fromkeys(args.workers))
    if args.loadgen == "auto":
        args.loadgen = "wrk" if shutil.which("wrk") else "loadgen"
    elif args.loadgen == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install -y wrk), use --loadgen loadgen")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    started = time.monotonic()
    print(f"machine: {machine()}", flush=True)
    if not (answers(PG_URL, 5432) and answers(REDIS_URL, 6379)):
        print(
            f"FAILED: PostgreSQL ({PG_URL}) or Redis ({REDIS_URL}) does not answer; set "
            "ECHOPILOT_TEST_POSTGRES_URL / ECHOPILOT_TEST_REDIS_URL"
        )
        return 1
    runs: list[RunFigure] = []
    api: list[ApiFigure] = []
    post: PostFigure | None = None
    try:
        for i, count in enumerate(args.workers):
            last = i == len(args.workers) - 1
            print(
                f"  {count} worker(s) x {CONCURRENCY} threads: {count * CONCURRENCY} warm-up "
                f"jobs, then {args.jobs} live"
                + (f" and {args.jobs} backlog" if args.backlog else "")
                + " ...",
                flush=True,
            )
            # Enough scripted slow replies for every job twice over (retries stay slow).
            fake = model_server(2 * (2 * args.jobs + count * CONCURRENCY))
            try:
                with (
                    backend() as db,
                    tempfile.TemporaryDirectory(prefix="echopilot-bench-load-") as tmp,
                ):
                    runs.append(
                        run_workers(
                            count, args.jobs, db, Path(tmp), fake, args.submit, args.backlog
                        )
                    )
                    print_run(runs[-1])
                    if last and args.api_seconds:
                        api, post = run_api(
                            db,
                            Path(tmp),
                            fake.url,
                            args.api_processes,
                            args.api_seconds,
                            args.loadgen,
                            posts=args.jobs,
                        )
            finally:
                fake.stop()
    except SetupError as exc:
        print(f"\nFAILED: {exc}")
        return 1
    print_report(runs, api, post, args.loadgen, args.api_processes)
    print(f"\n(whole run: {time.monotonic() - started:.0f} s)")
    if not all(r.exactly.clean(r.all_jobs) and all(p.finished for p in r.phases) for r in runs):
        print("FAILED: some job was not done exactly once (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
