"""The brief's four charts, drawn from the same snapshot as its numbers: money per day,
quality per day, jobs and failures per day, and quality per task type. Days a statistical
check found unusual are marked on the chart of their series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from echopilot.briefs import charts

# Red is kept for the marks of unusual days (charts.py), so no series is drawn in red.
REVENUE, COST, QA, DONE, DEAD = "#1565c0", "#ef6c00", "#6a1b9a", "#2e7d32", "#57606a"


@dataclass(frozen=True)
class Figure:
    name: str  # a file-name-safe id: the email's content id
    title: str
    caption: str
    png: bytes


def _marked(analysis: dict[str, Any], days: list[str], fields: tuple[str, ...]) -> list[int]:
    wanted = {f"stats.{f}" for f in fields}
    return sorted(
        {
            days.index(a["evidence"]["day"])
            for a in analysis["anomalies"]
            if a["rule"] in wanted and a["evidence"].get("day") in days
        }
    )


def make(signals: dict[str, Any], analysis: dict[str, Any], qa_target: int) -> list[Figure]:
    daily = signals["daily"]
    days = [d["day"] for d in daily]

    def series(name: str) -> list[float | None]:
        return [None if d[name] is None else float(d[name]) for d in daily]

    money = charts.line_chart(
        "Revenue and model cost per day (USD)",
        days,
        [
            charts.Line("revenue", series("revenue"), REVENUE),
            charts.Line("cost", series("cost"), COST),
        ],
        y_label="USD",
        marked=_marked(analysis, days, ("revenue", "cost", "margin_pct")),
    )
    quality = charts.line_chart(
        "Average QA per day",
        days,
        [charts.Line("average QA", series("avg_qa"), QA)],
        y_label="QA score",
        marked=_marked(analysis, days, ("avg_qa",)),
        reference=float(qa_target),
        reference_label=f"target {qa_target}",
    )
    jobs = charts.line_chart(
        "Jobs finished and dead per day",
        days,
        [
            charts.Line("finished", series("finished"), DONE),
            charts.Line("dead", series("dead"), DEAD),
        ],
        y_label="jobs",
        marked=_marked(analysis, days, ("finished", "submitted", "dead")),
    )
    types = [t for t in signals["task_types"] if t["avg_qa_7d"] is not None]
    by_type = charts.bar_chart(
        "Average QA by task type, last 7 days",
        [t["task_type"] for t in types],
        [float(t["avg_qa_7d"]) for t in types],
        y_label="QA score",
        colour=QA,
        reference=float(qa_target),
        reference_label=f"target {qa_target}",
        highlight=[i for i, t in enumerate(types) if t["avg_qa_7d"] < qa_target],
    )
    span = f"{days[0]} to {days[-1]}" if days else "no days yet"
    return [
        Figure("money", "Money per day", f"Revenue billed and model cost, {span} (UTC).", money),
        Figure("quality", "Quality per day", f"Average QA of the day's jobs, {span}.", quality),
        Figure("jobs", "Jobs per day", f"Jobs that finished, and those that died, {span}.", jobs),
        Figure("types", "Quality by task type", "Average QA per task type over 7 days.", by_type),
    ]
