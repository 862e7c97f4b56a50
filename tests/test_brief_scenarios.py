"""The CEO brief on seeded businesses: each scenario is a healthy month of steady jobs with
one thing gone wrong, and the brief must find exactly that thing (its rule, with the
evidence the database holds) and nothing else.

Rows are written straight into the database (the finance roll-ups follow by triggers);
the brief is made for a fixed cut-off, 2026-06-15 08:00 UTC, so its newest complete day is
2026-06-14. The full list of anomalies is read from the analysis the brief saved beside
it (the brief itself shows only the top five).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from echopilot.briefs import compose, files, service
from echopilot.db.engine import read_session
from echopilot.db.models import Brief, Client, Job, SchedulerInstance
from echopilot.runtime import Runtime
from tests import job_rows

BOTH = pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
NOW = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
LAST_DAY = date(2026, 6, 14)  # the newest complete UTC day the brief judges
MONTH = 35  # days of history: the judged day, its 28-day window and a week more
HOURS = (10, 22)  # every task type finishes a job at these UTC hours each day
LATENCY_MS = 20_000
# task type: (price in cents, model cost in micro-USD, QA score) -- margin about 78 %.
TYPES: dict[str, tuple[int, int, float]] = {
    "research": (1200, 3_000_000, 91.0),
    "drafting": (900, 2_000_000, 90.0),
    "transcription": (600, 1_000_000, 92.0),
}


# ------------------------------------------------------------------ the seeded business


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def job(task_type: str, finished: datetime, **values: Any) -> dict[str, Any]:
    """One finished, paid, well-scored job of `task_type`."""
    price, cost, qa = TYPES[task_type]
    duration = values.pop("duration_ms", LATENCY_MS)
    return job_rows.job_row(
        **{
            "name": f"{task_type} {finished:%m-%d %H:%M}",
            "task_type": task_type,
            "price_cents": price,
            "payment_status": "paid",
            "cost_micros": cost,
            "qa_score": qa,
            "qa_threshold": 85,
            "duration_ms": duration,
            "created_at": finished - timedelta(milliseconds=duration),
            "updated_at": finished,
            "finished_at": finished,
            **values,
        }
    )


def steady_days(days: int = MONTH) -> list[dict[str, Any]]:
    """`days` whole UTC days of steady work, oldest first, ending on LAST_DAY."""
    rows = []
    for back in range(days, 0, -1):
        day = NOW.date() - timedelta(days=back)
        for hour in HOURS:
            for task_type in TYPES:
                rows.append(job(task_type, at(day, hour)))
    return rows


def on(rows: list[dict[str, Any]], day: date) -> list[dict[str, Any]]:
    return [r for r in rows if r["finished_at"].date() == day]


def seed(
    rt: Runtime,
    rows: list[dict[str, Any]],
    *,
    client_ages: tuple[int, ...] = (60, 40, 3),
    scheduler: bool = True,
) -> list[int]:
    """Clients created `client_ages` days before NOW, the scheduler alive (unless not),
    then `rows` (their jobs spread over the clients); the jobs' ids in order."""
    clients = job_rows.insert_rows(
        rt.engine,
        Client,
        [
            {
                "name": f"Client {n}",
                "email": f"client{n}@example.com",
                "rate_overrides": {},
                "created_at": NOW - timedelta(days=age),
            }
            for n, age in enumerate(client_ages)
        ],
    )
    if scheduler:
        job_rows.insert_rows(
            rt.engine,
            SchedulerInstance,
            [
                {
                    "id": "scheduler-test",
                    "host": "test",
                    "pid": 1,
                    "started_at": NOW - timedelta(days=2),
                    "heartbeat_at": NOW - timedelta(seconds=15),
                    "stopped_at": None,
                }
            ],
        )
    for n, row in enumerate(rows):
        if clients and row.get("client_id") is None:
            row["client_id"] = clients[n % len(clients)]
    if not rows:
        return []
    with rt.engine.begin() as conn:  # one batch: the roll-up triggers still see every row
        inserted = conn.execute(insert(Job).returning(Job.id, sort_by_parameter_order=True), rows)
        return list(inserted.scalars())


