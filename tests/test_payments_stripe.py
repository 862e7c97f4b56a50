"""Payments against Stripe, through the real `stripe` library and a fake Stripe API.

Only Stripe is fake (tests/fakes/stripe_server.py); the worker, approvals, reconciliation,
the webhook, the ledger, the alert engine and the CLI are EchoPilot's own. What is checked is
what a user would see: one payment link per billed job whatever went wrong on the way, money
that Stripe reports counted once, payments and refunds found even when their webhook was
lost, and failures that say what to fix without showing the key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy import func, select

from echopilot.alerts.engine import check
from echopilot.clock import utcnow
from echopilot.db.engine import read_session
from echopilot.db.models import Alert, Job, Payment, PaymentReconcile, StripeEvent
from echopilot.jobs import intake, views
from echopilot.jobs.intake import JobRequest
from echopilot.payments import freshness, links, reconcile, service, webhook
from echopilot.queue.worker import run_worker
from echopilot.runtime import Runtime
from tests import job_rows
from tests.conftest import run_cli
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.stripe_server import KEY, FakeStripeServer
from tests.services import PostgresServer

TEXT = "The pilot study enrolled forty clinics. Results were positive. Costs stayed flat."
SUMMARY_CENTS = 800  # the summary task type's flat price
WEBHOOK_SECRET = "whsec_test_5f0c2a9d7e41b38c"
WRONG_KEY = "sk_test_51WrongKeyQz8Lm2Xv7Rt4Np9Ks3Jd6Hf1Gc"
RESTRICTED_KEY = "rk_test_51RestrictedKq4Vn8Zp2Lw6Hy3Tb9Mc5Xs7D"
BACKENDS = pytest.mark.parametrize(
    "backend", ["embedded", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


# ---- helpers -------------------------------------------------------------------------


def stripe_settings(server: FakeStripeServer, **overrides: Any) -> dict[str, Any]:
    return {
        "stripe_secret_key": KEY,
        "stripe_api_base": server.url,
        "stripe_timeout_seconds": 5.0,
        **overrides,
    }


def cli_env(server: FakeStripeServer, key: str = KEY) -> dict[str, str]:
    return {"STRIPE_SECRET_KEY": key, "ECHOPILOT_STRIPE_API_BASE": server.url}


def submit(rt: Runtime, name: str = "job") -> int:
    request = JobRequest(name=name, task_type="summary", input=TEXT, source="api")
    return intake.submit(rt, request, actor="test").id


def job_view(rt: Runtime, job_id: int) -> dict[str, Any]:
    with read_session(rt.sessions) as session:
        return views.show(session, job_id)


def billed_jobs(rt: Runtime, n: int, *, status: str, cents: int, finished: datetime) -> list[int]:
    """`n` finished, billed jobs written straight into the database."""
    rows = [
        job_rows.job_row(
            name=f"billed {i}",
            price_cents=cents,
            payment_status=status,
            created_at=finished - timedelta(minutes=5),
            updated_at=finished,
            finished_at=finished,
        )
        for i in range(n)
    ]
    return job_rows.insert_rows(rt.engine, Job, rows)


def linked_job(rt: Runtime, *, cents: int = SUMMARY_CENTS, finished: datetime | None = None) -> int:
    """A billed job whose Stripe link EchoPilot made (through the fake)."""
    [job_id] = billed_jobs(rt, 1, status="link_pending", cents=cents, finished=finished or utcnow())
    assert links.ensure(rt, job_id) == "unpaid"
    return job_id


def ledger(rt: Runtime, job_id: int | None = None) -> list[tuple[str, int]]:
    with read_session(rt.sessions) as session:
        query = select(Payment.kind, Payment.amount_cents).order_by(Payment.id)
        if job_id is not None:
            query = query.where(Payment.job_id == job_id)
        return [(k, int(c)) for k, c in session.execute(query)]


def count(rt: Runtime, model: Any, *where: Any) -> int:
    with read_session(rt.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def late_line(rt: Runtime, now: datetime) -> str | None:
    with rt.engine.connect() as conn:
        late: str | None = freshness.state(conn, rt.settings, now)["late"]
    return late


def deliver(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """Deliver `event` to the webhook as Stripe does: signed with the endpoint's secret."""
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
    return webhook.receive(rt, body.encode(), header)


