"""The figures behind the dashboard's KPI cards and charts, from SQL aggregates.

Revenue is the price of jobs that finished `done` in the window and are billed (paid or not;
the offline provider's jobs are never billed); cost
is the model spend of attempts started in the window, failed ones included. The finance
issue replaces this module with exact daily roll-ups; callers use only `summary()` and
`daily()`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Date, and_, case, cast, func, select
from sqlalchemy.orm import Session

from echopilot.clock import utcnow
from echopilot.db.models import Job, JobAttempt
from echopilot.jobs.status import Status
from echopilot.money import cents_to_usd, micros_to_usd

FINISHED = (Status.DONE, Status.NEEDS_REVIEW, Status.DEAD)


def billed() -> ColumnElement[bool]:
    """Jobs whose price is revenue: done and billed (not the offline provider's, which are
    priced for show only, payment status `na`)."""
    return and_(Job.status == Status.DONE, Job.payment_status != "na")


Number = TypeVar("Number", int, float)


def percentile(values: Sequence[Number], q: float) -> Number | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def _money(cents: int, micros: int) -> dict[str, Any]:
    revenue = cents_to_usd(cents)
    cost = micros_to_usd(micros)
    profit = revenue - cost
    margin = None if revenue == 0 else (profit / revenue * 100).quantize(Decimal("0.1"))
    return {
        "revenue": str(revenue),
        "cost": str(cost),
        "profit": str(profit),
        "margin_pct": None if margin is None else str(margin),
    }


def summary(session: Session, *, now: datetime | None = None, days: int = 7) -> dict[str, Any]:
    """KPIs over the last `days` days (the `_7d` names hold for the default)."""
    now = now or utcnow()
    since = now - timedelta(days=days)
    jobs = session.scalar(select(func.count()).select_from(Job).where(Job.created_at >= since))
    finished = session.execute(
        select(
            func.coalesce(func.sum(case((billed(), Job.price_cents))), 0),
            func.avg(Job.qa_score),
            func.count(),
            func.count(case((Job.status == Status.DEAD, 1))),
        ).where(Job.finished_at >= since, Job.status.in_(FINISHED))
    ).one()
    revenue_cents, avg_qa, finished_count, dead = finished
    cost_micros = session.scalar(
        select(func.coalesce(func.sum(JobAttempt.cost_micros), 0)).where(
            JobAttempt.started_at >= since
        )
    )
    p95 = _percentile_in_sql(
        session,
        Job.duration_ms,
        95,
        Job.finished_at >= since,
        Job.status.in_((Status.DONE, Status.NEEDS_REVIEW)),
        Job.duration_ms.is_not(None),
    )
    by_status = dict(
        (row[0], row[1])
        for row in session.execute(select(Job.status, func.count()).group_by(Job.status))
    )
    money = _money(int(revenue_cents or 0), int(cost_micros or 0))
    return {
        "window_days": days,
        "jobs_7d": int(jobs or 0),
        "revenue_7d": money["revenue"],
        "cost_7d": money["cost"],
        "profit_7d": money["profit"],
        "margin_7d_pct": money["margin_pct"],
        "avg_qa_7d": None if avg_qa is None else round(float(avg_qa), 1),
        "finished_7d": int(finished_count),
        "failure_rate_7d_pct": (
            round(100 * int(dead or 0) / int(finished_count), 1) if finished_count else None
        ),
        "p95_latency_ms_7d": p95,
        "jobs_by_status": {s.value: int(by_status.get(s.value, 0)) for s in Status},
        "as_of": now.isoformat(),
    }


def _percentile_in_sql(session: Session, column: Any, q: float, *conditions: Any) -> int | None:
    """Nearest-rank percentile of `column` over the rows matching `conditions`, sorted by
    the database rather than in Python."""
    count = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    if not count:
        return None
    rank = max(0, math.ceil(q / 100 * count) - 1)
    value = session.scalar(select(column).where(*conditions).order_by(column).offset(rank).limit(1))
    return None if value is None else int(value)


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def daily(session: Session, *, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    """One row per UTC day, oldest first, for the last `days` days including today."""
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows: dict[str, dict[str, Any]] = {}
    for offset in range(days):
        key = (first + timedelta(days=offset)).date().isoformat()
        rows[key] = {
            "day": key,
            "jobs": {s.value: 0 for s in Status},
            "revenue_cents": 0,
            "cost_micros": 0,
            "avg_qa": None,
            "latencies": [],
        }

    created_day = cast(Job.created_at, Date) if _is_pg(session) else func.date(Job.created_at)
    finished_day = cast(Job.finished_at, Date) if _is_pg(session) else func.date(Job.finished_at)
    started_day = (
        cast(JobAttempt.started_at, Date) if _is_pg(session) else func.date(JobAttempt.started_at)
    )
    for day, status, count in session.execute(
        select(created_day, Job.status, func.count())
        .where(Job.created_at >= first)
        .group_by(created_day, Job.status)
    ):
        if _day(day) in rows:
            rows[_day(day)]["jobs"][status] = int(count)
    for day, revenue, avg_qa in session.execute(
        select(
            finished_day,
            func.coalesce(func.sum(case((billed(), Job.price_cents))), 0),
            func.avg(Job.qa_score),
        )
        .where(Job.finished_at >= first, Job.status.in_(FINISHED))
        .group_by(finished_day)
    ):
        if _day(day) in rows:
            rows[_day(day)]["revenue_cents"] = int(revenue or 0)
            rows[_day(day)]["avg_qa"] = None if avg_qa is None else round(float(avg_qa), 1)
    for day, cost in session.execute(
        select(started_day, func.sum(JobAttempt.cost_micros))
        .where(JobAttempt.started_at >= first)
        .group_by(started_day)
    ):
        if _day(day) in rows:
            rows[_day(day)]["cost_micros"] = int(cost or 0)
    latencies: dict[str, list[int]] = defaultdict(list)
    for day, duration in session.execute(
        select(finished_day, Job.duration_ms).where(
            Job.finished_at >= first,
            Job.status.in_((Status.DONE, Status.NEEDS_REVIEW)),
            Job.duration_ms.is_not(None),
        )
    ):
        latencies[_day(day)].append(int(duration))
    out = []
    for key, row in rows.items():
        money = _money(row["revenue_cents"], row["cost_micros"])
        values = latencies.get(key, [])
        out.append(
            {
                "day": key,
                "jobs": row["jobs"],
                "avg_qa": row["avg_qa"],
                "revenue": money["revenue"],
                "cost": money["cost"],
                "profit": money["profit"],
                "latency_p50_ms": percentile(values, 50),
                "latency_p95_ms": percentile(values, 95),
            }
        )
    return {"days": out}


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