def make(rt: Runtime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The brief for NOW and the analysis it was made from (every anomaly)."""
    brief = service.make(rt, actor="test", now=NOW)
    analysis = files.read(rt.settings.home, "analysis", brief["stamp"])
    assert analysis is not None
    assert analysis["counts"] == brief["counts"]
    return brief, analysis


def rules_of(analysis: dict[str, Any]) -> set[str]:
    return {a["rule"] for a in analysis["anomalies"]}


def found(analysis: dict[str, Any], rule: str) -> dict[str, Any]:
    hits: list[dict[str, Any]] = [a for a in analysis["anomalies"] if a["rule"] == rule]
    assert len(hits) == 1, hits
    return hits[0]


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime(ai_provider="offline")


# ------------------------------------------------------------------ a healthy month


@BOTH
def test_a_healthy_month_is_all_systems_nominal_with_high_confidence(rt: Runtime) -> None:
    seed(rt, steady_days())
    brief, analysis = make(rt)

    assert analysis["anomalies"] == []
    assert brief["headline"] == compose.NOMINAL == "All systems nominal"
    assert brief["counts"] == {"high": 0, "medium": 0, "low": 0, "total": 0}
    assert brief["top_risks"] == [] and brief["actions_next_24h"] == []
    assert brief["actions_next_7d"] == []
    assert brief["confidence"]["level"] == "high"
    assert brief["confidence"]["coverage"]["history"] == 1.0
    assert brief["confidence"]["coverage"]["statistics"] == 1.0
    assert brief["narrative"]["source"] == "deterministic"
    # Every series was judged against a full window of the steady month.
    assert analysis["statistics"]
    assert all(s["z"] == 0 and s["history_days"] == 28 for s in analysis["statistics"])
    # The KPIs are the seeded week's: 7 days x 2 jobs x (12 + 9 + 6) USD.
    week = brief["kpis"]["7d"]
    assert week["jobs"] == 7 * len(HOURS) * len(TYPES)
    assert Decimal(week["revenue"]) == Decimal("378.00")
    assert Decimal(week["cost"]) == Decimal("84")
    assert week["avg_qa"] == 91.0
    assert week["p95_latency_ms"] is not None and week["p95_latency_ms"] <= 21_000
    assert brief["kpis"]["new_clients_7d"] == 1
    assert brief["email"]["status"] == "not_sent"
    for path in brief["paths"].values():
        assert Path(path).is_file()


# ------------------------------------------------------------------ quality


def test_a_run_of_low_scores_on_one_task_type_is_a_high_quality_risk_for_that_type(
    rt: Runtime,
) -> None:
    rows = steady_days()
    # This morning, the last three drafting jobs scored 70, 72 and 75 (newest last).
    low = [
        job("drafting", NOW - timedelta(hours=h), qa_score=score)
        for h, score in ((5, 70.0), (4, 72.0), (3, 75.0))
    ]
    ids = seed(rt, rows + low)
    low_ids = ids[-3:]
    brief, analysis = make(rt)

    assert rules_of(analysis) == {"quality.low_qa_run:drafting"}
    risk = found(analysis, "quality.low_qa_run:drafting")
    assert risk["severity"] == "high" and risk["domain"] == "quality"
    assert risk["evidence"]["consecutive_low"] == 3
    assert risk["evidence"]["scores"] == [75.0, 72.0, 70.0]  # newest first
    assert risk["evidence"]["job_ids"] == list(reversed(low_ids))
    assert brief["headline"] == "1 HIGH SEVERITY ALERTS"
    assert brief["top_risks"][0]["rule"] == "quality.low_qa_run:drafting"
    tasks = [a["task"] for a in brief["actions_next_24h"]]
    assert "Review the low-scored drafting jobs before they are billed" in tasks
    assert not any("research" in t or "transcription" in t for t in tasks)


def test_two_low_scores_are_not_yet_a_run(rt: Runtime) -> None:
    rows = steady_days()
    low = [job("drafting", NOW - timedelta(hours=h), qa_score=70.0) for h in (5, 4)]
    seed(rt, rows + low)
    _, analysis = make(rt)
    assert analysis["anomalies"] == []


# ------------------------------------------------------------------ finance


def test_three_days_of_falling_revenue_are_flagged_with_the_days(rt: Runtime) -> None:
    rows = steady_days()
    # Research's price came down a little each of the last three days: 54 -> 53, 52, 51 USD.
    for back, price in ((3, 1150), (2, 1100), (1, 1050)):
        for row in on(rows, NOW.date() - timedelta(days=back)):
            if row["task_type"] == "research":
                row["price_cents"] = price
    seed(rt, rows)
    _, analysis = make(rt)

    assert rules_of(analysis) == {"finance.revenue_falling"}
    risk = found(analysis, "finance.revenue_falling")
    assert risk["evidence"]["days_falling"] == 3
    assert [(d["day"], Decimal(d["revenue"])) for d in risk["evidence"]["days"]] == [
        ("2026-06-11", Decimal("54")),
        ("2026-06-12", Decimal("53")),
        ("2026-06-13", Decimal("52")),
        ("2026-06-14", Decimal("51")),
    ]


def test_two_days_of_falling_revenue_are_not_flagged(rt: Runtime) -> None:
    rows = steady_days()
    for back, price in ((2, 1150), (1, 1100)):
        for row in on(rows, NOW.date() - timedelta(days=back)):
            if row["task_type"] == "research":
                row["price_cents"] = price
    seed(rt, rows)
    _, analysis = make(rt)
    assert analysis["anomalies"] == []


def expensive_month() -> list[dict[str, Any]]:
    """The steady month with model cost at 65 % of the price: margin 35 %, ROI 0.54."""
    rows = steady_days()
    for row in rows:
        row["cost_micros"] = row["price_cents"] * 10_000 * 65 // 100
    return rows


def test_a_margin_under_40_percent_is_flagged(rt: Runtime) -> None:
    seed(rt, expensive_month())
    brief, analysis = make(rt)

    # A margin under 40 % is an ROI under 0.67: both finance rules see it, nothing else.
    assert rules_of(analysis) == {"finance.margin_low", "finance.roi_low"}
    risk = found(analysis, "finance.margin_low")
    assert Decimal(risk["evidence"]["margin_7d_pct"]) == Decimal("35")
    assert risk["evidence"]["min_margin_pct"] == "40"
    assert Decimal(risk["evidence"]["revenue_7d"]) == Decimal("378")
    assert Decimal(risk["evidence"]["cost_7d"]) == Decimal("245.7")
    assert risk["evidence"]["revenue_7d"] == brief["kpis"]["7d"]["revenue"]


def test_a_lower_margin_threshold_silences_a_thin_margin(
    make_runtime: Callable[..., Runtime],
) -> None:
    lenient = make_runtime(ai_provider="offline", brief_min_margin_pct=30, brief_min_roi="0.5")
    seed(lenient, expensive_month())
    _, analysis = make(lenient)
    assert analysis["anomalies"] == []


def test_the_margin_threshold_comes_from_the_settings(
    make_runtime: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The healthy month's margin is 77.8 %: fine at the default 40 %, low under an 80 % floor.
    monkeypatch.setenv("ECHOPILOT_BRIEF_MIN_MARGIN_PCT", "80")
    rt = make_runtime(ai_provider="offline")
    assert rt.settings.brief_min_margin_pct == Decimal("80")
    seed(rt, steady_days())
    _, analysis = make(rt)
    assert rules_of(analysis) == {"finance.margin_low"}
    evidence = found(analysis, "finance.margin_low")["evidence"]
    assert evidence["min_margin_pct"] == "80" and evidence["margin_7d_pct"] == "77.8"


@BOTH
def test_unpaid_high_qa_jobs_older_than_48_hours_are_listed_by_id(rt: Runtime) -> None:
    rows = steady_days()
    marks: dict[str, dict[str, Any]] = {}

    def unpaid(back: int, hour: int, task_type: str, qa: float, name: str) -> None:
        (row,) = [
            r
            for r in on(rows, NOW.date() - timedelta(days=back))
            if r["task_type"] == task_type and r["finished_at"].hour == hour
        ]
        row.update(payment_status="unpaid", qa_score=qa)
        marks[name] = row

    unpaid(9, 10, "research", 96.0, "old")  # listed: the oldest first
    unpaid(5, 22, "drafting", 95.0, "at the mark")  # listed: 95 is at the mark
    unpaid(3, 10, "transcription", 99.0, "three days")  # listed
    unpaid(1, 22, "research", 97.0, "ten hours")  # finished 10 h ago: too soon to chase
    unpaid(4, 10, "drafting", 94.5, "below the mark")  # owed, but not scored 95+
    unpaid(32, 10, "research", 98.0, "last month")  # beyond the 30-day follow-up window
    ids = seed(rt, rows)
    id_of = {name: ids[rows.index(row)] for name, row in marks.items()}
    assert NOW - marks["ten hours"]["finished_at"] == timedelta(hours=10)
    brief, analysis = make(rt)

    assert rules_of(analysis) == {"finance.unpaid_high_qa"}
    risk = found(analysis, "finance.unpaid_high_qa")
    evidence = risk["evidence"]
    assert evidence["job_ids"] == [id_of["old"], id_of["at the mark"], id_of["three days"]]
    assert evidence["jobs"] == 3 and evidence["capped"] is False
    assert evidence["min_qa"] == 95 and evidence["older_than_hours"] == 48
    assert evidence["oldest_finished_at"].startswith("2026-06-06T10:00:00")
    # What is owed is every unpaid billed job, whatever its score or age.
    with rt.engine.connect() as conn:
        owed = conn.execute(select(Job.price_cents).where(Job.payment_status == "unpaid"))
        owed_cents = sum(cents or 0 for cents in owed.scalars())
    assert Decimal(evidence["owed_total"]) == Decimal(owed_cents) / 100 == Decimal("60")
    assert brief["kpis"]["owed"] == evidence["owed_total"] and brief["kpis"]["owed_jobs"] == 6
    assert risk["title"].startswith("3 jobs scored 95+ are unpaid more than 48 hours")
    assert brief["actions_next_24h"][0]["task"] == "Chase payment for the unpaid high-QA jobs"


def test_the_unpaid_follow_up_hours_come_from_the_settings(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", brief_unpaid_hours=6)
    rows = steady_days()
    (recent,) = [
        r
        for r in on(rows, LAST_DAY)
        if r["task_type"] == "research" and r["finished_at"].hour == 22
    ]
    recent.update(payment_status="unpaid", qa_score=97.0)
    ids = seed(rt, rows)
    _, analysis = make(rt)
    assert rules_of(analysis) == {"finance.unpaid_high_qa"}
    evidence = found(analysis, "finance.unpaid_high_qa")["evidence"]
    assert evidence["job_ids"] == [ids[rows.index(recent)]]
    assert evidence["older_than_hours"] == 6


# ------------------------------------------------------------------ operations


def slow_week() -> list[dict[str, Any]]:
    """The steady month whose last 7 days' jobs took 150 s each."""
    rows = steady_days()
    for row in rows:
        if row["finished_at"] >= NOW - timedelta(days=7):
            row["duration_ms"] = 150_000
            row["created_at"] = row["finished_at"] - timedelta(seconds=150)
    return rows


def test_a_slow_week_is_flagged_as_high_latency(rt: Runtime) -> None:
    seed(rt, slow_week())
    brief, analysis = make(rt)

    # The rule over the week, and the statistics on the newest day against the month.
    assert rules_of(analysis) == {"ops.latency_high", "stats.latency_p95_ms"}
    risk = found(analysis, "ops.latency_high")
    assert risk["severity"] == "high"  # even the median job is over the limit
    assert risk["evidence"]["limit_seconds"] == 120
    assert risk["evidence"]["p95_ms_7d"] > 120_000
    assert risk["evidence"]["p50_ms_7d"] > 120_000
    assert [d["day"] for d in risk["evidence"]["slow_days"]] == [
        (LAST_DAY - timedelta(days=n)).isoformat() for n in range(6, -1, -1)
    ]
    assert found(analysis, "stats.latency_p95_ms")["type"] == "statistical"
    assert brief["headline"] == "1 HIGH SEVERITY ALERTS"


def test_a_latency_limit_above_the_slow_week_silences_the_rule(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", brief_max_latency_seconds=200)
    seed(rt, slow_week())
    _, analysis = make(rt)
    # The day still stands out against the month; the weekly limit is no longer crossed.
    assert rules_of(analysis) == {"stats.latency_p95_ms"}


def test_a_stopped_scheduler_is_flagged_when_there_are_jobs(rt: Runtime) -> None:
    seed(rt, steady_days(), scheduler=False)
    brief, analysis = make(rt)
    assert rules_of(analysis) == {"ops.scheduler_down"}
    assert found(analysis, "ops.scheduler_down")["evidence"] == {"heartbeat_age_s": None}
    assert brief["actions_next_24h"][0]["task"] == "Start the scheduler (echopilot up)"


# ------------------------------------------------------------------ growth


def test_no_new_client_in_seven_days_is_a_growth_risk(rt: Runtime) -> None:
    seed(rt, steady_days(), client_ages=(60, 40, 10))
    brief, analysis = make(rt)

    assert rules_of(analysis) == {"growth.no_new_clients"}
    risk = found(analysis, "growth.no_new_clients")
    assert risk["severity"] == "low" and risk["domain"] == "growth"
    assert risk["evidence"]["days_since_newest"] == 10.0
    assert risk["evidence"]["clients_total"] == 3 and risk["evidence"]["new_30d"] == 1
    assert risk["evidence"]["newest_at"].startswith("2026-06-05T08:00:00")
    assert brief["headline"] == "1 anomalies detected"
    assert [a["owner"] for a in brief["actions_next_7d"]] == ["growth"]


def test_a_client_three_days_old_silences_the_growth_risk(rt: Runtime) -> None:
    seed(rt, steady_days(), client_ages=(60, 40, 10, 3))
    _, analysis = make(rt)
    assert "growth.no_new_clients" not in rules_of(analysis)
    assert analysis["anomalies"] == []


# ------------------------------------------------------------------ little or no data


def test_an_empty_database_gives_a_no_jobs_yet_brief_not_an_error(rt: Runtime) -> None:
    brief, analysis = make(rt)

    assert brief["headline"] == compose.NO_JOBS == "No jobs yet"
    assert analysis["anomalies"] == [] and analysis["empty"] is True
    assert brief["summary"].startswith("No jobs yet")
    assert brief["kpis"]["7d"]["jobs"] == 0
    assert "no jobs yet" in brief["freshness"]["line"]
    for kind in ("html", "md", "json"):
        assert Path(brief["paths"][kind]).is_file()
    assert "No jobs yet" in Path(brief["paths"]["md"]).read_text(encoding="utf-8")
    with read_session(rt.sessions) as session:
        row = session.scalars(select(Brief)).one()
        assert row.headline == "No jobs yet" and row.anomalies == 0


def test_ten_days_of_history_skip_the_statistics_and_say_so(rt: Runtime) -> None:
    seed(rt, steady_days(10))
    brief, analysis = make(rt)

    assert not any(a["type"] == "statistical" for a in analysis["anomalies"])
    assert analysis["anomalies"] == []
    assert all(s["z"] is None for s in analysis["statistics"])
    assert all(s["history_days"] == 9 for s in analysis["statistics"])
    notes = brief["confidence"]["notes"]
    assert "10 of the last 28 days have finished jobs" in notes
    assert any("could not be judged (too little history)" in n for n in notes)
    assert brief["confidence"]["level"] != "high"
    history = [x for x in brief["freshness"]["late"] if x["source"] == "history"]
    assert history and "only 9 earlier days with data; 14 are needed" in history[0]["detail"]
    assert "statistical checks skipped" in brief["freshness"]["line"]
