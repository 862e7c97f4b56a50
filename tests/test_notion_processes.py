"""The Notion connector run as an owner runs it: a real scheduler process polling the fake
Notion (real seconds, with a read-after-write lag), a real worker doing the jobs, and the
scheduler killed with SIGKILL in the middle. Each ticked page must become exactly one job
and one Job Log row, and every page must end showing its job's outcome."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from echopilot.db.engine import read_session
from echopilot.db.models import Job, ScheduleRun
from echopilot.runtime import Runtime
from tests.conftest import builtin_tasks_off, env_for, wait_for
from tests.fakes.notion_server import TOKEN, NotionServer

pytestmark = pytest.mark.slow
BACKENDS = pytest.mark.parametrize(
    "backend", ["embedded", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
PAGES = 6
LAG_SECONDS = 3


@pytest.fixture
def notion() -> Iterator[NotionServer]:
    with NotionServer() as server:  # real time: the processes read the real clock
        yield server


def process_env(rt: Runtime, notion: NotionServer) -> dict[str, str]:
    env = env_for(rt.settings)
    for task, schedule in builtin_tasks_off().items():
        if task != "notion_poll":
            env[f"ECHOPILOT_SCHEDULE_{task.upper()}"] = schedule
    env.update(
        {
            "NOTION_TOKEN": TOKEN,
            "NOTION_QUEUE_DB_ID": notion.queue_db_id,
            "NOTION_JOBLOG_DB_ID": notion.joblog_db_id,
            "ECHOPILOT_NOTION_API_BASE": notion.base_url,
            "SCHED_NOTION_POLL_SECONDS": "10",
            "ECHOPILOT_NOTION_CONFIRM_SECONDS": "20",
            "ECHOPILOT_SCHEDULER_STALE_SECONDS": "3",
        }
    )
    return env


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    home = Path(env["ECHOPILOT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / f"{args[0]}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "echopilot", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home.parent,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def notion_jobs(rt: Runtime) -> list[Job]:
    with read_session(rt.sessions) as session:
        return list(session.scalars(select(Job).where(Job.source == "notion")))


def ok_polls(rt: Runtime) -> list[ScheduleRun]:
    with read_session(rt.sessions) as session:
        return list(
            session.scalars(
                select(ScheduleRun).where(
                    ScheduleRun.task == "notion_poll", ScheduleRun.status == "ok"
                )
            )
        )


@BACKENDS
def test_a_killed_scheduler_under_lag_takes_each_page_once(
    make_runtime: Callable[..., Runtime], notion: NotionServer
) -> None:
    rt = make_runtime(ai_provider="offline")
    env = process_env(rt, notion)
    notion.lag(LAG_SECONDS)
    pages = [
        notion.add_page(f"task {i}", description=f"Summarise item {i}.", qa_target=0)
        for i in range(PAGES)
    ]
    worker = spawn(env, "worker")
    scheduler = spawn(env, "scheduler", "run")
    procs: list[subprocess.Popen[bytes]] = [worker, scheduler]
    try:
        wait_for(lambda: len(notion_jobs(rt)) == PAGES, timeout=60, every=0.2)
        # Killed while it reads its writes back (Notion shows them only after the lag).
        os.kill(scheduler.pid, signal.SIGKILL)
        scheduler.wait()
        again = spawn(env, "scheduler", "run")
        procs.append(again)

        def finished() -> bool:
            shown = [notion.page(p) for p in pages]
            done = all(p["Status"] == "Done" and p["Trigger"] is False for p in shown)
            return done and len(notion.joblog_rows()) >= PAGES

        wait_for(finished, timeout=120, every=0.5)
        # Two more polls: a stale copy of a page would be taken again here, if at all.
        before = len(ok_polls(rt))
        wait_for(lambda: len(ok_polls(rt)) >= before + 2, timeout=40, every=0.5)
    finally:
        for proc in procs:
            stop(proc)

    jobs = notion_jobs(rt)
    assert Counter(j.external_id for j in jobs) == Counter(pages)  # one job per page
    assert all(j.status == "done" for j in jobs)
    log_ids = [r["Job ID"] for r in notion.joblog_rows()]
    assert sorted(log_ids) == sorted(j.id for j in jobs)  # one Job Log row per job
    results: dict[str, Any] = {j.external_id: j for j in jobs}
    for page in pages:
        shown = notion.page(page)
        assert shown["Job ID"] == results[page].id
        assert shown["QA Score"] == results[page].qa_score
