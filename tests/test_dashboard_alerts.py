"""The alerts panel and the self-heal dry run in a real browser, against a real `echopilot
serve`: "Check now" opens an alert for a condition that holds (jobs wait, no worker), and
after the condition clears another check shows it resolved; the operations panel's
self-heal "Dry run" shows its result and changes nothing.

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
)

JOB = {
    "name": "waiting for a worker",
    "task_type": "summary",
    "input": "Summarise the quarterly figures for the board.",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with no worker and no alert channel (alerts go to the log)."""
    require_browser()
    served = start_server(offline_settings(tmp_path_factory.mktemp("alerts") / "var"))
    try:
        yield served
    finally:
        served.stop()


def check_now(panel: Any) -> None:
    button = panel.get_by_role("button", name="Check now")
    button.click()
    # The button is busy while the check runs, then the panel refreshes.
    expect(button).to_be_enabled()
    expect(panel.locator(".form-msg.error")).to_have_count(0)


def test_check_now_opens_an_alert_and_a_later_check_shows_it_resolved(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    job = server.api("POST", "/api/jobs", json=JOB)
    assert job["status"] == "queued"
    signed_in(page)
    panel = page.locator("#panel-alerts")
    expect(panel.get_by_role("button", name="Check now")).to_be_visible()
    expect(panel.locator(".alerts-open li[data-key]")).to_have_count(0)
    expect(panel.locator(".alerts-target")).to_contain_text("alerts go to the log only")

    check_now(panel)
    opened = panel.locator('.alerts-open li[data-key="no_live_worker"]')
    expect(opened).to_be_visible()
    expect(opened).to_have_attribute("data-status", "open")
    expect(opened).to_contain_text("high")
    expect(opened).to_contain_text("no live worker while 1 job waits")
    expect(panel.locator(".alerts-target")).to_contain_text("Last check:")
    listed = server.api("GET", "/api/alerts")
    assert [a["key"] for a in listed["open"]] == ["no_live_worker"]
    save_screenshot(page, tmp_path, "alerts-open.png", panel)

    # The condition clears: the only waiting job is cancelled.
    server.api("POST", f"/api/jobs/{job['id']}/cancel")
    check_now(panel)
    expect(opened).to_have_count(0)
    resolved = panel.locator('.alerts-recent li[data-status="resolved"]')
    expect(resolved).to_have_count(1)
    expect(resolved).to_have_attribute("data-key", "no_live_worker")
    expect(resolved).to_contain_text("resolved")
    expect(resolved).to_contain_text("no live worker while 1 job waits")
    expect(panel.locator(".alerts-open")).to_contain_text("No open alerts.")
    listed = server.api("GET", "/api/alerts")
    assert listed["open"] == []
    assert [(a["key"], a["status"]) for a in listed["recent"]] == [("no_live_worker", "resolved")]
    save_screenshot(page, tmp_path, "alerts-resolved.png", panel)

    triggers = [r for r in watch.requests if r.url.endswith("/api/alerts/trigger")]
    assert [r.method for r in triggers] == ["POST", "POST"]
    watch.assert_clean(server.netloc)


def test_the_self_heal_dry_run_shows_its_result_and_changes_nothing(
    page: Any, server: Server, watch: PageWatch
) -> None:
    job = server.api("POST", "/api/jobs", json={**JOB, "name": "left alone by a dry run"})
    before = server.api("GET", f"/api/jobs/{job['id']}")
    signed_in(page)
    row = page.locator('#panel-operations li.op[data-op="self_heal"]')
    dry_run = row.get_by_role("button", name="Dry run")
    expect(dry_run).to_be_visible()

    dry_run.click()
    expect(row.locator(".form-msg")).to_have_text(re.compile(r"^retried \d+, recovered \d+ stuck"))
    output = page.locator("#panel-operations .op-output")
    expect(output).to_be_visible()
    expect(output).to_contain_text("Self-heal (dry run)")

    posts = [r for r in watch.requests if "/api/self-heal" in r.url]
    assert [(r.method, r.url.split(server.netloc, 1)[1]) for r in posts] == [
        ("POST", "/api/self-heal?dry_run=true")
    ]
    after = server.api("GET", f"/api/jobs/{job['id']}")
    assert after["status"] == before["status"] == "queued"
    assert after["attempts"] == before["attempts"]
    watch.assert_clean(server.netloc)
