"""Stripe events applied to the ledger: each event once by its id, in the transaction of its
effect, whichever way it came (the webhook or reconciliation) and in whatever order.

An event is read as facts about one job's money: a payment of N cents, a charge refunded
to a total of N cents, a dispute in some state, a failed attempt. Facts are idempotent by
their own key (a payment intent is paid once however many events say so; a refunded total
only ever adds what is new), so two events reporting one payment, or a full refund reported
before the partial one, still add up right. The job's status is then derived from all of
its facts (echopilot.payments.status).

An event that names no job EchoPilot knows (no `job_id` in its metadata, a payment intent
not seen yet) is kept `pending` with its payload, and applied as soon as another event or
reconciliation ties its payment intent to a job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from echopilot.db.models import Dispute, Job, JobPayment, StripeEvent
from echopilot.payments import ledger
from echopilot.payments import status as st
from echopilot.payments.gateway import HANDLED_TYPES

APPLIED = "applied"
IGNORED = "ignored"  # a type EchoPilot does not act on: stored, nothing else
PENDING = "pending"  # no job known yet: applied when one is
NOT_OURS = "not_ours"  # Stripe says its payment is not an EchoPilot job's
DUPLICATE = "duplicate"  # the event id was seen before: nothing done
MAX_DETAIL = 500


class BadEvent(ValueError):
    """The body is not a Stripe event (a field missing or of the wrong type)."""


@dataclass
class Reading:
    """What one event says: the ids that tie it to a job, and its facts."""

    job_id: int | None = None
    link_id: str | None = None
    intent: str | None = None
    charge: str | None = None
    payments: list[dict[str, Any]] = field(default_factory=list)
    refunded: dict[str, Any] | None = None  # a charge's refunded total
    dispute: dict[str, Any] | None = None
    failure: str | None = None


# Stripe's times are Unix seconds; anything outside these bounds is not a time.
LATEST = 4_102_444_800  # 2100-01-01


def _when(seconds: Any) -> datetime | None:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 < seconds < LATEST:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def stripe_id(value: Any) -> str | None:
    """A Stripe id, whether the field holds it or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _cents(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def job_of_metadata(obj: dict[str, Any]) -> int | None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or meta.get("source") != "echopilot":
        return None
    raw = meta.get("job_id")
    if isinstance(raw, str) and raw.isascii() and raw.isdecimal() and len(raw) < 19:
        return int(raw)
    return None


def check(event: Any) -> dict[str, Any]:
    """The event's checked envelope; BadEvent names what is wrong."""
    if not isinstance(event, dict):
        raise BadEvent("the body must be a JSON object (a Stripe event)")
    for name, kind in (("id", str), ("type", str), ("created", int)):
        if not isinstance(event.get(name), kind) or isinstance(event.get(name), bool):
            raise BadEvent(f"the event's {name!r} is missing or not a {kind.__name__}")
    if not event["id"] or len(event["id"]) > 100 or len(event["type"]) > 100:
        raise BadEvent("the event's 'id' or 'type' is empty or too long")
    if _when(event["created"]) is None:
        raise BadEvent("the event's 'created' is not a Unix time")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise BadEvent("the event has no data.object")
    return event


def read(event: dict[str, Any]) -> Reading:
    """The facts an event of a handled type reports."""
    kind = event["type"]
    obj: dict[str, Any] = event["data"]["object"]
    at = _when(event["created"])
    r = Reading(job_id=job_of_metadata(obj))
    if kind.startswith("checkout.session."):
        r.link_id = stripe_id(obj.get("payment_link"))
        r.intent = stripe_id(obj.get("payment_intent"))
        paid = obj.get("payment_status") in ("paid", "no_payment_required")
        if kind == "checkout.session.async_payment_failed":
            r.failure = "the payment did not go through (checkout)"
        elif paid:
            r.payments.append(
                {
                    "key": r.intent or stripe_id(obj.get("id")),
                    "cents": _cents(obj.get("amount_total")),
                    "currency": str(obj.get("currency") or ledger.USD),
                    "at": at,
                    "object": stripe_id(obj.get("id")),
                }
            )
    elif kind.startswith("payment_intent."):
        r.intent = stripe_id(obj.get("id"))
        r.charge = stripe_id(obj.get("latest_charge"))
        if kind == "payment_intent.succeeded":
            r.payments.append(
                {
                    "key": r.intent,
                    "cents": _cents(obj.get("amount_received")),
                    "currency": str(obj.get("currency") or ledger.USD),
                    "at": at,
                    "object": r.intent,
                }
            )
        elif kind == "payment_intent.payment_failed":
            error = obj.get("last_payment_error")
            message = error.get("message") if isinstance(error, dict) else None
            r.failure = str(message or "the payment did not go through")[:MAX_DETAIL]
    elif kind == "charge.refunded":
        r.charge = stripe_id(obj.get("id"))
        r.intent = stripe_id(obj.get("payment_intent"))
        currency = str(obj.get("currency") or ledger.USD)
        if obj.get("paid") or obj.get("status") == "succeeded":
            # A refund proves the payment: if its own event is late, this stands in for it.
            r.payments.append(
                {
                    "key": r.intent or r.charge,
                    "cents": _cents(obj.get("amount_captured") or obj.get("amount")),
                    "currency": currency,
                    "at": _when(obj.get("created")) or at,
                    "object": r.charge,
                }
            )
        r.refunded = {"total": _cents(obj.get("amount_refunded")), "currency": currency, "at": at}
    elif kind.startswith("charge.dispute."):
        r.charge = stripe_id(obj.get("charge"))
        r.intent = stripe_id(obj.get("payment_intent"))
        evidence = obj.get("evidence_details")
        due = evidence.get("due_by") if isinstance(evidence, dict) else None
        r.dispute = {
            "id": stripe_id(obj.get("id")),
            "cents": _cents(obj.get("amount")),
            "currency": str(obj.get("currency") or ledger.USD),
            "status": str(obj.get("status") or "needs_response")[:30],
            "reason": (str(obj["reason"])[:100] if obj.get("reason") else None),
            "due_by": _when(due),
            "opened_at": _when(obj.get("created")) or at,
            "at": at,
        }
    return r


@dataclass
class Applied:
    outcome: str
    job_id: int | None = None
    payment_status: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "job_id": self.job_id,
            "payment_status": self.payment_status,
            "detail": self.detail,
        }


