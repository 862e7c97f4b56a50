"""Bar charts as inline SVG, drawn in Python: the report's HTML needs no script, no
library and no network to show them. Every text is escaped (task types and the like are
user data); each bar carries its exact value as a tooltip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 560, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 48, 56
TICKS = 5


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float]
    colour: str
    labels: list[str] | None = None  # the exact values shown in tooltips (money as text)


def _nice_step(span: float, whole: bool) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about TICKS ticks; at least 1
    for counts (no tick at 0.6 jobs)."""
    raw = max(span / TICKS, 1.0) if whole else span / TICKS
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power  # unreachable: factor 10 always fits


def _range(series: list[Series], stacked: bool, whole: bool) -> tuple[float, float]:
    if stacked:
        count = max((len(s.values) for s in series), default=0)
        highs = [sum(max(s.values[i], 0) for s in series) for i in range(count)]
        lows = [sum(min(s.values[i], 0) for s in series) for i in range(count)]
    else:
        highs = lows = [v for s in series for v in s.values]
    low, high = min([0.0, *lows]), max([0.0, *highs])
    if high == low:
        high = low + 1
    step = _nice_step(high - low, whole)
    return math.floor(low / step) * step, math.ceil(high / step) * step


def _number(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def bar_chart(
    title: str,
    categories: list[str],
    series: list[Series],
    *,
    x_label: str,
    y_label: str,
    stacked: bool = False,
    label_every: int = 1,
    whole_numbers: bool = False,
) -> str:
    """An SVG bar chart: grouped bars (or stacked ones) per category, with a title, axis
    labels, ticks and a legend. With no category it says so instead of drawing bars."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    low, high = _range(series, stacked, whole_numbers)

    def y_of(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="{LEFT}" y="18">{escape(title)}</text>',
    ]
    step = _nice_step(high - low, whole_numbers)
    for i in range(round((high - low) / step) + 1):
        value = low + i * step
        y = y_of(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_number(value))}</text>"
        )
    zero = y_of(0)
    if not categories:
        parts.append(
            f'<text class="empty" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" '
            'text-anchor="middle">No data for this day</text>'
        )
    slot = plot_w / max(len(categories), 1)
    groups = 1 if stacked else max(len(series), 1)
    bar_w = max(slot * 0.8 / groups, 1.0)
    for index, category in enumerate(categories):
        x0 = LEFT + index * slot + slot * 0.1
        up = down = 0.0
        for number, s in enumerate(series):
            value = s.values[index]
            shown = s.labels[index] if s.labels else _number(value)
            if stacked:
                base = up if value >= 0 else down
                top, bottom = (base + value, base) if value >= 0 else (base, base + value)
                up, down = (top, down) if value >= 0 else (up, bottom)
                x = x0
            else:
                top, bottom = max(value, 0), min(value, 0)
                x = x0 + number * bar_w
            y, height = y_of(top), y_of(bottom) - y_of(top)
            tip = f"{category}: {s.name} {shown}"
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{height:.1f}" fill="{s.colour}"><title>{escape(tip)}</title></rect>'
            )
        if index % label_every == 0:
            centre = LEFT + index * slot + slot / 2
            parts.append(
                f'<text class="tick" x="{centre:.1f}" y="{TOP + plot_h + 16}" '
                f'text-anchor="middle">{escape(_shorten(category))}</text>'
            )
    parts.append(
        f'<line class="axis" x1="{LEFT}" y1="{zero:.1f}" x2="{WIDTH - RIGHT}" y2="{zero:.1f}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>'
        f'<text class="axis-label" x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="axis-label" transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    parts.append(_legend(series))
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: list[Series]) -> str:
    if len(series) < 2:
        return ""
    items, x = [], WIDTH - RIGHT
    for s in reversed(series):
        width = 24 + 7 * len(s.name)
        x -= width
        items.append(
            f'<rect x="{x}" y="25" width="10" height="10" fill="{s.colour}"/>'
            f'<text class="legend" x="{x + 14}" y="34">{escape(s.name)}</text>'
        )
    return '<g class="legend">' + "".join(items) + "</g>"


def _shorten(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
