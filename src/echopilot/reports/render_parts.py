"""The report page's parts: escaped cells, tables and the detail sections (finance,
quality, operations, payments, notes). Every value from the report passes through
`text` or one of its kin, which escape it: names, errors and titles are user data.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

DASH = "—"


def text(value: Any) -> str:
    """A value as escaped text; nothing (None) as a dash."""
    if value is None or value == "":
        return DASH
    return escape(str(value))


def usd(value: str | None) -> str:
    return DASH if value is None else escape(f"${value}")


def ms(value: int | None) -> str:
    return DASH if value is None else escape(f"{value} ms")


def pct(value: Any) -> str:
    return DASH if value is None else escape(f"{value} %")


def html_table(headers: list[str], rows: list[list[str]], numeric: set[int], empty: str) -> str:
    """A table of cells already made safe by `text` and its kin (headers are escaped here);
    `numeric` columns are right-aligned; `empty` is said instead of an empty table."""
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pair_list(items: list[tuple[str, str]]) -> str:
    """Labels (escaped here) with their values (already safe)."""
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def when(stamp: str | None) -> str:
    """An ISO 8601 UTC timestamp as people read it: 2026-11-20 09:00:12 UTC."""
    if not stamp:
        return DASH
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return escape(stamp)
    return escape(f"{moment:%Y-%m-%d %H:%M:%S} UTC")


def _breakdown_rows(rows: list[dict[str, Any]], with_name: bool) -> list[list[str]]:
    return [
        [
            text(r.get("name") if with_name else (r["key"] or "(none)")),
            text(r["jobs"]),
            usd(r["revenue"]),
            usd(r["cost"]),
            usd(r["profit"]),
            pct(r["margin_pct"]),
            text(r["roi"]),
            text(r["avg_qa"]),
        ]
        for r in rows
    ]


def finance(f: dict[str, Any]) -> str:
    headers = ["", "Jobs", "Revenue", "Cost", "Profit", "Margin", "ROI", "Avg QA"]
    numeric = {1, 2, 3, 4, 5, 6, 7}
    tables = "".join(
        f"<h3>By {escape(label)}</h3>"
        + html_table(
            [label.capitalize(), *headers[1:]],
            _breakdown_rows(f["breakdown"][dim], dim == "client"),
            numeric,
            "No job finished.",
        )
        for dim, label in (("task_type", "task type"), ("client", "client"), ("model", "model"))
    )
    latency = f["latency"]
    summary = pair_list(
        [
            ("Jobs finished", text(f["jobs"])),
            (
                "Done / review / dead / cancelled",
                escape(f"{f['done']} / {f['needs_review']} / {f['dead']} / {f['cancelled']}"),
            ),
            ("Billed jobs", text(f["billed_jobs"])),
            ("Revenue billed", usd(f["revenue"])),
            ("Model cost", usd(f["cost"])),
            ("Profit", usd(f["profit"])),
            ("Failure rate", pct(f["failure_rate_pct"])),
            ("Latency p50 / p95", f"{ms(latency['p50_ms'])} / {ms(latency['p95_ms'])}"),
        ]
    )
    return f'<section class="card" id="finance"><h2>Finance</h2>{summary}{tables}</section>'


def quality(q: dict[str, Any]) -> str:
    summary = pair_list(
        [
            ("Average QA", text(q["avg_qa"])),
            ("Scored jobs", text(q["scored_jobs"])),
            ("Below their QA mark", text(q["below_threshold"])),
            ("Waiting for review", text(q["needs_review"])),
        ]
    )
    rows = [[text(r["task_type"]), text(r["jobs"]), text(r["avg_qa"])] for r in q["by_task_type"]]
    table = html_table(["Task type", "Jobs", "Avg QA"], rows, {1, 2}, "No job finished.")
    return (
        f'<section class="card" id="quality"><h2>Quality</h2>{summary}'
        f"<h3>By task type</h3>{table}</section>"
    )


def operations(ops: dict[str, Any]) -> str:
    r = ops["retries"]
    retries = pair_list(
        [
            ("Retries (attempts after a job's first)", text(r["retries"])),
            ("Failed attempts", text(r["failed_attempts"])),
            ("Attempts that lost their worker", text(r["lost_attempts"])),
            ("Jobs put back on the queue", text(r["requeued"])),
            ("of them by self-heal", text(r["requeued_by_self_heal"])),
            ("of them by people", text(r["retried_by_people"])),
        ]
    )
    dead = ops["dead"]
    dead_rows = [
        [
            text(j["id"]),
            text(j["name"]),
            text(j["task_type"]),
            text(j["error"]),
            when(j["finished_at"]),
        ]
        for j in dead["jobs"]
    ]
    error_rows = [[text(e["error"]), text(e["jobs"])] for e in dead["top_errors"]]
    alerts = ops["alerts"]
    alert_rows = [
        [
            text(a["severity"]),
            text(a["title"]),
            text(a["key"]),
            text(a["status"]),
            when(a["first_seen_at"]),
            when(a["resolved_at"]),
        ]
        for a in alerts["listed"]
    ]
    run_rows = [
        [
            text(x["task"]),
            text(x["status"]),
            text(x["trigger"]),
            when(x["started_at"]),
            text(x["error"]),
        ]
        for x in ops["failed_runs"]
    ]
    return (
        '<section class="card" id="operations"><h2>Operations</h2>'
        f"<h3>Retries</h3>{retries}"
        f"<h3>Dead jobs: {text(dead['count'])}</h3>"
        + html_table(["ID", "Name", "Type", "Error", "Finished"], dead_rows, {0}, "No job died.")
        + "<h3>Most frequent errors</h3>"
        + html_table(["Error", "Jobs"], error_rows, {1}, "None.")
        + f"<h3>Alerts: {text(alerts['opened'])} opened, "
        + f"{text(alerts['open_at_end'])} open at the end</h3>"
        + html_table(
            ["Severity", "Alert", "Key", "Status now", "First seen", "Resolved"],
            alert_rows,
            set(),
            "No alert was open.",
        )
        + "<h3>Scheduled runs that failed</h3>"
        + html_table(["Task", "Status", "Trigger", "Started", "Error"], run_rows, set(), "None.")
        + "</section>"
    )


def payments(p: dict[str, Any]) -> str:
    ageing = p["owed_ageing"]
    pairs = pair_list(
        [
            ("Billed this day", usd(p["billed"])),
            ("Paid this day", usd(p["paid"])),
            ("Owed (all time)", escape(f"${p['owed']} on {p['owed_jobs']} jobs")),
            ("Owed 0-7 days", usd(ageing["0_7d"])),
            ("Owed 8-30 days", usd(ageing["8_30d"])),
            ("Owed over 30 days", usd(ageing["over_30d"])),
        ]
    )
    return (
        f'<section class="card" id="payments"><h2>Payments</h2>{pairs}'
        f'<p class="muted">{escape(p["note"])}</p></section>'
    )


def notes(notes: list[str]) -> str:
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return f'<section class="card notes"><h2>Notes</h2><ul>{items}</ul></section>'
