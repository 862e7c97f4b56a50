"""The recovery sweep: put stuck and orphaned jobs back on the queue.

Stuck: a job in `processing` whose lease expired (its worker died). Its attempt is marked
lost; the job goes back to `queued`, or to `dead` when its attempts are used up.
Orphaned: a runnable job (queued, or failed with its retry due) that no queue message
holds (an enqueue that never happened). Re-enqueueing is always safe: a message for a
job that is not runnable does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update

from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Job, JobAttempt
from echopilot.jobs.status import Status, change, lock_job
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

# Above this many messages the queue is not read message by message; orphans wait.
QUEUE_INSPECT_LIMIT = 50_000
BATCH = 500


@dataclass
class SweepResult:
    requeued_stuck: list[int] = field(default_factory=list)
    dead_stuck: list[int] = field(default_factory=list)
    enqueued_orphans: list[int] = field(default_factory=list)
    queue_inspected: bool = True

    def as_dict(self) -> dict[str, object]:
        return {
            "requeued_stuck": self.requeued_stuck,
            "dead_stuck": self.dead_stuck,
            "enqueued_orphans": self.enqueued_orphans,
            "queue_inspected": self.queue_inspected,
        }


def runnable_filter(now: datetime) -> ColumnElement[bool]:
    """Jobs a worker could claim now, or that a dead worker holds."""
    return or_(
        Job.status == Status.QUEUED,
        and_(Job.status == Status.FAILED, or_(Job.retry_at.is_(None), Job.retry_at <= now)),
        and_(Job.status == Status.PROCESSING, Job.lease_until < now),
    )


def sweep(
    runtime: Runtime,
    *,
    now: datetime | None = None,
    orphan_min_age: timedelta = timedelta(seconds=30),
) -> SweepResult:
    """Recover stuck jobs, then enqueue orphans older than `orphan_min_age` (younger ones may
    be between their commit and their enqueue)."""
    now = now or utcnow()
    result = SweepResult()
    _recover_stuck(runtime, now, result)
    _enqueue_orphans(runtime, now, orphan_min_age, result)
    if result.requeued_stuck or result.dead_stuck or result.enqueued_orphans:
        log.info("recovery sweep: %s", result.as_dict())
    return result


def _recover_stuck(runtime: Runtime, now: datetime, result: SweepResult) -> None:
    with read_session(runtime.sessions) as session:
        stuck = list(
            session.scalars(
                select(Job.id)
                .where(Job.status == Status.PROCESSING, Job.lease_until < now)
                .limit(BATCH)
            )
        )
    for job_id in stuck:
        with write_session(runtime.sessions) as session:
            job = lock_job(session, job_id)
            if job is None or job.status != Status.PROCESSING or not job.lease_until:
                continue
            if job.lease_until >= now:
                continue  # renewed since we looked
            lost_token, owner, n = job.lease_token, job.lease_owner, job.attempts
            exhausted = job.attempts >= job.max_attempts
            target = Status.DEAD if exhausted else Status.QUEUED
            message = f"worker {owner} stopped renewing its lease (attempt {n} lost)"
            change(
                session,
                job,
                target,
                reason=message,
                now=now,
                guard=_holds(lost_token),
                lease_token=None,
                lease_until=None,
                enqueued_at=now,
                error=message if exhausted else job.error,
                error_kind="transient" if exhausted else job.error_kind,
                finished_at=now if exhausted else None,
            )
            session.execute(
                update(JobAttempt)
                .where(
                    JobAttempt.job_id == job_id, JobAttempt.n == n, JobAttempt.status == "running"
                )
                .values(status="lost", finished_at=now, error=message, error_kind="transient")
            )
            priority = job.priority
        if exhausted:
            result.dead_stuck.append(job_id)
        else:
            runtime.queue.enqueue(job_id, priority=priority)
            result.requeued_stuck.append(job_id)


def _holds(token: str | None) -> Callable[[Job], bool]:
    return lambda job: job.lease_token == token


def _enqueue_orphans(
    runtime: Runtime, now: datetime, min_age: timedelta, result: SweepResult
) -> None:
    in_queue = runtime.queue.job_ids(QUEUE_INSPECT_LIMIT)
    if in_queue is None:
        result.queue_inspected = False
        log.warning("queue deeper than %s messages; orphan check skipped", QUEUE_INSPECT_LIMIT)
        return
    cutoff = now - min_age
    with read_session(runtime.sessions) as session:
        rows = session.execute(
            select(Job.id, Job.priority)
            .where(
                or_(
                    Job.status == Status.QUEUED,
                    and_(
                        Job.status == Status.FAILED,
                        or_(Job.retry_at.is_(None), Job.retry_at <= now),
                    ),
                ),
                or_(Job.enqueued_at.is_(None), Job.enqueued_at <= cutoff),
            )
            .order_by(Job.priority.desc(), Job.id)
        ).all()
    orphans = [(job_id, priority) for job_id, priority in rows if job_id not in in_queue]
    for start in range(0, len(orphans), BATCH):
        batch = orphans[start : start + BATCH]
        with write_session(runtime.sessions) as session:
            session.execute(
                update(Job).where(Job.id.in_([j for j, _ in batch])).values(enqueued_at=now)
            )
        for job_id, priority in batch:
            runtime.queue.enqueue(job_id, priority=priority)
            result.enqueued_orphans.append(job_id)
