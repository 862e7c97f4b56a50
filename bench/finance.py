"""Finance reads on a large history: do they stay fast as the jobs pile up?

Two fresh homes on the embedded default (SQLite), one with --small jobs (the baseline) and
one with --large, spread over 90 days: written straight into the jobs table in bulk with
the roll-up triggers off (a progress bar shows the load), then the roll-ups rebuilt in one
pass and the triggers put back, as `echopilot.finance.rollup_sql` offers for bulk loads. Then one
`echopilot serve` per home (summary cache off) answers, one request at a time,
--requests times each of

- GET /api/finance-metrics   (7 and 30 days, every breakdown, money owed)
- GET /api/metrics-summary   (the KPI cards)
- GET /api/metrics/daily?days=30 (the charts)

and the median and p99 of each are printed with the large/small ratio. Last,
`echopilot report daily` for yesterday is timed on the large home (when the report has
landed). Figures only; nothing is asserted about time.

    .venv/bin/python bench/finance.py [--large 1000000] [--small 10000] [--requests 60]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from sqlalchemy import create_engine

from echopilot.finance import rollup_sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, percentile

DAYS = 90
KEY = "bench-finance-key-0123456789abcdef"
ROUTES = ("/api/finance-metrics", "/api/metrics-summary", "/api/metrics/daily?days=30")
TYPES = ("research", "drafting", "data_transform", "transcription", "summary", "other")
CLIENTS = 50
BATCH = 20_000
STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how EchoPilot's SQLite columns hold UTC times


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHOPILOT_")}
    env.update(
        ECHOPILOT_HOME=str(home),
        ECHOPILOT_LOG_LEVEL="warning",
        ECHOPILOT_METRICS_CACHE_SECONDS="0",
        DASHBOARD_KEY=KEY,
    )
    return env


def echopilot(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "echopilot", *args],
        env=child_env(home),
        cwd=home.parent,
        capture_output=True,
        text=True,
        check=True,
    )


def rows(count: int, now: datetime, rng: random.Random) -> Iterator[tuple[object, ...]]:
    """Jobs as the pipeline leaves them: most done and billed, some reviewed, dead or
    cancelled; costs in micro-dollars on the job (all attempts), prices in cents."""
    for _ in range(count):
        finished = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
        created = finished - timedelta(seconds=rng.uniform(5, 600))
        status = rng.choices(("done", "needs_review", "dead", "cancelled"), (85, 7, 5, 3))[0]
        price = rng.randint(500, 5000) if status in ("done", "needs_review") else None
        paid = "na"
        if status == "done":
            paid = "paid" if rng.random() < 0.8 else "unpaid"
        scored = status in ("done", "needs_review")
        yield (
            "bench job",
            rng.choice(TYPES),
            "[bench input]",
            status,
            rng.randint(1, CLIENTS),
            "bench",
            1,
            "openai",
            rng.choice(("gpt-4o", "gpt-4o-mini")),
            rng.randint(200, 4000),
            rng.randint(100, 2000),
            rng.randint(500, 60_000),
            "[]",
            price,
            paid,
            round(rng.uniform(60, 100), 1) if scored else None,
            rng.randint(2_000, 90_000) if scored else None,
            created.strftime(STAMP),
            finished.strftime(STAMP),
            finished.strftime(STAMP),
        )


INSERT = (
    "INSERT INTO jobs (name, task_type, input, status, client_id, source, attempts, provider, "
    "model, tokens_in, tokens_out, cost_micros, unpriced_models, price_cents, payment_status, "
    "qa_score, duration_ms, created_at, finished_at, updated_at, priority, is_demo, "
    "max_attempts, lost_leases) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "?, ?, 0, 0, 3, 0)"
)


def load(home: Path, count: int, progress: Progress) -> tuple[float, float]:
    """A migrated home with `count` jobs; the seconds the bulk insert and the roll-ups'
    rebuild took."""
    clients = [
        (n, f"Client {n}", f"client{n}@example.com", "2026-01-01 00:00:00.000000")
        for n in range(1, CLIENTS + 1)
    ]
    jobs = rows(count, datetime.now(UTC), random.Random(count))
    return bulk_load(home, count, clients, jobs, INSERT, progress)


def bulk_load(
    home: Path,
    count: int,
    clients: list[tuple[object, ...]],
    jobs: Iterator[tuple[object, ...]],
    insert: str,
    progress: Progress,
) -> tuple[float, float]:
    """Migrate `home`, insert `clients` (id, name, email, created_at) and `count` of `jobs`
    with the roll-up triggers off, then rebuild the roll-ups in one pass: the seconds the
    insert and the rebuild took."""
    echopilot(home, "db", "upgrade")
    db = sqlite3.connect(home / "echopilot.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executemany(
        "INSERT INTO clients (id, name, email, rate_overrides, is_demo, created_at) "
        "VALUES (?, ?, ?, '{}', 0, ?)",
        clients,
    )
    db.commit()
    engine = create_engine(f"sqlite:///{home / 'echopilot.db'}")
    with engine.begin() as conn:
        rollup_sql.uninstall(conn)
    task = progress.add_task(f"loading {count:,} jobs", total=count)
    started = time.perf_counter()
    left = count
    while left:
        batch = [next(jobs) for _ in range(min(BATCH, left))]
        db.executemany(insert, batch)
        db.commit()
        left -= len(batch)
        progress.advance(task, len(batch))
    seconds = time.perf_counter() - started
    db.close()
    started = time.perf_counter()
    with engine.begin() as conn:
        rollup_sql.rebuild(conn)
        rollup_sql.install(conn)
        conn.exec_driver_sql("ANALYZE")
    with engine.connect() as conn:  # as a running EchoPilot's checkpoints would leave it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return seconds, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timings(home: Path, requests: int) -> dict[str, list[float]]:
    port = free_port()
    out = (home.parent / "serve.out").open("ab")
    server = subprocess.Popen(
        [sys.executable, "-m", "echopilot", "serve", "--port", str(port), "--quiet"],
        env=child_env(home),
        cwd=home.parent,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers={"X-Dash-Key": KEY}, timeout=60) as client:
            for _ in range(600):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            found: dict[str, list[float]] = {}
            for route in ROUTES:
                client.get(route).raise_for_status()  # warm: compiled statements, caches
                times = []
                for _ in range(requests):
                    started = time.perf_counter()
                    client.get(route).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                found[route] = times
            return found
    finally:
        server.terminate()
        server.wait(timeout=30)
        out.close()


def report_seconds(home: Path) -> float | None:
    started = time.perf_counter()
    try:
        echopilot(home, "report", "daily", "--json")
    except subprocess.CalledProcessError as failed:
        if "No such command" in failed.stderr:
            return None
        raise
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    results: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ep-bench-finance-") as tmp:
        homes = {}
        columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*Progress.get_default_columns()[:1], *columns) as progress:
            for count in (args.small, args.large):
                home = Path(tmp) / f"jobs{count}" / "var"
                home.parent.mkdir(parents=True)
                seconds, rebuilt = load(home, count, progress)
                homes[count] = home
                progress.console.print(
                    f"  loaded {count:,} jobs in {seconds:.1f} s ({count / seconds:,.0f} jobs/s); "
                    f"roll-ups rebuilt in {rebuilt:.1f} s"
                )
        for count, home in homes.items():
            results[count] = timings(home, args.requests)
        print(f"\nGET, one request at a time, {args.requests} each (ms):")
        print(f"  {'route':32} {'jobs':>10} {'median':>8} {'p99':>8}")
        for route in ROUTES:
            for count in (args.small, args.large):
                times = results[count][route]
                print(
                    f"  {route:32} {count:>10,} {statistics.median(times):8.1f} "
                    f"{percentile(times, 99) or 0:8.1f}"
                )
            ratio = statistics.median(results[args.large][route]) / statistics.median(
                results[args.small][route]
            )
            print(f"  {'':32} {'ratio':>10} {ratio:8.2f}   (target: median < 50 ms, ratio < 3)")
        seconds = report_seconds(homes[args.large])
        if seconds is None:
            print("\nreport daily: not available in this build")
        else:
            print(f"\nreport daily (yesterday) on {args.large:,} jobs: {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