def logs_of(home: Any) -> str:
    return "".join(p.read_text(errors="replace") for p in (home / "logs").glob("*.log"))


# ---- payment links -------------------------------------------------------------------


@BACKENDS
def test_a_job_finished_by_the_worker_gets_exactly_one_payment_link(
    openai_rt: Callable[..., Runtime],
    model_server: FakeModelServer,
    stripe_server: FakeStripeServer,
) -> None:
    rt = openai_rt(**stripe_settings(stripe_server))
    job_id = submit(rt, "Board summary")

    assert run_worker(rt, concurrency=1, burst=True) == 0

    job = job_view(rt, job_id)
    [link] = stripe_server.links.values()
    assert job["status"] == "done"
    assert job["payment_status"] == "unpaid"
    assert job["payment_link"] == link["url"]
    assert job["payment_link"].startswith("https://buy.stripe.com/")
    assert job["price_usd"] == "8.00"
    assert stripe_server.links_created == 1
    [asked] = stripe_server.link_requests()
    assert asked.headers["authorization"] == f"Bearer {KEY}"
    item = asked.form["line_items"][0]
    assert item["price_data"]["unit_amount"] == str(SUMMARY_CENTS)
    assert item["price_data"]["currency"] == "usd"
    assert item["quantity"] == "1"
    assert asked.form["metadata"] == {"job_id": str(job_id), "source": "echopilot"}
    assert asked.form["payment_intent_data"]["metadata"] == asked.form["metadata"]
    assert asked.form["restrictions"] == {"completed_sessions": {"limit": "1"}}
    key = asked.headers["idempotency-key"]
    assert key.startswith(f"echopilot-job-{job_id}-")
    # The job's money page tells the same story.
    detail = service.job_detail(rt, job_id)
    assert detail["link"]["id"] == link["id"]
    assert detail["link"]["attempts"] == 1
    assert detail["link"]["error"] is None


def test_a_stripe_outage_leaves_the_job_done_and_reconcile_makes_one_link_after_a_lost_answer(
    openai_rt: Callable[..., Runtime],
    model_server: FakeModelServer,
    stripe_server: FakeStripeServer,
) -> None:
    rt = openai_rt(**stripe_settings(stripe_server))
    job_id = submit(rt)
    stripe_server.outage(500)

    assert run_worker(rt, concurrency=1, burst=True) == 0

    job = job_view(rt, job_id)
    assert job["status"] == "done"  # the job is never Stripe's hostage
    assert job["payment_status"] == "link_pending"
    assert job["payment_link"] is None
    error = service.job_detail(rt, job_id)["link"]["error"]
    assert error is not None and error.startswith("Stripe unreachable")
    assert stripe_server.links_created == 0

    # Stripe is back, but its first answer is lost on the way: the link exists at Stripe,
    # EchoPilot does not know it yet.
    stripe_server.outage(None)
    stripe_server.lose_answers(1)
    first = reconcile.run(rt, actor="test")
    assert first["ok"] is True
    assert (first["links_created"], first["links_waiting"]) == (0, 1)
    assert stripe_server.links_created == 1
    assert job_view(rt, job_id)["payment_status"] == "link_pending"
    assert service.job_detail(rt, job_id)["link"]["error"].startswith("Stripe unreachable")

    second = reconcile.run(rt, actor="test")
    assert (second["links_created"], second["links_waiting"]) == (1, 0)
    [link] = stripe_server.links.values()
    job = job_view(rt, job_id)
    assert job["payment_status"] == "unpaid"
    assert job["payment_link"] == link["url"]
    assert stripe_server.links_created == 1  # one link, however often asked
    keys = {r.headers["idempotency-key"] for r in stripe_server.link_requests()}
    assert len(stripe_server.link_requests()) == 3
    assert len(keys) == 1
    detail = service.job_detail(rt, job_id)
    assert detail["link"]["error"] is None
    assert detail["link"]["attempts"] == 3


