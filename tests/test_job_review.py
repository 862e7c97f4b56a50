"""Needs-review work has a way forward: a person approves it (done, billed) or rejects it
(cancelled, unbilled), from the CLI or the API, and every decision is audited. Offline jobs
are priced for show but never billed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from echopilot.db.engine import read_session
from echopilot.db.models import AuditLog
from echopilot.jobs import intake, pipeline, views
from echopilot.runtime import Runtime
from tests.api_support import api_client, assert_error, assert_ok
from tests.conftest import run_cli
from tests.fakes.model_server import FakeModelServer, Reply


def needs_review(rt: Runtime, name: str = "weak answer") -> int:
    job = intake.submit(
        rt,
        intake.JobRequest(name=name, task_type="summary", input="Revenue grew; costs fell."),
        actor="test",
    )
    assert pipeline.process(rt, job.id) == "needs_review"
    return job.id


def shown(rt: Runtime, job_id: int) -> dict[str, Any]:
    with read_session(rt.sessions) as session:
        return views.show(session, job_id)


def audited(rt: Runtime) -> list[tuple[str, str, str | None]]:
    with read_session(rt.sessions) as session:
        rows = session.scalars(select(AuditLog).order_by(AuditLog.id))
        return [(row.actor, row.action, row.target) for row in rows]


def test_approving_from_the_cli_bills_the_job_like_a_done_one(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("qa", Reply.score(20, 20, 15, 15))  # 70, below the pass mark of 80
    job_id = needs_review(rt)
    before = shown(rt, job_id)
    assert before["payment_status"] == "na"
    assert before["price_usd"] == "8.00"

    result = run_cli(rt.settings, "jobs", "approve", str(job_id), "--json")
    assert result.returncode == 0, result.stderr
    approved = json.loads(result.stdout)
    assert approved["status"] == "done"
    assert approved["payment_status"] == "not_configured"
    assert approved["price_usd"] == "8.00"
    assert ("cli", "job.approve", f"job:{job_id}") in audited(rt)

    again = run_cli(rt.settings, "jobs", "approve", str(job_id))
    assert again.returncode == 1
    assert "only needs_review jobs can be approved" in again.stderr


def test_rejecting_from_the_cli_ends_the_job_unbilled_with_the_reason(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("qa", Reply.score(20, 20, 15, 15))
    job_id = needs_review(rt)
    result = run_cli(rt.settings, "jobs", "reject", str(job_id), "--reason", "off topic", "--json")
    assert result.returncode == 0, result.stderr
    rejected = json.loads(result.stdout)
    assert rejected["status"] == "cancelled"
    assert rejected["payment_status"] == "na"
    assert "off topic" in rejected["error"]
    assert ("cli", "job.reject", f"job:{job_id}") in audited(rt)
    # A rejected job can still be run again.
    assert run_cli(rt.settings, "jobs", "retry", str(job_id)).returncode == 0


def test_the_api_approves_and_rejects_and_refuses_other_states(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("qa", Reply.score(20, 20, 15, 15), Reply.score(20, 20, 15, 15))
    first, second = needs_review(rt, "first"), needs_review(rt, "second")
    with api_client(rt) as client:
        approved = assert_ok(client.post(f"/api/jobs/{first}/approve"))
        assert (approved["status"], approved["payment_status"]) == ("done", "not_configured")
        assert_error(client.post(f"/api/jobs/{first}/approve"), 409, "conflict")

        rejected = assert_ok(
            client.post(f"/api/jobs/{second}/reject", json={"reason": "wrong client"})
        )
        assert (rejected["status"], rejected["payment_status"]) == ("cancelled", "na")
        assert "wrong client" in rejected["error"]
        assert_error(client.post("/api/jobs/999999/reject"), 404, "not_found")
        error = assert_error(
            client.post(f"/api/jobs/{first}/reject", json={"reason": "x\u0000y"}), 422
        )
        assert "reason" in error["message"]
    actions = audited(rt)
    assert ("api", "job.approve", f"job:{first}") in actions
    assert ("api", "job.reject", f"job:{second}") in actions


def test_offline_jobs_are_priced_for_show_but_never_billed(offline: Runtime) -> None:
    done = intake.submit(
        offline,
        intake.JobRequest(name="show", task_type="summary", input="Revenue grew; costs fell."),
        actor="test",
    )
    assert pipeline.process(offline, done.id) == "done"
    job = shown(offline, done.id)
    assert job["price_usd"] == "8.00"
    assert job["payment_status"] == "na"

    review = intake.submit(
        offline,
        intake.JobRequest(name="review", task_type="summary", input="Revenue grew.", qa_target=100),
        actor="test",
    )
    assert pipeline.process(offline, review.id) == "needs_review"
    assert intake.approve(offline, review.id, actor="test").payment_status == "na"

    with api_client(offline) as client:
        summary = assert_ok(client.get("/api/metrics-summary"))
        metrics = client.get("/metrics").text
    assert summary["revenue_7d"] == "0.00"
    assert "echopilot_revenue_usd_total 0.0" in metrics


def test_the_offline_provider_stops_at_the_output_limit(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", max_output_tokens=100)
    text = "word " * 40_000  # one long sentence: the offline summary would echo all of it
    job = intake.submit(
        rt, intake.JobRequest(name="long", task_type="other", input=text), actor="test"
    )
    assert pipeline.process(rt, job.id) == "needs_review"
    result = shown(rt, job.id)
    assert result["tokens_out"] <= 100 + 30  # the answer, and the judge's few tokens
    assert len(result["result"]) <= 400
    assert "cut off" in result["qa_note"]


def test_a_job_shows_its_input_bounded_with_the_whole_on_request(offline: Runtime) -> None:
    long_input = "The quarterly figures. " * 400  # 9,200 characters
    job = intake.submit(
        offline,
        intake.JobRequest(name="long input", task_type="summary", input=long_input),
        actor="test",
    )
    with api_client(offline) as client:
        preview = assert_ok(client.get(f"/api/jobs/{job.id}"))
        whole = assert_ok(client.get(f"/api/jobs/{job.id}?full_input=true"))
    assert preview["input"] == long_input[: views.INPUT_PREVIEW]
    assert preview["input_truncated"] is True
    assert preview["input_chars"] == len(long_input)
    assert whole["input"] == long_input
    assert whole["input_truncated"] is False

    cli = run_cli(offline.settings, "jobs", "show", str(job.id))
    assert "The quarterly figures." in cli.stdout
    assert "--full-input" in cli.stdout
    full = json.loads(
        run_cli(offline.settings, "jobs", "show", str(job.id), "--full-input", "--json").stdout
    )
    assert full["input"] == long_input
