"""The daily report as one self-contained HTML page: inline CSS, charts as inline SVG, no
script and nothing fetched (its content security policy forbids it), readable on screen
and on paper. Every text from the report is escaped: job, client and task type names,
errors and alert titles are user data.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Any

from echopilot import __version__
from echopilot.reports import render_parts as parts
from echopilot.reports.charts import Series, bar_chart

COLOURS = {
    "done": "#2e7d32",
    "needs_review": "#f9a825",
    "dead": "#c62828",
    "cancelled": "#9e9e9e",
    "revenue": "#1565c0",
    "cost": "#ef6c00",
    "margin": "#00897b",
    "qa": "#6a1b9a",
}
POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 12px; }
h3 { font-size: 14px; margin: 16px 0 8px; }
.muted { color: #59636e; }
.summary { font-size: 18px; font-weight: 600; margin: 12px 0; }
.card { background: #fff; border: 1px solid #d8dee4; border-radius: 8px; padding: 16px;
  margin: 0 0 16px; }
.late { border-color: #d4a72c; background: #fff8e1; }
.late ul, .notes ul { margin: 0; padding-left: 20px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.kpi { border: 1px solid #d8dee4; border-radius: 8px; padding: 10px 12px; background: #fff; }
.kpi .label { font-size: 12px; color: #59636e; }
.kpi .value { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 540px), 1fr));
  gap: 16px; margin: 0 0 16px; }
.chart-card { margin: 0; }
svg.chart { width: 100%; height: auto; max-width: 560px; display: block; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: #1f2328; }
svg .tick, svg .legend { font-size: 11px; fill: #59636e; }
svg .axis-label { font-size: 12px; fill: #1f2328; }
svg .empty { font-size: 13px; fill: #59636e; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .axis { stroke: #8c959f; stroke-width: 1; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #eaeef2;
  vertical-align: top; }
th { font-size: 12px; color: #59636e; font-weight: 600; }
td.num, th.num { text-align: right; }
td.error { max-width: 520px; overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dt { color: #59636e; }
dd { margin: 0; font-variant-numeric: tabular-nums; }
footer { font-size: 12px; color: #59636e; margin-top: 24px; }
@media print {
  body { background: #fff; font-size: 12px; }
  main { max-width: none; padding: 0; }
  .card { break-inside: avoid; border-color: #bbb; }
  .charts { grid-template-columns: 1fr 1fr; }
}
"""


def render(report: dict[str, Any]) -> str:
    """The page of one report (the JSON document `service` writes)."""
    title = f"EchoPilot daily report {report['date']}"
    sections = [
        _header(report),
        _late(report),
        _kpis(report),
        _charts(report),
        parts.finance(report["finance"]),
        parts.quality(report["quality"]),
        parts.operations(report["operations"]),
        parts.payments(report["payments"]),
        parts.notes(report["notes"]),
    ]
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(sections)}"
        f"<footer>Made by EchoPilot {escape(__version__)}. Money in USD. The JSON file of the "
        "same name is the source of this page; the CSV file holds the same figures.</footer>"
        "</main></body></html>\n"
    )


def _header(report: dict[str, Any]) -> str:
    period = report["period"]
    state = "" if report["day_complete"] else " (the day is not over)"
    return (
        f"<header><h1>Daily report: {escape(report['date'])} (UTC){escape(state)}</h1>"
        f'<p class="summary" id="summary-line">{escape(report["summary_line"])}</p>'
        f'<p class="muted">Jobs that finished from {parts.when(period["from"])} to '
        f"{parts.when(period['to'])}. Data cut-off "
        f"<strong>{parts.when(report['cutoff'])}</strong>; "
        f"generated {parts.when(report['generated_at'])}.</p>"
        "</header>"
    )


def _late(report: dict[str, Any]) -> str:
    late = report["late_sources"]
    if not late:
        return '<section class="card"><h2>Sources</h2><p>Every source is up to date.</p></section>'
    items = "".join(f"<li>{escape(item['detail'])}</li>" for item in late)
    return (
        '<section class="card late" id="late-sources"><h2>Late sources</h2>'
        f"<ul>{items}</ul></section>"
    )


def _kpis(report: dict[str, Any]) -> str:
    f, q, ops = report["finance"], report["quality"], report["operations"]
    cards = [
        ("Jobs finished", parts.text(f["jobs"])),
        ("Submitted", parts.text(f["submitted"])),
        ("Revenue billed", parts.usd(f["revenue"])),
        ("Revenue paid", parts.usd(f["revenue_paid"])),
        ("Model cost", parts.usd(f["cost"])),
        ("Profit", parts.usd(f["profit"])),
        ("Margin", parts.pct(f["margin_pct"])),
        ("ROI", parts.text(f["roi"])),
        ("Average QA", parts.text(q["avg_qa"])),
        ("Retries", parts.text(ops["retries"]["retries"])),
        ("Dead jobs", parts.text(ops["dead"]["count"])),
        ("Owed (all time)", parts.usd(f["owed"]["amount"])),
    ]
    inner = "".join(
        f'<div class="kpi"><div class="label">{escape(label)}</div>'
        f'<div class="value">{value}</div></div>'
        for label, value in cards
    )
    return f'<section class="card"><h2>Key figures</h2><div class="kpis">{inner}</div></section>'


def _charts(report: dict[str, Any]) -> str:
    hourly = report["operations"]["hourly"]
    by_type = report["finance"]["breakdown"]["task_type"]
    with_margin = [r for r in by_type if r["margin_pct"] is not None]
    bands = report["quality"]["distribution"]
    charts = [
        bar_chart(
            "Jobs finished per hour",
            [row["hour"] for row in hourly],
            [
                Series(name.replace("_", " "), [float(row[name]) for row in hourly], COLOURS[name])
                for name in ("done", "needs_review", "dead", "cancelled")
            ],
            x_label="Hour of the day (UTC)",
            y_label="Jobs",
            stacked=True,
            label_every=3,
            whole_numbers=True,
        ),
        bar_chart(
            "Revenue and model cost by task type",
            [r["key"] for r in by_type],
            [
                _money_series("revenue", [r["revenue"] for r in by_type]),
                _money_series("cost", [r["cost"] for r in by_type]),
            ],
            x_label="Task type",
            y_label="USD",
        ),
        bar_chart(
            "Margin by task type",
            [r["key"] for r in with_margin],
            [
                Series(
                    "margin",
                    [float(Decimal(r["margin_pct"])) for r in with_margin],
                    COLOURS["margin"],
                    [f"{r['margin_pct']} %" for r in with_margin],
                )
            ],
            x_label="Task type",
            y_label="Margin (%)",
        ),
        bar_chart(
            "QA score distribution",
            [band["band"] for band in bands] if any(b["jobs"] for b in bands) else [],
            [Series("jobs", [float(band["jobs"]) for band in bands], COLOURS["qa"])],
            x_label="QA score",
            y_label="Jobs",
            whole_numbers=True,
        ),
    ]
    figures = "".join(f'<figure class="card chart-card">{svg}</figure>' for svg in charts)
    return f'<section class="charts" id="charts">{figures}</section>'


def _money_series(name: str, amounts: list[str]) -> Series:
    # Floats only place the bars; the tooltips show the exact amounts.
    return Series(
        name, [float(Decimal(a)) for a in amounts], COLOURS[name], [f"${a}" for a in amounts]
    )
