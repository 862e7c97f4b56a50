"""The dashboard's layout at common screen sizes, in a real browser: the automations table
fits its card (every "Run now" button visible without scrolling inside the card) and the
health badges show their whole text (no ellipsis, nothing cut).

Skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1. Screenshots go to test-results/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import (
    LAPTOP,
    PHONE,
    WIDE,
    PageWatch,
    Server,
    expect,
    offline_settings,
    open_page,
    require_browser,
    save_screenshot,
    signed_in,
    start_server,
)
from tests.conftest import run_cli

SIZES = {"1440x900": WIDE, "1280x800": LAPTOP, "390x844": PHONE}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_browser()
    settings = offline_settings(tmp_path_factory.mktemp("layout") / "var")
    run_cli(settings, "demo", "seed", "--days", "3", "--json", check=True)
    served = start_server(settings)
    # A run with a long result, so the result column has text to fit.
    try:  # the server is stopped even when the set-up below fails
        served.api("POST", "/api/automations/run/retention")
        # A brief, so the CEO brief panel is laid out with content too.
        served.api("POST", "/api/exec/brief")
        yield served
    finally:
        served.stop()


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


@pytest.mark.parametrize("size", SIZES)
def test_every_run_now_button_is_inside_the_automations_card(
    browser: Any, server: Server, tmp_path: Path, size: str
) -> None:
    watch = PageWatch()
    with open_page(browser, server, watch, SIZES[size]) as page:
        signed_in(page)
        card = page.locator("#panel-automations")
        tasks = server.api("GET", "/api/automations/status")["schedule"]
        rows = card.locator("tbody tr")
        expect(rows).to_have_count(len(tasks))
        expect(card.locator('tr[data-task="retention"]')).to_contain_text("keeping the newest")
        card.scroll_into_view_if_needed()

        card_box = card.bounding_box()
        for n in range(rows.count()):
            run = rows.nth(n).get_by_role("button", name="Run now")
            expect(run).to_be_visible()
            box = run.bounding_box()
            assert inside(box, card_box), (size, n, box, card_box)
        # Nothing scrolls sideways inside the card: all of it is in view.
        scrolled = page.evaluate(
            """() => [...document.querySelectorAll('#panel-automations *')]
                .filter(e => !e.classList.contains('visually-hidden')
                             && getComputedStyle(e).overflowX !== 'visible'
                             && e.scrollWidth > e.clientWidth + 1)
                .map(e => e.className)"""
        )
        assert scrolled == [], scrolled
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        save_screenshot(page, tmp_path, f"automations-{size}.png", card)
        watch.assert_clean(server.netloc)


@pytest.mark.parametrize("size", SIZES)
def test_health_badges_show_their_whole_text(
    browser: Any, server: Server, tmp_path: Path, size: str
) -> None:
    watch = PageWatch()
    with open_page(browser, server, watch, SIZES[size]) as page:
        signed_in(page)
        badges = page.locator("#health .badge-card")
        expect(badges).to_have_count(6)
        expect(page.locator('[data-badge="ai-provider"] .badge-detail')).to_be_visible()
        cut = page.evaluate(
            """() => [...document.querySelectorAll('#health .badge-card, #health .badge-card *')]
                .filter(e => e.scrollWidth > e.clientWidth
                             || getComputedStyle(e).textOverflow === 'ellipsis')
                .map(e => e.className + ': ' + e.textContent)"""
        )
        assert cut == [], cut
        for n in range(badges.count()):
            badge = badges.nth(n)
            box = badge.bounding_box()
            for part in badge.locator(".badge-label, .badge-value, .badge-detail").all():
                assert inside(part.bounding_box(), box), (size, part.text_content())
        save_screenshot(page, tmp_path, f"health-{size}.png", page.locator("#health"))
        watch.assert_clean(server.netloc)
