"""What people do and see of payments: mark a job paid by hand, list billed jobs by payment
status, one job's money in detail, and the figures of the dashboard's payments panel."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select

from echopilot import audit
from echopilot.clock import iso, utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Client, Dispute, Job, JobPayment, Payment, StripeEvent
from echopilot.errors import ConflictError, InputError, NotFoundError
from echopilot.finance import metrics
from echopilot.jobs.intake import check_text
from echopilot.money import cents_text, usd_to_cents
from echopilot.payments import freshness, ledger, reconcile
from echopilot.payments import status as st
from echopilot.payments.gateway import Gateway, Refused, Unreachable
from echopilot.runtime import Runtime

MAX_NOTE = 500
MAX_AMOUNT = Decimal(1_000_000)
LIST_LIMIT = 1000
# `payments list --status owed`: every status that still owes its price.
OWED_FILTER = "owed"


def parse_amount(text: str, field: str = "amount") -> int:
    """A USD amount ("12.50", "$12.50") as cents: more than 0, at most 2 decimals."""
    raw = text.strip().removeprefix("$").strip()
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise InputError(field, f"{text!r} is not an amount in USD, e.g. 12.50") from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT:
        raise InputError(field, f"{text!r} must be more than 0 and at most {MAX_AMOUNT} USD")
    if amount != amount.quantize(Decimal("0.01")):
        raise InputError(field, f"{text!r} has more than 2 decimals (cents)")
    return usd_to_cents(amount)


def mark_paid(
    runtime: Runtime,
    job_id: int,
    *,
    actor: str,
    amount: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record money received outside Stripe (cash, bank transfer) for a billed job that
    still owes: the amount given (default its price), audited. The job is then paid."""
    now = now or utcnow()
    cents = None if amount is None else parse_amount(amount)
    note = (note or "").strip() or None
    if note is not None:
        check_text("note", note, max_chars=MAX_NOTE)
    with write_session(runtime.sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            raise NotFoundError("job", job_id)
        if job.payment_status == st.NA:
            raise ConflictError(
                f"job {job_id} is not billed (status {job.status}, payment status na): "
                "nothing to pay"
            )
        if job.payment_status not in st.OWED:
            raise ConflictError(
                f"job {job_id} owes nothing: its payment status is {job.payment_status}"
            )
        cents = cents if cents is not None else int(job.price_cents or 0)
        if cents <= 0:
            raise InputError("amount", f"job {job_id} has no price: give the amount received")
        done_before = session.scalar(
            select(func.count(Payment.id)).where(
                Payment.job_id == job_id, Payment.method == "manual"
            )
        )
        ledger.add(
            session,
            f"manual:{job_id}:{int(done_before or 0) + 1}",
            job_id=job_id,
            kind="payment",
            amount_cents=cents,
            currency=ledger.USD,
            method="manual",
            actor=actor,
            note=note,
            moved_at=now,
            recorded_at=now,
        )
        new = ledger.refresh(session, job, now=now)
        side = session.get(JobPayment, job_id)
        link_id = side.link_id if side is not None and side.link_url is not None else None
        audit.record(
            session,
            actor=actor,
            action="payment.mark_paid",
            target=f"job:{job_id}",
            details={"amount_cents": cents, "note": note, "price_cents": job.price_cents},
            now=now,
        )
    return {
        "job_id": job_id,
        "payment_status": new,
        "link": _close_link(runtime, link_id),
        "amount": cents_text(cents),
        "price": None if job.price_cents is None else cents_text(job.price_cents),
        "note": note,
        "recorded_at": iso(now),
        "actor": actor,
    }


def _close_link(runtime: Runtime, link_id: str | None) -> str | None:
    """Make the Stripe link of a job paid by hand unpayable, so the client cannot pay twice
    (best effort: if Stripe cannot be reached, the `paid_twice` alert catches a second
    payment)."""
    if link_id is None:
        return None
    if not runtime.settings.payments_enabled:
        return "still open: Stripe is off (STRIPE_SECRET_KEY); deactivate it in Stripe"
    try:
        Gateway(runtime.settings).deactivate_link(link_id)
    except (Refused, Unreachable) as exc:
        return f"still open: {exc}; deactivate it in Stripe"
    return "deactivated"


def _statuses(status: str | None) -> tuple[str, ...]:
    if status is None:
        return tuple(s for s in st.ALL if s != st.NA)
    if status == OWED_FILTER:
        return st.OWED
    if status not in st.ALL or status == st.NA:
        shown = ", ".join([OWED_FILTER, *(s for s in st.ALL if s != st.NA)])
        raise InputError("status", f"{status!r} is not a payment status; use one of {shown}")
    return (status,)


def list_jobs(runtime: Runtime, *, status: str | None = None, limit: int = 50) -> dict[str, Any]:
    """Billed jobs, newest finished first, with what they cost the client and what came in."""
    if not 1 <= limit <= LIST_LIMIT:
        raise InputError("limit", f"must be from 1 to {LIST_LIMIT}")
    statuses = _statuses(status)
    with read_session(runtime.sessions) as session:
        rows = session.execute(
            select(
                Job.id,
                Job.name,
                Job.task_type,
                Job.payment_status,
                Job.price_cents,
                Job.payment_link,
                Job.finished_at,
                Client.email,
                JobPayment.link_error,
                JobPayment.failure,
            )
            .outerjoin(Client, Client.id == Job.client_id)
            .outerjoin(JobPayment, JobPayment.job_id == Job.id)
            .where(Job.payment_status.in_(statuses))
            .order_by(Job.finished_at.desc(), Job.id.desc())
            .limit(limit)
        ).all()
        ids = [r.id for r in rows]
        net = (
            dict(
                session.execute(
                    select(Payment.job_id, func.sum(Payment.amount_cents))
                    .where(Payment.job_id.in_(ids))
                    .group_by(Payment.job_id)
                ).all()
            )
            if ids
            else {}
        )
    return {
        "status": status,
        "jobs": [
            {
                "id": r.id,
                "name": r.name,
                "task_type": r.task_type,
                "client": r.email,
                "payment_status": r.payment_status,
                "price": None if r.price_cents is None else cents_text(r.price_cents),
                "net_received": cents_text(int(net.get(r.id) or 0)),
                "payment_link": r.payment_link,
                "finished_at": iso(r.finished_at),
                "problem": r.failure or r.link_error,
            }
            for r in rows
        ],
    }


def job_detail(runtime: Runtime, job_id: int) -> dict[str, Any]:
    """One job's money: status, link, every ledger entry, disputes and Stripe events."""
    with read_session(runtime.sessions) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFoundError("job", job_id)
        side = session.get(JobPayment, job_id)
        entries = session.scalars(
            select(Payment).where(Payment.job_id == job_id).order_by(Payment.moved_at, Payment.id)
        ).all()
        disputes = session.scalars(select(Dispute).where(Dispute.job_id == job_id)).all()
        seen = session.scalars(
            select(StripeEvent)
            .where(StripeEvent.job_id == job_id)
            .order_by(StripeEvent.created_at, StripeEvent.id)
        ).all()
    return {
        "job_id": job_id,
        "payment_status": job.payment_status,
        "price": None if job.price_cents is None else cents_text(job.price_cents),
        "net_received": cents_text(
            sum(e.amount_cents for e in entries if e.currency == ledger.USD)
        ),
        "payment_link": job.payment_link,
        "link": None
        if side is None
        else {
            "id": side.link_id,
            "attempts": side.link_attempts,
            "error": side.link_error,
            "created_at": iso(side.link_created_at),
            "payment_intent": side.payment_intent,
            "failure": side.failure,
            "failed_at": iso(side.failed_at),
        },
        "ledger": [
            {
                "kind": e.kind,
                "amount": cents_text(e.amount_cents),
                "currency": e.currency,
                "method": e.method,
                "moved_at": iso(e.moved_at),
                "stripe_object": e.stripe_object,
                "stripe_event": e.stripe_event,
                "actor": e.actor,
                "note": e.note,
            }
            for e in entries
        ],
        "disputes": [
            {
                "id": d.id,
                "status": d.status,
                "amount": cents_text(d.amount_cents),
                "reason": d.reason,
                "opened_at": iso(d.opened_at),
                "closed_at": iso(d.closed_at),
                "evidence_due_by": iso(d.evidence_due_by),
            }
            for d in disputes
        ],
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "via": e.via,
                "outcome": e.outcome,
                "at": iso(e.created_at),
            }
            for e in seen
        ],
    }


