"""Throughput and CPU cost of the EchoPilot job pipeline, against raw Huey on the same storage.

    .venv/bin/python bench/pipeline.py            # full run, a few minutes
    .venv/bin/python bench/pipeline.py --quick    # smoke run, under a minute

Four measurements, each run in its own temporary folder (removed afterwards):

1. raw Huey: a SqliteHuey built like `echopilot.queue.app.build_huey` builds it, N no-op
   tasks enqueued, then drained by a thread consumer polling like echopilot's worker;
   tasks/s from consumer start to the last task executed, and the CPU per task.
2. the pipeline with the offline provider at 0 ms a model call, at concurrency 1 and 8: N
   jobs submitted through `jobs.intake.submit`, then run by
   `queue.worker.run_worker(burst=True)`; jobs/s from worker start to the last
   `finished_at`, its ratio to raw Huey at the same thread count, and the CPU per job
   (this process's user + system time during run_worker, divided by the jobs: the worker
   runs in this process).
3. the pipeline at 200 ms a model call (two calls a job: task and QA judge) at concurrency
   64, against the ideal of 64 / 0.4 s = 160 jobs/s.
4. the pipeline at 2 s a model call at concurrency 256, 512 and 1,024 in one worker,
   --long-waves x concurrency jobs each, against the ideal of concurrency / 4 s.

The figures are printed, never asserted. The exit code is 1 only when a job did not end
`done` (or a run could not finish), which is a correctness problem, not a slow machine.
See bench/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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

from common import PROSE, machine
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
LONG_LATENCY_MS = 2000  # a real model's answer takes seconds
RATIO_TARGET = 0.25  # pipeline jobs/s against raw Huey no-op tasks/s, same thread count
CPU_TARGET_MS = 1.2  # CPU a job at 0 ms, concurrency 1
CPU_TARGET_CONCURRENCY = 1
IDEAL_TARGET_PERCENT = 90.0  # the 200 ms run, and the 2 s run at LONG_TARGET_CONCURRENCY
LONG_TARGET_CONCURRENCY = 1024
DRAIN_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 0.005

FULL_JOBS, FULL_SLOW_JOBS = 2000, 1600
QUICK_JOBS, QUICK_SLOW_JOBS = 200, 320
FULL_CONCURRENCY = [1, 8]
# 2 s runs: jobs = waves x concurrency; the steady rate is measured over the waves between
# the first and the last (PipelineFigure.steady_rate), so at least 3.
FULL_LONG_CONCURRENCY, FULL_LONG_WAVES = [256, 512, 1024], 4
QUICK_LONG_CONCURRENCY, QUICK_LONG_WAVES = [256], 3  # 3: the least with a steady window


@dataclass(frozen=True)
class HueyFigure:
    workers: int
    tasks: int
    enqueue_seconds: float
    drain_seconds: float  # consumer start to the last task executed
    cpu_seconds: float  # this process's CPU from consumer start until the queue was drained
    log_problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tasks / self.drain_seconds

    @property
    def cpu_ms_per_task(self) -> float:
        return 1000 * self.cpu_seconds / self.tasks


@dataclass(frozen=True)
class PipelineFigure:
    jobs: int
    concurrency: int
    latency_ms: int
    submit_seconds: float
    run_seconds: float  # worker start to the last finished_at
    first_seconds: float  # worker start to the first finished_at
    wall_seconds: float  # run_worker's whole call, idle detection and shutdown included
    cpu_seconds: float  # this process's CPU (all threads) during run_worker's call
    finished: int
    statuses: dict[str, int]
    finishes: list[float] = field(default_factory=list)  # finished_at - worker start, sorted
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
    def steady_rate(self) -> float | None:
        """Jobs/s between the concurrency-th finish and the (jobs - concurrency)-th.

        All threads claim a job at once, so with a slow model the jobs finish in waves. The
        concurrency-th finish ends the first wave: every thread has cycled once, start-up
        (spawning threads, the first claims) is over. The (jobs - concurrency)-th finish
        frees the thread that claims the last queued job: from then on threads run out of
        work. Between the two, every thread runs jobs back to back, so the rate is the
        steady one, whether the finishes come in sharp waves or evenly spread (CPU-bound).
        None unless jobs >= 3 x concurrency (at least one whole cycle in the window)."""
        begin, end = self.concurrency, self.jobs - self.concurrency
        if end - begin < self.concurrency or len(self.finishes) < end:
            return None
        seconds = self.finishes[end - 1] - self.finishes[begin - 1]
        return (end - begin) / seconds if seconds > 0 else None

    @property
    def ideal_percent(self) -> float | None:
        """Steady jobs/s against the ideal (None at 0 ms or without a steady window)."""
        ideal, steady = self.ideal_rate, self.steady_rate
        return None if ideal is None or steady is None else 100 * steady / ideal

    @property
    def from_start_percent(self) -> float | None:
        """Jobs / (worker start to the last finish) against the ideal: start-up and drain
        included (the figure of earlier versions of this script)."""
        ideal = self.ideal_rate
        return None if ideal is None else 100 * self.rate / ideal

    @property
    def cpu_ms_per_job(self) -> float:
        return 1000 * self.cpu_seconds / self.jobs

    @property
    def cpu_percent(self) -> float:
        """CPU over run_worker's call against one core (100 % = one core busy)."""
        return 100 * self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def all_done(self) -> bool:
        return self.statuses == {"done": self.jobs}


