"""The one place that changes a job's status.

Every change goes through `change()`: it locks the row, checks that the move is allowed
from the status the row has now (and any extra guard, such as holding the lease), applies
the new values and records a JobEvent. Callers learn whether the change happened; a
worker whose lease was lost, or a duplicate message, simply gets False.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from echopilot.clock import utcnow
from echopilot.db.models import Job, JobEvent


class Status(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    NEEDS_REVIEW = "needs_review"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


S = Status
TRANSITIONS: dict[Status, frozenset[Status]] = {
    # queued -> dead: a job with no attempts left (its allowance was used up elsewhere).
    S.QUEUED: frozenset({S.PROCESSING, S.CANCELLED, S.DEAD}),
    # processing -> queued: handed back at shutdown, or its lease expired.
    S.PROCESSING: frozenset({S.DONE, S.NEEDS_REVIEW, S.FAILED, S.DEAD, S.QUEUED, S.CANCELLED}),
    S.FAILED: frozenset({S.PROCESSING, S.QUEUED, S.DEAD, S.CANCELLED}),
    S.DEAD: frozenset({S.QUEUED}),
    # needs_review -> done | cancelled: a person approved or rejected the answer.
    S.NEEDS_REVIEW: frozenset({S.QUEUED, S.DONE, S.CANCELLED}),
    S.CANCELLED: frozenset({S.QUEUED}),
    S.DONE: frozenset(),
}
FINAL = frozenset({S.DONE, S.NEEDS_REVIEW, S.DEAD, S.CANCELLED})
RETRYABLE = frozenset(s for s, targets in TRANSITIONS.items() if S.QUEUED in targets) - {
    S.PROCESSING
}


def can_move(current: str, target: Status) -> bool:
    return target in TRANSITIONS.get(Status(current), frozenset())


def lock_job(session: Session, job_id: int) -> Job | None:
    """Load a job for update (a row lock on PostgreSQL; SQLite's write lock covers it)."""
    return session.scalars(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def change(
    session: Session,
    job_or_id: Job | int,
    target: Status,
    *,
    reason: str,
    now: datetime | None = None,
    guard: Callable[[Job], bool] | None = None,
    **values: Any,
) -> Job | None:
    """Move a job to `target` and set `values`; return the job, or None when the job does
    not exist, the move is not allowed from its current status, or `guard` says no.

    Give a Job already loaded with `lock_job` in this session, or an id to lock it here.
    """
    now = now or utcnow()
    job = lock_job(session, job_or_id) if isinstance(job_or_id, int) else job_or_id
    if job is None or not can_move(job.status, target):
        return None
    if guard is not None and not guard(job):
        return None
    previous = job.status
    job.status = target.value
    job.updated_at = now
    for name, value in values.items():
        setattr(job, name, value)
    session.add(
        JobEvent(
            job_id=job.id,
            from_status=previous,
            to_status=target.value,
            attempt=job.attempts,
            reason=reason[:2000],
            at=now,
        )
    )
    session.flush()
    return job


def record_created(session: Session, job: Job, reason: str) -> None:
    session.add(
        JobEvent(
            job_id=job.id, from_status=None, to_status=job.status, reason=reason, at=job.created_at
        )
    )
