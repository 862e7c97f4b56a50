"""Each status is reached for the right reason; cost sums every call of every attempt; the
price comes from the task type's rule. The model is the fake server, through `openai`."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import select

from echopilot.db.engine import read_session
from echopilot.db.models import Client, Job, JobEvent
from echopilot.jobs import intake, pipeline, views
from echopilot.jobs.intake import JobRequest
from echopilot.runtime import Runtime
from tests.fakes.model_server import FakeModelServer, Reply

# The queue plays no part here (the pipeline is called directly); the database does.
pytestmark = pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
TEXT = "Quarterly revenue rose 12 percent. Costs fell. The board approved the new plan."


def submit(rt: Runtime, **kw: object) -> int:
    values: dict[str, object] = {"name": "job", "task_type": "summary", "input": TEXT}
    values.update(kw)
    return intake.submit(rt, JobRequest(**values), actor="test").id  # type: ignore[arg-type]


def show(rt: Runtime, job_id: int) -> dict[str, object]:
    with read_session(rt.sessions) as session:
        return views.show(session, job_id)


def usd(model: str, tokens_in: int, tokens_out: int) -> Decimal:
    price = calc_price(Usage(input_tokens=tokens_in, output_tokens=tokens_out), model)
    return Decimal(price.total_price)


def events(rt: Runtime, job_id: int) -> list[tuple[str | None, str]]:
    with read_session(rt.sessions) as session:
        rows = session.execute(
            select(JobEvent.from_status, JobEvent.to_status)
            .where(JobEvent.job_id == job_id)
            .order_by(JobEvent.id)
        )
        return [(a, b) for a, b in rows]


def test_a_job_that_passes_qa_is_done_costed_and_priced(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("task", Reply.ok("The summary.", tokens_in=100, tokens_out=50))
    model_server.on("qa", Reply.score(28, 27, 18, 19))
    job_id = submit(rt)

    assert pipeline.process(rt, job_id) == "done"

    job = show(rt, job_id)
    assert job["status"] == "done"
    assert job["result"] == "The summary."
    assert job["qa_score"] == 92.0
    assert job["qa_breakdown"] == {"clarity": 28, "accuracy": 27, "completeness": 18, "tone": 19}
    assert job["qa_threshold"] == 80
    assert (job["provider"], job["model"], job["answer_path"]) == ("openai", "gpt-4o", "primary")
    assert (job["tokens_in"], job["tokens_out"]) == (100 + 300, 50 + 40)
    expected = usd("gpt-4o", 100, 50) + usd("gpt-4o-mini", 300, 40)
    assert Decimal(job["cost_usd"]) == expected.quantize(Decimal("0.000001"))
    assert job["price_usd"] == "8.00"  # summary: flat $8
    assert job["payment_status"] == "not_configured"  # billed, no Stripe: paid by hand
    assert [a["status"] for a in job["attempt_log"]] == ["ok"]
    assert events(rt, job_id) == [
        (None, "queued"),
        ("queued", "processing"),
        ("processing", "done"),
    ]
    qa_request = model_server.requests[1]
    assert (qa_request.stage, qa_request.model) == ("qa", "gpt-4o-mini")


def test_a_score_below_the_threshold_needs_review_and_is_not_billed(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("qa", Reply.score(20, 20, 15, 15))  # 70
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "needs_review"
    job = show(rt, job_id)
    assert job["qa_score"] == 70.0
    assert job["payment_status"] == "na"
    assert "below threshold 80" in str(job["qa_note"])


def test_a_jobs_own_qa_target_wins_over_the_default(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("qa", Reply.score(20, 20, 15, 15), Reply.score(28, 27, 18, 19))
    lenient = submit(rt, qa_target=60)
    strict = submit(rt, qa_target=95)
    assert pipeline.process(rt, lenient) == "done"  # 70 >= 60
    assert pipeline.process(rt, strict) == "needs_review"  # 92 < 95
    assert show(rt, strict)["qa_threshold"] == 95


def test_a_qa_reply_that_is_no_score_is_asked_again_then_goes_to_review(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("qa", Reply.ok("I think it is pretty good"), Reply.ok("eighty-five"))
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "needs_review"
    job = show(rt, job_id)
    assert model_server.count("qa") == 2
    assert job["qa_score"] is None
    assert "QA judge gave no valid score" in str(job["qa_note"])
    # Both judge calls were paid for and are in the cost.
    assert len(job["attempt_log"][0]["calls"]) == 3


def test_an_invalid_qa_reply_then_a_valid_one_is_fine(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("qa", Reply.ok("not a number"), Reply.score(28, 27, 18, 19))
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "done"


def test_a_permanent_model_error_ends_dead_without_retry(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("task", Reply.error(400, "context length exceeded"))
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "dead"
    job = show(rt, job_id)
    assert model_server.count() == 1
    assert job["error_kind"] == "permanent"
    assert "context length exceeded" in str(job["error"])
    assert job["price_usd"] is None
    assert job["payment_status"] == "na"


def test_a_transient_failure_retries_later_and_failed_attempts_costs_count(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(ai_max_retries=1)
    # Attempt 1: the task call succeeds and is paid for, then the judge keeps failing.
    model_server.on(
        "task",
        Reply.ok("first draft", tokens_in=100, tokens_out=50),
        Reply.ok("second draft", tokens_in=110, tokens_out=60),
    )
    model_server.on("qa", Reply.error(503), Reply.error(503), Reply.score(28, 27, 18, 19))
    job_id = submit(rt)

    assert pipeline.process(rt, job_id) == "failed"
    job = show(rt, job_id)
    assert job["error_kind"] == "transient"
    assert job["retry_at"] is not None
    assert job["attempt_log"][0]["status"] == "failed"

    assert pipeline.process(rt, job_id) == "done"
    job = show(rt, job_id)
    assert job["attempts"] == 2
    assert [a["status"] for a in job["attempt_log"]] == ["failed", "ok"]
    expected = usd("gpt-4o", 100, 50) + usd("gpt-4o", 110, 60) + usd("gpt-4o-mini", 300, 40)
    assert Decimal(job["cost_usd"]) == expected.quantize(Decimal("0.000001"))
    per_attempt = sum(Decimal(a["cost_usd"]) for a in job["attempt_log"])
    assert per_attempt == Decimal(job["cost_usd"])


def test_retries_exhausted_end_dead(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(ai_max_retries=0, max_attempts=2)
    model_server.on("task", *[Reply.error(500)] * 5)
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "failed"
    assert pipeline.process(rt, job_id) == "dead"
    job = show(rt, job_id)
    assert "retries exhausted after 2 attempts" in str(job["error"])
    assert job["finished_at"] is not None
    assert pipeline.process(rt, job_id) is None  # nothing more happens


def test_a_failed_job_is_not_run_before_its_retry_time(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(ai_max_retries=0, retry_delay_seconds=3600)
    model_server.on("task", Reply.error(500))
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "failed"
    assert pipeline.process(rt, job_id) is None
    assert show(rt, job_id)["attempts"] == 1


def test_an_escalation_model_rescues_a_failing_answer(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(escalation_model="gpt-4.1")
    model_server.on("task", Reply.ok("weak"), Reply.ok("strong"))
    model_server.on("qa", Reply.score(15, 15, 10, 10), Reply.score(29, 28, 19, 19))
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "done"
    job = show(rt, job_id)
    assert (job["result"], job["model"], job["answer_path"]) == ("strong", "gpt-4.1", "escalation")
    assert [r.model for r in model_server.requests if r.stage == "task"] == ["gpt-4o", "gpt-4.1"]


def test_without_escalation_a_failing_answer_is_not_run_again(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("qa", Reply.score(15, 15, 10, 10))
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "needs_review"
    assert model_server.count("task") == 1


def test_a_model_without_a_known_price_is_flagged_not_costed_as_zero(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(model="house-llama-7b", qa_model="house-llama-7b")
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "done"
    job = show(rt, job_id)
    assert job["cost_usd"] is None
    assert job["unpriced_models"] == ["house-llama-7b"]


def test_a_price_override_costs_a_local_model(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(
        model="house-llama-7b",
        qa_model="house-llama-7b",
        model_prices='{"house-llama-7b": {"input": "1", "output": "2"}}',
    )
    model_server.on("task", Reply.ok("done", tokens_in=1000, tokens_out=500))
    model_server.on(
        "qa",
        Reply.ok(
            '{"clarity": 30, "accuracy": 30, "completeness": 20, "tone": 20}',
            tokens_in=2000,
            tokens_out=100,
        ),
    )
    job_id = submit(rt)
    pipeline.process(rt, job_id)
    # (1000*1 + 500*2 + 2000*1 + 100*2) / 1e6 USD
    assert show(rt, job_id)["cost_usd"] == "0.004200"


@pytest.mark.parametrize(
    ("task_type", "input_text", "expected"),
    [
        ("research", TEXT, "25.00"),  # flat $25
        ("data_transform", "a,b\n1,2", "5.00"),  # $0.50 per 1k tokens, at least $5
        ("transcription", " ".join(["word"] * 450), "3.60"),  # 3 minutes at $1.20
    ],
)
def test_the_price_comes_from_the_task_types_rule(
    openai_rt: Callable[..., Runtime], task_type: str, input_text: str, expected: str
) -> None:
    rt = openai_rt()
    job_id = submit(rt, task_type=task_type, input=input_text)
    pipeline.process(rt, job_id)
    assert show(rt, job_id)["price_usd"] == expected


def test_a_clients_rate_override_replaces_the_rule_rate(
    openai_rt: Callable[..., Runtime],
) -> None:
    rt = openai_rt()
    job_id = submit(rt, client_email="vip@client.example")
    with rt.sessions.begin() as session:
        client = session.scalars(select(Client)).one()
        client.rate_overrides = {"summary": 6_500_000}
    pipeline.process(rt, job_id)
    assert show(rt, job_id)["price_usd"] == "6.50"


def test_a_cancelled_job_is_not_run(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    job_id = submit(rt)
    intake.cancel(rt, job_id, actor="test")
    assert pipeline.process(rt, job_id) is None
    assert model_server.count() == 0
    assert show(rt, job_id)["status"] == "cancelled"


def test_cancelling_a_running_job_discards_its_result_but_keeps_its_cost(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    job_id = submit(rt)
    claim = pipeline.claim_job(rt, job_id)
    assert claim is not None
    intake.cancel(rt, job_id, actor="test")
    assert pipeline._run(pipeline._Attempt(rt, claim)) is None
    job = show(rt, job_id)
    assert job["status"] == "cancelled"
    assert job["price_usd"] is None
    assert Decimal(job["cost_usd"]) > 0
    assert job["attempt_log"][0]["status"] == "discarded"


def test_the_offline_provider_needs_no_key_and_says_so(offline: Runtime) -> None:
    job_id = submit(offline)
    assert pipeline.process(offline, job_id) == "done"
    job = show(offline, job_id)
    assert job["provider"] == "offline"
    assert job["model"] == "offline"
    assert job["cost_usd"] == "0.000000"
    assert job["qa_breakdown"] and set(job["qa_breakdown"]) == {
        "clarity",
        "accuracy",
        "completeness",
        "tone",
    }
    with read_session(offline.sessions) as session:
        assert "offline heuristic" in (session.get(Job, job_id).qa_note or "")  # type: ignore[union-attr]


def test_an_answer_cut_off_at_the_output_limit_goes_to_review_unbilled(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    model_server.on("task", Reply.ok("The first half of a long transcr", finish="length"))
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "needs_review"
    job = show(rt, job_id)
    assert "cut off at the output limit" in str(job["qa_note"])
    assert job["payment_status"] == "na"
    assert model_server.count("qa") == 0  # no judge is paid to score a fragment
    assert model_server.requests[0].body["max_tokens"] == rt.settings.max_output_tokens


def test_a_failing_escalation_keeps_the_primary_answer(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(escalation_model="no-such-model")
    model_server.on("task", Reply.ok("primary answer"), Reply.error(404, "model not found"))
    model_server.on("qa", Reply.score(20, 20, 15, 15))
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "needs_review"
    job = show(rt, job_id)
    assert job["result"] == "primary answer"
    assert job["answer_path"] == "primary"
    assert "escalation failed" in str(job["qa_note"]) and "model not found" in str(job["qa_note"])
