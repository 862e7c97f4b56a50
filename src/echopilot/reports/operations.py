"""The operations part of a daily report: retries, dead jobs, alerts, failed scheduled
runs and jobs per hour, all of one UTC day [start, end].

Retries count every attempt that started that day after a job's first one, whichever
path sent the job back (its own backoff, self-heal, a person, a worker that died); the
attempts that failed or lost their worker, and the jobs put back on the queue, are
counted beside them.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select

from echopilot.clock import iso
from echopilot.db.models import Alert, FinanceHourly, Job, JobAttempt, JobEvent, ScheduleRun
from echopilot.finance import totals
from echopilot.jobs.status import Status
from echopilot.money import cents_text, micros_text

DEAD_LISTED = 20
ERRORS_LISTED = 5
ERRORS_READ = 1000  # dead jobs read to rank their errors; the count above is exact
ALERTS_LISTED = 50
RUNS_LISTED = 50
ERROR_CHARS = 200
FAILED_RUNS = ("failed", "abandoned")
HOURLY_STATUSES = ("done", "needs_review", "dead", "cancelled")


def gather(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "retries": retries(conn, start, end),
        "dead": _dead(conn, start, end),
        "alerts": _alerts(conn, start, end),
        "failed_runs": _failed_runs(conn, start, end),
        "hourly": _hourly(conn, start, end),
    }


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def retries(conn: Connection, start: datetime, end: datetime) -> dict[str, int]:
    in_day = and_(JobAttempt.started_at >= start, JobAttempt.started_at <= end)
    again, failed, lost = conn.execute(
        select(
            _count_if(JobAttempt.n > 1),
            _count_if(JobAttempt.status == "failed"),
            _count_if(JobAttempt.status == "lost"),
        ).where(in_day)
    ).one()
    back = and_(
        JobEvent.at >= start,
        JobEvent.at <= end,
        JobEvent.to_status == Status.QUEUED,
        JobEvent.from_status.is_not(None),  # not the job's creation
    )
    requeued, by_self_heal, by_people = conn.execute(
        select(
            func.count(),
            _count_if(JobEvent.reason.like("self-heal:%")),
            _count_if(JobEvent.reason.like("manual retry%")),
        ).where(back)
    ).one()
    return {
        "retries": int(again),
        "failed_attempts": int(failed),
        "lost_attempts": int(lost),
        "requeued": int(requeued),
        "requeued_by_self_heal": int(by_self_heal),
        "retried_by_people": int(by_people),
    }


def _short(text: str | None) -> str:
    return " ".join((text or "").split())[:ERROR_CHARS]


def _dead(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    rows = conn.execute(
        select(Job.id, Job.name, Job.task_type, Job.error, Job.finished_at)
        .where(Job.status == Status.DEAD, Job.finished_at >= start, Job.finished_at <= end)
        .order_by(Job.finished_at.desc(), Job.id.desc())
        .limit(ERRORS_READ)
    ).all()
    count = len(rows)
    if count == ERRORS_READ:
        count = int(
            conn.scalar(
                select(func.count()).where(
                    Job.status == Status.DEAD, Job.finished_at >= start, Job.finished_at <= end
                )
            )
            or 0
        )
    errors = Counter(_short(row.error) or "(no error recorded)" for row in rows)
    return {
        "count": count,
        "jobs": [
            {
                "id": job_id,
                "name": name,
                "task_type": task_type,
                "error": _short(error),
                "finished_at": iso(finished),
            }
            for job_id, name, task_type, error, finished in rows[:DEAD_LISTED]
        ],
        "top_errors": [
            {"error": text, "jobs": n}
            for text, n in sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))[:ERRORS_LISTED]
        ],
    }


def _alerts(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """Alerts opened that day, or opened before and still open at some moment of it."""
    touching = and_(
        Alert.first_seen_at <= end,
        or_(Alert.resolved_at.is_(None), Alert.resolved_at >= start),
    )
    rows = conn.execute(
        select(
            Alert.key,
            Alert.rule,
            Alert.severity,
            Alert.title,
            Alert.status,
            Alert.first_seen_at,
            Alert.resolved_at,
        )
        .where(touching)
        .order_by(Alert.first_seen_at.desc(), Alert.id.desc())
        .limit(ALERTS_LISTED)
    ).all()
    opened, open_at_end = conn.execute(
        select(
            _count_if(Alert.first_seen_at >= start),
            _count_if(or_(Alert.resolved_at.is_(None), Alert.resolved_at > end)),
        ).where(touching)
    ).one()
    return {
        "opened": int(opened),
        "open_at_end": int(open_at_end),
        "listed": [
            {
                "key": key,
                "rule": rule,
                "severity": severity,
                "title": title,
                "status": status,
                "first_seen_at": iso(first),
                "resolved_at": iso(resolved),
            }
            for key, rule, severity, title, status, first, resolved in rows
        ],
    }


def _failed_runs(conn: Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(
            ScheduleRun.task,
            ScheduleRun.status,
            ScheduleRun.trigger,
            ScheduleRun.slot,
            ScheduleRun.started_at,
            ScheduleRun.error,
        )
        .where(
            ScheduleRun.started_at >= start,
            ScheduleRun.started_at <= end,
            ScheduleRun.status.in_(FAILED_RUNS),
        )
        .order_by(ScheduleRun.started_at, ScheduleRun.id)
        .limit(RUNS_LISTED)
    ).all()
    return [
        {
            "task": task,
            "status": status,
            "trigger": trigger,
            "slot": iso(slot),
            "started_at": iso(started),
            "error": _short(error),
        }
        for task, status, trigger, slot, started, error in rows
    ]


def _hourly(conn: Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Jobs finished in each hour of the day by how they ended, with their money (from
    the finance roll-ups, which the jobs' triggers keep exact)."""
    first = totals.hour_of(start)
    columns = [getattr(FinanceHourly, name) for name in ("finished", *HOURLY_STATUSES)]
    money = [FinanceHourly.billed_cents, FinanceHourly.cost_micros]
    found = {
        int(hour): values
        for hour, *values in conn.execute(
            select(FinanceHourly.hour, *columns, *money).where(
                FinanceHourly.dim == "all",
                FinanceHourly.hour >= first,
                FinanceHourly.hour <= totals.hour_of(end),
            )
        )
    }
    rows = []
    for offset in range(24):
        values = [int(v or 0) for v in found.get(first + offset, [0] * (len(columns) + 2))]
        counts = dict(zip(("finished", *HOURLY_STATUSES), values, strict=False))
        billed, cost = values[-2], values[-1]
        rows.append(
            {
                "hour": f"{offset:02d}",
                **counts,
                "revenue": cents_text(billed),
                "cost": micros_text(cost),
            }
        )
    return rows
