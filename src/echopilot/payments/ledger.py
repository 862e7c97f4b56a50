"""The payments ledger: money that moved for a job, each fact written once, and the job's
payment status brought in line with it in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from echopilot.clock import ensure_utc
from echopilot.db.models import Dispute, Job, JobPayment, Payment
from echopilot.money import cents_text
from echopilot.payments import status as st

USD = "usd"


def add(session: Session, entry_key: str, **values: Any) -> bool:
    """Write one ledger entry unless its fact is already there; True when written."""
    if session.scalar(select(Payment.id).where(Payment.entry_key == entry_key)) is not None:
        return False
    session.add(Payment(entry_key=entry_key, **values))
    session.flush()
    return True


def sums(session: Session, job_id: int) -> tuple[int, int]:
    """A job's payments in and refunds out, in cents (all currencies)."""
    rows = session.execute(
        select(Payment.kind, func.coalesce(func.sum(Payment.amount_cents), 0))
        .where(Payment.job_id == job_id, Payment.kind.in_(("payment", "refund")))
        .group_by(Payment.kind)
    ).all()
    found = {kind: int(total) for kind, total in rows}
    return found.get("payment", 0), -found.get("refund", 0)


def refunded_of_charge(session: Session, job_id: int, charge: str) -> int:
    """Cents refunded so far of one of the job's charges, by the ledger."""
    total = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.job_id == job_id, Payment.kind == "refund", Payment.stripe_object == charge
        )
    )
    return -int(total or 0)


def refresh(session: Session, job: Job, *, now: datetime) -> str:
    """Set the job's payment status (and link) from its facts; returns the status.

    A job that is not billed (`na`) stays so: money recorded for it is kept in the ledger
    but bills nothing. One billed while Stripe was off stays `not_configured` until money
    arrives (it gets no link later: it is paid by hand)."""
    if job.payment_status == st.NA:
        return st.NA
    received, refunded = sums(session, job.id)
    disputes = tuple(session.scalars(select(Dispute.status).where(Dispute.job_id == job.id)))
    side = session.get(JobPayment, job.id)
    facts = st.Facts(
        received_cents=received,
        refunded_cents=refunded,
        disputes=disputes,
        has_link=side is not None and side.link_url is not None,
        last_failed=side is not None and side.failed_at is not None,
        stripe_on=job.payment_status != st.NOT_CONFIGURED,
    )
    new = st.derive(facts)
    link = side.link_url if side is not None else None
    if new != job.payment_status or link != job.payment_link:
        job.payment_status = new
        job.payment_link = link
        job.updated_at = now
        session.flush()
    return new


def moved(conn: Connection, start: datetime, end: datetime) -> dict[str, str]:
    """USD that moved in [start, end]: received, refunded, disputed (held or lost),
    reinstated (disputes won), and net."""
    rows = conn.execute(
        select(Payment.kind, func.coalesce(func.sum(Payment.amount_cents), 0))
        .where(Payment.moved_at >= start, Payment.moved_at <= end, Payment.currency == USD)
        .group_by(Payment.kind)
    ).all()
    found = {kind: int(total) for kind, total in rows}
    return {
        "received": cents_text(found.get("payment", 0)),
        "refunded": cents_text(-found.get("refund", 0)),
        "disputed": cents_text(-found.get("dispute", 0)),
        "reinstated": cents_text(found.get("dispute_won", 0)),
        "net": cents_text(sum(found.values())),
    }


def net_by_day(conn: Connection, start: datetime, end: datetime) -> dict[str, int]:
    """USD net cents that moved on each UTC day (ISO date) in [start, end]."""
    out: dict[str, int] = {}
    rows = conn.execute(
        select(Payment.moved_at, Payment.amount_cents).where(
            Payment.moved_at >= start, Payment.moved_at <= end, Payment.currency == USD
        )
    )
    for moved_at, cents in rows:
        day = ensure_utc(moved_at).date().isoformat()
        out[day] = out.get(day, 0) + int(cents)
    return out


def any_recorded(conn: Connection) -> bool:
    return conn.execute(select(Payment.id).limit(1)).first() is not None
