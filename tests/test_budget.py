"""Spending limits: with the fake model and a budget of a few cents, jobs stop starting at
the limit, wait as queued with the reason, and run once the UTC day (or month) turns or the
limit is raised. The clock is moved with time-machine."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from echopilot.alerts import engine
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Client, Job, JobAttempt
from echopilot.jobs import intake
from echopilot.jobs.intake import JobRequest
from echopilot.jobs.pipeline import process
from echopilot.queue.worker import run_worker
from echopilot.runtime import Runtime
from tests.conftest import run_cli

pytestmark = pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
# $100 per million tokens in and out: a 150-token task call costs $0.015, and the judge's
# 340 tokens $0.034; so a job costs $0.049.
PRICES = json.dumps(
    {
        "gpt-4o": {"input": "100", "output": "100"},
        "gpt-4o-mini": {"input": "100", "output": "100"},
    }
)
JOB_COST = 49_000  # micro-USD
DAY = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TEXT = "Summarise the meeting: budget approved, launch moved to March, two hires planned."


def submit(rt: Runtime, name: str, client: str | None = None) -> int:
    request = JobRequest(
        name=name, task_type="summary", input=TEXT, client_email=client, source="api"
    )
    return intake.submit(rt, request, actor="test").id


def state(rt: Runtime, job_id: int) -> tuple[str, str | None]:
    with read_session(rt.sessions) as session:
        row = session.execute(select(Job.status, Job.hold_reason).where(Job.id == job_id)).one()
    return row[0], row[1]


def spent(rt: Runtime) -> int:
    with read_session(rt.sessions) as session:
        return int(session.scalar(select(func.coalesce(func.sum(JobAttempt.cost_micros), 0))) or 0)


def test_the_daily_budget_holds_jobs_queued_until_the_day_turns(
    openai_rt: Callable[..., Runtime],
) -> None:
    # $0.12: two jobs ($0.098) fit, the third starts under the limit ($0.147 spent after it),
    # then nothing more starts.
    rt = openai_rt(model_prices=PRICES, daily_budget_usd="0.12")
    with time_machine.travel(DAY, tick=True):
        ids = [submit(rt, f"job {n}") for n in range(6)]
        outcomes = [process(rt, job_id) for job_id in ids]
        assert outcomes[:3] == ["done"] * 3
        assert outcomes[3:] == [None] * 3
        assert spent(rt) == 3 * JOB_COST
        for job_id in ids[3:]:
            status, reason = state(rt, job_id)
            assert status == "queued"
            assert reason is not None and "ECHOPILOT_DAILY_BUDGET_USD" in reason
            assert "2026-12-02 00:00 UTC" in reason
        # The job object shows why it waits; the budget alert is high.
        shown = run_cli(
            rt.settings,
            "jobs",
            "show",
            str(ids[3]),
            "--json",
            extra_env={"ECHOPILOT_DAILY_BUDGET_USD": "0.12"},
        )
        assert "daily model budget is used up" in json.loads(shown.stdout)["hold_reason"]
        alert = engine.check(rt, only=["budget"])
        assert alert["firing"][0]["severity"] == "high"
        # Held jobs are not "waiting" while their limit holds: no worker alert for them.
        assert engine.check(rt, only=["no_live_worker", "queue_age"])["firing"] == []
        # A burst worker does not wait for held jobs: it ends, and they stay held.
        assert run_worker(rt, concurrency=1, burst=True) == 0
        assert [state(rt, j)[0] for j in ids[3:]] == ["queued"] * 3

    with time_machine.travel(DAY.replace(hour=0, minute=5) + timedelta(days=1), tick=True):
        # The limit no longer holds them: with no worker alive, that is an alert now.
        assert engine.check(rt, only=["no_live_worker"])["opened"] == ["no_live_worker"]
        # A new day, a new $0.12: the three held jobs run (the third starting under it).
        assert [process(rt, job_id) for job_id in ids[3:]] == ["done"] * 3
        assert state(rt, ids[3]) == ("done", None)


def test_a_raised_budget_lets_held_jobs_run(
    openai_rt: Callable[..., Runtime], make_settings: Callable[..., Any]
) -> None:
    rt = openai_rt(model_prices=PRICES, daily_budget_usd="0.04")
    with time_machine.travel(DAY, tick=True):
        first, second = submit(rt, "one"), submit(rt, "two")
        assert process(rt, first) == "done"
        assert process(rt, second) is None and state(rt, second)[0] == "queued"
        raised = openai_rt(model_prices=PRICES, daily_budget_usd="1.00")
        assert process(raised, second) == "done"
        assert state(raised, second) == ("done", None)


def test_a_clients_monthly_budget_holds_only_that_clients_jobs(
    openai_rt: Callable[..., Runtime],
) -> None:
    rt = openai_rt(model_prices=PRICES)
    with time_machine.travel(DAY, tick=True):
        capped = [submit(rt, f"ada {n}", client="ada@example.com") for n in range(3)]
        other = submit(rt, "grace", client="grace@example.com")
        result = run_cli(
            rt.settings,
            "clients",
            "budget",
            "ada@example.com",
            "--monthly-usd",
            "0.05",
            "--json",
            extra_env={"ECHOPILOT_MODEL_PRICES": PRICES},
        )
        assert result.returncode == 0, result.stderr
        assert [process(rt, j) for j in capped] == ["done", "done", None]
        status, reason = state(rt, capped[2])
        assert status == "queued" and reason is not None and "ada" in reason
        assert "2027-01-01 00:00 UTC" in reason
        assert process(rt, other) == "done"  # another client's work goes on
        with read_session(rt.sessions) as session:
            assert (
                session.scalar(
                    select(Client.monthly_budget_micros).where(Client.email == "ada@example.com")
                )
                == 50_000
            )
        alert = engine.check(rt, only=["budget"])
        assert [f["key"] for f in alert["firing"]] == [f"budget_client:{_client_id(rt)}"]

    with time_machine.travel(datetime(2027, 1, 1, 0, 1, tzinfo=UTC), tick=True):
        assert process(rt, capped[2]) == "done"


def _client_id(rt: Runtime) -> int:
    with write_session(rt.sessions) as session:
        found = session.scalar(select(Client.id).where(Client.email == "ada@example.com"))
        assert found is not None
        return int(found)
