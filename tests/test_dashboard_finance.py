"""The finance panel in a real browser, against a real `echopilot serve`: it shows the 7-
and 30-day figures the API computes, the breakdown tables and a margin chart per task
type, and a client's name as text, never as markup.

Skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert

from echopilot.db.models import Client, Job
from tests import job_rows
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

HOSTILE_NAME = '<img src=x onerror="window.pwned=1">Acme'


def finished_job(**values: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    defaults = {
        "created_at": now - timedelta(hours=3),
        "finished_at": now - timedelta(hours=2),
        "updated_at": now,
        "payment_status": "unpaid",
    }
    return job_rows.job_row(**{**defaults, **values})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_browser()
    served = start_server(offline_settings(tmp_path_factory.mktemp("finance") / "var"))
    engine = create_engine(served.settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            client = conn.execute(
                insert(Client).returning(Client.id),
                {"name": HOSTILE_NAME, "email": "acme@example.com"},
            ).scalar_one()
            conn.execute(
                insert(Job),
                [
                    finished_job(task_type="research", price_cents=2500, cost_micros=400_000),
                    finished_job(
                        task_type="research",
                        price_cents=2500,
                        cost_micros=600_000,
                        client_id=client,
                        finished_at=datetime.now(UTC) - timedelta(days=10),
                    ),
                    # A loss: the margin chart shows a negative bar.
                    finished_job(task_type="drafting", price_cents=100, cost_micros=3_000_000),
                    finished_job(
                        task_type="summary", status="dead", payment_status="na", cost_micros=50_000
                    ),
                ],
            )
        yield served
    finally:
        engine.dispose()
        served.stop()


def test_the_finance_panel_shows_the_apis_figures_breakdowns_and_margin_chart(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    data = server.api("GET", "/api/finance-metrics")
    assert data["revenue_7d"] == "26.00" and data["revenue_30d"] == "51.00"
    signed_in(page)
    panel = page.locator("#panel-finance")
    figures = panel.locator(".finance-figures")
    expect(figures).to_be_visible()
    revenue = figures.locator('tr[data-figure="Revenue billed"] td')
    expect(revenue).to_have_text(["$26.00", "$51.00"])
    expect(figures.locator('tr[data-figure="Jobs finished"] td')).to_have_text(["3", "4"])
    expect(figures.locator('tr[data-figure="Profit"] td')).to_have_text(["$22.55", "$46.95"])
    expect(panel.locator(".finance-owed")).to_contain_text("Owed: $51.00 on 3 jobs")

    by_type = panel.locator('.finance-breakdown[data-dim="task_type"] tbody tr')
    expect(by_type).to_have_count(3)  # research, drafting and the dead summary job
    expect(by_type.first).to_contain_text("research")
    # The breakdown follows the window chosen: the 30-day one shows the client.
    client_row = panel.locator('.finance-breakdown[data-dim="client"] tbody tr', has_text="Acme")
    expect(client_row).to_contain_text(HOSTILE_NAME)
    assert page.evaluate("window.pwned") is None
    expect(panel.locator(".finance-breakdown img")).to_have_count(0)

    page.wait_for_function(
        "() => { const gd = document.getElementById('chart-margin-by-type');"
        " return gd && gd.data && gd.data.length > 0 && gd.querySelector('.main-svg'); }"
    )
    bars = page.evaluate(
        "() => { const t = document.getElementById('chart-margin-by-type').data[0];"
        " return Object.fromEntries(t.x.map((x, i) => [x, t.y[i]])); }"
    )
    assert bars["drafting"] < 0 < bars["research"]
    assert bars == {
        row["key"]: float(row["margin_pct"])
        for row in data["windows"]["30d"]["breakdown"]["task_type"]
        if row["margin_pct"] is not None
    }
    save_screenshot(page, tmp_path, "finance-panel.png", panel)
    watch.assert_clean(server.netloc)
