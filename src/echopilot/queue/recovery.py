"""The recovery sweep: put stuck and orphaned jobs back on the queue.

Stuck: a job in `processing` whose worker is dead: known dead at once on this host (the
process is gone), by a silent heartbeat on another, or by its lease expiring when there is
no heartbeat to judge by. A job whose worker lives is never swept, even past its lease (a
stalled database delays renewals). The lost attempt is marked `lost` and does not count
against ECHOPILOT_MAX_ATTEMPTS (model failures); the job goes back to `queued`, or to
`dead` once it has lost ECHOPILOT_MAX_LOST_LEASES workers (a job that kills its worker).
Orphaned: a runnable job (queued, or failed with its retry due) that no queue message
holds (an enqueue that never happened). Re-enqueueing is always safe: a message for a
job that is not runnable does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from echopilot.clock import as_utc, utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Job, JobAttempt, WorkerHeartbeat
from echopilot.jobs import budget
from echopilot.jobs.status import Status, change, lock_job
from echopilot.queue.liveness import PRUNE_AFTER, Holder, holder_state
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
    pruned_heartbeats: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "requeued_stuck": self.requeued_stuck,
            "dead_stuck": self.dead_stuck,
            "enqueued_orphans": self.enqueued_orphans,
            "queue_inspected": self.queue_inspected,
            "pruned_heartbeats": self.pruned_heartbeats,
        }


def runnable_filter(now: datetime) -> ColumnElement[bool]:
    """Jobs a worker could claim now."""
    return or_(
        Job.status == Status.QUEUED,
        and_(Job.status == Status.FAILED, or_(Job.retry_at.is_(None), Job.retry_at <= now)),
    )


def waiting(session: Session, settings: Any, now: datetime) -> tuple[int, datetime | None]:
    """(runnable jobs a worker could start now, when the oldest of them was queued). A job
    held by a spending limit counts once the limit no longer holds it."""
    rows = session.execute(
        select(
            Job.client_id,
            func.count(Job.id),
            func.min(func.coalesce(Job.enqueued_at, Job.created_at)),
        )
        .where(runnable_filter(now), Job.hold_reason.is_not(None))
        .group_by(Job.client_id)
    ).all()
    free = session.execute(
        select(func.count(Job.id), func.min(func.coalesce(Job.enqueued_at, Job.created_at))).where(
            runnable_filter(now), Job.hold_reason.is_(None)
        )
    ).one()
    count, oldest = int(free[0] or 0), as_utc(free[1])
    blocked = budget.blocks(session, settings, now) if rows else budget.NONE
    for client_id, held, held_since in rows:
        if not blocked.holds(client_id):
            count += int(held)
            since = as_utc(held_since)
            if since is not None and (oldest is None or since < oldest):
                oldest = since
    return count, oldest


def live_workers(session: Session, now: datetime, fresh: timedelta) -> int:
    """Workers whose heartbeat is newer than `fresh`."""
    silent_since = now - fresh
    beating = select(func.count(WorkerHeartbeat.worker)).where(
        WorkerHeartbeat.heartbeat_at >= silent_since
    )
    return session.scalar(beating) or 0


def sweep(
    runtime: Runtime,
    *,
    now: datetime | None = None,
    orphan_min_age: timedelta = timedelta(seconds=30),
    own_tokens: frozenset[str] = frozenset(),
    judge_remote: bool = True,
    dry_run: bool = False,
) -> SweepResult:
    """Recover stuck jobs, then enqueue orphans older than `orphan_min_age` (younger ones may
    be between their commit and their enqueue). Jobs whose lease token is in `own_tokens`
    are the caller's own running jobs and are never touched. `judge_remote` False: take
    other hosts' workers as alive this time (the caller was just held up itself).
    `dry_run`: change nothing; the result says what a sweep would do now."""
    now = now or utcnow()
    result = SweepResult()
    if dry_run:
        _preview(runtime, now, orphan_min_age, result, own_tokens, judge_remote)
        return result
    _recover_stuck(runtime, now, result, own_tokens, judge_remote)
    _enqueue_orphans(runtime, now, orphan_min_age, result)
    result.pruned_heartbeats = _prune_heartbeats(runtime, now)
    if result.requeued_stuck or result.dead_stuck or result.enqueued_orphans:
        log.info("recovery sweep: %s", result.as_dict())
    return result


def unfinished_elsewhere(
    session: Session, now: datetime, own_tokens: frozenset[str] = frozenset()
) -> list[int]:
    """Jobs in `processing` that no live worker holds (besides the caller's own): the
    sweep will recover them, at once or when their lease expires."""
    stuck = _stuck(session, now, own_tokens, wait_for_lease=False, judge_remote=True)
    return [found.job_id for found in stuck]


class _Stuck(NamedTuple):
    job_id: int
    token: str | None  # the lease judged: a job claimed again since is not this one
    state: Holder


def _stuck(
    session: Session,
    now: datetime,
    own_tokens: frozenset[str],
    *,
    wait_for_lease: bool,
    judge_remote: bool,
) -> list[_Stuck]:
    """Processing jobs to recover: the holder is dead, or unknown with the lease expired
    (with `wait_for_lease` False, unknown ones whatever their lease)."""
    beats = {
        worker: at
        for worker, at in session.execute(
            select(WorkerHeartbeat.worker, WorkerHeartbeat.heartbeat_at)
        )
    }
    rows = session.execute(
        select(Job.id, Job.lease_owner, Job.lease_token, Job.lease_until)
        .where(Job.status == Status.PROCESSING)
        .order_by(Job.id)
    )
    states: dict[str | None, Holder] = {}  # one judgement per holder, not per job
    found: list[_Stuck] = []
    for job_id, owner, token, lease_until in rows:
        if token in own_tokens:
            continue
        state = states.get(owner)
        if state is None:
            beat = beats.get(owner) if owner else None
            state = states[owner] = holder_state(owner, beat, now, judge_remote=judge_remote)
        expired = lease_until is None or lease_until < now
        if state == Holder.DEAD or (state == Holder.UNKNOWN and (expired or not wait_for_lease)):
            found.append(_Stuck(job_id, token, state))
        if len(found) >= BATCH:
            break
    return found


def _preview(
    runtime: Runtime,
    now: datetime,
    orphan_min_age: timedelta,
    result: SweepResult,
    own_tokens: frozenset[str],
    judge_remote: bool,
) -> None:
    with read_session(runtime.sessions) as session:
        stuck = _stuck(session, now, own_tokens, wait_for_lease=True, judge_remote=judge_remote)
        lost = dict(
            session.execute(
                select(Job.id, Job.lost_leases).where(Job.id.in_([f.job_id for f in stuck]))
            ).all()
        )
        silent = WorkerHeartbeat.heartbeat_at < now - PRUNE_AFTER
        result.pruned_heartbeats = len(
            session.scalars(select(WorkerHeartbeat.worker).where(silent)).all()
        )
    for job_id, _, _ in stuck:
        exhausted = lost.get(job_id, 0) + 1 >= runtime.settings.max_lost_leases
        (result.dead_stuck if exhausted else result.requeued_stuck).append(job_id)
    orphans = _orphans(runtime, now, orphan_min_age)
    if orphans is None:
        result.queue_inspected = False
    else:
        result.enqueued_orphans = [job_id for job_id, _ in orphans]


def _recover_stuck(
    runtime: Runtime,
    now: datetime,
    result: SweepResult,
    own_tokens: frozenset[str],
    judge_remote: bool,
) -> None:
    with read_session(runtime.sessions) as session:
        stuck = _stuck(session, now, own_tokens, wait_for_lease=True, judge_remote=judge_remote)
    _recover(runtime, stuck, now, result, own_tokens)


def _recover(
    runtime: Runtime,
    stuck: list[_Stuck],
    now: datetime,
    result: SweepResult,
    own_tokens: frozenset[str],
) -> None:
    """Requeue (or make dead) each job judged stuck, if it still is as judged."""
    max_lost = runtime.settings.max_lost_leases
    for job_id, judged_token, state in stuck:
        with write_session(runtime.sessions) as session:
            job = lock_job(session, job_id)
            if job is None or job.status != Status.PROCESSING or job.lease_token in own_tokens:
                continue
            if job.lease_token != judged_token:
                # Another sweep recovered it and a live worker has claimed it since: the
                # judgement was of the dead holder, not of this one.
                continue
            if state == Holder.UNKNOWN and job.lease_until and job.lease_until >= now:
                continue  # renewed since we looked
            lost_token, owner, n = job.lease_token, job.lease_owner, job.attempts
            lost = job.lost_leases + 1
            exhausted = lost >= max_lost
            target = Status.DEAD if exhausted else Status.QUEUED
            how = "died" if state == Holder.DEAD else "stopped renewing its lease"
            message = f"worker {owner} {how} (attempt {n} lost; {lost} of {max_lost} lost)"
            error = (
                f"lost its worker {lost} times (limit ECHOPILOT_MAX_LOST_LEASES={max_lost}); "
                "the job may be crashing its worker"
            )
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
                lost_leases=lost,
                # A lost attempt is the infrastructure's failure, not the model's: it is not
                # held against the job's ECHOPILOT_MAX_ATTEMPTS.
                max_attempts=job.max_attempts + 1,
                error=error if exhausted else job.error,
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


def _prune_heartbeats(runtime: Runtime, now: datetime) -> int:
    """Forget workers silent for more than a day (killed ones leave their row behind)."""
    silent = WorkerHeartbeat.heartbeat_at < now - PRUNE_AFTER
    with read_session(runtime.sessions) as session:  # most sweeps find none: no write lock
        if session.scalar(select(WorkerHeartbeat.worker).where(silent).limit(1)) is None:
            return 0
    with write_session(runtime.sessions) as session:
        return session.connection().execute(delete(WorkerHeartbeat).where(silent)).rowcount


def _holds(token: str | None) -> Callable[[Job], bool]:
    return lambda job: job.lease_token == token


def _orphans(runtime: Runtime, now: datetime, min_age: timedelta) -> list[tuple[int, int]] | None:
    """(job id, priority) of runnable jobs no queue message holds; None when the queue is
    too deep to read."""
    in_queue = runtime.queue.job_ids(QUEUE_INSPECT_LIMIT)
    if in_queue is None:
        log.warning("queue deeper than %s messages; orphan check skipped", QUEUE_INSPECT_LIMIT)
        return None
    cutoff = now - min_age
    with read_session(runtime.sessions) as session:
        rows = session.execute(
            select(Job.id, Job.priority, Job.hold_reason, Job.client_id)
            .where(
                runnable_filter(now),
                or_(Job.enqueued_at.is_(None), Job.enqueued_at <= cutoff),
            )
            .order_by(Job.priority.desc(), Job.id)
        ).all()
        # A job held by a spending limit that still holds it waits without a message; once
        # the day turns or the limit is raised it is handed out again.
        held = any(row[2] for row in rows)
        blocked = budget.blocks(session, runtime.settings, now) if held else budget.NONE
    return [
        (job_id, priority)
        for job_id, priority, held, client_id in rows
        if job_id not in in_queue and not (held and blocked.holds(client_id))
    ]


def _enqueue_orphans(
    runtime: Runtime, now: datetime, min_age: timedelta, result: SweepResult
) -> None:
    orphans = _orphans(runtime, now, min_age)
    if orphans is None:
        result.queue_inspected = False
        return
    for start in range(0, len(orphans), BATCH):
        batch = orphans[start : start + BATCH]
        with write_session(runtime.sessions) as session:
            session.execute(
                update(Job).where(Job.id.in_([j for j, _ in batch])).values(enqueued_at=now)
            )
        for job_id, priority in batch:
            runtime.queue.enqueue(job_id, priority=priority)
            result.enqueued_orphans.append(job_id)
