"""The brief's first step: one snapshot of every signal it reasons about, read from the
database (never from logs, never by a model).

Windows are rolling ([cut-off - N days, cut-off]); daily series are whole UTC days, the
newest being the day before the cut-off's (a day still running would look like a drop).
Everything comes from the finance roll-ups or from indexed reads of a few rows, so a
snapshot of a million jobs takes well under a second.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from echopilot.ai.registry import provider_label
from echopilot.clock import ensure_utc, iso
from echopilot.config import Settings
from echopilot.db.models import (
    Alert,
    Client,
    FinanceDaily,
    Job,
    NotionPage,
    NotionState,
    SchedulerInstance,
    SchedulerState,
    ScheduleRun,
    TaskType,
    WorkerHeartbeat,
)
from echopilot.finance import metrics
from echopilot.finance.totals import EPOCH
from echopilot.jobs.status import Status
from echopilot.payments import freshness
from echopilot.payments import status as pay

VERSION = 1
SERIES_DAYS = 35  # the day judged, its 28-day window, and a week to see runs start
RECENT_SCORED = 10  # newest scored jobs read per task type (runs of low scores)
UNPAID_LISTED = 20
UNPAID_COUNTED_AT_MOST = 1000  # counting stops here: the rule needs "some", the list "which"
UNPAID_LOOKBACK = timedelta(days=30)  # older debts are in owed's ageing, not follow-ups
ALIVE = timedelta(minutes=2)  # a heartbeat older than this is a process that stopped
ALERTS_LISTED = 10
NOTION_LISTED = 5
SEVERITY_ORDER = {"critical": 0, "high": 1, "warning": 2, "medium": 2, "info": 3, "low": 3}
# The brief reads the task-type breakdown only: the client and model ones (hundreds of
# clients a day at 1M jobs) made most of the snapshot's time.
BREAKDOWNS = ("task_type",)


def gather(conn: Connection, settings: Settings, now: datetime) -> dict[str, Any]:
    """Every signal as of `now` (the cut-off), as a JSON-ready document."""
    finance = metrics.finance(conn, now=now, days=(7, 30), breakdowns=BREAKDOWNS)
    days = _days(conn, now)
    fresh = freshness.state(conn, settings, now)
    workers = _workers(conn, now)
    return {
        "kind": "ingest",
        "version": VERSION,
        "cutoff": iso(now),
        "provider": provider_label(settings.provider_name),
        "jobs_ever": _jobs_ever(conn),
        "kpis": {key: _kpis(w) for key, w in finance["windows"].items()},
        "owed": finance["owed"],
        "daily": days,
        "task_types": _task_types(conn, settings, finance["windows"]["7d"], now, days),
        "unpaid_high_qa": _unpaid_high_qa(conn, settings, now),
        "scheduler": _scheduler(conn, now),
        "workers": workers,
        "alerts": _alerts(conn),
        "clients": _clients(conn, now),
        "payments": fresh,
        "notion": _notion(conn, settings, now),
        "unfinished": {k: workers[k] for k in ("queued", "processing", "awaiting_retry")},
        "finance_notes": finance["notes"],
    }


def _kpis(window: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "jobs",
        "submitted",
        "done",
        "needs_review",
        "dead",
        "billed_jobs",
        "revenue",
        "revenue_paid",
        "cost",
        "profit",
        "margin_pct",
        "roi",
        "avg_qa",
        "failure_rate_pct",
        "unpriced_jobs",
        "latency",
    )
    return {key: window[key] for key in keep}


def _jobs_ever(conn: Connection) -> int:
    finished = conn.execute(
        select(func.coalesce(func.sum(FinanceDaily.finished), 0)).where(FinanceDaily.dim == "all")
    ).scalar()
    unfinished = conn.execute(select(func.count()).where(Job.status.in_(metrics.ACTIVE))).scalar()
    return int(finished or 0) + int(unfinished or 0)


def _days(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Whole UTC days, oldest first, ending the day before the cut-off's."""
    rows = metrics.daily(conn, days=SERIES_DAYS + 1, now=now)["days"][:-1]
    out = []
    for row in rows:
        jobs = row["jobs"]
        out.append(
            {
                "day": row["day"],
                "finished": sum(jobs.values()),
                "done": jobs["done"],
                "dead": jobs["dead"],
                "submitted": row["submitted"],
                "avg_qa": row["avg_qa"],
                "revenue": row["revenue"],
                "revenue_paid": row["revenue_paid"],
                "cost": row["cost"],
                "profit": row["profit"],
                "margin_pct": row["margin_pct"],
                "latency_p95_ms": row["latency_p95_ms"],
            }
        )
    return out