def overview(runtime: Runtime, *, now: datetime | None = None) -> dict[str, Any]:
    """The payments panel: jobs by payment status, money in over 7 and 30 days, open
    disputes, events waiting for their job, and the freshness of the last reconciliation."""
    now = now or utcnow()
    settings = runtime.settings
    with read_session(runtime.sessions) as session:
        by_status = dict(
            session.execute(
                select(Job.payment_status, func.count())
                .where(Job.payment_status != st.NA)
                .group_by(Job.payment_status)
            ).all()
        )
        moved = {
            days: ledger.moved(session.connection(), now - timedelta(days=days), now)
            for days in (7, 30)
        }
        open_disputes = session.scalar(
            select(func.count())
            .select_from(Dispute)
            .where(Dispute.status.not_in(st.DISPUTE_CLOSED))
        )
        pending_events = session.scalar(
            select(func.count()).select_from(StripeEvent).where(StripeEvent.outcome == "pending")
        )
        last_event = session.scalar(select(func.max(StripeEvent.received_at)))
        fresh = freshness.state(session.connection(), settings, now)
        owed = metrics.owed(session.connection(), now)
    last_try = reconcile.last_run(runtime) if settings.payments_enabled else None
    return {
        "configured": settings.payments_enabled,
        "webhook_configured": settings.stripe_webhook_secret is not None,
        "by_status": {s: int(by_status.get(s, 0)) for s in st.ALL if s != st.NA},
        "paid_7d": moved[7],
        "paid_30d": moved[30],
        "owed": owed,
        "open_disputes": int(open_disputes or 0),
        "events_waiting": int(pending_events or 0),
        "last_event_at": iso(last_event),
        "reconciled_at": fresh["reconciled_at"],
        "last_reconcile": None
        if last_try is None
        else {
            "started_at": iso(last_try.started_at),
            "ok": last_try.ok,
            "error": last_try.error,
            "events_read": last_try.events_read,
            "events_applied": last_try.events_applied,
            "links_created": last_try.links_created,
        },
        "freshness": fresh["late"],
        "as_of": iso(now),
    }