def apply(session: Session, event: dict[str, Any], *, via: str, now: datetime) -> Applied:
    """Record the event once and apply its facts, in the caller's transaction.

    The event's row is written first: a concurrent transaction applying the same event
    waits on it and then fails on its id (the caller answers that as a duplicate), so the
    facts are applied once whatever raced."""
    if session.get(StripeEvent, event["id"]) is not None:
        return Applied(DUPLICATE)
    row = StripeEvent(
        id=event["id"],
        type=event["type"],
        created_at=_when(event["created"]) or now,
        received_at=now,
        via=via,
        outcome=PENDING,
        livemode=bool(event.get("livemode")),
        object_id=stripe_id(event["data"]["object"].get("id")),
    )
    session.add(row)
    session.flush()
    if event["type"] not in HANDLED_TYPES:
        row.outcome, row.detail = IGNORED, "EchoPilot does not act on this type"
        return Applied(IGNORED, detail=row.detail)
    reading = read(event)
    row.payment_intent = reading.intent
    job = _job_for(session, reading)
    if job is None:
        row.payload = event
        row.detail = "no EchoPilot job known for it yet; applied when its payment is"
        return Applied(PENDING, detail=row.detail)
    result = _apply_reading(session, event, reading, job, now)
    row.outcome, row.job_id, row.detail = APPLIED, job.id, result.detail
    _apply_waiting(session, job, now)
    result.payment_status = job.payment_status
    return result


def _job_for(session: Session, reading: Reading) -> Job | None:
    job_id = reading.job_id
    if job_id is None:
        side = None
        for column, value in (
            (JobPayment.link_id, reading.link_id),
            (JobPayment.payment_intent, reading.intent),
            (JobPayment.charge, reading.charge),
        ):
            if value is not None:
                side = session.scalar(select(JobPayment).where(column == value))
                if side is not None:
                    break
        if side is None:
            return None
        job_id = side.job_id
    # Locked: two events of one job in two processes take turns.
    return session.get(Job, job_id, with_for_update=True)


