"""A payment link for every billed job, made after the job is done and never in its way.

The job ends `link_pending`; the worker (or the approval) then asks Stripe for the link,
and when Stripe cannot be reached the job simply stays `link_pending` and reconciliation
asks again. Every request for one job sends the same idempotency key, so a retry after a
lost answer gets the same link back, never a second one.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Job, JobPayment
from echopilot.db.outage import log_failure
from echopilot.payments import ledger
from echopilot.payments import status as st
from echopilot.payments.events import side_of
from echopilot.payments.gateway import Gateway, Refused, Unreachable
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)
MAX_ERROR = 500


def ensure(
    runtime: Runtime, job_id: int, *, gateway: Gateway | None = None, now: datetime | None = None
) -> str | None:
    """Make the job's link if it still needs one; returns the job's payment status then.

    Never raises for Stripe's sake (nor when payments are off): a failure is kept on the
    job (`link_error`) for the next try."""
    now = now or utcnow()
    with write_session(runtime.sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.payment_status != st.LINK_PENDING:
            return None if job is None else job.payment_status
        side = side_of(session, job, now)
        if side.link_url is not None:  # made, but the job was not told (a crash between)
            return ledger.refresh(session, job, now=now)
        side.link_attempts += 1
        side.updated_at = now
        name, cents, key = job.name, int(job.price_cents or 0), side.idempotency_key
    try:
        link = (gateway or Gateway(runtime.settings)).create_link(
            job_id=job_id, name=name, cents=cents, currency=ledger.USD, idempotency_key=key
        )
        error = None
    except (Unreachable, Refused) as exc:
        link, error = None, str(exc)[:MAX_ERROR]
    except Exception as exc:  # the job is done whatever happens here
        log.exception("payment link for job %s", job_id)
        link, error = None, f"unexpected error: {type(exc).__name__}"
    with write_session(runtime.sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        saved = session.get(JobPayment, job_id)
        if job is None or saved is None:
            return None
        saved.updated_at = now
        if link is None:
            if saved.link_url is not None:  # made meanwhile by another process's request
                return job.payment_status
            saved.link_error = error
            log.warning("payment link for job %s not made: %s", job_id, error)
            return job.payment_status
        saved.link_error = None
        if saved.link_url is None:
            saved.link_id = str(link.get("id") or "") or None
            saved.link_url = str(link.get("url") or "") or None
            saved.link_created_at = now
        session.flush()
        return ledger.refresh(session, job, now=now)


def pending(runtime: Runtime, *, limit: int) -> list[int]:
    """Jobs waiting for their link, oldest first."""
    with read_session(runtime.sessions) as session:
        return list(
            session.scalars(
                select(Job.id)
                .where(Job.payment_status == st.LINK_PENDING)
                .order_by(Job.finished_at, Job.id)
                .limit(limit)
            )
        )


def after_billing(runtime: Runtime, job_id: int) -> None:
    """Called once a job is billed: make its link now if payments are on (best effort)."""
    if not runtime.settings.payments_enabled:
        return
    try:
        ensure(runtime, job_id)
    except Exception:  # never the job's problem; reconciliation tries again
        log_failure(log, "payment link for job %s not made; reconciliation asks again", job_id)
