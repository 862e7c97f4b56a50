"""The scheduler's rows: runs (the unique (task, slot) row is the claim), instances with
their heartbeats, and the pause switch."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from echopilot import procs
from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import SchedulerInstance, SchedulerState, ScheduleRun

HOST = procs.HOST
STATE_ID = 1


@dataclass(frozen=True)
class Claimed:
    id: int
    task: str
    slot: datetime
    trigger: str
    started_at: datetime


def claim(
    sessions: sessionmaker[Session],
    *,
    task: str,
    slot: datetime,
    trigger: str,
    scheduler_id: str | None,
    now: datetime,
    status: str = "running",
    note: str | None = None,
) -> Claimed | None:
    """Insert the (task, slot) row; None when another process already holds that slot."""
    try:
        with write_session(sessions) as session:
            row = ScheduleRun(
                task=task,
                slot=slot,
                trigger=trigger,
                status=status,
                started_at=now,
                host=HOST,
                pid=os.getpid(),
                scheduler_id=scheduler_id,
                note=note,
                finished_at=now if status == "skipped" else None,
                duration_ms=0 if status == "skipped" else None,
            )
            session.add(row)
            session.flush()
            return Claimed(row.id, task, slot, trigger, now)
    except IntegrityError:
        return None


def finish(
    sessions: sessionmaker[Session],
    run_id: int,
    *,
    status: str,
    now: datetime,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> int | None:
    """Record a run's end; return its duration in ms (None if the row was already closed
    by someone else, e.g. marked abandoned)."""
    with write_session(sessions) as session:
        run = session.get(ScheduleRun, run_id)
        if run is None or run.status not in ("running", "abandoned"):
            return None
        run.status = status
        run.finished_at = now
        run.duration_ms = max(0, int((now - run.started_at).total_seconds() * 1000))
        run.summary = summary
        run.error = error[:4000] if error else None
        return run.duration_ms


def record_manual(
    session: Session,
    task: str,
    *,
    started: datetime,
    summary: dict[str, Any],
    actor: str,
) -> None:
    """A task run by a person (CLI or API) rather than the scheduler, as a finished run of
    its own slot: its summary then shows in the automations' status like a scheduled one."""
    finished = utcnow()
    session.add(
        ScheduleRun(
            task=task,
            slot=started,
            trigger="manual",
            status="ok",
            started_at=started,
            finished_at=finished,
            duration_ms=int((finished - started).total_seconds() * 1000),
            summary=summary,
            note=f"run by {actor}",
            host=socket.gethostname(),
            pid=os.getpid(),
        )
    )


def flag(sessions: sessionmaker[Session], run_id: int, note: str) -> None:
    with write_session(sessions) as session:
        session.execute(update(ScheduleRun).where(ScheduleRun.id == run_id).values(note=note))


def running_run(session: Session, task: str) -> ScheduleRun | None:
    return session.scalars(
        select(ScheduleRun)
        .where(ScheduleRun.task == task, ScheduleRun.status == "running")
        .order_by(ScheduleRun.started_at.desc())
        .limit(1)
    ).one_or_none()


def last_started(session: Session, task: str, *, include_manual: bool) -> ScheduleRun | None:
    """The newest run of `task` that actually started (not skipped)."""
    query = select(ScheduleRun).where(ScheduleRun.task == task, ScheduleRun.status != "skipped")
    if not include_manual:
        query = query.where(ScheduleRun.trigger != "manual")
    return session.scalars(query.order_by(ScheduleRun.started_at.desc()).limit(1)).one_or_none()


def last_run(session: Session, task: str) -> ScheduleRun | None:
    return session.scalars(
        select(ScheduleRun)
        .where(ScheduleRun.task == task)
        .order_by(ScheduleRun.slot.desc(), ScheduleRun.id.desc())
        .limit(1)
    ).one_or_none()


def register_instance(sessions: sessionmaker[Session], instance_id: str, now: datetime) -> None:
    with write_session(sessions) as session:
        session.merge(
            SchedulerInstance(
                id=instance_id,
                host=HOST,
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
                stopped_at=None,
            )
        )


def beat(sessions: sessionmaker[Session], instance_id: str, now: datetime) -> None:
    with write_session(sessions) as session:
        session.execute(
            update(SchedulerInstance)
            .where(SchedulerInstance.id == instance_id)
            .values(heartbeat_at=now)
        )


def mark_stopped(sessions: sessionmaker[Session], instance_id: str, now: datetime) -> None:
    with write_session(sessions) as session:
        session.execute(
            update(SchedulerInstance)
            .where(SchedulerInstance.id == instance_id)
            .values(stopped_at=now)
        )


