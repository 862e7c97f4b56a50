"""The brief as a printable HTML page and as Markdown.

The page is self-contained: inline CSS, charts as inline PNG images (data: URIs in the
file; cid: references in the email, which carries them as parts), no script, nothing
fetched. Every text is escaped: task types, client names and alert titles are user data.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any

from echopilot import __version__
from echopilot.briefs.figures import Figure
from echopilot.reports.render_html import CSS as REPORT_CSS

POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:; base-uri 'none'; "
    "form-action 'none'"
)
CSS = (
    REPORT_CSS
    + """
.lede { font-size: 16px; margin: 8px 0; }
.headline { font-size: 24px; font-weight: 700; margin: 8px 0; }
.headline.high { color: #b42318; }
.headline.medium { color: #9a6700; }
.headline.ok { color: #1a7f37; }
.risk { border-left: 4px solid #d8dee4; padding: 8px 12px; margin: 0 0 12px; }
.risk.high { border-color: #b42318; }
.risk.medium { border-color: #d4a72c; }
.risk.low { border-color: #8c959f; }
.risk h3 { margin: 0 0 6px; }
.sev { font-size: 11px; font-weight: 700; text-transform: uppercase; margin-right: 6px; }
.fix { margin: 6px 0 0; }
img.chart { width: 100%; max-width: 560px; height: auto; display: block; }
figure { margin: 0; }
figcaption { font-size: 12px; color: #59636e; margin-top: 4px; }
"""
)
WORDS = {"high": "high", "medium": "medium", "low": "low"}


def data_uri(figure: Figure) -> str:
    return "data:image/png;base64," + base64.b64encode(figure.png).decode("ascii")


def html(
    brief: dict[str, Any],
    figures: list[Figure],
    image_src: Callable[[Figure], str] = data_uri,
) -> str:
    """The page; `image_src` says how a chart is referenced (data: URI or cid:)."""
    title = f"EchoPilot CEO brief {brief['cutoff'][:10]}"
    body = [
        _header(brief),
        _freshness(brief),
        _kpis(brief),
        _charts(figures, image_src),
        _risks(brief),
        _actions("Next 24 hours", brief["actions_next_24h"]),
        _actions("Next 7 days", brief["actions_next_7d"]),
        _alerts(brief),
        _confidence(brief),
        f"<footer>EchoPilot {escape(__version__)} · brief {escape(brief['stamp'])} · "
        "every number is computed from the database; a model only writes the prose.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def _tone(brief: dict[str, Any]) -> str:
    counts = brief["counts"]
    return "high" if counts["high"] else "medium" if counts["total"] else "ok"


def _header(brief: dict[str, Any]) -> str:
    narrative = brief["narrative"]
    source = (
        f"summary written by the model {narrative['model']}, checked against the numbers"
        if narrative["source"] == "model"
        else "deterministic summary" + (f" ({narrative['reason']})" if narrative["reason"] else "")
    )
    return (
        '<section class="card">'
        f"<h1>EchoPilot CEO brief</h1>"
        f'<p class="muted">Generated {escape(when(brief["generated_at"]))} · data to '
        f"{escape(when(brief['cutoff']))} · provider: {escape(str(brief['provider']))}</p>"
        f'<p class="headline {_tone(brief)}">{escape(brief["headline"])}</p>'
        f'<p class="lede">{escape(brief["summary"])}</p>'
        f'<p class="muted">{escape(source)}</p></section>'
    )


def _freshness(brief: dict[str, Any]) -> str:
    fresh = brief["freshness"]
    if not fresh["late"]:
        return f'<section class="card"><p>{escape(fresh["line"])}</p></section>'
    items = "".join(f"<li>{escape(item['detail'])}</li>" for item in fresh["late"])
    return (
        '<section class="card late"><h2>Freshness</h2>'
        f"<p>Data to {escape(when(fresh['cutoff']))}. Late or missing:</p><ul>{items}</ul>"
        "</section>"
    )


KPI_LABELS = (
    ("revenue", "Revenue billed", " USD"),
    ("revenue_paid", "Revenue paid", " USD"),
    ("cost", "Model cost", " USD"),
    ("profit", "Profit", " USD"),
    ("margin_pct", "Margin", " %"),
    ("roi", "ROI", ""),
    ("jobs", "Jobs finished", ""),
    ("avg_qa", "Average QA", ""),
    ("failure_rate_pct", "Dead jobs", " %"),
    ("p95_latency_ms", "p95 processing", " ms"),
)


def _value(value: Any, unit: str) -> str:
    return "n/a" if value is None else f"{value}{unit}"


def _kpis(brief: dict[str, Any]) -> str:
    k = brief["kpis"]
    rows = "".join(
        f'<tr><td>{escape(label)}</td><td class="num">{escape(_value(k["7d"][key], unit))}</td>'
        f'<td class="num">{escape(_value(k["30d"][key], unit))}</td></tr>'
        for key, label, unit in KPI_LABELS
    )
    extra = (
        f"<dl><dt>Owed</dt><dd>{escape(str(k['owed']))} USD over {k['owed_jobs']} jobs</dd>"
        f"<dt>New clients, 7 days</dt><dd>{k['new_clients_7d']}</dd>"
        f"<dt>Open alerts</dt><dd>{k['open_alerts']}</dd></dl>"
    )
    return (
        '<section class="card"><h2>KPIs</h2><table><thead><tr><th></th>'
        '<th class="num">7 days</th><th class="num">30 days</th></tr></thead>'
        f"<tbody>{rows}</tbody></table><h3>Also</h3>{extra}</section>"
    )


def _charts(figures: list[Figure], image_src: Callable[[Figure], str]) -> str:
    cards = "".join(
        f'<figure class="card chart-card"><img class="chart" src="{escape(image_src(f))}" '
        f'alt="{escape(f.title)}" width="560" height="280"><figcaption>{escape(f.caption)}'
        "</figcaption></figure>"
        for f in figures
    )
    return f'<section class="charts">{cards}</section>'


def when(moment: str | None) -> str:
    """An ISO time as people read it: 2026-12-03 08:00 UTC."""
    if not moment:
        return "n/a"
    return f"{datetime.fromisoformat(moment):%Y-%m-%d %H:%M} UTC"


def evidence_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return "; ".join(", ".join(f"{k} {v}" for k, v in item.items()) for item in value)
        return ", ".join(str(v) for v in value) if value else "none"
    return "n/a" if value is None else str(value)


def _risks(brief: dict[str, Any]) -> str:
    risks = brief["top_risks"]
    if not risks:
        return '<section class="card"><h2>Top risks</h2><p>None found.</p></section>'
    parts = []
    for r in risks:
        rows = "".join(
            f"<dt>{escape(key.replace('_', ' '))}</dt><dd>{escape(evidence_text(value))}</dd>"
            for key, value in r["evidence"].items()
        )
        parts.append(
            f'<div class="risk {escape(r["severity"])}"><h3><span class="sev">'
            f"{escape(r['severity'])}</span>{escape(r['title'])}</h3>"
            f'<p class="muted">{escape(r["domain"])} · {escape(r["type"])} · '
            f"{escape(r['signal'])}</p><dl>{rows}</dl>"
            f'<p class="fix"><strong>Suggested fix:</strong> {escape(r["suggested_fix"])}</p></div>'
        )
    more = f'<p class="muted">And {brief["other_risks"]} more.</p>' if brief["other_risks"] else ""
    return f'<section class="card"><h2>Top risks</h2>{"".join(parts)}{more}</section>'


def _actions(title: str, actions: list[dict[str, Any]]) -> str:
    if not actions:
        return f'<section class="card"><h2>{escape(title)}</h2><p>Nothing to do.</p></section>'
    rows = "".join(
        f"<tr><td>{escape(a['priority'])}</td><td>{escape(a['task'])}</td>"
        f'<td>{escape(a["owner"])}</td><td class="num">{a["eta_hours"]} h</td></tr>'
        for a in actions
    )
    return (
        f'<section class="card"><h2>{escape(title)}</h2><table><thead><tr><th>Priority</th>'
        '<th>Task</th><th>Owner</th><th class="num">Within</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def _alerts(brief: dict[str, Any]) -> str:
    alerts = brief["open_alerts"]
    if not alerts["open"]:
        return ""
    rows = "".join(
        f"<tr><td>{escape(a['severity'])}</td><td>{escape(a['title'])}</td>"
        f"<td>{escape(str(a['since']))}</td></tr>"
        for a in alerts["items"]
    )
    return (
        f'<section class="card"><h2>Open alerts ({alerts["open"]})</h2><table><thead><tr>'
        "<th>Severity</th><th>Alert</th><th>Since</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _confidence(brief: dict[str, Any]) -> str:
    c = brief["confidence"]
    notes = "".join(f"<li>{escape(n)}</li>" for n in c["notes"])
    return (
        f'<section class="card notes"><h2>Confidence: {escape(c["level"])} ({c["score"]})</h2>'
        '<p class="muted">From data coverage, not from a model.</p>'
        f"{'<ul>' + notes + '</ul>' if notes else ''}</section>"
    )


# --- Markdown ----------------------------------------------------------------------------


def _md(text: Any) -> str:
    """User text made inert in Markdown: no markup, links or HTML from data."""
    out = str(text).replace("\\", "\\\\")
    for char in "`*_[]<>#|":
        out = out.replace(char, "\\" + char)
    return " ".join(out.split())


def markdown(brief: dict[str, Any], figures: list[Figure]) -> str:
    k = brief["kpis"]
    lines = [
        f"# EchoPilot CEO brief: {_md(brief['headline'])}",
        "",
        f"Generated {when(brief['generated_at'])}, data to {when(brief['cutoff'])}, "
        f"provider: {_md(brief['provider'])}, summary: {brief['narrative']['source']}.",
        "",
        _md(brief["summary"]),
        "",
        f"**Freshness:** {_md(brief['freshness']['line'])}",
        "",
        "## KPIs",
        "",
        "| | 7 days | 30 days |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {label} | {_value(k['7d'][key], unit)} | {_value(k['30d'][key], unit)} |"
        for key, label, unit in KPI_LABELS
    ]
    lines += [
        "",
        f"Owed {k['owed']} USD over {k['owed_jobs']} jobs; new clients in 7 days "
        f"{k['new_clients_7d']}; open alerts {k['open_alerts']}.",
        "",
        "## Top risks",
        "",
    ]
    if not brief["top_risks"]:
        lines.append("None found.")
    for r in brief["top_risks"]:
        lines.append(f"### {r['severity'].upper()}: {_md(r['title'])}")
        lines.append("")
        lines += [
            f"- {key.replace('_', ' ')}: {_md(evidence_text(value))}"
            for key, value in r["evidence"].items()
        ]
        lines += ["", f"Suggested fix: {_md(r['suggested_fix'])}", ""]
    for title, actions in (
        ("Next 24 hours", brief["actions_next_24h"]),
        ("Next 7 days", brief["actions_next_7d"]),
    ):
        lines += ["", f"## {title}", ""]
        if not actions:
            lines.append("Nothing to do.")
        lines += [
            f"- **{a['priority']}** {_md(a['task'])} (owner: {a['owner']}, within "
            f"{a['eta_hours']} h)"
            for a in actions
        ]
    c = brief["confidence"]
    lines += ["", f"## Confidence: {c['level']} ({c['score']})", ""]
    lines += [f"- {_md(n)}" for n in c["notes"]] or ["- every source covered"]
    lines += [
        "",
        "Charts: " + ", ".join(f.title for f in figures) + " (in the HTML brief).",
        "",
    ]
    return "\n".join(lines)


def plain_text(brief: dict[str, Any]) -> str:
    """The email's plain-text alternative."""
    lines = [brief["headline"], "", brief["summary"], "", brief["freshness"]["line"], ""]
    for title, actions in (
        ("Next 24 hours", brief["actions_next_24h"]),
        ("Next 7 days", brief["actions_next_7d"]),
    ):
        if actions:
            lines.append(f"{title}:")
            lines += [f"- [{a['priority']}] {a['task']} ({a['owner']})" for a in actions]
            lines.append("")
    if brief["top_risks"]:
        lines.append("Top risks:")
        lines += [f"- {r['severity'].upper()}: {r['title']}" for r in brief["top_risks"]]
        lines.append("")
    lines.append(f"Confidence: {brief['confidence']['level']} ({brief['confidence']['score']})")
    return "\n".join(lines) + "\n"