def _cpu_seconds() -> float:
    """This process's user + system CPU time, every thread included."""
    times = os.times()
    return times.user + times.system


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
                cpu_before = _cpu_seconds()
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
                    cpu_seconds = _cpu_seconds() - cpu_before
                finally:
                    consumer.stop(graceful=True)
                    huey.storage.close()
        return HueyFigure(
            workers=workers,
            tasks=tasks,
            enqueue_seconds=enqueue_seconds,
            drain_seconds=max(executed) - started,
            cpu_seconds=cpu_seconds,
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
                cpu_before = _cpu_seconds()
                started = time.perf_counter()
                with _signal_handlers_kept():
                    run_worker(runtime, concurrency=concurrency, burst=True)
                wall_seconds = time.perf_counter() - started
                cpu_seconds = _cpu_seconds() - cpu_before

                with read_session(runtime.sessions) as session:
                    statuses = {
                        str(status): int(count)
                        for status, count in session.execute(
                            select(Job.status, func.count()).group_by(Job.status)
                        )
                    }
                    finish_times = session.scalars(
                        select(Job.finished_at)
                        .where(Job.finished_at.is_not(None))
                        .order_by(Job.finished_at)
                    ).all()
            finally:
                if "queue" in vars(runtime):
                    runtime.queue.huey.storage.close()
                runtime.close()
        finishes = [(ensure_utc(t) - worker_start).total_seconds() for t in finish_times if t]
        return PipelineFigure(
            jobs=jobs,
            concurrency=concurrency,
            latency_ms=latency_ms,
            submit_seconds=submit_seconds,
            run_seconds=finishes[-1] if finishes else 0.0,
            first_seconds=finishes[0] if finishes else 0.0,
            wall_seconds=wall_seconds,
            cpu_seconds=cpu_seconds,
            finished=len(finishes),
            statuses=statuses,
            finishes=finishes,
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
        f"({figure.finished} finished in {figure.run_seconds:.2f} s, the first after "
        f"{figure.first_seconds:.2f} s; run_worker returned after {figure.wall_seconds:.2f} s); "
        f"CPU {figure.cpu_ms_per_job:.2f} ms a job, {figure.cpu_percent:.0f}% of a core"
    )
    if figure.latency_ms and figure.steady_rate is not None:
        print(
            f"    steady jobs/s {figure.steady_rate:.1f} of an ideal {figure.ideal_rate:.1f} "
            f"({figure.ideal_percent:.1f} %)"
        )
    print(f"    statuses: {counts} -> {verdict}")
    _report_log_problems(figure.log_problems)


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def _print_table(
    raw: dict[int, HueyFigure],
    fast: list[PipelineFigure],
    slow: PipelineFigure | None,
    long: list[PipelineFigure],
) -> None:
    print()
    print("EchoPilot pipeline benchmark")
    print(f"machine: {machine()}")
    print()
    print("raw Huey (SqliteHuey file queue, thread consumer, no-op task)")
    print(
        f"  {'workers':>7}  {'tasks':>6}  {'enqueues/s':>10}  {'tasks/s':>8}  {'CPU ms/task':>11}"
    )
    for workers in sorted(raw):
        r = raw[workers]
        enqueue_rate = r.tasks / r.enqueue_seconds
        print(
            f"  {workers:>7}  {r.tasks:>6}  {enqueue_rate:>10.1f}  {r.rate:>8.1f}  "
            f"{r.cpu_ms_per_task:>11.3f}"
        )
    if fast:
        print()
        print(
            f"pipeline, offline provider at 0 ms a call (targets: pipeline/raw >= "
            f"{RATIO_TARGET}; CPU <= {CPU_TARGET_MS} ms a job at concurrency "
            f"{CPU_TARGET_CONCURRENCY})"
        )
        print(
            f"  {'concurrency':>11}  {'jobs':>6}  {'submits/s':>9}  {'jobs/s':>7}  "
            f"{'raw tasks/s':>11}  {'pipeline/raw':>12}  {'CPU ms/job':>10}  {'CPU':>5}"
        )
        for f in fast:
            base = raw[f.concurrency].rate
            print(
                f"  {f.concurrency:>11}  {f.jobs:>6}  {f.submit_rate:>9.1f}  {f.rate:>7.1f}  "
                f"{base:>11.1f}  {f.rate / base:>12.2f}  {f.cpu_ms_per_job:>10.2f}  "
                f"{f.cpu_percent:>4.0f}%"
            )
    if slow is not None:
        print()
        print(
            f"pipeline, offline provider at {slow.latency_ms} ms a call, {CALLS_PER_JOB} calls "
            f"a job (target: >= {IDEAL_TARGET_PERCENT:.0f} % of ideal)"
        )
        _print_slow_header()
        _print_slow_row(slow)
    if long:
        print()
        print(
            f"pipeline, offline provider at {LONG_LATENCY_MS} ms a call, {CALLS_PER_JOB} calls "
            f"a job, one worker process (target: >= {IDEAL_TARGET_PERCENT:.0f} % of ideal at "
            f"concurrency {LONG_TARGET_CONCURRENCY})"
        )
        _print_slow_header()
        for f in long:
            _print_slow_row(f)
    print()
    _print_targets(raw, fast, slow, long)
    print(
        "  (CPU: this process's user + system time during run_worker, every thread; 100% = "
        "one core. jobs/s (0 ms) and from start: jobs / (worker start to the last "
        "finished_at); steady jobs/s: between the concurrency-th and the (jobs - "
        "concurrency)-th finish; ideal: concurrency / model seconds a job)"
    )


def _print_slow_header() -> None:
    print(
        f"  {'concurrency':>11}  {'jobs':>6}  {'first done s':>12}  {'last done s':>11}  "
        f"{'ideal jobs/s':>12}  {'steady jobs/s':>13}  {'% of ideal':>10}  "
        f"{'from start':>10}  {'CPU ms/job':>10}  {'CPU':>5}"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _print_slow_row(f: PipelineFigure) -> None:
    steady = "-" if f.steady_rate is None else f"{f.steady_rate:.1f}"
    print(
        f"  {f.concurrency:>11}  {f.jobs:>6}  {f.first_seconds:>12.2f}  {f.run_seconds:>11.2f}  "
        f"{f.ideal_rate or 0:>12.1f}  {steady:>13}  {_pct(f.ideal_percent):>10}  "
        f"{_pct(f.from_start_percent):>10}  {f.cpu_ms_per_job:>10.2f}  {f.cpu_percent:>4.0f}%"
    )


def _print_targets(
    raw: dict[int, HueyFigure],
    fast: list[PipelineFigure],
    slow: PipelineFigure | None,
    long: list[PipelineFigure],
) -> None:
    for f in fast:
        if f.concurrency == CPU_TARGET_CONCURRENCY:
            print(
                f"target: CPU <= {CPU_TARGET_MS} ms a job at 0 ms, concurrency "
                f"{f.concurrency}: {f.cpu_ms_per_job:.2f} ms: "
                f"{_verdict(f.cpu_ms_per_job <= CPU_TARGET_MS)}"
            )
    for f in fast:
        ratio = f.rate / raw[f.concurrency].rate
        print(
            f"target: pipeline/raw Huey >= {RATIO_TARGET} at concurrency {f.concurrency}: "
            f"{ratio:.2f} ({f.rate:.1f} of {raw[f.concurrency].rate:.1f}): "
            f"{_verdict(ratio >= RATIO_TARGET)}"
        )
    runs = [*([slow] if slow else []), *long]
    for f in runs:
        if f is slow or f.concurrency == LONG_TARGET_CONCURRENCY:
            percent = f.ideal_percent
            shown = "no steady window (fewer than 3 x concurrency jobs)"
            if percent is not None:
                shown = f"{percent:.1f} % (steady)"
            print(
                f"target: >= {IDEAL_TARGET_PERCENT:.0f} % of ideal at {f.latency_ms} ms a call, "
                f"concurrency {f.concurrency}: {shown}: "
                f"{_verdict(percent is not None and percent >= IDEAL_TARGET_PERCENT)}"
            )
    if long and all(f.concurrency != LONG_TARGET_CONCURRENCY for f in long):
        print(
            f"target: >= {IDEAL_TARGET_PERCENT:.0f} % of ideal at {LONG_LATENCY_MS} ms a call, "
            f"concurrency {LONG_TARGET_CONCURRENCY}: not run (see --long-concurrency)"
        )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput and CPU cost of the EchoPilot pipeline against raw Huey "
        "(prints, never asserts, figures; exit code 1 only when a job did not end done)."
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
        metavar="K",
        help="worker concurrency of the 0 ms runs (default "
        f"{' '.join(map(str, FULL_CONCURRENCY))}, also with --quick)",
    )
    parser.add_argument(
        "--long-concurrency",
        type=int,
        nargs="+",
        metavar="K",
        help=f"worker concurrency of the {LONG_LATENCY_MS} ms runs (default "
        f"{' '.join(map(str, FULL_LONG_CONCURRENCY))}; "
        f"{' '.join(map(str, QUICK_LONG_CONCURRENCY))} with --quick)",
    )
    parser.add_argument(
        "--long-waves",
        type=int,
        help=f"jobs of a {LONG_LATENCY_MS} ms run, as a multiple of its concurrency (default "
        f"{FULL_LONG_WAVES}, {QUICK_LONG_WAVES} with --quick; 0 skips those runs)",
    )
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke test")
    args = parser.parse_args(argv)
    if args.jobs is None:
        args.jobs = QUICK_JOBS if args.quick else FULL_JOBS
    if args.slow_jobs is None:
        args.slow_jobs = QUICK_SLOW_JOBS if args.quick else FULL_SLOW_JOBS
    if args.concurrency is None:
        args.concurrency = list(FULL_CONCURRENCY)
    if args.long_concurrency is None:
        args.long_concurrency = QUICK_LONG_CONCURRENCY if args.quick else FULL_LONG_CONCURRENCY
    if args.long_waves is None:
        args.long_waves = QUICK_LONG_WAVES if args.quick else FULL_LONG_WAVES
    if (
        args.jobs < 1
        or args.slow_jobs < 0
        or args.long_waves < 0
        or min(args.concurrency) < 1
        or min(args.long_concurrency) < 1
    ):
        parser.error(
            "--jobs, --concurrency and --long-concurrency must be at least 1, --slow-jobs and "
            "--long-waves at least 0"
        )
    args.concurrency = list(dict.fromkeys(args.concurrency))  # unique, in the order given
    args.long_concurrency = list(dict.fromkeys(args.long_concurrency))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    print(f"machine: {machine()}", flush=True)
    raw: dict[int, HueyFigure] = {}
    fast: list[PipelineFigure] = []
    slow: PipelineFigure | None = None
    long: list[PipelineFigure] = []

    def raw_huey(workers: int) -> None:
        if workers in raw:
            return
        done = _timed(f"raw Huey, {workers} workers, {args.jobs} no-op tasks")
        raw[workers] = bench_raw_huey(args.jobs, workers)
        done()
        print(
            f"    tasks/s {raw[workers].rate:.1f}, CPU {raw[workers].cpu_ms_per_task:.3f} ms a task"
        )
        _report_log_problems(raw[workers].log_problems)

    def pipeline(jobs: int, concurrency: int, latency_ms: int) -> PipelineFigure:
        done = _timed(f"pipeline at {latency_ms} ms, concurrency {concurrency}, {jobs} jobs")
        figure = bench_pipeline(jobs, concurrency, latency_ms=latency_ms)
        done()
        _report_pipeline_run(figure)
        return figure

    for concurrency in args.concurrency:
        raw_huey(concurrency)
        fast.append(pipeline(args.jobs, concurrency, 0))
    if args.slow_jobs:
        slow = pipeline(args.slow_jobs, SLOW_CONCURRENCY, SLOW_LATENCY_MS)
    if args.long_waves:
        for concurrency in args.long_concurrency:
            long.append(pipeline(args.long_waves * concurrency, concurrency, LONG_LATENCY_MS))

    _print_table(raw, fast, slow, long)
    runs = [*fast, *([slow] if slow else []), *long]
    if not all(run.all_done for run in runs):
        print("\nFAILED: some jobs did not end done (see the status counts above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
