"""The job object that the CLI and the API both return, and the queries behind it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from echopilot.clock import ensure_utc
from echopilot.db.models import Client, Job, JobAttempt
from echopilot.db.prepared import Prepared
from echopilot.errors import InputError, NotFoundError
from echopilot.jobs.status import Status
from echopilot.money import cents_text, micros_text

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
    """The job object of a Job (the listing builds the same from plain rows: `_listed`).
    Money as decimal strings in USD (cost to 6 places, price to 2)."""
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
        "cost_usd": None if job.unpriced_models else micros_text(job.cost_micros),
        "cost_known_usd": micros_text(job.cost_micros),
        "unpriced_models": list(job.unpriced_models),
        "price_usd": None if job.price_cents is None else cents_text(job.price_cents),
        "payment_status": job.payment_status,
        "payment_link": job.payment_link,
        "error": job.error,
        "error_kind": job.error_kind,
        "retry_at": _iso(job.retry_at),
        "hold_reason": _hold(job.status, job.hold_reason),
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
        "cost_usd": micros_text(attempt.cost_micros),
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
    conn: Connection,
    *,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first; `before_id` continues a listing after its last id. Plain rows of the
    listed columns turned into job objects directly: a listing is read-only, and skipping
    the ORM, the long `input` and `result` columns and per-value type objects is most of
    its cost."""
    if status is not None and status not in {s.value for s in Status}:
        raise InputError("status", f"must be one of {', '.join(s.value for s in Status)}")
    if not 1 <= limit <= MAX_LIST:
        raise InputError("limit", f"must be between 1 and {MAX_LIST}")
    statement = _LISTINGS[(status is not None, before_id is not None)]
    params = {"l_status": status, "l_before": before_id, "l_limit": limit}
    return [_listed(row) for row in statement.execute(conn, params).fetchall()]


def _listing(by_status: bool, before: bool) -> Prepared:
    query = select(*LISTED, Client.email).outerjoin(Client, Client.id == Job.client_id)
    if by_status:
        query = query.where(Job.status == bindparam("l_status"))
    if before:
        query = query.where(Job.id < bindparam("l_before"))
    return Prepared(query.order_by(Job.id.desc()).limit(bindparam("l_limit")))


_LISTINGS = {(s, b): _listing(s, b) for s in (False, True) for b in (False, True)}
_COLUMN = {column.name: index for index, column in enumerate(LISTED)}
_EMAIL = len(LISTED)


def _listed(row: Any) -> dict[str, Any]:
    """The job object of a listing row as the driver gives it (SQLite: timestamps and JSON
    as text; PostgreSQL: datetimes and parsed JSON)."""
    value = row.__getitem__
    c = _COLUMN
    unpriced = _json(value(c["unpriced_models"])) or []
    price = value(c["price_cents"])
    cost = value(c["cost_micros"])
    return {
        "id": value(c["id"]),
        "name": value(c["name"]),
        "task_type": value(c["task_type"]),
        "status": value(c["status"]),
        "priority": value(c["priority"]),
        "source": value(c["source"]),
        "client": value(_EMAIL),
        "attempts": value(c["attempts"]),
        "max_attempts": value(c["max_attempts"]),
        "qa_score": value(c["qa_score"]),
        "qa_threshold": value(c["qa_threshold"]),
        "qa_target": value(c["qa_target"]),
        "qa_breakdown": _json(value(c["qa_breakdown"])),
        "qa_note": value(c["qa_note"]),
        "model": value(c["model"]),
        "provider": value(c["provider"]),
        "answer_path": value(c["answer_path"]),
        "tokens_in": value(c["tokens_in"]),
        "tokens_out": value(c["tokens_out"]),
        "cost_usd": None if unpriced else micros_text(cost),
        "cost_known_usd": micros_text(cost),
        "unpriced_models": list(unpriced),
        "price_usd": None if price is None else cents_text(price),
        "payment_status": value(c["payment_status"]),
        "payment_link": value(c["payment_link"]),
        "error": value(c["error"]),
        "error_kind": value(c["error_kind"]),
        "retry_at": _stamp(value(c["retry_at"])),
        "hold_reason": _hold(value(c["status"]), value(c["hold_reason"])),
        "created_at": _stamp(value(c["created_at"])),
        "started_at": _stamp(value(c["started_at"])),
        "finished_at": _stamp(value(c["finished_at"])),
        "duration_ms": value(c["duration_ms"]),
    }


def _hold(status: str, reason: str | None) -> str | None:
    """A spending limit's hold matters only while the job waits to run."""
    return reason if status in (Status.QUEUED, Status.FAILED) else None


def _stamp(value: Any) -> str | None:
    """A stored timestamp as the job object shows it, `datetime.isoformat()` of UTC."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite: "2026-12-03 14:05:33.123456", in UTC
        text = value[:-7] if value.endswith(".000000") else value
        return text.replace(" ", "T", 1) + "+00:00"
    return _iso(ensure_utc(value))


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value
