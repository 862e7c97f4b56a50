"""The payment alert rules (registered with the alert engine's rules): a failed payment, a
dispute opened or lost, links Stripe would not make, and Stripe not reconciled."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import case, func, select

from echopilot.alerts.rules import Context, Finding, rule
from echopilot.clock import age_text, as_utc
from echopilot.db.models import Client, Dispute, Job, JobPayment, Payment
from echopilot.money import cents_text
from echopilot.payments import freshness
from echopilot.payments import status as st

LOST_SHOWN_FOR = timedelta(days=7)
LINKS_LATE_AFTER = timedelta(hours=1)
MOST = 20  # findings per rule; beyond, one more says how many were left out


@rule("payment_failed", "high", "A client's payment of a job failed (it is still owed).")
def _payment_failed(ctx: Context) -> list[Finding]:
    rows = ctx.session.execute(
        select(
            Job.id,
            Job.name,
            Job.price_cents,
            JobPayment.failure,
            JobPayment.failed_at,
            Client.email,
        )
        .join(JobPayment, JobPayment.job_id == Job.id)
        .outerjoin(Client, Client.id == Job.client_id)
        .where(Job.payment_status == st.PAYMENT_FAILED)
        .order_by(JobPayment.failed_at)
        .limit(MOST)
    ).all()
    return [
        Finding(
            f"payment_failed:{r.id}",
            "high",
            f"payment of job {r.id} ({r.name[:60]}) failed",
            f"${cents_text(r.price_cents or 0)} from {r.email or 'no client'}: "
            f"{r.failure or 'no reason given'}; ask the client to pay again",
            since=as_utc(r.failed_at),
        )
        for r in rows
    ]


@rule("paid_twice", "high", "A job received more than one payment (refund the extra).")
def _paid_twice(ctx: Context) -> list[Finding]:
    kept = func.sum(Payment.amount_cents)
    rows = ctx.session.execute(
        select(Payment.job_id, Job.price_cents, func.count(Payment.id), kept)
        .join(Job, Job.id == Payment.job_id)
        .where(Payment.kind.in_(("payment", "refund")))
        .group_by(Payment.job_id, Job.price_cents)
        .having(func.sum(case((Payment.kind == "payment", 1), else_=0)) > 1)
        .having(kept > func.coalesce(Job.price_cents, 0))
        .limit(MOST)
    ).all()
    return [
        Finding(
            f"paid_twice:{job_id}",
            "high",
            f"job {job_id} was paid more than once: ${cents_text(int(total))} kept on a price "
            f"of ${cents_text(price or 0)}",
            "refund the extra payment in Stripe (or record the refund); `echopilot payments "
            f"show {job_id}` lists them",
        )
        for job_id, price, _count, total in rows
    ]


@rule("dispute_lost", "critical", "A dispute (chargeback) was lost in the last 7 days.")
def _dispute_lost(ctx: Context) -> list[Finding]:
    rows = ctx.session.scalars(
        select(Dispute)
        .where(Dispute.status == "lost", Dispute.closed_at >= ctx.now - LOST_SHOWN_FOR)
        .order_by(Dispute.closed_at)
        .limit(MOST)
    ).all()
    return [
        Finding(
            f"dispute_lost:{d.id}",
            "critical",
            f"dispute {d.id} on job {d.job_id} was lost: ${cents_text(d.amount_cents)} gone",
            f"reason {d.reason or 'not given'}; opened {d.opened_at:%Y-%m-%d}, closed "
            f"{as_utc(d.closed_at) or ctx.now:%Y-%m-%d}; shown for 7 days",
            since=as_utc(d.closed_at),
        )
        for d in rows
    ]


@rule("dispute_open", "high", "A dispute (chargeback) is open and needs evidence.")
def _dispute_open(ctx: Context) -> list[Finding]:
    rows = ctx.session.scalars(
        select(Dispute)
        .where(Dispute.status.not_in(st.DISPUTE_CLOSED))
        .order_by(Dispute.opened_at)
        .limit(MOST)
    ).all()
    found = []
    for d in rows:
        due = as_utc(d.evidence_due_by)
        when = f"evidence due {due:%Y-%m-%d %H:%M} UTC" if due else "no evidence deadline given"
        found.append(
            Finding(
                f"dispute_open:{d.id}",
                "high",
                f"dispute {d.id} on job {d.job_id}: ${cents_text(d.amount_cents)} held "
                f"({d.status})",
                f"reason {d.reason or 'not given'}; {when}; answer it in Stripe's dashboard",
                since=as_utc(d.opened_at),
            )
        )
    return found


@rule("payment_links", "warning", "Billed jobs without a payment link for over an hour.")
def _payment_links(ctx: Context) -> list[Finding]:
    if not ctx.settings.payments_enabled:
        return []
    late = ctx.now - LINKS_LATE_AFTER
    count, oldest = ctx.session.execute(
        select(func.count(Job.id), func.min(Job.finished_at)).where(
            Job.payment_status == st.LINK_PENDING, Job.finished_at < late
        )
    ).one()
    if not count:
        return []
    error = ctx.session.scalar(
        select(JobPayment.link_error)
        .join(Job, Job.id == JobPayment.job_id)
        .where(Job.payment_status == st.LINK_PENDING, JobPayment.link_error.is_not(None))
        .order_by(JobPayment.updated_at.desc())
        .limit(1)
    )
    oldest = as_utc(oldest) or ctx.now
    return [
        Finding(
            "payment_links",
            "warning",
            f"{count} billed jobs have no payment link; the oldest finished "
            f"{age_text(ctx.now - oldest)} ago",
            f"Stripe said: {error or 'nothing yet'}; reconciliation tries again every 15 min",
            since=oldest,
        )
    ]


@rule("payments_stale", "warning", "Stripe not reconciled for over an hour.")
def _payments_stale(ctx: Context) -> list[Finding]:
    if not ctx.settings.payments_enabled:
        return []
    found = freshness.state(ctx.session.connection(), ctx.settings, ctx.now)
    if found["late"] is None or (found["reconciled_at"] is None and found["last_error"] is None):
        return []  # current, or no reconciliation tried yet
    return [
        Finding(
            "payments_stale",
            "warning",
            found["late"],
            "payments that arrived meanwhile are not counted yet; run "
            "`echopilot payments reconcile` to see why",
        )
    ]
