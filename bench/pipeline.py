"""Throughput of the EchoPilot job pipeline, measured against raw Huey on the same storage.

    .venv/bin/python bench/pipeline.py            # full run, a few minutes
    .venv/bin/python bench/pipeline.py --quick    # smoke run, a few seconds

Three measurements, each in its own temporary folder (removed afterwards):

1. raw Huey: a SqliteHuey built like `echopilot.queue.app.build_huey` builds it, N no-op
   tasks enqueued, then drained by a thread consumer polling like echopilot's worker;
   tasks/s from consumer start to the last task executed.
2. the pipeline with the offline provider at 0 ms a model call: N jobs submitted through
   `jobs.intake.submit`, then run by `queue.worker.run_worker(burst=True)`; jobs/s from
   worker start to the last `finished_at`, and its ratio to raw Huey at the same worker count.
3. the pipeline at 200 ms a model call (two calls a job: task and QA judge) at concurrency
   64, against the ideal of 64 / 0.4 s = 160 jobs/s.

The figures are printed, never asserted. The exit code is 1 only when a job did not end
`done` (or a run could not finish), which is a correctness problem, not a slow machine.
See bench/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huey import SqliteHuey
from huey.consumer import Consumer
from sqlalchemy import func, select

from common import machine
from echopilot import logsetup
from echopilot.clock import ensure_utc, utcnow
from echopilot.config import load_settings
from echopilot.db.engine import read_session
from echopilot.db.models import Job
from echopilot.jobs.intake import JobRequest, submit
from echopilot.queue.worker import run_worker
from echopilot.runtime import Runtime

# Keep in step with echopilot.queue.worker._Consumer, so both consumers poll alike.
CONSUMER_OPTIONS: dict[str, Any] = {
    "worker_type": "thread",
    "periodic": False,
    "initial_delay": 0.05,
    "backoff": 1.2,
    "max_delay": 1.0,
    "scheduler_interval": 1,
}
# And with echopilot.queue.app.build_huey for a sqlite:/// queue URL.
HUEY_STORAGE_OPTIONS: dict[str, Any] = {"results": False, "utc": True, "timeout": 30}

CALLS_PER_JOB = 2  # the task call and the QA judge's call
SLOW_LATENCY_MS = 200
SLOW_CONCURRENCY = 64
RATIO_TARGET = 0.5
IDEAL_TARGET_PERCENT = 90.0
DRAIN_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 0.005

FULL_JOBS, FULL_SLOW_JOBS = 2000, 1600
QUICK_JOBS, QUICK_SLOW_JOBS = 200, 320

# Five sentences the offline summary keeps three of; the offline judge scores it 100.
PROSE = (
    "EchoPilot runs AI jobs for a small services business from intake to invoice. "
    "Each job is claimed by a worker, answered by a model and scored by a QA judge before "
    "it is priced. Jobs that pass the quality threshold are marked done and billed to the "
    "client at the agreed rate. Jobs that fall short are held for review so that a person "
    "can approve, edit or retry the answer. Every model call is recorded with its tokens, "
    "latency and cost, so margins stay visible per job."
)


@dataclass(frozen=True)
class HueyFigure:
    workers: int
    tasks: int
    enqueue_seconds: float
    drain_seconds: float  # consumer start to the last task executed
    log_problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tasks / self.drain_seconds


@dataclass(frozen=True)
class PipelineFigure:
    jobs: int
    concurrency: int
    latency_ms: int
    submit_seconds: float
    run_seconds: float  # worker start to the last finished_at
    wall_seconds: float  # run_worker's whole call, idle detection and shutdown included
    finished: int
    statuses: dict[str, int]
    log_problems: list[str] = field(default_factory=list)

    @property
    def submit_rate(self) -> float:
        return self.jobs / self.submit_seconds

    @property
    def rate(self) -> float:
        return self.finished / self.run_seconds if self.run_seconds > 0 else 0.0

    @property
    def ideal_rate(self) -> float | None:
        """Jobs/s if only the simulated model latency counted, or None at 0 ms."""
        if not self.latency_ms:
            return None
        return self.concurrency / (CALLS_PER_JOB * self.latency_ms / 1000)

    @property
    def all_done(self) -> bool:
        return self.statuses == {"done": self.jobs}


@contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Consumer.start() installs its own SIGINT/SIGTERM/SIGHUP handlers; put ours back."""
    signums = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        signums.append(signal.SIGHUP)
    saved = {signum: signal.getsignal(signum) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


@contextmanager
def _bench_logging(home: Path) -> Iterator[list[str]]:
    """EchoPilot's logging at warning level into <home>/logs/bench.log; yields a list that
    receives the warnings and errors logged during the run once the block ends."""
    log_file = logsetup.setup(home, "bench", "warning", console=False)
    problems: list[str] = []
    try:
        yield problems
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        if log_file.exists():
            for line in log_file.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    problems.append(line)
                    continue
                problems.append(f"{entry.get('level', '?')}: {entry.get('event', line)}")


def _timed(label: str) -> Callable[[], None]:
    print(f"  {label} ...", end="", flush=True)
    started = time.perf_counter()

    def done() -> None:
        print(f" {time.perf_counter() - started:.1f} s", flush=True)

    return done


def bench_raw_huey(tasks: int, workers: int) -> HueyFigure:
    """Drain `tasks` no-op tasks from a fresh SqliteHuey with `workers` consumer threads."""
    with tempfile.TemporaryDirectory(prefix="echopilot-bench-huey-") as tmp:
        home = Path(tmp)
        with _bench_logging(home) as problems:
            huey = SqliteHuey("bench", filename=str(home / "queue.db"), **HUEY_STORAGE_OPTIONS)
            executed: list[float] = []  # list.append is atomic: no lock needed

            def noop() -> None:
                executed.append(time.perf_counter())

            task = huey.task(name="bench.noop")(noop)
            started = time.perf_counter()
            for _ in range(tasks):
                task()
            enqueue_seconds = time.perf_counter() - started

            consumer = Consumer(huey, workers=workers, **CONSUMER_OPTIONS)
            deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
            with _signal_handlers_kept():
                started = time.perf_counter()
                consumer.start()
                try:
                    while len(executed) < tasks:
                        if time.monotonic() > deadline:
                            raise RuntimeError(
                                f"raw Huey: {len(executed)} of {tasks} tasks ran in "
                                f"{DRAIN_TIMEOUT_SECONDS:.0f} s"
                            )
                        time.sleep(POLL_SECONDS)
                finally:
                    consumer.stop(graceful=True)
                    huey.storage.close()
        return HueyFigure(
            workers=workers,
            tasks=tasks,
            enqueue_seconds=enqueue_seconds,
            drain_seconds=max(executed) - started,
            log_problems=problems,
        )


def bench_pipeline(jobs: int, concurrency: int, latency_ms: int) -> PipelineFigure:
    """Submit `jobs` summary jobs and run them with one burst worker of `concurrency`."""
    with tempfile.TemporaryDirectory(prefix="echopilot-bench-pipeline-") as tmp:
        home = Path(tmp)
        with _bench_logging(home) as problems:
            # Database and queue are pinned to the temporary home whatever the environment
            # says: a benchmark must never write into a real EchoPilot database.
            settings = load_settings(
                home=home,
                ai_provider="offline",
                offline_latency_ms=latency_ms,
                database_url=None,
                queue_url=None,
                _env_file=None,
            )
            runtime = Runtime(settings, pool_size=concurrency + 4)
            try:
                runtime.migrate()
                started = time.perf_counter()
                for i in range(jobs):
                    request = JobRequest(
                        name=f"bench job {i + 1}", task_type="summary", input=PROSE, source="api"
                    )
                    submit(runtime, request, actor="bench")
                submit_seconds = time.perf_counter() - started

                worker_start = utcnow()
                started = time.perf_counter()
                with _signal_handlers_kept():
                    run_worker(runtime, concurrency=concurrency, burst=True)
                wall_seconds = time.perf_counter() - started

                with read_session(runtime.sessions) as session:
                    statuses = {
                        str(status): int(count)
                        for status, count in session.execute(
                            select(Job.status, func.count()).group_by(Job.status)
                        )
                    }
                    finished = session.scalar(
                        select(func.count()).select_from(Job).where(Job.finished_at.is_not(None))
                    )
                    last = session.scalar(select(func.max(Job.finished_at)))
            finally:
                if "queue" in vars(runtime):
                    runtime.queue.huey.storage.close()
                runtime.close()
        run_seconds = (ensure_utc(last) - worker_start).total_seconds() if last else 0.0
        return PipelineFigure(
            jobs=jobs,
            concurrency=concurrency,
            latency_ms=latency_ms,
            submit_seconds=submit_seconds,
            run_seconds=run_seconds,
            wall_seconds=wall_seconds,
            finished=int(finished or 0),
            statuses=statuses,
            log_problems=problems,
        )


def _report_log_problems(problems: list[str], shown: int = 5) -> None:
    for problem in problems[:shown]:
        print(f"    log {problem}")
    if len(problems) > shown:
        print(f"    log ... and {len(problems) - shown} more warnings or errors")


def _report_pipeline_run(figure: PipelineFigure) -> None:
    counts = ", ".join(f"{status} {count}" for status, count in sorted(figure.statuses.items()))
    verdict = "all done" if figure.all_done else "NOT ALL DONE"
    print(
        f"    submits/s {figure.submit_rate:.1f}; jobs/s {figure.rate:.1f} "
        f"({figure.finished} finished in {figure.run_seconds:.2f} s, "
        f"run_worker returned after {figure.wall_seconds:.2f} s)"
    )
    print(f"    statuses: {counts} -> {verdict}")
    _report_log_problems(figure.log_problems)


def _print_table(
    raw: dict[int, HueyFigure], fast: list[PipelineFigure], slow: PipelineFigure | None
) -> None:
    print()
    print("EchoPilot pipeline benchmark")
    print(f"machine: {machine()}")
    print()
    print("raw Huey (SqliteHuey file queue, thread consumer, no-op task)")
    print(f"  {'workers':>7}  {'tasks':>6}  {'enqueues/s':>10}  {'tasks/s':>8}")
    for workers in sorted(raw):
        r = raw[workers]
        enqueue_rate = r.tasks / r.enqueue_seconds
        print(f"  {workers:>7}  {r.tasks:>6}  {enqueue_rate:>10.1f}  {r.rate:>8.1f}")
    if fast:
        print()
        print(f"pipeline, offline provider at 0 ms a call (target: pipeline/raw >= {RATIO_TARGET})")
        print(
            f"  {'concurrency':>11}  {'jobs':>6}  {'submits/s':>9}  {'jobs/s':>7}  "
            f"{'raw tasks/s':>11}  {'pipeline/raw':>12}  {'target':>6}"
        )
        for f in fast:
            base = raw[f.concurrency].rate
            ratio = f.rate / base
            met = "met" if ratio >= RATIO_TARGET else "missed"
            print(
                f"  {f.concurrency:>11}  {f.jobs:>6}  {f.submit_rate:>9.1f}  {f.rate:>7.1f}  "
                f"{base:>11.1f}  {ratio:>12.2f}  {met:>6}"
            )
    if slow is not None and slow.ideal_rate is not None:
        print()
        print(
            f"pipeline, offline provider at {slow.latency_ms} ms a call, {CALLS_PER_JOB} calls "
            f"a job (target: >= {IDEAL_TARGET_PERCENT:.0f} % of ideal)"
        )
        print(
            f"  {'concurrency':>11}  {'jobs':>6}  {'jobs/s':>7}  {'ideal jobs/s':>12}  "
            f"{'% of ideal':>10}  {'target':>6}"
        )
        percent = 100 * slow.rate / slow.ideal_rate
        met = "met" if percent >= IDEAL_TARGET_PERCENT else "missed"
        print(
            f"  {slow.concurrency:>11}  {slow.jobs:>6}  {slow.rate:>7.1f}  "
            f"{slow.ideal_rate:>12.1f}  {percent:>9.1f}%  {met:>6}"
        )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput of the EchoPilot pipeline against raw Huey (prints, never "
        "asserts, figures; exit code 1 only when a job did not end done)."
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help=f"jobs (and raw no-op tasks) for the 0 ms runs (default {FULL_JOBS}, "
        f"{QUICK_JOBS} with --quick)",
    )
    parser.add_argument(
        "--slow-jobs",
        type=int,
        help=f"jobs for the {SLOW_LATENCY_MS} ms run at concurrency {SLOW_CONCURRENCY} "
        f"(default {FULL_SLOW_JOBS}, {QUICK_SLOW_JOBS} with --quick; 0 skips that run)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[8],
        metavar="K",
        help="worker concurrency of the 0 ms run; give several to compare (default 8)",
    )
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke test")
    args = parser.parse_args(argv)
    if args.jobs is None:
        args.jobs = QUICK_JOBS if args.quick else FULL_JOBS
    if args.slow_jobs is None:
        args.slow_jobs = QUICK_SLOW_JOBS if args.quick else FULL_SLOW_JOBS
    if args.jobs < 1 or args.slow_jobs < 0 or min(args.concurrency) < 1:
        parser.error("--jobs and --concurrency must be at least 1, --slow-jobs at least 0")
    args.concurrency = list(dict.fromkeys(args.concurrency))  # unique, in the order given
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    print(f"machine: {machine()}", flush=True)
    raw: dict[int, HueyFigure] = {}
    fast: list[PipelineFigure] = []
    slow: PipelineFigure | None = None

    def raw_huey(workers: int) -> None:
        if workers in raw:
            return
        done = _timed(f"raw Huey, {workers} workers, {args.jobs} no-op tasks")
        raw[workers] = bench_raw_huey(args.jobs, workers)
        done()
        print(f"    tasks/s {raw[workers].rate:.1f}")
        _report_log_problems(raw[workers].log_problems)

    for concurrency in args.concurrency:
        raw_huey(concurrency)
        done = _timed(f"pipeline at 0 ms, concurrency {concurrency}, {args.jobs} jobs")
        fast.append(bench_pipeline(args.jobs, concurrency, latency_ms=0))
        done()
        _report_pipeline_run(fast[-1])
    if args.slow_jobs:
        raw_huey(SLOW_CONCURRENCY)
        done = _timed(
            f"pipeline at {SLOW_LATENCY_MS} ms, concurrency {SLOW_CONCURRENCY}, "
            f"{args.slow_jobs} jobs"
        )
        slow = bench_pipeline(args.slow_jobs, SLOW_CONCURRENCY, latency_ms=SLOW_LATENCY_MS)
        done()
        _report_pipeline_run(slow)

    _print_table(raw, fast, slow)
    runs = [*fast, *([slow] if slow else [])]
    if not all(run.all_done for run in runs):
        print("\nFAILED: some jobs did not end done (see the status counts above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