def test_approving_a_job_that_needed_review_makes_its_link(
    openai_rt: Callable[..., Runtime],
    model_server: FakeModelServer,
    stripe_server: FakeStripeServer,
) -> None:
    rt = openai_rt(**stripe_settings(stripe_server))
    model_server.on("qa", Reply.score(20, 20, 15, 15))  # 70: below the threshold
    job_id = submit(rt)
    assert run_worker(rt, concurrency=1, burst=True) == 0
    job = job_view(rt, job_id)
    assert (job["status"], job["payment_status"]) == ("needs_review", "na")
    assert stripe_server.link_requests() == []  # not billed: no link yet

    intake.approve(rt, job_id, actor="reviewer")

    job = job_view(rt, job_id)
    [link] = stripe_server.links.values()
    assert (job["status"], job["payment_status"]) == ("done", "unpaid")
    assert job["payment_link"] == link["url"]
    [asked] = stripe_server.link_requests()
    assert asked.form["line_items"][0]["price_data"]["unit_amount"] == str(SUMMARY_CENTS)
    assert asked.form["metadata"]["job_id"] == str(job_id)


def test_without_a_stripe_key_a_billed_job_is_not_configured_and_stripe_is_never_called(
    openai_rt: Callable[..., Runtime],
    model_server: FakeModelServer,
    stripe_server: FakeStripeServer,
) -> None:
    # The API address is set, the key is not: payments are off.
    rt = openai_rt(stripe_api_base=stripe_server.url)
    job_id = submit(rt)
    assert run_worker(rt, concurrency=1, burst=True) == 0

    job = job_view(rt, job_id)
    assert (job["status"], job["payment_status"]) == ("done", "not_configured")
    assert job["payment_link"] is None
    result = reconcile.run(rt, actor="test")
    assert result["ok"] is True and result["skipped"] is True
    assert "STRIPE_SECRET_KEY" in result["notes"][0]
    assert stripe_server.requests == []


# ---- reconciliation ------------------------------------------------------------------


@BACKENDS
def test_a_payment_whose_webhook_was_missed_is_applied_by_reconcile_exactly_once(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server))
    job_id = linked_job(rt)
    paid = stripe_server.pay(job_view(rt, job_id)["payment_link"])  # no webhook ever came

    first = reconcile.run(rt, actor="test")
    second = reconcile.run(rt, actor="test")

    assert first["ok"] is True and second["ok"] is True
    # Stripe listed the checkout session and the payment intent (its charge.succeeded is
    # of a type EchoPilot does not ask for); both report the one payment.
    assert (first["events_read"], first["events_applied"]) == (2, 2)
    assert (second["events_read"], second["events_applied"]) == (2, 0)
    assert job_view(rt, job_id)["payment_status"] == "paid"
    assert ledger(rt) == [("payment", SUMMARY_CENTS)]
    detail = service.job_detail(rt, job_id)
    assert detail["net_received"] == "8.00"
    assert detail["link"]["payment_intent"] == paid.intent
    assert sorted((e["type"], e["via"], e["outcome"]) for e in detail["events"]) == [
        ("checkout.session.completed", "reconcile", "applied"),
        ("payment_intent.succeeded", "reconcile", "applied"),
    ]
    assert count(rt, StripeEvent) == 2
    assert count(rt, PaymentReconcile, PaymentReconcile.ok.is_(True)) == 2
    # It asked only for the event types it acts on, from a bounded start.
    listed = stripe_server.seen("GET", "/v1/events")[0].query
    assert "payment_intent.succeeded" in listed["types"]
    assert "charge.succeeded" not in listed["types"]
    assert int(listed["created"]["gte"]) <= min(e["created"] for e in stripe_server.events)


