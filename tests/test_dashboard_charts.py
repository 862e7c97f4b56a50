"""The dashboard's charts in a real browser, on a server whose history covers only the last
12 of the 30 days charted: days with no jobs are gaps, the model cost has its own axis (a
day's cost reads in cents beside hundreds of dollars of revenue), and the hover shows every
amount in dollars with 2 decimals.

Skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import (
    PageWatch,
    Server,
    expect,
    offline_settings,
    require_browser,
    save_screenshot,
    signed_in,
    start_server,
    wait_for_charts,
)
from tests.conftest import run_cli

SEEDED_DAYS = 12
AMOUNT = re.compile(r"\$-?[\d,]+(?:\.\d+)?")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_browser()
    settings = offline_settings(tmp_path_factory.mktemp("charts") / "var")
    run_cli(
        settings,
        "demo",
        "seed",
        "--days",
        str(SEEDED_DAYS),
        "--jobs-per-day",
        "6",
        "--json",
        check=True,
    )
    served = start_server(settings)
    yield served
    served.stop()


def days_with_jobs(server: Server) -> list[bool]:
    days = server.api("GET", "/api/metrics/daily?days=30")["days"]
    return [any(count > 0 for count in day["jobs"].values()) for day in days]


def trace_values(page: Any, chart: str) -> dict[str, list[Any]]:
    return dict(
        page.evaluate(
            "id => document.getElementById(id).data.map(t => [t.name, Array.from(t.y)])",
            chart,
        )
    )


def test_days_without_jobs_are_gaps_not_zero_points(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    with_jobs = days_with_jobs(server)
    assert len(with_jobs) == 30
    assert sum(with_jobs) == SEEDED_DAYS and not with_jobs[0] and not with_jobs[-1]
    signed_in(page)
    wait_for_charts(page)

    for chart in ("chart-money", "chart-qa", "chart-jobs", "chart-latency"):
        for name, values in trace_values(page, chart).items():
            if name.startswith("threshold"):
                continue
            assert len(values) == 30, (chart, name)
            empty = [v for v, has in zip(values, with_jobs, strict=True) if not has]
            assert empty == [None] * (30 - SEEDED_DAYS), (chart, name, values)
    money = trace_values(page, "chart-money")
    assert all(v is not None for v, has in zip(money["profit"], with_jobs, strict=True) if has), (
        money["profit"]
    )

    # What the reader sees: profit markers only on the days with jobs, no line along zero
    # through the empty days.
    markers = page.locator("#chart-money .scatterlayer .trace .points path")
    expect(markers).to_have_count(SEEDED_DAYS)
    qa_markers = page.locator("#chart-qa .scatterlayer .trace").first.locator(".points path")
    assert qa_markers.count() <= SEEDED_DAYS
    save_screenshot(page, tmp_path, "charts-gaps.png", page.locator(".charts"))
    watch.assert_clean(server.netloc)


def test_the_cost_has_its_own_axis_so_a_days_cost_is_readable(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    signed_in(page)
    wait_for_charts(page)
    chart = page.locator("#chart-money")
    chart.scroll_into_view_if_needed()
    axes = page.evaluate(
        "() => document.getElementById('chart-money').data.map(t => [t.name, t.yaxis || 'y'])"
    )
    assert [axis for _, axis in axes] == ["y", "y2", "y"], axes
    ticks = chart.locator(".y2tick text")
    expect(ticks.first).to_be_visible()
    assert all(text.startswith("$") for text in ticks.all_text_contents())
    expect(chart.locator(".g-y2title")).to_contain_text("cost")

    # The tallest cost bar fills a good part of the plot, though a day's cost is cents and
    # its revenue tens or hundreds of dollars.
    plot_area = chart.locator(".draglayer .xy .nsewdrag").bounding_box()
    cost_bars = chart.locator(".barlayer .trace").nth(1).locator(".point path")
    tallest = max(cost_bars.nth(i).bounding_box()["height"] for i in range(cost_bars.count()))
    assert tallest >= 0.4 * plot_area["height"], (tallest, plot_area)
    revenue = max(float(v) for v in trace_values(page, "chart-money")["revenue"] if v)
    cost = max(float(v) for v in trace_values(page, "chart-money")["cost (right axis)"] if v)
    assert revenue > 100 * cost  # the case that hid the cost on a shared axis
    save_screenshot(page, tmp_path, "chart-money.png", chart)
    watch.assert_clean(server.netloc)


def test_the_money_hover_shows_dollars_with_two_decimals(page: Any, server: Server) -> None:
    signed_in(page)
    wait_for_charts(page)
    chart = page.locator("#chart-money")
    chart.scroll_into_view_if_needed()
    bars = chart.locator(".barlayer .trace").first.locator(".point path")
    boxes = [bars.nth(i).bounding_box() for i in range(bars.count())]
    box = max(boxes, key=lambda b: b["height"])  # a day with revenue, cost and profit
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = chart.locator(".hoverlayer")
    expect(hover).to_contain_text("cost")
    texts = hover.locator("text").all_text_contents()
    amounts = AMOUNT.findall(" ".join(texts))
    assert len(amounts) == 3, texts  # revenue, cost, profit
    assert all(re.fullmatch(r"\$-?[\d,]+\.\d{2}", a) for a in amounts), amounts