def side_of(session: Session, job: Job, now: datetime) -> JobPayment:
    """The job's Stripe side, made on first need."""
    side = session.get(JobPayment, job.id)
    if side is None:
        side = JobPayment(
            job_id=job.id, idempotency_key=idempotency_key(job), link_attempts=0, updated_at=now
        )
        session.add(side)
    return side


def idempotency_key(job: Job) -> str:
    """The key of a job's link request: from its id and its creation time (so a database
    started afresh, whose ids start again at 1, never collides with an old job's link)."""
    return f"echopilot-job-{job.id}-{int(job.created_at.timestamp())}-link"


def _tie(session: Session, side: JobPayment, reading: Reading, now: datetime) -> None:
    """Remember the job's Stripe ids, unless another job holds one (then it is not its).
    The ids of a successful payment replace those of an earlier failed attempt: later
    events (a refund, a dispute) are about the payment that succeeded."""
    succeeded = bool(reading.payments)
    for attr, value in (
        ("link_id", reading.link_id),
        ("payment_intent", reading.intent),
        ("charge", reading.charge),
    ):
        current = getattr(side, attr)
        if value is None or current == value or (current is not None and not succeeded):
            continue
        taken = session.scalar(select(JobPayment.job_id).where(getattr(JobPayment, attr) == value))
        if taken is None:
            setattr(side, attr, value)
            side.updated_at = now
    session.flush()


def _apply_reading(
    session: Session, event: dict[str, Any], r: Reading, job: Job, now: datetime
) -> Applied:
    side = side_of(session, job, now)
    _tie(session, side, r, now)
    notes = []
    common = {"job_id": job.id, "method": "stripe", "stripe_event": event["id"]}
    for p in r.payments:
        if p["key"] is None:
            continue
        received_before = ledger.sums(session, job.id)[0]
        written = ledger.add(
            session,
            f"payment:{p['key']}",
            kind="payment",
            amount_cents=p["cents"],
            currency=p["currency"],
            stripe_object=p["object"],
            payment_intent=r.intent,
            moved_at=p["at"] or now,
            recorded_at=now,
            **common,
        )
        if written:
            side.failure = side.failed_at = None
            if received_before > 0:
                notes.append(
                    f"paid again: {received_before} cents had come in already; refund the "
                    "extra in Stripe"
                )
            elif job.price_cents is not None and p["cents"] != job.price_cents:
                notes.append(f"paid {p['cents']} cents of a price of {job.price_cents}")
    if r.refunded is not None and r.charge is not None:
        before = ledger.refunded_of_charge(session, job.id, r.charge)
        total = r.refunded["total"]
        if total > before:
            ledger.add(
                session,
                f"refund:{r.charge}:{total}",
                kind="refund",
                amount_cents=-(total - before),
                currency=r.refunded["currency"],
                stripe_object=r.charge,
                payment_intent=r.intent,
                moved_at=r.refunded["at"] or now,
                recorded_at=now,
                **common,
            )
        elif total < before:
            notes.append(f"refunded total {total} is below the {before} already recorded: kept")
    if r.dispute is not None and r.dispute["id"] is not None:
        _dispute(session, job, r, common, now)
    if r.failure is not None and not ledger.sums(session, job.id)[0]:
        side.failure = r.failure
        side.failed_at = _when(event["created"]) or now
    side.updated_at = now
    session.flush()
    new = ledger.refresh(session, job, now=now)
    return Applied(APPLIED, job.id, new, "; ".join(notes) or None)