def test_reconcile_reads_every_page_of_250_events_and_applies_each_once(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server))
    jobs = billed_jobs(rt, 250, status="unpaid", cents=500, finished=utcnow())
    for job_id in jobs:
        stripe_server.pay(
            job_id=job_id, amount=500, kinds=("charge.succeeded", "payment_intent.succeeded")
        )

    first = reconcile.run(rt, actor="test")

    assert first["ok"] is True
    assert (first["events_read"], first["events_applied"]) == (250, 250)
    pages = stripe_server.seen("GET", "/v1/events")
    assert len(pages) == 3  # 100 + 100 + 50
    assert all(p.query["limit"] == "100" for p in pages)
    assert "starting_after" not in pages[0].query
    assert all(p.query.get("starting_after") for p in pages[1:])
    assert count(rt, Payment, Payment.kind == "payment") == 250
    assert count(rt, Job, Job.payment_status == "paid") == 250
    assert count(rt, StripeEvent, StripeEvent.via == "reconcile") == 250

    again = reconcile.run(rt, actor="test")
    assert (again["events_read"], again["events_applied"]) == (250, 0)
    assert count(rt, Payment) == 250
    assert service.overview(rt)["paid_7d"]["received"] == "1250.00"


def test_a_page_that_fails_midway_loses_nothing_and_counts_nothing_twice(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server))
    jobs = billed_jobs(rt, 120, status="unpaid", cents=500, finished=utcnow())
    for job_id in jobs:
        stripe_server.pay(job_id=job_id, amount=500, kinds=("payment_intent.succeeded",))
    stripe_server.script("/v1/events", None, 503)  # the second page fails

    broken = reconcile.run(rt, actor="test")

    assert broken["ok"] is False
    assert broken["error"].startswith("Stripe unreachable")
    assert broken["events_applied"] == 100  # the first page is kept
    assert count(rt, Job, Job.payment_status == "paid") == 100
    assert late_line(rt, utcnow()) is not None

    mended = reconcile.run(rt, actor="test")

    assert mended["ok"] is True
    assert (mended["events_read"], mended["events_applied"]) == (120, 20)
    assert count(rt, Job, Job.payment_status == "paid") == 120
    assert count(rt, Payment) == 120
    assert late_line(rt, utcnow()) is None


def test_a_refund_waiting_for_its_job_is_resolved_by_reconcile_reading_the_payment_intent(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server, stripe_webhook_secret=WEBHOOK_SECRET))
    long_ago = utcnow() - timedelta(days=6)
    job_id = linked_job(rt, finished=long_ago)
    # The client paid five days ago; those webhooks were lost and are older than what
    # reconciliation reads (3 days). Today part of it is refunded, and the refund's charge
    # carries no metadata: nothing in it names the job, and its payment intent is unknown.
    paid = stripe_server.pay(
        job_view(rt, job_id)["payment_link"], created=int(time.time()) - 5 * 86400
    )
    refund = stripe_server.refund(paid.charge, 300, metadata=False)
    # A payment of another system's on the same Stripe account, refunded too.
    foreign = stripe_server.pay(metadata={"order": "A-1043"}, amount=2500)
    foreign_refund = stripe_server.refund(foreign.charge, 2500, metadata=False)

    assert deliver(rt, refund)["outcome"] == "pending"
    assert deliver(rt, foreign_refund)["outcome"] == "pending"
    assert job_view(rt, job_id)["payment_status"] == "unpaid"
    assert service.overview(rt)["events_waiting"] == 2

    result = reconcile.run(rt, actor="test")

    assert result["ok"] is True
    # Waiting: the two refunds, and the other system's payment that reconcile just read.
    assert result["pending_resolved"] == 3
    asked = {r.path for r in stripe_server.seen("GET", "/v1/payment_intents/")}
    assert f"/v1/payment_intents/{paid.intent}" in asked
    assert job_view(rt, job_id)["payment_status"] == "partially_refunded"
    # The refund proves the payment it refunds: both are in the ledger, once.
    assert ledger(rt, job_id) == [("payment", SUMMARY_CENTS), ("refund", -300)]
    assert service.job_detail(rt, job_id)["net_received"] == "5.00"
    with read_session(rt.sessions) as session:
        mine = session.get(StripeEvent, refund["id"])
        theirs = session.get(StripeEvent, foreign_refund["id"])
        assert mine is not None and theirs is not None
        assert (mine.outcome, mine.job_id, mine.via) == ("applied", job_id, "webhook")
        assert (theirs.outcome, theirs.job_id) == ("not_ours", None)
        their_payment = session.scalars(
            select(StripeEvent.outcome).where(StripeEvent.payment_intent == foreign.intent)
        ).all()
        assert sorted(their_payment) == ["not_ours", "not_ours"]
    assert ledger(rt) == [("payment", SUMMARY_CENTS), ("refund", -300)]  # nothing of theirs
    assert service.overview(rt)["events_waiting"] == 0

    again = reconcile.run(rt, actor="test")
    assert again["events_applied"] == 0
    assert ledger(rt) == [("payment", SUMMARY_CENTS), ("refund", -300)]


