"""The one place that changes a job's status.

Every change goes through `change()` (ORM, for people's actions and the sweep) or
`transition()` (Core statements, for the worker's hot path). Both check that the move is
allowed from the status the row has, apply an optional guard (such as holding the lease),
set the new values and record a JobEvent. Callers learn whether the change happened; a
worker whose lease was lost, or a duplicate message, simply gets nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from echopilot.clock import utcnow
from echopilot.db.models import Job, JobEvent
from echopilot.db.prepared import Prepared


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


_jobs: Table = Job.__table__  # type: ignore[assignment]
_EVENT = Prepared(
    insert(JobEvent.__table__).values(  # type: ignore[arg-type]
        job_id=bindparam("e_job"),
        from_status=bindparam("e_from"),
        to_status=bindparam("e_to"),
        attempt=bindparam("e_attempt"),
        reason=bindparam("e_reason"),
        at=bindparam("e_at"),
    )
)
_statements: dict[tuple[tuple[str, ...], tuple[str, ...], bool], Prepared] = {}


def transition(
    conn: Connection,
    job_id: int,
    source: Status,
    target: Status,
    *,
    reason: str,
    now: datetime,
    attempt: int,
    holder: str | None = None,
    add: dict[str, int] | None = None,
    **values: Any,
) -> bool:
    """Move job `job_id` from `source` to `target` in one guarded UPDATE (and, when
    `holder` is given, only while that lease token holds it), setting `values` and adding
    `add` to counters; record the event. Return whether the row changed."""
    if target not in TRANSITIONS[source]:
        raise ValueError(f"a job cannot move from {source} to {target}")
    add = add or {}
    key = (tuple(sorted(values)), tuple(sorted(add)), holder is not None)
    statement = _statements.get(key)
    if statement is None:
        statement = _statements[key] = _transition_statement(*key)
    params = {
        "g_id": job_id,
        "g_status": source.value,
        "s_status": target.value,
        "s_updated_at": now,
        **{f"v_{name}": value for name, value in values.items()},
        **{f"a_{name}": amount for name, amount in add.items()},
    }
    if holder is not None:
        params["g_token"] = holder
    if statement.execute(conn, params).rowcount != 1:
        return False
    _EVENT.execute(
        conn,
        {
            "e_job": job_id,
            "e_from": source.value,
            "e_to": target.value,
            "e_attempt": attempt,
            "e_reason": reason[:2000],
            "e_at": now,
        },
    )
    return True


def _transition_statement(
    names: tuple[str, ...], added: tuple[str, ...], guarded: bool
) -> Prepared:
    """The UPDATE of a transition, built once per shape (bound parameters, no values)."""
    conditions = [_jobs.c.id == bindparam("g_id"), _jobs.c.status == bindparam("g_status")]
    if guarded:
        conditions.append(_jobs.c.lease_token == bindparam("g_token"))
    return Prepared(
        update(_jobs)
        .where(*conditions)
        .values(
            status=bindparam("s_status"),
            updated_at=bindparam("s_updated_at"),
            **{name: bindparam(f"v_{name}") for name in names},
            **{name: _jobs.c[name] + bindparam(f"a_{name}") for name in added},
        )
    )


# Claiming, the hot path's one status change that also reads the job: one guarded UPDATE
# that returns what the attempt needs, per status it may start from.
CLAIMED_COLUMNS = (
    "attempts",
    "max_attempts",
    "task_type",
    "input",
    "priority",
    "qa_target",
    "client_id",
    "started_at",
)
_CLAIMABLE_FROM = {
    S.QUEUED: _jobs.c.status == S.QUEUED.value,
    S.FAILED: and_(
        _jobs.c.status == S.FAILED.value,
        or_(_jobs.c.retry_at.is_(None), _jobs.c.retry_at <= bindparam("c_due")),
    ),
}
_CLAIM = {
    source: Prepared(
        update(_jobs)
        .where(_jobs.c.id == bindparam("c_id"), condition, _jobs.c.attempts < _jobs.c.max_attempts)
        .values(
            status=S.PROCESSING.value,
            attempts=_jobs.c.attempts + 1,
            lease_token=bindparam("c_token"),
            lease_owner=bindparam("c_owner"),
            lease_until=bindparam("c_until"),
            started_at=func.coalesce(_jobs.c.started_at, bindparam("c_now")),
            retry_at=None,
            hold_reason=None,
            updated_at=bindparam("c_now"),
        )
        .returning(*(_jobs.c[name] for name in CLAIMED_COLUMNS))
    )
    for source, condition in _CLAIMABLE_FROM.items()
}


def claim(
    conn: Connection,
    job_id: int,
    *,
    token: str,
    owner: str,
    now: datetime,
    lease_until: datetime,
    due: datetime,
    reason: str,
) -> tuple[Any, ...] | None:
    """processing <- queued, or <- failed with its retry due by `due`, with attempt + 1 and
    the lease, when it has attempts left; record the event and return the job's
    CLAIMED_COLUMNS as the driver gives them, or None when it was not claimable so."""
    params = {
        "c_id": job_id,
        "c_token": token,
        "c_owner": owner,
        "c_until": lease_until,
        "c_now": now,
        "c_due": due,
    }
    for source, statement in _CLAIM.items():
        row = statement.execute(conn, params).fetchone()
        if row is not None:
            _EVENT.execute(
                conn,
                {
                    "e_job": job_id,
                    "e_from": source.value,
                    "e_to": S.PROCESSING.value,
                    "e_attempt": row[0],
                    "e_reason": reason[:2000],
                    "e_at": now,
                },
            )
            return tuple(row)
    return None
