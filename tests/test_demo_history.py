"""`echopilot demo seed|reset`: a believable month of history, marked, and removable alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from statistics import mean
from typing import Any

import pytest
from sqlalchemy import func, select

from echopilot import demo
from echopilot.clock import utcnow
from echopilot.db.engine import read_session
from echopilot.db.models import Client, Job, JobAttempt, JobEvent
from echopilot.jobs import intake, views
from echopilot.runtime import Runtime
from tests.conftest import run_cli


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime()


def count(rt: Runtime, model: Any, *where: Any) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def seed_via_cli(rt: Runtime) -> dict[str, int]:
    result = run_cli(rt.settings, "demo", "seed", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, int] = json.loads(result.stdout)
    return data


def submit_real_job(rt: Runtime) -> int:
    request = intake.JobRequest(
        name="real work",
        task_type="drafting",
        input="Thank the team for the launch.",
        client_email="boss@real.example",
    )
    return intake.submit(rt, request, actor="test").id


def snapshot(rt: Runtime, job_id: int) -> dict[str, Any]:
    with read_session(rt.sessions) as session:
        return views.show(session, job_id)


def test_seed_loads_a_month_of_varied_history_with_a_quality_dip_and_unpaid_tail(
    rt: Runtime,
) -> None:
    now = utcnow()
    seeded = seed_via_cli(rt)
    with rt.sessions() as session:
        jobs = list(session.scalars(select(Job)))
        clients = list(session.scalars(select(Client)))
    assert seeded["jobs"] == len(jobs)
    assert seeded["days"] == 30

    def days_ago(job: Job) -> int:
        created: datetime = job.created_at
        return (now.date() - created.date()).days

    ages = {days_ago(j) for j in jobs}
    assert len(ages) >= 28, "jobs on (nearly) every day"
    assert 28 <= max(ages) <= 31 and min(ages) <= 1, "about thirty days, up to yesterday"
    assert len(jobs) >= 300, "a business's worth of jobs"

    assert len({j.task_type for j in jobs}) >= 4, "several task types"
    assert len({j.client_id for j in jobs}) >= 4, "several clients"

    dead = [j for j in jobs if j.status == "dead"]
    assert dead, "some jobs died"
    assert all(j.error for j in dead), "a dead job says why"

    scored = [j for j in jobs if j.qa_score is not None]
    dip = [j.qa_score for j in scored if 9 <= days_ago(j) <= 12]
    rest = [j.qa_score for j in scored if not 9 <= days_ago(j) <= 12]
    assert dip and rest
    assert mean(dip) < mean(rest) - 10, f"dip {mean(dip):.1f} vs rest {mean(rest):.1f}"

    done = [j for j in jobs if j.status == "done"]
    recent = [j for j in done if days_ago(j) <= 5]
    older = [j for j in done if days_ago(j) > 5]
    unpaid = [j for j in done if j.payment_status == "not_configured"]
    assert recent and older
    assert all(j.payment_status == "not_configured" for j in recent), "recent work is not paid yet"
    assert sum(j.payment_status == "not_configured" for j in older) / len(older) < 0.15
    assert sum(days_ago(j) <= 5 for j in unpaid) / len(unpaid) > 0.6, "unpaid is mostly recent"

    assert all(j.is_demo and j.source == j.provider == "demo" for j in jobs), "marked demo"
    used = {j.client_id for j in jobs}
    assert all(c.is_demo for c in clients if c.id in used), "every demo client is marked demo"


def test_seeding_twice_does_not_duplicate_the_history(rt: Runtime) -> None:
    assert demo.seed(rt).jobs > 0
    again = demo.seed(rt, random_seed=8)
    assert count(rt, Job) == again.jobs, "the second seed replaced the first"
    assert count(rt, JobAttempt) == again.attempts
    assert count(rt, Client, Client.is_demo) == again.clients == len(demo.CLIENTS)


def test_reset_removes_every_demo_row_and_keeps_real_jobs(rt: Runtime) -> None:
    real = submit_real_job(rt)
    before = snapshot(rt, real)
    real_events = count(rt, JobEvent, JobEvent.job_id == real)
    demo.seed(rt)
    assert snapshot(rt, real) == before, "seeding leaves real jobs alone"

    result = run_cli(rt.settings, "demo", "reset", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["jobs"] > 0

    assert count(rt, Job, Job.is_demo) == 0
    assert count(rt, Client, Client.is_demo) == 0
    assert count(rt, Job, Job.source == "demo") == 0
    assert count(rt, JobAttempt) == 0
    assert count(rt, Job) == 1
    assert snapshot(rt, real) == before, "reset leaves real jobs alone"
    assert count(rt, JobEvent, JobEvent.job_id == real) == real_events
    assert count(rt, Client, Client.email == "boss@real.example") == 1
