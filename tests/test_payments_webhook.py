"""Stripe's webhook, end to end: POST /webhook/stripe believes an event only when its
signature is right and fresh, applies each event once whatever the order, the replays and
the processes it reaches, and finance counts the money on the day it moved.

Only Stripe is faked: the tests sign events themselves with the official library
(`stripe.WebhookSignature.generate_signature_header`), shaped as Stripe sends them. No
test talks to Stripe: the secret key points the library at a closed local port.
The figures are checked against the ledger's rows and against sums written here.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import select
from starlette.testclient import TestClient

from echopilot.clock import ensure_utc, utcnow
from echopilot.db.engine import write_session
from echopilot.db.models import AuditLog, Dispute, Job, JobPayment, Payment, StripeEvent
from echopilot.finance import metrics
from echopilot.payments import events, service, webhook
from echopilot.runtime import Runtime
from tests import job_rows
from tests.api_support import TEST_KEY, api_client, assert_error, assert_ok, running_together

SECRET = "whsec_echopilot_tests_5f0c1a9e7b"
OTHER_SECRET = "whsec_someone_else_0000000000"
STRIPE_KEY = "sk_test_echopilot_0123456789"
NOWHERE = "http://127.0.0.1:9"  # no Stripe call may leave the machine
BOTH = pytest.mark.parametrize(
    "backend", ["embedded", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _no_stripe_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's STRIPE_* must not reach the code under test or its children."""
    for name in list(os.environ):
        if name.startswith("STRIPE_"):
            monkeypatch.delenv(name)


# The world: runtimes, jobs, and what the database holds.


def payments_runtime(make_runtime: Callable[..., Runtime], **overrides: Any) -> Runtime:
    values = {
        "ai_provider": "offline",
        "stripe_webhook_secret": SECRET,
        "stripe_secret_key": STRIPE_KEY,
        "stripe_api_base": NOWHERE,
        **overrides,
    }
    return make_runtime(**values)


def add_job(
    rt: Runtime,
    *,
    price_cents: int | None = 1000,
    payment_status: str = "unpaid",
    finished_at: datetime | None = None,
    status: str = "done",
) -> int:
    """A finished, billed job that owes its price (unless told otherwise)."""
    finished_at = finished_at or utcnow() - timedelta(minutes=5)
    row = job_rows.job_row(
        name=f"job {next(_ids)}",
        status=status,
        created_at=finished_at - timedelta(minutes=10),
        updated_at=finished_at,
        finished_at=finished_at,
        price_cents=price_cents,
        payment_status=payment_status,
    )
    return job_rows.insert_rows(rt.engine, Job, [row])[0]


def world(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a Stripe event or a payment marked by hand could change."""
    queries = {
        "events": select(StripeEvent.id, StripeEvent.outcome, StripeEvent.job_id),
        "ledger": select(Payment.entry_key, Payment.kind, Payment.amount_cents, Payment.job_id),
        "jobs": select(Job.id, Job.payment_status, Job.payment_link, Job.updated_at),
        "sides": select(
            JobPayment.job_id, JobPayment.payment_intent, JobPayment.charge, JobPayment.failure
        ),
        "disputes": select(Dispute.id, Dispute.status, Dispute.closed_at),
        "audit": select(AuditLog.action, AuditLog.target).where(AuditLog.action.like("payment%")),
    }
    with rt.engine.connect() as conn:
        return {name: sorted(tuple(r) for r in conn.execute(q)) for name, q in queries.items()}


def payment_status(rt: Runtime, job_id: int) -> str:
    with rt.engine.connect() as conn:
        return str(conn.scalar(select(Job.payment_status).where(Job.id == job_id)))


def ledger_of(rt: Runtime, job_id: int) -> list[tuple[str, int]]:
    """(kind, cents) of a job's ledger, in the order the money moved."""
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(Payment.kind, Payment.amount_cents)
            .where(Payment.job_id == job_id)
            .order_by(Payment.moved_at, Payment.id)
        )
        return [(kind, int(cents)) for kind, cents in rows]


def event_rows(rt: Runtime) -> dict[str, str]:
    """event id -> outcome."""
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(StripeEvent.id, StripeEvent.outcome)).all())


# Stripe's events, as Stripe shapes them (the fields EchoPilot reads and some it does not).


def ts(moment: datetime | None = None) -> int:
    return int((moment or utcnow()).timestamp())


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{next(_ids):06d}{time.monotonic_ns() % 10**8:08d}"


def metadata(job_id: int) -> dict[str, str]:
    return {"job_id": str(job_id), "source": "echopilot"}