def _dispute(session: Session, job: Job, r: Reading, common: dict[str, Any], now: datetime) -> None:
    d = r.dispute
    assert d is not None
    row = session.get(Dispute, d["id"])
    if row is None:
        row = Dispute(
            id=d["id"],
            job_id=job.id,
            charge=r.charge,
            payment_intent=r.intent,
            amount_cents=d["cents"],
            currency=d["currency"],
            status=d["status"],
            reason=d["reason"],
            evidence_due_by=d["due_by"],
            opened_at=d["opened_at"],
            updated_at=now,
        )
        session.add(row)
    elif row.status not in st.DISPUTE_CLOSED:
        # A closed dispute stays closed: a late "updated" event cannot reopen it.
        row.status = d["status"]
        row.evidence_due_by = d["due_by"] or row.evidence_due_by
        row.updated_at = now
    if row.status in st.DISPUTE_CLOSED and row.closed_at is None:
        row.closed_at = d["at"] or now
    session.flush()
    # An inquiry (warning_*) holds no money; a chargeback takes its amount when it opens
    # and gives it back if won.
    chargeback = not d["status"].startswith("warning_")
    if chargeback:
        ledger.add(
            session,
            f"dispute:{d['id']}:withdrawn",
            kind="dispute",
            amount_cents=-d["cents"],
            currency=d["currency"],
            stripe_object=d["id"],
            payment_intent=r.intent,
            moved_at=d["opened_at"],
            recorded_at=now,
            **common,
        )
    if row.status == "won" and chargeback:
        ledger.add(
            session,
            f"dispute:{d['id']}:reinstated",
            kind="dispute_won",
            amount_cents=d["cents"],
            currency=d["currency"],
            stripe_object=d["id"],
            payment_intent=r.intent,
            moved_at=d["at"] or now,
            recorded_at=now,
            **common,
        )


def _apply_waiting(session: Session, job: Job, now: datetime) -> None:
    """Apply the pending events of the payment intent just tied to this job."""
    side = session.get(JobPayment, job.id)
    if side is None or side.payment_intent is None:
        return
    waiting = session.scalars(
        select(StripeEvent)
        .where(StripeEvent.outcome == PENDING, StripeEvent.payment_intent == side.payment_intent)
        .order_by(StripeEvent.created_at)
    ).all()
    for row in waiting:
        if row.payload is None:
            continue
        result = _apply_reading(session, row.payload, read(row.payload), job, now)
        row.outcome, row.job_id, row.payload = APPLIED, job.id, None
        row.detail = "applied once its payment was known" + (
            f"; {result.detail}" if result.detail else ""
        )


def settle_pending(session: Session, event_id: str, now: datetime) -> Applied | None:
    """Apply a pending event if its job is known by now (a payment committed meanwhile);
    None when it is still waiting or was applied already."""
    row = session.get(StripeEvent, event_id)
    if row is None or row.outcome != PENDING or row.payload is None:
        return None
    job = _job_for(session, read(row.payload))
    if job is None:
        return None
    # Read again under the job's lock: the payment's transaction may have applied it.
    row = session.get(StripeEvent, event_id, with_for_update=True, populate_existing=True)
    if row is None or row.outcome != PENDING:
        return None
    return apply_pending_to(session, row, job.id, now)


def resolve_pending(
    session: Session, event_id: str, job_id: int | None, now: datetime, *, why: str
) -> Applied | None:
    """Apply a pending event to the job Stripe says it belongs to, or end it `not_ours`
    (`why`) when Stripe names none (reconciliation). The job is locked before the event's
    row, in the order every other path takes them."""
    if job_id is not None:
        session.get(Job, job_id, with_for_update=True)
    row = session.get(StripeEvent, event_id, with_for_update=True, populate_existing=True)
    if row is None or row.outcome != PENDING:
        return None  # applied meanwhile (its payment arrived)
    if job_id is None:
        row.outcome, row.payload, row.detail = NOT_OURS, None, why[:MAX_DETAIL]
        return Applied(NOT_OURS, detail=row.detail)
    return apply_pending_to(session, row, job_id, now)


def apply_pending_to(session: Session, row: StripeEvent, job_id: int, now: datetime) -> Applied:
    """Apply a pending event to the job it belongs to (the job locked by the caller)."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or row.payload is None:
        row.outcome, row.detail, row.payload = NOT_OURS, f"job {job_id} does not exist", None
        return Applied(NOT_OURS, detail=row.detail)
    result = _apply_reading(session, row.payload, read(row.payload), job, now)
    row.outcome, row.job_id, row.payload = APPLIED, job.id, None
    row.detail = "applied after reading its payment from Stripe" + (
        f"; {result.detail}" if result.detail else ""
    )
    _apply_waiting(session, job, now)
    result.payment_status = job.payment_status
    return result