def test_a_restricted_key_without_payment_intent_access_does_not_lose_a_waiting_refund(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    stripe_server.key = RESTRICTED_KEY
    rt = make_runtime(
        **stripe_settings(
            stripe_server, stripe_secret_key=RESTRICTED_KEY, stripe_webhook_secret=WEBHOOK_SECRET
        )
    )
    job_id = linked_job(rt, finished=utcnow() - timedelta(days=6))
    paid = stripe_server.pay(
        job_view(rt, job_id)["payment_link"], created=int(time.time()) - 5 * 86400
    )
    refund = stripe_server.refund(paid.charge, 300, metadata=False)
    assert deliver(rt, refund)["outcome"] == "pending"
    # The key was made without the PaymentIntents read access docs/payments.md asks for.
    stripe_server.deny("/v1/payment_intents", "rak_payment_intent_read")

    short = reconcile.run(rt, actor="test")

    assert stripe_server.seen("GET", "/v1/payment_intents/")[-1].status == 403
    # The operator is told what is missing...
    assert short["ok"] is False
    assert "permission" in short["error"]
    # ...and once the key is given it, the refund is counted.
    stripe_server.allow("/v1/payment_intents")
    assert reconcile.run(rt, actor="test")["ok"] is True
    assert job_view(rt, job_id)["payment_status"] == "partially_refunded"
    assert ledger(rt, job_id) == [("payment", SUMMARY_CENTS), ("refund", -300)]


def test_when_stripe_is_unreachable_reconcile_fails_visibly_and_recovers(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server))
    earlier = utcnow() - timedelta(minutes=10)
    assert reconcile.run(rt, actor="test", now=earlier)["ok"] is True
    assert late_line(rt, earlier + timedelta(minutes=1)) is None

    stripe_server.stop()  # connections refused
    now = utcnow()
    result = reconcile.run(rt, actor="test", now=now)

    assert result["ok"] is False
    assert result["error"].startswith("Stripe unreachable")
    assert result["notes"] == [f"Stripe not reconciled: {result['error']}"]
    with read_session(rt.sessions) as session:
        last = session.scalar(
            select(PaymentReconcile).order_by(PaymentReconcile.id.desc()).limit(1)
        )
        assert last is not None
        assert (last.ok, last.error) == (False, result["error"])
    # One failed run is no gap yet (the next, 15 minutes on, usually succeeds); an hour
    # without a good one is, and the line names the last failure.
    assert late_line(rt, now) is None
    late = late_line(rt, earlier + timedelta(minutes=61))
    assert late is not None
    assert late.startswith("Stripe not reconciled since")
    assert result["error"] in late

    env = {**cli_env(stripe_server), "ECHOPILOT_LOG_LEVEL": "info"}
    cli = run_cli(rt.settings, "payments", "reconcile", extra_env=env)
    assert cli.returncode == 1
    assert cli.stdout == ""
    lines = cli.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: Stripe not reconciled: Stripe unreachable")

    stripe_server.start()  # back, on the same address
    back = utcnow()
    assert reconcile.run(rt, actor="test", now=back)["ok"] is True
    assert late_line(rt, back) is None