def event(kind: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    return {
        "id": new_id("evt"),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "type": kind,
        "created": created or ts(),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }


def checkout_completed(
    job_id: int, intent: str, cents: int, *, created: int | None = None
) -> dict[str, Any]:
    return event(
        "checkout.session.completed",
        {
            "id": new_id("cs"),
            "object": "checkout.session",
            "mode": "payment",
            "payment_link": new_id("plink"),
            "payment_intent": intent,
            "payment_status": "paid",
            "status": "complete",
            "amount_total": cents,
            "currency": "usd",
            "metadata": metadata(job_id),
        },
        created=created,
    )


def intent_succeeded(
    job_id: int, intent: str, charge: str, cents: int, *, created: int | None = None
) -> dict[str, Any]:
    return event(
        "payment_intent.succeeded",
        {
            "id": intent,
            "object": "payment_intent",
            "amount": cents,
            "amount_received": cents,
            "currency": "usd",
            "latest_charge": charge,
            "status": "succeeded",
            "metadata": metadata(job_id),
        },
        created=created,
    )


def intent_failed(
    job_id: int, intent: str, cents: int, *, created: int | None = None
) -> dict[str, Any]:
    return event(
        "payment_intent.payment_failed",
        {
            "id": intent,
            "object": "payment_intent",
            "amount": cents,
            "amount_received": 0,
            "currency": "usd",
            "latest_charge": new_id("ch"),  # the declined charge
            "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
            "metadata": metadata(job_id),
        },
        created=created,
    )


def charge_refunded(
    intent: str,
    charge: str,
    cents: int,
    refunded: int,
    *,
    created: int | None = None,
    charged: int | None = None,
) -> dict[str, Any]:
    """A charge refunded to a total of `refunded` cents; like Stripe's charges of a
    payment link, it names the payment intent but carries no job in its metadata."""
    return event(
        "charge.refunded",
        {
            "id": charge,
            "object": "charge",
            "amount": cents,
            "amount_captured": cents,
            "amount_refunded": refunded,
            "refunded": refunded >= cents,
            "captured": True,
            "paid": True,
            "status": "succeeded",
            "currency": "usd",
            "payment_intent": intent,
            "created": charged or created or ts(),
            "metadata": {},
        },
        created=created,
    )


def dispute_event(
    kind: str,
    dispute: str,
    intent: str,
    charge: str,
    cents: int,
    status: str,
    *,
    opened: int | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    opened = opened or created or ts()
    return event(
        f"charge.dispute.{kind}",
        {
            "id": dispute,
            "object": "dispute",
            "amount": cents,
            "charge": charge,
            "payment_intent": intent,
            "currency": "usd",
            "status": status,
            "reason": "fraudulent",
            "created": opened,
            "evidence_details": {"due_by": opened + 7 * 86400, "has_evidence": False},
            "metadata": {},
        },
        created=created,
    )


def signed(
    evt: dict[str, Any] | str, *, secret: str = SECRET, at: int | None = None
) -> tuple[str, str]:
    """The body and its Stripe-Signature header."""
    body = evt if isinstance(evt, str) else json.dumps(evt)
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=at or ts())
    return body, header


def deliver(client: TestClient | httpx.Client, evt: dict[str, Any], **sign: Any) -> Any:
    """POST one signed event; the answer's data (asserting 200)."""
    body, header = signed(evt, **sign)
    response = client.post(
        "/webhook/stripe",
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    return assert_ok(response)


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return payments_runtime(make_runtime)


@pytest.fixture
def hook(rt: Runtime) -> Any:
    """An in-process client of the API that sends no dashboard key (Stripe has none)."""
    with api_client(rt, key=None) as client:
        yield client


# The signature and the envelope.


def test_a_signed_event_is_applied_and_its_job_is_paid(rt: Runtime, hook: TestClient) -> None:
    job = add_job(rt, price_cents=2500)
    intent, charge = new_id("pi"), new_id("ch")
    evt = intent_succeeded(job, intent, charge, 2500)

    data = deliver(hook, evt)

    assert data == {
        "event": evt["id"],
        "type": "payment_intent.succeeded",
        "outcome": "applied",
        "job_id": job,
        "payment_status": "paid",
        "detail": None,
    }
    assert payment_status(rt, job) == "paid"
    assert ledger_of(rt, job) == [("payment", 2500)]
    assert event_rows(rt) == {evt["id"]: "applied"}
    with api_client(rt) as dashboard:
        detail = assert_ok(dashboard.get(f"/api/payments/{job}"))
    assert detail["payment_status"] == "paid"
    assert detail["net_received"] == "25.00"
    assert detail["link"]["payment_intent"] == intent
    assert [(e["id"], e["via"], e["outcome"]) for e in detail["events"]] == [
        (evt["id"], "webhook", "applied")
    ]


def _padded(header: str) -> str:
    return header + "," + "v0=" + "0" * (5 * 1024)


def _tampered(body: str) -> str:
    return body.replace('"amount_received": 1000', '"amount_received": 1')


# (name, how the delivery is spoilt, the error code). Each spoils a delivery that, unspoilt,
# would pay the job: so "nothing changed" means something.
REFUSED: list[tuple[str, Callable[[str, str], tuple[bytes | str, str | None]], str]] = [
    ("tampered body", lambda body, header: (_tampered(body), header), "bad_signature"),
    (
        "wrong secret",
        lambda body, header: (body, signed(body, secret=OTHER_SECRET)[1]),
        "bad_signature",
    ),
    ("missing header", lambda body, header: (body, None), "bad_signature"),
    ("empty header", lambda body, header: (body, ""), "bad_signature"),
    ("header with NUL", lambda body, header: (body, header + "\x00"), "bad_signature"),
    (
        "NUL inside header",
        lambda body, header: (body, header.replace(",", ",\x00", 1)),
        "bad_signature",
    ),
    ("5 KB header", lambda body, header: (body, _padded(header)), "bad_signature"),
    ("header of garbage", lambda body, header: (body, "not a signature"), "bad_signature"),
    ("signature only", lambda body, header: (body, header.split(",", 1)[1]), "bad_signature"),
    (
        "301 s old",
        lambda body, header: (body, signed(body, at=ts() - 301)[1]),
        "stale_signature",
    ),
    (
        "an hour old",
        lambda body, header: (body, signed(body, at=ts() - 3600)[1]),
        "stale_signature",
    ),
    (
        "310 s ahead",
        lambda body, header: (body, signed(body, at=ts() + 310)[1]),
        "stale_signature",
    ),
    (
        "a day ahead",
        lambda body, header: (body, signed(body, at=ts() + 86400)[1]),
        "stale_signature",
    ),
    ("body not UTF-8", lambda body, header: (b"\xff\xfe" + body.encode(), header), "bad_request"),
]


@pytest.mark.parametrize(
    ("spoil", "code"), [(s, c) for _, s, c in REFUSED], ids=[n for n, *_ in REFUSED]
)
def test_a_delivery_not_believed_is_refused_and_changes_nothing(
    rt: Runtime, hook: TestClient, spoil: Callable[..., Any], code: str
) -> None:
    job = add_job(rt, price_cents=1000)
    body, header = signed(intent_succeeded(job, new_id("pi"), new_id("ch"), 1000))
    assert '"amount_received": 1000' in body
    before = world(rt)

    content, bad_header = spoil(body, header)
    headers = {"Content-Type": "application/json"}
    if bad_header is not None:
        headers["Stripe-Signature"] = bad_header
    error = assert_error(hook.post("/webhook/stripe", content=content, headers=headers), 400, code)

    assert world(rt) == before
    assert payment_status(rt, job) == "unpaid"
    assert SECRET not in error["message"]
    if code == "stale_signature":
        assert "tolerance" in error["message"], error


BAD_BODIES = [
    ("not JSON", "this is not json", "not JSON"),
    ("JSON array", "[]", "JSON object"),
    (
        "no id",
        json.dumps({"type": "charge.refunded", "created": 1, "data": {"object": {}}}),
        "'id'",
    ),
    (
        "no data.object",
        json.dumps({"id": "evt_x", "type": "charge.refunded", "created": 1, "data": {}}),
        "data.object",
    ),
    (
        "created is text",
        json.dumps({"id": "evt_x", "type": "x", "created": "now", "data": {"object": {}}}),
        "'created'",
    ),
]


@pytest.mark.parametrize(
    ("body", "says"), [(b, s) for _, b, s in BAD_BODIES], ids=[n for n, *_ in BAD_BODIES]
)
def test_a_signed_body_that_is_not_an_event_is_refused(
    rt: Runtime, hook: TestClient, body: str, says: str
) -> None:
    before = world(rt)
    body, header = signed(body)
    error = assert_error(
        hook.post("/webhook/stripe", content=body, headers={"Stripe-Signature": header}),
        400,
        "bad_request",
    )
    assert says in error["message"], error
    assert world(rt) == before


def test_a_signature_within_the_tolerance_is_believed_either_way(
    rt: Runtime, hook: TestClient
) -> None:
    early, late = add_job(rt), add_job(rt)
    deliver(hook, intent_succeeded(early, new_id("pi"), new_id("ch"), 1000), at=ts() - 290)
    deliver(hook, intent_succeeded(late, new_id("pi"), new_id("ch"), 1000), at=ts() + 290)
    assert payment_status(rt, early) == payment_status(rt, late) == "paid"


def test_a_replayed_event_is_answered_duplicate_and_applied_once(
    rt: Runtime, hook: TestClient
) -> None:
    job = add_job(rt, price_cents=1000)
    evt = intent_succeeded(job, new_id("pi"), new_id("ch"), 1000)
    body, header = signed(evt)
    first = assert_ok(
        hook.post("/webhook/stripe", content=body, headers={"Stripe-Signature": header})
    )
    assert first["outcome"] == "applied"
    after_first = world(rt)

    # The very same delivery again (a replay), then Stripe's own retry (signed afresh).
    again = assert_ok(
        hook.post("/webhook/stripe", content=body, headers={"Stripe-Signature": header})
    )
    retried = deliver(hook, evt, at=ts() + 5)

    for answer in (again, retried):
        assert answer["event"] == evt["id"] and answer["outcome"] == "duplicate", answer
    assert world(rt) == after_first
    assert ledger_of(rt, job) == [("payment", 1000)]
    assert event_rows(rt) == {evt["id"]: "applied"}


@pytest.mark.parametrize("disguise", ["t ={now},{old}", "v0=0, t={now},{old}"])
def test_an_old_signature_cannot_pass_for_fresh_behind_a_second_timestamp(
    rt: Runtime, hook: TestClient, disguise: str
) -> None:
    job = add_job(rt)
    body, old = signed(intent_succeeded(job, new_id("pi"), new_id("ch"), 1000), at=ts() - 86400)
    before = world(rt)
    header = disguise.format(now=ts(), old=old)
    response = hook.post("/webhook/stripe", content=body, headers={"Stripe-Signature": header})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in ("bad_signature", "stale_signature")
    assert world(rt) == before


def test_without_a_webhook_secret_every_event_is_refused_not_configured(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = payments_runtime(make_runtime, stripe_webhook_secret=None)
    job = add_job(rt)
    before = world(rt)
    with api_client(rt, key=None) as hook:
        body, header = signed(intent_succeeded(job, new_id("pi"), new_id("ch"), 1000))
        response = hook.post("/webhook/stripe", content=body, headers={"Stripe-Signature": header})
    # docs/payments.md: 400 `not_configured` (the brief said 503; the code and docs changed).
    error = assert_error(response, 400, "not_configured")
    assert "STRIPE_WEBHOOK_SECRET" in error["message"]
    assert world(rt) == before


def test_the_webhook_needs_no_dashboard_key_but_the_payments_api_does(
    rt: Runtime, hook: TestClient
) -> None:
    job = add_job(rt)
    before = world(rt)
    for method, path, body in [
        ("GET", "/api/payments", None),
        ("GET", "/api/payments?status=owed", None),
        ("GET", "/api/payments/status", None),
        ("GET", f"/api/payments/{job}", None),
        ("POST", f"/api/payments/{job}/mark-paid", {"amount": "10.00"}),
        ("POST", "/api/payments/reconcile", None),
    ]:
        assert_error(hook.request(method, path, json=body), 401, "unauthorized")
    assert world(rt) == before

    assert deliver(hook, intent_succeeded(job, new_id("pi"), new_id("ch"), 1000))["outcome"] == (
        "applied"
    )
    with api_client(rt, key=TEST_KEY) as dashboard:
        listed = assert_ok(dashboard.get("/api/payments"))
    assert [(j["id"], j["payment_status"]) for j in listed["jobs"]] == [(job, "paid")]


# Events in any order: the status and the ledger follow from the facts.


@pytest.mark.parametrize(("refunded", "ends"), [(400, "partially_refunded"), (1000, "refunded")])
def test_a_refund_before_its_payment_waits_then_counts(
    rt: Runtime, hook: TestClient, refunded: int, ends: str
) -> None:
    job = add_job(rt, price_cents=1000)
    intent, charge = new_id("pi"), new_id("ch")

    refund = deliver(hook, charge_refunded(intent, charge, 1000, refunded))
    assert refund["outcome"] == "pending", refund
    assert payment_status(rt, job) == "unpaid"
    assert ledger_of(rt, job) == []

    paid = deliver(hook, intent_succeeded(job, intent, charge, 1000))
    assert paid["outcome"] == "applied"
    assert paid["payment_status"] == payment_status(rt, job) == ends
    assert sorted(ledger_of(rt, job)) == sorted([("payment", 1000), ("refund", -refunded)])
    assert set(event_rows(rt).values()) == {"applied"}


def test_a_refund_of_a_known_payment_intent_stands_in_for_its_late_payment(
    rt: Runtime, hook: TestClient
) -> None:
    """A failed first try tied the payment intent to the job; the second try succeeded,
    but its refund is reported before the success: the refund proves the payment."""
    job = add_job(rt, price_cents=1000)
    intent, charge = new_id("pi"), new_id("ch")
    deliver(hook, intent_failed(job, intent, 1000))
    refund = deliver(hook, charge_refunded(intent, charge, 1000, 400))
    assert refund["outcome"] == "applied"
    assert payment_status(rt, job) == "partially_refunded"
    deliver(hook, intent_succeeded(job, intent, charge, 1000))
    deliver(hook, checkout_completed(job, intent, 1000))
    assert payment_status(rt, job) == "partially_refunded"
    assert sorted(ledger_of(rt, job)) == [("payment", 1000), ("refund", -400)]


def test_a_dispute_naming_only_its_charge_after_a_declined_try_counts(
    rt: Runtime, hook: TestClient
) -> None:
    """The declined try had a charge of its own: the dispute is about the one that paid."""
    job = add_job(rt, price_cents=1000)
    intent, charge, dispute = new_id("pi"), new_id("ch"), new_id("dp")
    deliver(hook, intent_failed(job, intent, 1000, created=ts() - 600))
    deliver(hook, intent_succeeded(job, intent, charge, 1000, created=ts() - 300))
    opened = dispute_event("created", dispute, intent, charge, 1000, "needs_response")
    opened["data"]["object"]["payment_intent"] = None
    answer = deliver(hook, opened)
    assert (answer["outcome"], answer["job_id"]) == ("applied", job)
    assert payment_status(rt, job) == "disputed"
    assert ledger_of(rt, job) == [("payment", 1000), ("dispute", -1000)]


def test_a_dispute_after_a_partial_refund_holds_then_loses_the_rest(
    rt: Runtime, hook: TestClient
) -> None:
    job = add_job(rt, price_cents=1000)
    intent, charge, dispute = new_id("pi"), new_id("ch"), new_id("dp")
    deliver(hook, checkout_completed(job, intent, 1000))
    deliver(hook, charge_refunded(intent, charge, 1000, 300))
    assert payment_status(rt, job) == "partially_refunded"

    deliver(hook, dispute_event("created", dispute, intent, charge, 700, "needs_response"))
    assert payment_status(rt, job) == "disputed"
    deliver(hook, dispute_event("closed", dispute, intent, charge, 700, "lost"))

    assert payment_status(rt, job) == "dispute_lost"
    assert ledger_of(rt, job) == [("payment", 1000), ("refund", -300), ("dispute", -700)]
    # A late "updated" event cannot reopen a closed dispute.
    deliver(hook, dispute_event("updated", dispute, intent, charge, 700, "under_review"))
    assert payment_status(rt, job) == "dispute_lost"
    assert world(rt)["disputes"][0][1] == "lost"


@pytest.mark.parametrize("order", ["partial_first", "full_first"])
def test_a_partial_then_full_refund_sums_to_the_full_amount_once(
    rt: Runtime, hook: TestClient, order: str
) -> None:
    job = add_job(rt, price_cents=1000)
    intent, charge = new_id("pi"), new_id("ch")
    deliver(hook, intent_succeeded(job, intent, charge, 1000))
    partial = charge_refunded(intent, charge, 1000, 300)
    full = charge_refunded(intent, charge, 1000, 1000, created=partial["created"] + 60)
    for evt in (partial, full) if order == "partial_first" else (full, partial):
        assert deliver(hook, evt)["outcome"] == "applied"
    assert payment_status(rt, job) == "refunded"
    refunds = [cents for kind, cents in ledger_of(rt, job) if kind == "refund"]
    assert sum(refunds) == -1000
    assert refunds == ([-300, -700] if order == "partial_first" else [-1000])
    assert sum(cents for _, cents in ledger_of(rt, job)) == 0


def test_a_dispute_won_takes_the_money_then_gives_it_back(rt: Runtime, hook: TestClient) -> None:
    job = add_job(rt, price_cents=1500)
    intent, charge, dispute = new_id("pi"), new_id("ch"), new_id("dp")
    deliver(hook, intent_succeeded(job, intent, charge, 1500, created=ts() - 7200))
    opened = ts() - 3600
    steps = [
        ("created", "needs_response", "disputed"),
        ("funds_withdrawn", "needs_response", "disputed"),
        ("updated", "under_review", "disputed"),
        ("closed", "won", "paid"),
        ("funds_reinstated", "won", "paid"),
    ]
    for kind, status, then in steps:
        deliver(hook, dispute_event(kind, dispute, intent, charge, 1500, status, opened=opened))
        assert payment_status(rt, job) == then, (kind, status)
    assert ledger_of(rt, job) == [("payment", 1500), ("dispute", -1500), ("dispute_won", 1500)]
    assert sum(cents for _, cents in ledger_of(rt, job)) == 1500
    (row,) = world(rt)["disputes"]
    assert row[1] == "won" and row[2] is not None


@pytest.mark.parametrize("in_order", [True, False], ids=["in_order", "closed_first"])
def test_a_dispute_lost_keeps_the_money_gone(rt: Runtime, hook: TestClient, in_order: bool) -> None:
    job = add_job(rt, price_cents=1500)
    intent, charge, dispute = new_id("pi"), new_id("ch"), new_id("dp")
    deliver(hook, checkout_completed(job, intent, 1500, created=ts() - 600))
    opened = ts() - 60
    created = dispute_event(
        "created", dispute, intent, charge, 1500, "needs_response", opened=opened
    )
    lost = dispute_event("closed", dispute, intent, charge, 1500, "lost", opened=opened)
    for evt in (created, lost) if in_order else (lost, created):
        deliver(hook, evt)
    assert payment_status(rt, job) == "dispute_lost"
    assert ledger_of(rt, job) == [("payment", 1500), ("dispute", -1500)]
    assert [row[1] for row in world(rt)["disputes"]] == ["lost"]
    with api_client(rt) as dashboard:
        lost_jobs = assert_ok(dashboard.get("/api/payments?status=dispute_lost"))["jobs"]
    assert [(j["id"], j["net_received"]) for j in lost_jobs] == [(job, "0.00")]


def test_a_failed_payment_then_a_good_one_ends_paid(rt: Runtime, hook: TestClient) -> None:
    job = add_job(rt, price_cents=1000)
    intent = new_id("pi")
    failed = deliver(hook, intent_failed(job, intent, 1000))
    assert failed["payment_status"] == "payment_failed"
    with api_client(rt) as dashboard:
        owed = assert_ok(dashboard.get("/api/payments?status=owed"))["jobs"]
        assert [(j["id"], j["problem"]) for j in owed] == [(job, "Your card was declined.")]

        deliver(hook, intent_succeeded(job, intent, new_id("ch"), 1000))
        assert payment_status(rt, job) == "paid"
        detail = assert_ok(dashboard.get(f"/api/payments/{job}"))
    assert detail["link"]["failure"] is None
    assert ledger_of(rt, job) == [("payment", 1000)]
    # A failure reported late (an earlier attempt) does not undo the payment.
    deliver(hook, intent_failed(job, intent, 1000, created=ts() - 600))
    assert payment_status(rt, job) == "paid"


def test_an_event_of_an_unknown_type_is_stored_and_ignored(rt: Runtime, hook: TestClient) -> None:
    job = add_job(rt)
    before = world(rt)
    evt = event("customer.subscription.created", {"id": new_id("sub"), "metadata": metadata(job)})
    answer = deliver(hook, evt)
    assert answer["outcome"] == "ignored" and answer["job_id"] is None
    after = world(rt)
    assert after["events"] == [(evt["id"], "ignored", None)]
    assert {k: v for k, v in after.items() if k != "events"} == {
        k: v for k, v in before.items() if k != "events"
    }
    assert deliver(hook, evt)["outcome"] == "duplicate"


@pytest.mark.parametrize("intent_first", [False, True])
def test_checkout_and_payment_intent_events_of_one_payment_make_one_entry(
    rt: Runtime, hook: TestClient, intent_first: bool
) -> None:
    job = add_job(rt, price_cents=1999)
    intent, charge = new_id("pi"), new_id("ch")
    both = [checkout_completed(job, intent, 1999), intent_succeeded(job, intent, charge, 1999)]
    for evt in reversed(both) if intent_first else both:
        assert deliver(hook, evt)["outcome"] == "applied"
    assert ledger_of(rt, job) == [("payment", 1999)]
    assert payment_status(rt, job) == "paid"
    assert sorted(event_rows(rt).values()) == ["applied", "applied"]


# Finance: paid revenue by the day money moved; money owed to the cent.

NOW = datetime(2026, 11, 20, 14, 37, 12, tzinfo=UTC)  # not on an hour
DAY = timedelta(days=1)


def usd(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def receive_at(rt: Runtime, evt: dict[str, Any], delivered: datetime) -> dict[str, Any]:
    """The webhook's delivery at `delivered` (signed then, checked against that clock)."""
    body, header = signed(evt, at=ts(delivered))
    return webhook.receive(rt, body.encode(), header, now=delivered)


def test_paid_revenue_is_counted_on_the_day_the_money_moved(rt: Runtime) -> None:
    finished = NOW - timedelta(days=45)
    a, b, c, d, e, f, owing = (
        add_job(rt, price_cents=p, finished_at=finished)
        for p in (1000, 2500, 4000, 700, 999, 1234, 5678)
    )
    day = NOW.replace(hour=0, minute=0, second=0)
    pi = {j: new_id("pi") for j in (a, b, c, e, f)}
    ch = {j: new_id("ch") for j in (a, b, c, e, f)}
    dp = new_id("dp")
    # When Stripe moved each sum of money (the event's `created`).
    at = {
        "a paid": NOW - timedelta(days=5, hours=2),
        "a refund": NOW - timedelta(days=1),
        "b paid": NOW - timedelta(days=10),  # in the 30 days, not the 7
        "b refund": NOW - timedelta(days=2),
        "c paid": NOW - timedelta(days=3),
        "c disputed": NOW - timedelta(days=2, hours=1),
        "c won": NOW - timedelta(hours=3),
        "e paid": NOW - timedelta(days=40),  # in neither window
        "f paid": day - timedelta(days=6, seconds=1),  # 23:59:59 of one day...
        "f refund": day - timedelta(days=6),  # ...and 00:00:00 of the next
        "d by hand": NOW - timedelta(days=4),
    }

    def t(key: str) -> int:
        return ts(at[key])

    opened = t("c disputed")
    # (event, when it was delivered): mostly at once; a's payment two days late.
    deliveries = [
        (intent_succeeded(a, pi[a], ch[a], 1000, created=t("a paid")), at["a paid"] + 2 * DAY),
        (charge_refunded(pi[a], ch[a], 1000, 250, created=t("a refund")), at["a refund"]),
        (checkout_completed(b, pi[b], 2500, created=t("b paid")), at["b paid"]),
        (charge_refunded(pi[b], ch[b], 2500, 500, created=t("b refund")), at["b refund"]),
        (intent_succeeded(c, pi[c], ch[c], 4000, created=t("c paid")), at["c paid"]),
        (
            dispute_event("created", dp, pi[c], ch[c], 4000, "needs_response", opened=opened),
            at["c disputed"],
        ),
        (
            dispute_event(
                "closed", dp, pi[c], ch[c], 4000, "won", opened=opened, created=t("c won")
            ),
            at["c won"],
        ),
        (intent_succeeded(e, pi[e], ch[e], 999, created=t("e paid")), at["e paid"]),
        (intent_succeeded(f, pi[f], ch[f], 1234, created=t("f paid")), at["f paid"]),
        (charge_refunded(pi[f], ch[f], 1234, 234, created=t("f refund")), at["f refund"]),
    ]
    for evt, delivered in deliveries:
        assert receive_at(rt, evt, delivered)["outcome"] == "applied"
    service.mark_paid(rt, d, actor="test", amount="7.00", note="cash", now=at["d by hand"])

    moved = [  # (when, cents), written from the story above
        (at["a paid"], 1000),
        (at["a refund"], -250),
        (at["b paid"], 2500),
        (at["b refund"], -500),
        (at["c paid"], 4000),
        (at["c disputed"], -4000),
        (at["c won"], 4000),
        (at["e paid"], 999),
        (at["f paid"], 1234),
        (at["f refund"], -234),
        (at["d by hand"], 700),
    ]
    with rt.engine.connect() as conn:
        ledger = [
            (ensure_utc(w), int(c))
            for w, c in conn.execute(select(Payment.moved_at, Payment.amount_cents))
        ]
        figures = metrics.finance(conn, now=NOW)
        days = metrics.daily(conn, days=30, now=NOW)["days"]
    assert sorted(ledger) == sorted(moved)

    def net(start: datetime, rows: list[tuple[datetime, int]]) -> str:
        return usd(sum(c for w, c in rows if start <= w <= NOW))

    for n in (7, 30):
        start = NOW - timedelta(days=n)
        assert figures[f"revenue_paid_{n}d"] == net(start, moved) == net(start, ledger), n
    # 10 - 2.50 - 5 + 40 - 40 + 40 + 12.34 - 2.34 + 7 (b's and e's payments are older)
    assert figures["revenue_paid_7d"] == "59.50"
    assert figures["revenue_paid_30d"] == "84.50"  # and b's 25
    assert figures["windows"]["7d"]["payments"] == {
        "received": "69.34",
        "refunded": "9.84",
        "disputed": "40.00",
        "reinstated": "40.00",
        "net": "59.50",
    }
    daily = {row["day"]: row["revenue_paid"] for row in days}
    assert len(daily) == 30 and max(daily) == NOW.date().isoformat()
    by_day: dict[str, int] = {}
    for when, cents in moved:
        by_day[when.date().isoformat()] = by_day.get(when.date().isoformat(), 0) + cents
    assert daily == {iso_day: usd(by_day.get(iso_day, 0)) for iso_day in daily}
    assert daily[at["f paid"].date().isoformat()] == "12.34"
    assert daily[at["f refund"].date().isoformat()] == "-2.34"
    assert daily[at["a paid"].date().isoformat()] == "10.00"  # not the day it was delivered
    # Money owed: only the job nobody paid; refunded and disputed jobs owe nothing more.
    assert figures["owed"]["amount"] == "56.78"
    assert figures["owed"]["jobs"] == 1
    assert payment_status(rt, owing) == "unpaid"


# Many processes: one event delivered to two servers at once is applied once.


@pytest.mark.parametrize(
    "backend",
    [
        "embedded",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
    indirect=True,
)
def test_a_refund_and_its_payment_applied_at_the_same_moment_both_count(
    make_runtime: Callable[..., Runtime],
) -> None:
    """Two deliveries in flight at once, as two server processes run them: the refund's
    transaction is still open when the payment's runs."""
    rt = payments_runtime(make_runtime)
    job = add_job(rt, price_cents=1000)
    intent, charge = new_id("pi"), new_id("ch")
    answers: list[dict[str, Any]] = []

    def pay() -> None:
        body, header = signed(intent_succeeded(job, intent, charge, 1000))
        answers.append(webhook.receive(rt, body.encode(), header))

    payer = threading.Thread(target=pay)
    with write_session(rt.sessions) as session:
        refund = charge_refunded(intent, charge, 1000, 400)
        assert events.apply(session, refund, via="webhook", now=utcnow()).outcome == "pending"
        payer.start()
        payer.join(2)  # PostgreSQL lets it through; SQLite makes it wait for this one
    # What webhook.apply_once does once a pending event's transaction has committed: look
    # again, now that a payment committed meanwhile can be seen.
    with write_session(rt.sessions) as session:
        events.settle_pending(session, refund["id"], utcnow())
    payer.join(60)
    assert [a["outcome"] for a in answers] == ["applied"]
    assert set(event_rows(rt).values()) == {"applied"}
    assert payment_status(rt, job) == "partially_refunded"
    assert sorted(ledger_of(rt, job)) == [("payment", 1000), ("refund", -400)]


def _post(client: httpx.Client, url: str, body: str, header: str) -> dict[str, Any]:
    """POST as Stripe does: a 503 (the server shedding load) is delivered again."""
    for _ in range(50):
        response = client.post(
            url + "/webhook/stripe",
            content=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        if response.status_code != 503:
            return assert_ok(response)
        time.sleep(0.2)
    raise AssertionError(f"still 503 after 50 tries: {response.text}")


@BOTH
def test_one_event_delivered_to_two_servers_at_once_is_applied_once(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = payments_runtime(make_runtime)
    prices = [1000 + n for n in range(50)]
    jobs = [add_job(rt, price_cents=p) for p in prices]
    intents = {job: new_id("pi") for job in jobs}
    # Odd jobs get two events of one payment (checkout and payment intent): one fact.
    sent: list[dict[str, Any]] = []
    for n, (job, price) in enumerate(zip(jobs, prices, strict=True)):
        sent.append(intent_succeeded(job, intents[job], new_id("ch"), price))
        if n % 2:
            sent.append(checkout_completed(job, intents[job], price))
    env = {
        "DASHBOARD_KEY": TEST_KEY,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "ECHOPILOT_STRIPE_API_BASE": NOWHERE,
    }
    with running_together(rt.settings, (("serve",), env), (("serve",), env)) as servers:
        # Each event to both servers at the same moment (a barrier per event).
        tasks = []
        for evt in sent:
            body, header = signed(evt)
            gate = threading.Barrier(2, timeout=60)
            tasks += [(evt["id"], server.url, body, header, gate) for server in servers]

        def send(task: tuple[str, str, str, str, threading.Barrier]) -> tuple[str, str]:
            event_id, url, body, header, gate = task
            gate.wait()
            return event_id, _post(client, url, body, header)["outcome"]

        with httpx.Client(timeout=60) as client, ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, tasks))

    outcomes: dict[str, list[str]] = {}
    for event_id, outcome in answers:
        outcomes.setdefault(event_id, []).append(outcome)
    assert {k: sorted(v) for k, v in outcomes.items()} == {
        evt["id"]: ["applied", "duplicate"] for evt in sent
    }
    assert event_rows(rt) == {evt["id"]: "applied" for evt in sent}
    with rt.engine.connect() as conn:
        entries = conn.execute(select(Payment.job_id, Payment.kind, Payment.amount_cents)).all()
        statuses = dict(conn.execute(select(Job.id, Job.payment_status)).all())
        revenue = metrics.finance(conn, now=utcnow())["revenue_paid_7d"]
    assert sorted(tuple(e) for e in entries) == sorted(
        (job, "payment", price) for job, price in zip(jobs, prices, strict=True)
    )
    assert statuses == dict.fromkeys(jobs, "paid")
    assert revenue == usd(sum(prices))
