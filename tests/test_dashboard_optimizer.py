"""The price optimiser panel in a real browser, against a real `echopilot serve`: with no run
yet it says so; "Dry run now" shows each type's old and new rate, decision, reason and
30-day effect and changes nothing; after the owner applies (Operations, "Apply"), the panel
shows what was applied.

Skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from echopilot.db.engine import write_session
from echopilot.db.models import Job
from echopilot.runtime import Runtime
from tests.browser_support import (
    TEST_KEY,
    PageWatch,
    Server,
    expect,
    offline_settings,
    require_browser,
    save_screenshot,
    signed_in,
    start_server,
)


def seed_low_margin_research(runtime: Runtime) -> None:
    """20 billed research jobs at $25.00 that cost $20.00 each: a 20 % margin."""
    finished = datetime.now(UTC) - timedelta(days=1)
    with write_session(runtime.sessions) as session:
        for n in range(20):
            moment = finished - timedelta(minutes=n)
            session.add(
                Job(
                    name=f"research {n}",
                    task_type="research",
                    input="seeded",
                    status="done",
                    attempts=1,
                    qa_score=90.0,
                    price_cents=2500,
                    cost_micros=20_000_000,
                    payment_status="unpaid",
                    created_at=moment - timedelta(minutes=1),
                    finished_at=moment,
                    updated_at=moment,
                )
            )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_browser()
    settings = offline_settings(tmp_path_factory.mktemp("optimizer") / "var")
    runtime = Runtime(settings)
    try:
        runtime.migrate()
        seed_low_margin_research(runtime)
    finally:
        runtime.close()
    served = start_server(settings)
    try:
        yield served
    finally:
        served.stop()


def research_rate(server: Server) -> str:
    preview = server.api("POST", "/api/optimizer/run?dry_run=true")
    research = next(p for p in preview["proposals"] if p["task_type"] == "research")
    rate: str = research["old_rate_usd"]
    return rate


def test_a_dry_run_shows_the_proposal_and_an_apply_shows_what_changed(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    signed_in(page)
    panel = page.locator("#panel-optimizer")
    expect(panel.locator("h2")).to_have_text("Price optimiser")
    expect(panel.locator(".optimizer-head")).to_have_text("No proposal yet.")
    expect(panel.locator(".optimizer-notes")).to_contain_text("has not run yet")

    panel.get_by_role("button", name="Dry run now").click()
    row = panel.locator('tr[data-task-type="research"]')
    expect(row).to_have_attribute("data-decision", "raise")
    expect(row.locator("td.rate")).to_contain_text("$25.00 → $26.25")
    expect(row.locator("td.rate")).to_contain_text("+5.00%")
    expect(row).to_contain_text("margin 20.0% is below the target 40.0%")
    # 20 jobs in the last 30 days, each $1.25 more: +$25.00.
    expect(row.locator("td.effect")).to_contain_text("+$25.00")
    expect(row.locator("td.effect")).to_contain_text("20 jobs · $500.00 → $525.00")
    expect(panel.locator(".optimizer-head")).to_have_text(re.compile(r"^Dry run of .*nothing"))
    expect(panel.locator(".form-msg")).to_have_text("1 price change proposed.")
    expect(panel.locator('tr[data-task-type="summary"]')).to_have_attribute("data-decision", "hold")
    assert research_rate(server) == "25.000000"  # the dry run changed nothing
    save_screenshot(page, tmp_path, "optimizer-dry-run.png", panel)

    # The owner applies from the Operations panel (after its confirmation).
    page.once("dialog", lambda dialog: dialog.accept())
    operation = page.locator('#panel-operations [data-op="optimizer"]')
    operation.get_by_role("button", name="Apply").click()
    expect(operation.locator(".form-msg")).to_have_text("applied to research.")
    assert research_rate(server) == "26.250000"

    page.reload()
    expect(page.locator("#dashboard")).to_be_visible()
    expect(panel.locator(".optimizer-head")).to_have_text(re.compile(r"^Applied .*: research\.$"))
    expect(panel.locator('tr[data-task-type="research"] td.rate')).to_contain_text(
        "$25.00 → $26.25"
    )
    assert TEST_KEY not in page.content()
    posts = [r.url.split(server.netloc, 1)[1] for r in watch.requests if "/optimizer/" in r.url]
    assert "/api/optimizer/run?dry_run=true" in posts and "/api/optimizer/run" in posts
    watch.assert_clean(server.netloc)