def test_an_unreachable_stripe_is_explained_by_its_cause(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server))
    stripe_server.stop()

    error = reconcile.run(rt, actor="test")["error"]

    # What the operator reads (CLI line, freshness line, alert): a sentence naming the cause.
    assert "refused" in error.lower()
    assert not error.rstrip().endswith(",")


def test_a_wrong_key_is_named_as_the_problem_and_never_shown(
    make_runtime: Callable[..., Runtime],
    stripe_server: FakeStripeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    rt = make_runtime(**stripe_settings(stripe_server, stripe_secret_key=WRONG_KEY))
    [job_id] = billed_jobs(rt, 1, status="link_pending", cents=SUMMARY_CENTS, finished=utcnow())

    assert links.ensure(rt, job_id) == "link_pending"
    result = reconcile.run(rt, actor="test")

    # Stripe was asked with the key, and said no.
    assert stripe_server.requests
    assert all(r.status == 401 for r in stripe_server.requests)
    assert stripe_server.requests[0].headers["authorization"] == f"Bearer {WRONG_KEY}"
    link_error = service.job_detail(rt, job_id)["link"]["error"]
    assert result["ok"] is False
    for message in (link_error, result["error"], late_line(rt, utcnow())):
        assert message is not None
        assert "STRIPE_SECRET_KEY" in message
        assert WRONG_KEY not in message
    assert result["error"].startswith("Stripe refused the key (STRIPE_SECRET_KEY)")
    assert WRONG_KEY not in caplog.text

    cli = run_cli(
        rt.settings,
        "payments",
        "reconcile",
        extra_env={**cli_env(stripe_server, WRONG_KEY), "ECHOPILOT_LOG_LEVEL": "debug"},
    )
    assert cli.returncode == 1
    assert "STRIPE_SECRET_KEY" in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1
    assert WRONG_KEY not in cli.stdout + cli.stderr
    assert WRONG_KEY not in logs_of(rt.settings.home)


# ---- alert rules ---------------------------------------------------------------------


def test_a_failed_payment_and_a_lost_dispute_open_their_alerts_once(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server))
    declined, disputed = linked_job(rt), linked_job(rt)
    stripe_server.fail_payment(job_view(rt, declined)["payment_link"])
    paid = stripe_server.pay(job_view(rt, disputed)["payment_link"])
    dispute_id, _ = stripe_server.dispute(paid.charge)
    stripe_server.close_dispute(dispute_id, "lost")
    assert reconcile.run(rt, actor="test")["ok"] is True
    assert job_view(rt, declined)["payment_status"] == "payment_failed"
    assert job_view(rt, disputed)["payment_status"] == "dispute_lost"
    # The payment came in and the dispute took it back.
    assert ledger(rt, disputed) == [("payment", SUMMARY_CENTS), ("dispute", -SUMMARY_CENTS)]

    wanted = {f"payment_failed:{declined}", f"dispute_lost:{dispute_id}"}
    now = utcnow()
    first = check(rt, now=now, actor="test")
    second = check(rt, now=now + timedelta(minutes=5), actor="test")

    assert wanted <= set(first["opened"])
    assert wanted <= {s["key"] for s in first["sent"]}
    failed = next(f for f in first["firing"] if f["key"] == f"payment_failed:{declined}")
    assert "Your card was declined." in json.dumps(failed)
    assert wanted.isdisjoint(second["opened"])
    assert wanted.isdisjoint({s["key"] for s in second["sent"]})
    assert wanted <= {f["key"] for f in second["firing"]}  # still true, not sent again
    for key in wanted:
        assert count(rt, Alert, Alert.key == key) == 1


