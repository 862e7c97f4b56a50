"""The lean paths keep every promise of the plain ones: the jobs listing (plain rows) shows
each job exactly as `show` (ORM) does, statements run on the driver store what SQLAlchemy
would and fail like it, and task types and price rules are re-read as they change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import DBAPIError

from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_connection, write_session
from echopilot.db.models import Job, JobEvent, PriceRule
from echopilot.db.prepared import Prepared
from echopilot.jobs import intake, pipeline, views
from echopilot.jobs.catalog import Catalog
from echopilot.runtime import Runtime
from tests.fakes.model_server import FakeModelServer, Reply

pytestmark = pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
SHOW_ONLY = {"attempt_log", "result", "input", "input_chars", "input_truncated"}


def submit(rt: Runtime, name: str, **fields: Any) -> int:
    request = intake.JobRequest(name=name, task_type="summary", input="Sales rose.", **fields)
    return intake.submit(rt, request, actor="test").id


def test_the_listing_shows_each_job_exactly_as_show_does(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(model_prices=None, ai_max_retries=0)
    model_server.on("qa", Reply.score(28, 27, 18, 19), Reply.score(10, 10, 5, 5))
    done = submit(rt, "done", client_email="ada@example.com", qa_target=50)
    review = submit(rt, "review")
    assert pipeline.process(rt, done) == "done"
    assert pipeline.process(rt, review) == "needs_review"
    model_server.on("task", Reply.error(503))
    failed = submit(rt, "failed")
    assert pipeline.process(rt, failed) == "failed"
    queued = submit(rt, "queued \t with a tab")
    cancelled = submit(rt, "cancelled")
    intake.cancel(rt, cancelled, actor="test")
    with rt.sessions() as session:  # a whole second, so that .000000 must be shown as such
        session.execute(
            update(Job)
            .where(Job.id == queued)
            .values(created_at=utcnow().replace(microsecond=0) - timedelta(days=1))
        )
        session.commit()

    with rt.engine.connect() as conn:
        listed = {job["id"]: job for job in views.listing(conn, limit=50)}
    with read_session(rt.sessions) as session:
        shown = {
            job_id: {k: v for k, v in views.show(session, job_id).items() if k not in SHOW_ONLY}
            for job_id in (done, review, failed, queued, cancelled)
        }
    assert listed == shown
    assert listed[done]["client"] == "ada@example.com"
    assert listed[done]["qa_breakdown"] == {
        "clarity": 28.0,
        "accuracy": 27.0,
        "completeness": 18.0,
        "tone": 19.0,
    }
    assert listed[failed]["retry_at"] is not None


def test_the_listing_pages_by_cursor_and_filters_by_status(offline: Runtime) -> None:
    ids = [submit(offline, f"job {n}") for n in range(7)]
    intake.cancel(offline, ids[2], actor="test")
    with offline.engine.connect() as conn:
        first = views.listing(conn, limit=3)
        second = views.listing(conn, limit=3, before_id=first[-1]["id"])
        cancelled = views.listing(conn, status="cancelled", limit=10)
    assert [j["id"] for j in first + second] == ids[::-1][:6]
    assert [j["id"] for j in cancelled] == [ids[2]]


def test_statements_run_on_the_driver_fail_as_sqlalchemy_errors(offline: Runtime) -> None:
    event = Prepared(
        insert(JobEvent.__table__).values(  # type: ignore[arg-type]
            job_id=424242, from_status=None, to_status="queued", attempt=0, reason="x", at=utcnow()
        )
    )
    with pytest.raises(DBAPIError) as caught, write_connection(offline.engine) as conn:
        event.execute(conn, {})  # no such job: the foreign key refuses it
    assert "FOREIGN KEY" in str(caught.value).upper()


def test_task_types_and_price_rules_are_read_again_once_they_may_have_changed(
    offline: Runtime,
) -> None:
    fresh, cached = Catalog(refresh_seconds=0), Catalog(refresh_seconds=3600)
    with offline.engine.connect() as conn:
        assert fresh.spec(conn, "summary").rate_micros == 8_000_000  # type: ignore[union-attr]
        assert cached.spec(conn, "summary").rate_micros == 8_000_000  # type: ignore[union-attr]
    with write_session(offline.sessions) as session:
        session.execute(
            update(PriceRule).where(PriceRule.task_type == "summary").values(rate_micros=9_500_000)
        )
    with offline.engine.connect() as conn:
        assert fresh.spec(conn, "summary").rate_micros == 9_500_000  # type: ignore[union-attr]
        # Within its second, a process keeps the copy it has (documented).
        assert cached.spec(conn, "summary").rate_micros == 8_000_000  # type: ignore[union-attr]


def test_an_attempt_that_fails_after_a_call_keeps_that_call_s_model(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(ai_max_retries=0)
    model_server.on("qa", Reply.error(400, "the judge refused"))
    job_id = submit(rt, "judge fails")
    assert pipeline.process(rt, job_id) == "dead"
    with read_session(rt.sessions) as session:
        attempt = views.show(session, job_id)["attempt_log"][0]
    assert attempt["status"] == "failed"
    assert attempt["model"] == rt.settings.model
    assert [call["stage"] for call in attempt["calls"]] == ["task"]
    assert attempt["tokens_in"] > 0


def test_a_task_type_added_a_moment_ago_is_found(offline: Runtime) -> None:
    from echopilot.db.models import TaskType

    cached = Catalog(refresh_seconds=3600)
    with offline.engine.connect() as conn:
        assert cached.spec(conn, "summary") is not None
    with write_session(offline.sessions) as session:
        session.add(TaskType(name="poetry", label="Poetry", instructions="Write a poem."))
        session.flush()
        session.add(PriceRule(task_type="poetry", unit="flat", rate_micros=3_000_000))
    with offline.engine.connect() as conn:
        found = cached.spec(conn, "poetry")
    assert found is not None and found.rate_micros == 3_000_000