def live_instances(
    session: Session, now: datetime, stale_after: timedelta
) -> list[SchedulerInstance]:
    return list(
        session.scalars(
            select(SchedulerInstance)
            .where(
                SchedulerInstance.stopped_at.is_(None),
                SchedulerInstance.heartbeat_at >= now - stale_after,
            )
            .order_by(SchedulerInstance.heartbeat_at.desc())
        )
    )


def live_instance(
    session: Session, host: str, pid: int, now: datetime, stale_after: timedelta
) -> SchedulerInstance | None:
    """The live (beating, not stopped) instance of the scheduler process `pid` on `host`."""
    return session.scalars(
        select(SchedulerInstance)
        .where(
            SchedulerInstance.host == host,
            SchedulerInstance.pid == pid,
            SchedulerInstance.stopped_at.is_(None),
            SchedulerInstance.heartbeat_at >= now - stale_after,
        )
        .order_by(SchedulerInstance.heartbeat_at.desc())
        .limit(1)
    ).one_or_none()


def instance(session: Session, instance_id: str) -> SchedulerInstance | None:
    return session.get(SchedulerInstance, instance_id)


def close_dead_scheduler(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    reason: str,
    host: str = HOST,
    pid: int | None = None,
    instance_id: str | None = None,
) -> list[int]:
    """Close the records of a scheduler process known to be dead (by its instance id, or
    its host and pid): mark its instances stopped and its running runs abandoned with
    `reason` as their error. Return the ids of the runs abandoned."""
    with write_session(sessions) as session:
        query = select(SchedulerInstance).where(SchedulerInstance.stopped_at.is_(None))
        if instance_id is not None:
            query = query.where(SchedulerInstance.id == instance_id)
        else:
            query = query.where(SchedulerInstance.host == host, SchedulerInstance.pid == pid)
        instances = list(session.scalars(query))
        for row in instances:
            row.stopped_at = now
        ids = [row.id for row in instances] or ([instance_id] if instance_id else [])
        runs = session.scalars(
            select(ScheduleRun).where(
                ScheduleRun.status == "running", ScheduleRun.scheduler_id.in_(ids)
            )
        )
        abandoned = []
        for run in runs:
            _abandon(run, now, reason)
            abandoned.append(run.id)
        return abandoned


def _abandon(run: ScheduleRun, now: datetime, reason: str) -> None:
    run.status = "abandoned"
    run.finished_at = now
    run.duration_ms = max(0, int((now - run.started_at).total_seconds() * 1000))
    run.error = reason


def first_start(session: Session) -> datetime | None:
    """When a scheduler first ran on this database: slots before it were never missed."""
    return session.scalar(select(func.min(SchedulerInstance.started_at)))


def newest_heartbeat(session: Session) -> datetime | None:
    return session.scalar(
        select(SchedulerInstance.heartbeat_at)
        .order_by(SchedulerInstance.heartbeat_at.desc())
        .limit(1)
    )


def abandon_orphaned_runs(
    sessions: sessionmaker[Session],
    now: datetime,
    timeouts: dict[str, timedelta],
    stale_after: timedelta,
) -> list[int]:
    """Mark abandoned the running runs whose scheduler is dead (stale heartbeat or stopped);
    runs started outside a scheduler (manual, from the API) once they are far past their
    task's timeout. Return their ids."""
    with write_session(sessions) as session:
        dead = select(SchedulerInstance.id).where(
            or_(
                SchedulerInstance.stopped_at.is_not(None),
                SchedulerInstance.heartbeat_at < now - stale_after,
            )
        )
        candidates = list(
            session.scalars(
                select(ScheduleRun).where(
                    ScheduleRun.status == "running",
                    or_(ScheduleRun.scheduler_id.in_(dead), ScheduleRun.scheduler_id.is_(None)),
                )
            )
        )
        abandoned = []
        for run in candidates:
            if run.scheduler_id is None:
                limit = 2 * timeouts.get(run.task, timedelta(minutes=10))
                if run.started_at > now - limit:
                    continue
            _abandon(run, now, "its scheduler stopped before the run finished")
            abandoned.append(run.id)
        return abandoned


def is_paused(sessions: sessionmaker[Session]) -> bool:
    with read_session(sessions) as session:
        state = session.get(SchedulerState, STATE_ID)
        return bool(state and state.paused)


def set_paused(
    sessions: sessionmaker[Session], paused: bool, actor: str, now: datetime | None = None
) -> bool:
    """Set the switch; return whether it changed."""
    now = now or utcnow()
    with write_session(sessions) as session:
        state = session.get(SchedulerState, STATE_ID)
        if state is None:
            state = SchedulerState(id=STATE_ID, paused=False, changed_at=now)
            session.add(state)
        if state.paused == paused:
            return False
        state.paused = paused
        state.changed_at = now
        state.changed_by = actor
        return True