def _task_types(
    conn: Connection,
    settings: Settings,
    week: dict[str, Any],
    now: datetime,
    days: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Per task type: its 7-day figures, its newest scored jobs (for runs of low scores) and
    its daily average QA aligned with `days`."""
    weekly = {row["key"]: row for row in week["breakdown"]["task_type"]}
    names = set(weekly) | set(conn.execute(select(TaskType.name)).scalars())
    daily_qa = _daily_qa_by_type(conn, days)
    limit = max(RECENT_SCORED, settings.brief_qa_run)
    out = []
    for name in sorted(names):
        recent = conn.execute(
            select(Job.id, Job.qa_score, Job.qa_threshold, Job.finished_at)
            .where(
                Job.task_type == name,
                Job.finished_at.is_not(None),
                Job.finished_at <= now,
                Job.qa_score.is_not(None),
            )
            .order_by(Job.finished_at.desc(), Job.id.desc())
            .limit(limit)
        ).all()
        if not recent and name not in weekly:
            continue  # a task type never used: nothing to say about it
        w = weekly.get(name)
        out.append(
            {
                "task_type": name,
                "jobs_7d": w["jobs"] if w else 0,
                "avg_qa_7d": w["avg_qa"] if w else None,
                "revenue_7d": w["revenue"] if w else "0.00",
                "margin_7d_pct": w["margin_pct"] if w else None,
                "recent_limit": limit,  # a run as long as this may be longer
                "recent_scored": [
                    {
                        "id": job_id,
                        "qa_score": score,
                        "qa_threshold": threshold,
                        "finished_at": iso(finished),
                    }
                    for job_id, score, threshold, finished in recent
                ],
                "daily_avg_qa": daily_qa.get(name, [None] * len(days)),
            }
        )
    return out


def _daily_qa_by_type(conn: Connection, days: list[dict[str, Any]]) -> dict[str, list[Any]]:
    if not days:
        return {}
    epoch = EPOCH.date().toordinal()
    numbers = [date.fromisoformat(d["day"]).toordinal() - epoch for d in days]
    index = {number: i for i, number in enumerate(numbers)}
    found: dict[str, list[Any]] = {}
    rows = conn.execute(
        select(
            FinanceDaily.key, FinanceDaily.day, FinanceDaily.qa_jobs, FinanceDaily.qa_tenths
        ).where(
            FinanceDaily.dim == "task_type",
            FinanceDaily.day >= numbers[0],
            FinanceDaily.day <= numbers[-1],
        )
    )
    for key, day, qa_jobs, qa_tenths in rows:
        series = found.setdefault(key, [None] * len(days))
        if qa_jobs:
            series[index[int(day)]] = round(int(qa_tenths) / int(qa_jobs) / 10, 1)
    return found


def _unpaid_high_qa(conn: Connection, settings: Settings, now: datetime) -> dict[str, Any]:
    """Billed jobs not paid, scored at least the follow-up mark, finished over the set
    hours ago (within the last 30 days): the oldest listed first."""
    newest = now - timedelta(hours=settings.brief_unpaid_hours)
    condition = (
        metrics.billed(),
        Job.payment_status.in_(pay.OWED),
        Job.finished_at >= now - UNPAID_LOOKBACK,
        Job.finished_at < newest,
        Job.qa_score >= settings.brief_unpaid_min_qa,
    )
    matching = select(Job.id).where(*condition).limit(UNPAID_COUNTED_AT_MOST + 1).subquery()
    count = int(conn.execute(select(func.count()).select_from(matching)).scalar() or 0)
    listed = conn.execute(
        select(Job.id, Job.price_cents, Job.qa_score, Job.finished_at, Job.payment_status)
        .where(*condition)
        .order_by(Job.finished_at, Job.id)
        .limit(UNPAID_LISTED)
    ).all()
    return {
        "jobs": min(count, UNPAID_COUNTED_AT_MOST),
        "capped": count > UNPAID_COUNTED_AT_MOST,
        "min_qa": settings.brief_unpaid_min_qa,
        "older_than_hours": settings.brief_unpaid_hours,
        "oldest": [
            {
                "id": job_id,
                "price": f"{int(cents or 0) / 100:.2f}",
                "qa_score": score,
                "finished_at": iso(finished),
                "payment_status": status,
            }
            for job_id, cents, score, finished, status in listed
        ],
    }


def _age(now: datetime, moment: datetime | None) -> int | None:
    return None if moment is None else max(0, int((now - ensure_utc(moment)).total_seconds()))


def _scheduler(conn: Connection, now: datetime) -> dict[str, Any]:
    beat = conn.execute(
        select(func.max(SchedulerInstance.heartbeat_at)).where(
            SchedulerInstance.stopped_at.is_(None)
        )
    ).scalar()
    state = conn.execute(
        select(SchedulerState.paused, SchedulerState.changed_at, SchedulerState.changed_by)
    ).first()
    failed = conn.execute(
        select(ScheduleRun.task, func.count(), func.max(ScheduleRun.started_at))
        .where(
            ScheduleRun.status == "failed",
            ScheduleRun.started_at >= now - timedelta(hours=24),
            ScheduleRun.started_at <= now,
        )
        .group_by(ScheduleRun.task)
        .order_by(ScheduleRun.task)
    ).all()
    age = _age(now, beat)
    return {
        "running": age is not None and age <= ALIVE.total_seconds(),
        "heartbeat_age_s": age,
        "paused": bool(state.paused) if state else False,
        "paused_since": iso(state.changed_at) if state and state.paused else None,
        "failed_runs_24h": [
            {"task": task, "runs": int(n), "last": iso(last)} for task, n, last in failed
        ],
    }


def _notion(conn: Connection, settings: Settings, now: datetime) -> dict[str, Any]:
    """The Notion connector: its state, its last poll, and the read-after-write lags of
    the last 7 days (the slowest writes, and those Notion never showed)."""
    if not settings.notion_enabled:
        return {"enabled": False}
    state = conn.execute(
        select(
            NotionState.status,
            NotionState.reason,
            NotionState.polled_at,
            NotionState.checked_at,
        )
    ).first()
    week = now - timedelta(days=7)
    slow = conn.execute(
        select(NotionPage.page_id, NotionPage.job_id, NotionPage.worst_lag_ms)
        .where(
            NotionPage.updated_at >= week,
            NotionPage.updated_at <= now,
            NotionPage.worst_lag_ms > settings.brief_notion_lag_seconds * 1000,
        )
        .order_by(NotionPage.worst_lag_ms.desc())
        .limit(NOTION_LISTED)
    ).all()
    worst = conn.execute(
        select(func.max(NotionPage.worst_lag_ms)).where(
            NotionPage.updated_at >= week, NotionPage.updated_at <= now
        )
    ).scalar()
    pending = conn.execute(
        select(func.count()).where(
            NotionPage.pending_since.is_not(None), NotionPage.settled.is_(False)
        )
    ).scalar()
    return {
        "enabled": True,
        "status": _notion_status(state),
        "reason": state.reason if state else "not checked yet",
        "polled_age_s": _age(now, state.polled_at) if state else None,
        "poll_every_seconds": settings.notion_poll_seconds,
        "worst_lag_ms_7d": worst,
        "slow_writes": [
            {"page_id": page, "job_id": job, "lag_seconds": round((lag or 0) / 1000, 1)}
            for page, job, lag in slow
        ],
        "pending_writes": int(pending or 0),
    }


def _notion_status(state: Any) -> str:
    if state is None or (state.status == "off" and state.checked_at is None):
        return "not checked yet"
    return str(state.status)


def _workers(conn: Connection, now: datetime) -> dict[str, Any]:
    beats = conn.execute(select(WorkerHeartbeat.heartbeat_at)).scalars().all()
    ages = sorted(a for a in (_age(now, b) for b in beats) if a is not None)
    # The oldest queued job in the same grouped read, through the status index: a lone
    # min(created_at) WHERE status = 'queued' lets SQLite walk ix_jobs_created from the
    # oldest job of the whole history (queued jobs are the newest): seconds at 1M jobs.
    grouped = conn.execute(
        select(Job.status, func.count(), func.min(Job.created_at))
        .where(Job.status.in_(metrics.ACTIVE))
        .group_by(Job.status)
    ).all()
    counts = {status: n for status, n, _ in grouped}
    oldest = next((first for status, _, first in grouped if status == Status.QUEUED), None)
    return {
        "live": sum(1 for a in ages if a <= ALIVE.total_seconds()),
        "newest_heartbeat_age_s": ages[0] if ages else None,
        "queued": int(counts.get(Status.QUEUED, 0)),
        "processing": int(counts.get(Status.PROCESSING, 0)),
        "awaiting_retry": int(counts.get(Status.FAILED, 0)),
        "oldest_queued_age_s": _age(now, oldest),
    }


def _alerts(conn: Connection) -> dict[str, Any]:
    rows = conn.execute(
        select(Alert.id, Alert.rule, Alert.severity, Alert.title, Alert.since, Alert.first_seen_at)
        .where(Alert.status == "open")
        .order_by(Alert.first_seen_at)
    ).all()
    ranked = sorted(rows, key=lambda r: (SEVERITY_ORDER.get(r.severity, 9), r.first_seen_at))
    by_severity: dict[str, int] = {}
    for row in rows:
        by_severity[row.severity] = by_severity.get(row.severity, 0) + 1
    return {
        "open": len(rows),
        "by_severity": by_severity,
        "items": [
            {
                "id": r.id,
                "rule": r.rule,
                "severity": r.severity,
                "title": r.title,
                "since": iso(r.since or r.first_seen_at),
            }
            for r in ranked[:ALERTS_LISTED]
        ],
    }


def _clients(conn: Connection, now: datetime) -> dict[str, Any]:
    total, newest = conn.execute(
        select(func.count(), func.max(Client.created_at)).where(Client.created_at <= now)
    ).one()

    def since(days: int) -> int:
        return int(
            conn.execute(
                select(func.count()).where(
                    Client.created_at > now - timedelta(days=days), Client.created_at <= now
                )
            ).scalar()
            or 0
        )

    age = _age(now, newest)
    return {
        "total": int(total or 0),
        "new_7d": since(7),
        "new_30d": since(30),
        "newest_at": iso(newest),
        "days_since_newest": None if age is None else round(age / 86_400, 1),
    }
