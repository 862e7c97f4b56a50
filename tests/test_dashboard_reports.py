"""The dashboard's Daily report panel in a real browser, against a real `echopilot serve`:
with no report it says so; "Run now" writes yesterday's report and shows its summary line,
day and cut-off; a second run replaces that day's report.

Skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from echopilot.clock import utcnow
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

SUMMARY = re.compile(r"^Jobs \d+ \| QA (\d+\.\d|n/a) % \| ROI (-?\d+\.\d\d|n/a) \| Retries \d+$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with no report yet and no alert channel (the summary goes to the log)."""
    require_browser()
    served = start_server(offline_settings(tmp_path_factory.mktemp("reports") / "var"))
    try:
        yield served
    finally:
        served.stop()


def test_run_now_writes_yesterdays_report_and_shows_its_summary(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
    signed_in(page)
    panel = page.locator("#panel-reports")
    expect(panel).to_contain_text("Daily report")
    expect(panel.locator(".report-summary")).to_have_text("No daily report yet: run one.")

    panel.get_by_role("button", name="Run now").click()
    expect(panel.locator(".form-msg")).to_have_text(f"Report for {yesterday} written.")
    summary = panel.locator(".report-summary")
    expect(summary).to_have_text(SUMMARY)
    expect(summary).to_have_attribute("data-date", yesterday)
    expect(panel.locator(".report-meta")).to_contain_text(f"Day {yesterday} (UTC)")
    expect(panel.locator(".report-meta")).to_contain_text("data cut-off")
    expect(panel.locator(".report-late")).to_contain_text("Late: payments not reconciled")
    save_screenshot(page, tmp_path, "dashboard-daily-report.png", panel)

    panel.get_by_role("button", name="Run now").click()
    expect(panel.locator(".form-msg")).to_have_text(f"Report for {yesterday} written again.")
    listed = server.api("GET", "/api/reports/daily")["reports"]
    assert [r["date"] for r in listed] == [yesterday]
    latest = server.api("GET", "/api/reports/daily/latest")
    expect(summary).to_have_text(latest["summary_line"])
    folder = server.settings.home / "reports" / "daily"
    stamp = yesterday.replace("-", "")
    assert sorted(p.name for p in folder.glob("daily_report_*")) == [
        f"daily_report_{stamp}.{kind}" for kind in ("csv", "html", "json")
    ]
    posts = [r for r in watch.requests if "/api/reports/daily" in r.url and r.method == "POST"]
    assert len(posts) == 2
    watch.assert_clean(server.netloc)
