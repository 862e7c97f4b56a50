"""The daily report as CSV: a header, then one row per figure (section, key, metric,
value), flattened from the JSON document in its order.

A list's rows are keyed by their first field (a task type, a job id, an hour). No cell
starts with = + - @ or a tab or carriage return: a spreadsheet would run such a cell as a
formula (client names and errors are user data), so those get a leading apostrophe,
which spreadsheets show as text: a negative amount reads '-1.50.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

HEADER = ("section", "key", "metric", "value")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Row = tuple[str, str, str, Any]


def safe_cell(value: Any) -> str:
    """A value as a CSV cell that no spreadsheet reads as a formula."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def rows(report: dict[str, Any]) -> Iterator[Row]:
    for name, value in report.items():
        if isinstance(value, dict):
            yield from _from_dict(name, value, "")
        elif isinstance(value, list):
            yield from _from_list(name, value)
        else:
            yield "report", "", name, value


def _from_dict(section: str, values: dict[str, Any], key: str) -> Iterator[Row]:
    for name, value in values.items():
        if isinstance(value, dict):
            yield from _from_dict(f"{section}.{name}", value, key)
        elif isinstance(value, list):
            yield from _from_list(f"{section}.{name}", value)
        else:
            yield section, key, name, value


def _from_list(section: str, items: list[Any]) -> Iterator[Row]:
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or not item:
            yield section, str(number), "value", item
            continue
        (_, first), *rest = item.items()
        key = str(first) if first not in (None, "") else "(none)"
        yield from _from_dict(section, dict(rest), key)


def render(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in rows(report):
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()
