"""The job object that the CLI and the API both return, and the queries behind it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from echopilot.db.models import Client, Job, JobAttempt
from echopilot.errors import InputError, NotFoundError
from echopilot.jobs.status import Status
from echopilot.money import cents_to_usd, micros_to_usd

MAX_LIST = 500
# A job's input is shown up to this many characters unless the whole is asked for.
INPUT_PREVIEW = 4000
LISTED = [
    column
    for name, column in Job.__table__.columns.items()
    if name not in ("input", "result", "lease_token", "lease_owner")
]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def job_dict(job: Any, client_email: str | None = None) -> dict[str, Any]:
    """The job object from a Job or a row with its columns. Money as decimal strings in USD
    (cost to 6 places, price to 2)."""
    return {
        "id": job.id,
        "name": job.name,
        "task_type": job.task_type,
        "status": job.status,
        "priority": job.priority,
        "source": job.source,
        "client": client_email,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "qa_score": job.qa_score,
        "qa_threshold": job.qa_threshold,
        "qa_target": job.qa_target,
        "qa_breakdown": job.qa_breakdown,
        "qa_note": job.qa_note,
        "model": job.model,
        "provider": job.provider,
        "answer_path": job.answer_path,
        "tokens_in": job.tokens_in,
        "tokens_out": job.tokens_out,
        # A call to a model with no known price leaves the cost unknown, never zero.
        "cost_usd": None if job.unpriced_models else str(micros_to_usd(job.cost_micros)),
        "cost_known_usd": str(micros_to_usd(job.cost_micros)),
        "unpriced_models": list(job.unpriced_models),
        "price_usd": None if job.price_cents is None else str(cents_to_usd(job.price_cents)),
        "payment_status": job.payment_status,
        "error": job.error,
        "error_kind": job.error_kind,
        "retry_at": _iso(job.retry_at),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "duration_ms": job.duration_ms,
    }


def attempt_dict(attempt: JobAttempt) -> dict[str, Any]:
    return {
        "n": attempt.n,
        "status": attempt.status,
        "model": attempt.model,
        "tokens_in": attempt.tokens_in,
        "tokens_out": attempt.tokens_out,
        "cost_usd": str(micros_to_usd(attempt.cost_micros)),
        "latency_ms": attempt.latency_ms,
        "error": attempt.error,
        "error_kind": attempt.error_kind,
        "worker": attempt.worker,
        "calls": attempt.calls,
        "started_at": _iso(attempt.started_at),
        "finished_at": _iso(attempt.finished_at),
    }


def show(session: Session, job_id: int, *, full_input: bool = False) -> dict[str, Any]:
    """The job object with its `attempt_log`, `result` and `input` (its first INPUT_PREVIEW
    characters unless `full_input`; `input_truncated` says whether it was cut); NotFoundError
    if there is none."""
    row = session.execute(
        select(Job, Client.email)
        .outerjoin(Client, Client.id == Job.client_id)
        .where(Job.id == job_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError("job", job_id)
    job, email = row
    attempts = session.scalars(
        select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.n)
    )
    shown = job.input if full_input else job.input[:INPUT_PREVIEW]
    return {
        **job_dict(job, email),
        "input": shown,
        "input_chars": len(job.input),
        "input_truncated": len(shown) < len(job.input),
        "result": job.result,
        "attempt_log": [attempt_dict(a) for a in attempts],
    }


def listing(
    session: Session, *, status: str | None = None, limit: int = 50, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Newest first; `before_id` continues a listing after its last id."""
    if status is not None and status not in {s.value for s in Status}:
        raise InputError("status", f"must be one of {', '.join(s.value for s in Status)}")
    if not 1 <= limit <= MAX_LIST:
        raise InputError("limit", f"must be between 1 and {MAX_LIST}")
    # Plain rows of the listed columns, not ORM objects: a listing is read-only, and skipping
    # the identity map and the long `input` and `result` columns halves its cost.
    query = select(*LISTED, Client.email).outerjoin(Client, Client.id == Job.client_id)
    if status is not None:
        query = query.where(Job.status == status)
    if before_id is not None:
        query = query.where(Job.id < before_id)
    rows = session.execute(query.order_by(Job.id.desc()).limit(limit)).all()
    return [job_dict(row, row.email) for row in rows]
