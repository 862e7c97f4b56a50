"""The daily report's figures: finance, quality, operations and payments of one UTC day,
read in one snapshot of the database taken at the cut-off.

The day is [D 00:00, D+1 00:00) UTC, by the time each job finished (as finance counts
it), or up to the cut-off while the day is not over. The report says what it could not
count yet (`late_sources`): jobs submitted that day that have not finished, payments not
reconciled, a day still running. Money is as finance gives it: decimal strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from echopilot.clock import iso
from echopilot.config import Settings
from echopilot.db.models import Job
from echopilot.finance import metrics
from echopilot.payments import freshness
from echopilot.reports import day as days
from echopilot.reports import operations

NOT_DEFINED = "n/a"
# Lower bound (inclusive) and upper bound (exclusive) of each QA band; the last is open.
QA_BANDS = (
    ("under 60", None, 60),
    ("60-69", 60, 70),
    ("70-79", 70, 80),
    ("80-89", 80, 90),
    ("90-100", 90, None),
)
PAYMENTS_NOTE = (
    "paid is money that moved this day net of refunds and disputes; money owed counts every "
    "billed job not yet paid"
)
OWED_NOTE = "money owed is over all history, as of the cut-off, by how long ago the job finished"
ACTIVE_WORDS = {"queued": "queued", "processing": "processing", "failed": "awaiting a retry"}


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction: every figure of a report comes from the same moment
    (SQLite's WAL read snapshot; REPEATABLE READ on PostgreSQL)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def gather(conn: Connection, settings: Settings, day: date, cutoff: datetime) -> dict[str, Any]:
    """The report of `day` as of `cutoff` (without `generated_at`, which its writer sets)."""
    start, end = days.start_of(day), days.last_moment(day, cutoff)
    finance = metrics.between(conn, start, end)
    finance["owed"] = metrics.owed(conn, cutoff)
    ops = operations.gather(conn, start, end)
    quality = _quality(conn, settings, start, end, finance)
    fresh = freshness.state(conn, settings, cutoff)
    return {
        "date": day.isoformat(),
        "period": {"from": iso(start), "to": iso(end)},
        "day_complete": days.is_over(day, cutoff),
        "cutoff": iso(cutoff),
        "late_sources": _late_sources(conn, day, start, end, cutoff, fresh["late"]),
        "summary_line": summary_line(finance, ops["retries"]["retries"]),
        "finance": finance,
        "quality": quality,
        "operations": ops,
        "payments": _payments(finance, fresh),
        "notes": _notes(finance),
    }


def summary_line(finance: dict[str, Any], retries: int) -> str:
    """ "Jobs N | QA x % | ROI y | Retries z": a fixed shape scripts can split on " | ",
    with n/a for a figure that has no value (no scored job, no cost)."""
    avg_qa = finance["avg_qa"]
    qa = NOT_DEFINED if avg_qa is None else f"{avg_qa:.1f}"
    roi = finance["roi"] if finance["roi"] is not None else NOT_DEFINED
    return f"Jobs {finance['jobs']} | QA {qa} % | ROI {roi} | Retries {retries}"


def _quality(
    conn: Connection, settings: Settings, start: datetime, end: datetime, finance: dict[str, Any]
) -> dict[str, Any]:
    scored = conn.execute(
        select(Job.qa_score, Job.qa_threshold).where(
            Job.finished_at >= start, Job.finished_at <= end, Job.qa_score.is_not(None)
        )
    ).all()
    bands = dict.fromkeys((label for label, _, _ in QA_BANDS), 0)
    below = 0
    for score, threshold in scored:
        if score is None:  # excluded by the query; the column's type allows it
            continue
        mark = threshold if threshold is not None else settings.qa_threshold
        below += score < mark
        bands[_band(score)] += 1
    return {
        "avg_qa": finance["avg_qa"],
        "scored_jobs": len(scored),
        "needs_review": finance["needs_review"],
        "below_threshold": below,
        "by_task_type": [
            {"task_type": row["key"], "jobs": row["jobs"], "avg_qa": row["avg_qa"]}
            for row in sorted(finance["breakdown"]["task_type"], key=lambda r: r["key"])
        ],
        "distribution": [{"band": label, "jobs": n} for label, n in bands.items()],
    }


def _band(score: float) -> str:
    for label, low, high in QA_BANDS:
        if (low is None or score >= low) and (high is None or score < high):
            return label
    return QA_BANDS[-1][0]  # unreachable: the bands cover every number


def _late_sources(
    conn: Connection,
    day: date,
    start: datetime,
    end: datetime,
    cutoff: datetime,
    payments_late: str | None,
) -> list[dict[str, Any]]:
    late: list[dict[str, Any]] = []
    if not days.is_over(day, cutoff):
        late.append(
            {
                "source": "day",
                "detail": f"{day} is not over: the figures run to the cut-off, {cutoff:%H:%M} UTC",
                "count": None,
            }
        )
    unfinished = dict(
        conn.execute(
            select(Job.status, func.count())
            .where(Job.created_at >= start, Job.created_at <= end, Job.status.in_(metrics.ACTIVE))
            .group_by(Job.status)
        ).all()
    )
    total = sum(int(n) for n in unfinished.values())
    if total:
        parts = ", ".join(
            f"{int(unfinished[status])} {words}"
            for status, words in ACTIVE_WORDS.items()
            if unfinished.get(status)
        )
        late.append(
            {
                "source": "jobs",
                "detail": f"{total} jobs submitted that day have not finished ({parts}): "
                "they are not in these figures yet",
                "count": total,
            }
        )
    if payments_late is not None:
        late.append({"source": "payments", "detail": payments_late, "count": None})
    return late


def _payments(finance: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    owed = finance["owed"]
    return {
        "billed": finance["revenue"],
        "billed_jobs": finance["billed_jobs"],
        "paid": finance["revenue_paid"],
        "owed": owed["amount"],
        "owed_jobs": owed["jobs"],
        "owed_ageing": owed["ageing"],
        "moved": finance["payments"],
        "reconciled": fresh["configured"] and fresh["late"] is None,
        "reconciled_at": fresh["reconciled_at"],
        "note": PAYMENTS_NOTE,
    }


def _notes(finance: dict[str, Any]) -> list[str]:
    notes = []
    if not finance["jobs"]:
        notes.append("no job finished on this day: every figure is zero")
    if finance["needs_review"]:
        notes.append(
            f"{finance['needs_review']} jobs that finished this day wait for review: not "
            "billed until approved (`echopilot jobs approve ID`)"
        )
    if finance["unpriced_jobs"]:
        notes.append(metrics.unpriced_note(finance))
    notes.append(OWED_NOTE)
    notes.append(PAYMENTS_NOTE)
    return notes