def test_marking_a_linked_job_paid_closes_its_link_and_a_second_payment_is_flagged(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server))
    job_id = linked_job(rt)
    link = job_view(rt, job_id)["payment_link"]
    link_id = service.job_detail(rt, job_id)["link"]["id"]

    marked = service.mark_paid(rt, job_id, actor="test", note="bank transfer")

    assert (marked["payment_status"], marked["link"]) == ("paid", "deactivated")
    assert stripe_server.links[link_id]["active"] is False
    assert len(stripe_server.link_requests()) == 1  # closing it made no new link
    # The client paid through the link anyway (say, a page left open before it closed).
    stripe_server.pay(link)
    assert reconcile.run(rt, actor="test")["ok"] is True
    assert ledger(rt, job_id) == [("payment", SUMMARY_CENTS), ("payment", SUMMARY_CENTS)]
    assert job_view(rt, job_id)["payment_status"] == "paid"
    notes = [e for e in service.job_detail(rt, job_id)["events"] if e["outcome"] == "applied"]
    assert notes, "the second payment's event was applied"

    found = check(rt, now=utcnow(), actor="test")
    assert f"paid_twice:{job_id}" in found["opened"]
    flagged = next(f for f in found["firing"] if f["key"] == f"paid_twice:{job_id}")
    assert "$16.00 kept on a price of $8.00" in flagged["title"]


def test_marking_paid_while_stripe_is_unreachable_says_the_link_is_still_open(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server))
    job_id = linked_job(rt)
    stripe_server.stop()

    marked = service.mark_paid(rt, job_id, actor="test")

    assert marked["payment_status"] == "paid"  # the money is recorded whatever Stripe says
    assert marked["link"].startswith("still open: Stripe unreachable")
    assert "deactivate it in Stripe" in marked["link"]


def test_a_database_outage_as_a_link_is_made_is_one_warning_and_reconcile_makes_the_link(
    make_runtime: Callable[..., Runtime],
    stripe_server: FakeStripeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg = PostgresServer().init().start()
    try:
        rt = make_runtime(database_url=pg.url, **stripe_settings(stripe_server))
        [job_id] = billed_jobs(rt, 1, status="link_pending", cents=SUMMARY_CENTS, finished=utcnow())
        pg.stop("immediate")
        caplog.clear()
        links.after_billing(rt, job_id)  # the worker's call once a job is billed: never raises
        said = [r for r in caplog.records if r.name == "echopilot.payments.links"]
        pg.start()
        # Before: an error with a traceback, as if it were a bug.
        assert [(r.levelname, r.exc_info) for r in said] == [("WARNING", None)]
        assert "the database cannot be reached" in said[0].getMessage()
        assert job_view(rt, job_id)["payment_status"] == "link_pending"
        assert reconcile.run(rt, actor="test")["links_created"] == 1
        assert job_view(rt, job_id)["payment_status"] == "unpaid"
        assert stripe_server.links_created == 1
    finally:
        pg.remove()


def test_the_log_has_no_line_per_stripe_request(
    make_runtime: Callable[..., Runtime], stripe_server: FakeStripeServer
) -> None:
    rt = make_runtime(**stripe_settings(stripe_server))
    [job_id] = billed_jobs(rt, 1, status="link_pending", cents=SUMMARY_CENTS, finished=utcnow())
    env = {**cli_env(stripe_server), "ECHOPILOT_LOG_LEVEL": "info"}
    cli = run_cli(rt.settings, "payments", "reconcile", extra_env=env)
    assert cli.returncode == 0, cli.stderr
    assert job_view(rt, job_id)["payment_status"] == "unpaid"
    written = logs_of(rt.settings.home) + cli.stderr
    # Before: "Request to Stripe api" and "Stripe API response" at INFO for every call.
    assert "Stripe api" not in written and "Stripe API response" not in written
