"""Notion connector: what a poll costs, pages per hour under Notion's rate, and exactly-once
under lag.

    .venv/bin/python bench/notion.py                     # 50 (the baseline) and 500 pages
    .venv/bin/python bench/notion.py --pages 20 200      # smoke run

For each size, a fresh temporary home on the embedded default (SQLite, offline provider)
and the fake Notion API of the test suite (tests/fakes/notion_server.py, a local HTTP
server spoken to through the real `notion-client` SDK) with a queue of N ticked pages and a
Job Log. Notion's read-after-write lag is set to --lag seconds. The connector and the fake
share a simulated clock: the waits Notion's rate limit imposes (2.5 requests a second) and
the read-back backoff pass in simulated time, so the wall time measured is EchoPilot's own
work (database, SDK, HTTP to the local server), and the simulated time is what the same
polls would take against Notion.

The polls run every simulated minute until every page is settled (its final state shown
by Notion and its Job Log row made); the jobs are run between polls by the real pipeline.
Printed per size: requests per page, simulated minutes to take and settle every page,
pages settled per simulated hour, wall-clock ms of EchoPilot's work per page, the worst lag
recorded, and the duplicate count (jobs minus pages, which must be 0; so must the Job Log
rows minus the jobs). The first size is the baseline; the ratio of wall ms per page says
whether the connector's own cost grows with the queue. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import func, select  # noqa: E402
from tests.fakes.notion_server import TOKEN, NotionServer  # noqa: E402

from common import machine  # noqa: E402
from echopilot.config import load_settings  # noqa: E402
from echopilot.db.engine import read_session  # noqa: E402
from echopilot.db.models import Job, NotionPage  # noqa: E402
from echopilot.jobs import pipeline  # noqa: E402
from echopilot.notion import service  # noqa: E402
from echopilot.notion.gateway import Timer  # noqa: E402
from echopilot.runtime import Runtime  # noqa: E402

POLL_EVERY = 60.0


class SimClock:
    def __init__(self) -> None:
        self.moment = datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=max(seconds, 0.0))


def open_pages(rt: Runtime) -> int:
    with read_session(rt.sessions) as session:
        count = session.scalar(
            select(func.count()).select_from(NotionPage).where(NotionPage.settled.is_(False))
        )
    return int(count or 0)


def run_size(pages: int, lag: float) -> dict[str, Any]:
    clock = SimClock()
    timer = Timer(now=clock.now, sleep=clock.sleep)
    with tempfile.TemporaryDirectory() as tmp, NotionServer(clock=clock.now) as notion:
        settings = load_settings(
            home=Path(tmp) / "var",
            _env_file=None,
            ai_provider="offline",
            notion_token=TOKEN,
            notion_queue_db_id=notion.queue_db_id,
            notion_joblog_db_id=notion.joblog_db_id,
            notion_api_base=notion.base_url,
        )
        rt = Runtime(settings)
        rt.migrate()
        for i in range(pages):
            notion.add_page(f"task {i}", description=f"Summarise item {i}.", qa_target=0)
        notion.lag(lag)
        started_sim = clock.now()
        wall = 0.0
        polls = 0
        taken_by: float | None = None
        while True:
            begin = time.perf_counter()
            service.poll(rt, timer=timer)
            wall += time.perf_counter() - begin
            polls += 1
            with read_session(rt.sessions) as session:
                queued = list(session.scalars(select(Job.id).where(Job.status == "queued")))
                jobs = session.scalar(select(func.count()).select_from(Job)) or 0
            if taken_by is None and jobs >= pages:
                taken_by = (clock.now() - started_sim).total_seconds()
            for job_id in queued:  # the worker's part, not the connector's: not timed
                pipeline.process(rt, job_id)
            if jobs >= pages and not queued and open_pages(rt) == 0:
                break
            if polls > 10_000:
                raise SystemExit("bench: pages never settled")
            # The next scheduled poll: a minute after this one started, or at once if late.
            clock.sleep(POLL_EVERY - ((clock.now() - started_sim).total_seconds() % POLL_EVERY))
        settled_sim = (clock.now() - started_sim).total_seconds()
        status = service.status(rt, now=clock.now())
        with read_session(rt.sessions) as session:
            per_page = Counter(session.scalars(select(Job.external_id)))
        log_ids = Counter(r["Job ID"] for r in notion.joblog_rows())
        requests = len(notion.requests)
        rt.close()
    return {
        "pages": pages,
        "polls": polls,
        "requests": requests,
        "requests_per_page": requests / pages,
        "minutes_to_take": (taken_by or 0) / 60,
        "minutes_to_settle": settled_sim / 60,
        "pages_per_hour": pages / (settled_sim / 3600),
        "wall_ms_per_page": wall * 1000 / pages,
        "worst_lag_s": status["worst_lag_seconds_24h"],
        "duplicate_jobs": sum(per_page.values()) - len(per_page),
        "missing_jobs": pages - len(per_page),
        "duplicate_log_rows": sum(log_ids.values()) - len(log_ids),
        "log_rows": sum(log_ids.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--lag", type=float, default=30.0, help="Notion's lag, seconds")
    args = parser.parse_args()
    print(f"bench/notion.py: {machine()}; lag {args.lag:.0f} s; polls every 60 s (simulated)")
    results = [run_size(n, args.lag) for n in args.pages]
    base = results[0]
    head = (
        f"{'pages':>6} {'polls':>5} {'req/page':>8} {'take min':>8} {'settle min':>10} "
        f"{'pages/h':>8} {'wall ms/page':>12} {'x base':>6} {'worst lag':>9} {'dup':>3}"
    )
    print(head)
    failed = False
    for r in results:
        ratio = r["wall_ms_per_page"] / base["wall_ms_per_page"]
        lag = "-" if r["worst_lag_s"] is None else f"{r['worst_lag_s']:.0f} s"
        print(
            f"{r['pages']:>6} {r['polls']:>5} {r['requests_per_page']:>8.2f} "
            f"{r['minutes_to_take']:>8.1f} {r['minutes_to_settle']:>10.1f} "
            f"{r['pages_per_hour']:>8.0f} {r['wall_ms_per_page']:>12.1f} {ratio:>6.2f} "
            f"{lag:>9} {r['duplicate_jobs']:>3}"
        )
        bad = (
            r["duplicate_jobs"]
            or r["missing_jobs"]
            or r["duplicate_log_rows"]
            or r["log_rows"] != r["pages"]
        )
        if bad:
            failed = True
            print(f"  CHECK FAILED: {r}")
    print("exactly once: " + ("FAILED" if failed else "every page one job and one Job Log row"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
