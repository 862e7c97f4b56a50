"""Self-heal and the alert check on a large database: how long a run takes.

`echopilot demo seed` fills a fresh home with about --jobs demo jobs over 30 days; then
--failed failed jobs whose retry is due are added. Measured in-process, each the median of
--repeat runs (the first run of each is reported apart: it does the work, later ones find
little):

- the recovery sweep alone (the baseline: self-heal runs it first),
- a self-heal dry run, then a real self-heal (which retries the failed jobs),
- the alert check with every rule, first (opens alerts) and steady (nothing new),
- the API's uncached metrics summary (another read over the same 7 days, for scale).

Figures only; nothing is asserted about time.

    .venv/bin/python bench/ops.py [--jobs 100000] [--failed 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

DAYS = 30


def seed(home: Path, jobs: int) -> float:
    env = {**os.environ, "ECHOPILOT_HOME": str(home), "ECHOPILOT_LOG_LEVEL": "warning"}
    for name in ("ECHOPILOT_DATABASE_URL", "ECHOPILOT_QUEUE_URL"):
        env.pop(name, None)
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "echopilot",
            "demo",
            "seed",
            "--days",
            str(DAYS),
            "--jobs-per-day",
            str(max(1, jobs // DAYS)),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=home.parent,
    )
    if done.returncode != 0:
        raise SystemExit(f"demo seed exited {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def add_failed(runtime: Any, count: int) -> None:
    from sqlalchemy import select, update

    from echopilot.db.engine import write_session
    from echopilot.db.models import Job

    now = datetime.now(UTC)
    with write_session(runtime.sessions) as session:
        ids = list(
            session.scalars(
                select(Job.id).where(Job.status == "done").order_by(Job.id.desc()).limit(count)
            )
        )
        session.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(
                status="failed",
                attempts=1,
                max_attempts=3,
                error="model said 503",
                error_kind="transient",
                retry_at=now - timedelta(seconds=5),
                enqueued_at=now,
            )
        )


def timed(func: Callable[[], Any]) -> float:
    started = time.perf_counter()
    func()
    return (time.perf_counter() - started) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="demo jobs, about")
    parser.add_argument("--failed", type=int, default=1000, help="failed jobs due a retry")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measure")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="echopilot-bench-ops-") as tmp:
        home = Path(tmp) / "var"
        print(f"machine: {machine()}")
        print(f"  seeding about {args.jobs} demo jobs ...", end="", flush=True)
        seconds = seed(home, args.jobs)
        print(f" {seconds:.1f} s")

        from echopilot.alerts import engine
        from echopilot.config import load_settings
        from echopilot.db.engine import read_session
        from echopilot.finance.metrics import summary
        from echopilot.queue.recovery import sweep
        from echopilot.runtime import Runtime
        from echopilot.selfheal import heal

        runtime = Runtime(load_settings(home=home, log_level="warning", _env_file=None))
        runtime.migrate()
        add_failed(runtime, args.failed)

        rows: list[tuple[str, float, float]] = []

        def measure(name: str, func: Callable[[], Any]) -> None:
            first = timed(func)
            rest = [timed(func) for _ in range(args.repeat)]
            rows.append((name, first, statistics.median(rest)))

        measure("recovery sweep (baseline)", lambda: sweep(runtime))
        measure("self-heal, dry run", lambda: heal.run(runtime, dry_run=True))
        retried = heal.run(runtime).as_dict()["retried_count"]
        measure("self-heal (after retrying)", lambda: heal.run(runtime))
        measure("alert check, every rule", lambda: engine.check(runtime, actor="bench"))

        def metrics_summary() -> None:
            with read_session(runtime.sessions) as session:
                summary(session.connection())

        measure("metrics summary, uncached", metrics_summary)
        runtime.close()

    baseline = rows[0][2]
    print(f"\nself-heal and alert check on {args.jobs} demo jobs ({args.failed} failed, due)")
    print(f"  the first real self-heal retried {retried} jobs")
    print(f"  {'run':32} {'first ms':>10} {'median ms':>10} {'x sweep':>8}")
    for name, first, median in rows:
        print(f"  {name:32} {first:10.1f} {median:10.1f} {median / baseline:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
