"""The soak's report: summary.json (the figures) and summary.html (a timeline of faults,
alerts and recoveries, one row a day), written to var/reports/soak/ of the checkout."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.soak.world import Mark

COLOURS = {
    "fault": "#c0392b",
    "alert": "#d68910",
    "recovery": "#1e8449",
    "resolved": "#1e8449",
    "payment": "#2874a6",
    "day": "#5d6d7e",
}


def write(folder: Path, figures: dict[str, Any], marks: list[Mark]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = {**figures, "timeline": [m.as_dict() for m in marks]}
    summary = folder / "summary.json"
    summary.write_text(json.dumps(data, indent=2, default=str) + "\n")
    page = folder / "summary.html"
    page.write_text(_page(figures, marks))
    return summary, page


def _page(figures: dict[str, Any], marks: list[Mark]) -> str:
    by_day: dict[str, list[Mark]] = defaultdict(list)
    for mark in marks:
        by_day[mark.at.date().isoformat()].append(mark)
    rows = []
    for day, entries in sorted(by_day.items()):
        cells = []
        for mark in entries:
            if mark.kind == "day":
                continue
            left = (mark.at.hour * 60 + mark.at.minute) / 14.4  # % of the day
            colour = COLOURS.get(mark.kind, "#333")
            label = html.escape(f"{mark.at:%H:%M} {mark.kind}: {mark.text}")
            cells.append(
                f'<span class="dot" style="left:{left:.1f}%;background:{colour}" '
                f'title="{label}"></span>'
            )
        notes = "".join(
            f'<li style="color:{COLOURS.get(m.kind, "#333")}">{html.escape(f"{m.at:%H:%M}")} '
            f"{html.escape(m.kind)}: {html.escape(m.text)}</li>"
            for m in entries
        )
        rows.append(
            f"<tr><th>{html.escape(day)}</th><td><div class='strip'>{''.join(cells)}</div>"
            f"<ul>{notes}</ul></td></tr>"
        )
    headline = {k: v for k, v in figures.items() if not isinstance(v, dict | list)}
    facts = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in headline.items()
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>EchoPilot soak</title><style>"
        "body{font:14px system-ui,sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse}th,td{padding:4px 8px;vertical-align:top;"
        "border-bottom:1px solid #eee;text-align:left}"
        ".strip{position:relative;height:14px;width:600px;background:#f4f6f7;margin:4px 0}"
        ".dot{position:absolute;top:2px;width:10px;height:10px;border-radius:5px}"
        "ul{margin:0;padding-left:18px}</style></head><body>"
        "<h1>EchoPilot: a simulated month</h1>"
        f"<table>{facts}</table><h2>Timeline</h2><table>{''.join(rows)}</table>"
        "</body></html>\n"
    )
