"""The payments panel in a real browser, against a real `echopilot serve` with no Stripe key:
it says Stripe is off and which setting turns it on, shows the counts by payment status and
the 7- and 30-day money the API computes, lists the jobs that still owe (with their link
and last problem), and "Mark paid" takes a job off that list and adds its price to the
money received. Job names and client emails with markup are shown as text.

Skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert

from echopilot.db.models import Client, Job, JobPayment, Payment
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

HOSTILE_NAME = '<img src=x onerror="window.pwned=1">Logo pack'
HOSTILE_EMAIL = '<img src=x onerror="window.pwned=2">@example.com'
LINK = "https://buy.stripe.com/test_owed_link"
BAD_LINK = "javascript:window.pwned=3"
DECLINED = "Your card was declined."


def billed_job(hours_ago: float, **values: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    defaults = {
        "created_at": now - timedelta(hours=hours_ago + 1),
        "finished_at": now - timedelta(hours=hours_ago),
        "updated_at": now,
    }
    return job_rows.job_row(**{**defaults, **values})


def ledger_row(job_id: int, key: str, cents: int, days_ago: float, kind: str) -> dict[str, Any]:
    moved = datetime.now(UTC) - timedelta(days=days_ago)
    return {
        "entry_key": key,
        "job_id": job_id,
        "kind": kind,
        "amount_cents": cents,
        "currency": "usd",
        "method": "manual",
        "status": "succeeded",
        "moved_at": moved,
        "recorded_at": moved,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Three jobs that owe (Stripe off, a link out, a failed payment), one paid this week,
    one paid 10 days ago and partly refunded since, and one not billed."""
    require_browser()
    served = start_server(offline_settings(tmp_path_factory.mktemp("payments") / "var"))
    engine = create_engine(served.settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            client = conn.execute(
                insert(Client).returning(Client.id), {"name": "Acme", "email": HOSTILE_EMAIL}
            ).scalar_one()
        ids = job_rows.insert_rows(
            engine,
            Job,
            [
                billed_job(
                    1,
                    name=HOSTILE_NAME,
                    client_id=client,
                    price_cents=2500,
                    payment_status="not_configured",
                ),
                billed_job(
                    2,
                    name="Market scan",
                    price_cents=1200,
                    payment_status="unpaid",
                    payment_link=LINK,
                ),
                billed_job(
                    3,
                    name="Churn memo",
                    price_cents=900,
                    payment_status="payment_failed",
                    payment_link=BAD_LINK,
                ),
                billed_job(50, name="Paid brief", price_cents=4000, payment_status="paid"),
                billed_job(
                    250, name="Refunded deck", price_cents=1500, payment_status="partially_refunded"
                ),
                billed_job(4, name="Under review", status="needs_review", price_cents=700),
            ],
        )
        with engine.begin() as conn:
            conn.execute(
                insert(JobPayment),
                {
                    "job_id": ids[2],
                    "idempotency_key": "link-test-3",
                    "link_url": BAD_LINK,
                    "failure": DECLINED,
                    "failed_at": datetime.now(UTC) - timedelta(hours=2),
                    "updated_at": datetime.now(UTC),
                },
            )
            conn.execute(
                insert(Payment),
                [
                    ledger_row(ids[3], "manual:test:1", 4000, 2, "payment"),
                    ledger_row(ids[4], "manual:test:2", 1500, 10, "payment"),
                    ledger_row(ids[4], "refund:test:2", -500, 9, "refund"),
                ],
            )
        yield served
    finally:
        engine.dispose()
        served.stop()


def test_the_payments_panel_shows_the_apis_figures_and_marks_an_owed_job_paid(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    overview = server.api("GET", "/api/payments/status")
    assert overview["configured"] is False and overview["webhook_configured"] is False
    assert overview["paid_7d"]["received"] == "40.00" and overview["paid_7d"]["net"] == "40.00"
    assert overview["paid_30d"] == {
        "received": "55.00",
        "refunded": "5.00",
        "disputed": "0.00",
        "reinstated": "0.00",
        "net": "50.00",
    }
    owed = server.api("GET", "/api/payments?status=owed&limit=20")["jobs"]
    assert [j["name"] for j in owed] == [HOSTILE_NAME, "Market scan", "Churn memo"]
    hostile, unpaid, failed = (j["id"] for j in owed)

    signed_in(page)
    panel = page.locator("#panel-payments")
    expect(panel.locator("h2")).to_have_text("Payments")
    config = panel.locator(".pay-config")
    expect(config).to_contain_text("Stripe is off: set STRIPE_SECRET_KEY")
    expect(config).to_contain_text("set STRIPE_WEBHOOK_SECRET")
    expect(panel.get_by_role("button", name="Reconcile now")).to_have_count(0)
    expect(panel.locator(".pay-freshness")).to_have_text(overview["freshness"])
    assert "STRIPE_SECRET_KEY" in overview["freshness"]
    expect(panel.locator(".pay-reconcile")).to_have_text("")

    figures = panel.locator(".pay-figures")
    expect(figures.locator('tr[data-figure="received"] td')).to_have_text(["$40.00", "$55.00"])
    expect(figures.locator('tr[data-figure="refunded"] td')).to_have_text(["$0.00", "$5.00"])
    expect(figures.locator('tr[data-figure="disputed"] td')).to_have_text(["$0.00", "$0.00"])
    expect(figures.locator('tr[data-figure="net"] td')).to_have_text(["$40.00", "$50.00"])
    expect(figures.locator('tr[data-figure="reinstated"]')).to_have_count(0)
    counts = panel.locator(".pay-counts li")
    expect(counts).to_have_text(
        ["not configured 1", "unpaid 1", "payment failed 1", "paid 1", "partially refunded 1"]
    )
    owed_total = sum(Decimal(j["price"]) for j in owed)
    assert overview["owed"]["jobs"] == 3 and Decimal(overview["owed"]["amount"]) == owed_total
    expect(panel.locator(".pay-facts")).to_contain_text(
        f"Owed: ${owed_total:.2f} on 3 jobs · open disputes: 0 · events waiting for their job: "
        "0 · last Stripe event: —"
    )

    rows = panel.locator(".pay-owed tbody tr")
    expect(rows).to_have_count(3)
    assert [int(r.get_attribute("data-job-id")) for r in rows.all()] == [hostile, unpaid, failed]
    first = panel.locator(f'.pay-owed tr[data-job-id="{hostile}"]')
    expect(first.locator("td.name")).to_have_text(HOSTILE_NAME)
    expect(first.locator("td.client")).to_have_text(HOSTILE_EMAIL)
    expect(first).to_contain_text("$25.00")
    expect(first).to_contain_text("not configured")
    link = panel.locator(f'.pay-owed tr[data-job-id="{unpaid}"] a')
    expect(link).to_have_attribute("href", LINK)
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    declined = panel.locator(f'.pay-owed tr[data-job-id="{failed}"]')
    expect(declined.locator(".pay-problem")).to_have_text(DECLINED)
    expect(declined.locator("a")).to_have_count(0)  # a javascript: link is only text
    expect(declined).to_contain_text(BAD_LINK)
    expect(panel.locator("img")).to_have_count(0)
    assert page.evaluate("window.pwned") is None
    save_screenshot(page, tmp_path, "payments-panel.png", panel)

    panel.locator(f'.pay-owed tr[data-job-id="{unpaid}"]').get_by_role(
        "button", name="Mark paid"
    ).click()
    expect(panel.locator(".form-msg")).to_have_text(f"Job {unpaid} marked paid ($12.00).")
    expect(panel.locator(f'.pay-owed tr[data-job-id="{unpaid}"]')).to_have_count(0)
    expect(rows).to_have_count(2)
    expect(figures.locator('tr[data-figure="received"] td')).to_have_text(["$52.00", "$67.00"])
    expect(figures.locator('tr[data-figure="net"] td')).to_have_text(["$52.00", "$62.00"])
    expect(panel.locator('.pay-counts li[data-status="paid"]')).to_have_text("paid 2")
    expect(panel.locator('.pay-counts li[data-status="unpaid"]')).to_have_count(0)
    after = server.api("GET", "/api/payments/status")
    assert after["paid_7d"]["received"] == "52.00" and after["by_status"]["paid"] == 2
    posts = [r for r in watch.requests if r.method == "POST" and "/mark-paid" in r.url]
    assert [r.url.rsplit("/api/", 1)[1] for r in posts] == [f"payments/{unpaid}/mark-paid"]
    assert page.evaluate("window.pwned") is None
    watch.assert_clean(server.netloc)


def test_with_stripe_on_the_panel_offers_reconcile_and_shows_its_error(
    page: Any, server: Server, watch: PageWatch
) -> None:
    """Stripe on is the API's answer changed by the test (no Stripe here): the panel shows
    the failed reconciliation, offers "Reconcile now" and shows why it failed again."""
    last = {
        "started_at": "2030-01-01T09:00:00+00:00",
        "ok": False,
        "error": "Stripe unreachable: timed out",
        "events_read": 0,
        "events_applied": 0,
        "links_created": 0,
    }
    late = "Stripe not reconciled yet (last try: Stripe unreachable: timed out)"

    def stripe_on(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        body["data"].update(
            configured=True, webhook_configured=True, last_reconcile=last, freshness=late
        )
        route.fulfill(response=response, json=body)

    page.route("**/api/payments/status", stripe_on)
    page.route(
        "**/api/payments/reconcile",
        lambda route: route.fulfill(
            status=502,
            json={
                "ok": False,
                "data": None,
                "error": {
                    "code": "operation_failed",
                    "message": "Stripe not reconciled: timed out",
                },
            },
        ),
    )
    signed_in(page)
    panel = page.locator("#panel-payments")
    expect(panel.locator(".pay-config li")).to_have_text(["Stripe is on.", "Webhook on."])
    expect(panel.locator(".pay-reconcile")).to_contain_text("failed: Stripe unreachable: timed out")
    expect(panel.locator(".pay-freshness")).to_have_text(late)
    panel.get_by_role("button", name="Reconcile now").click()
    expect(panel.locator(".form-msg")).to_have_text("Stripe not reconciled: timed out")
    expect(panel.locator(".form-msg")).to_have_class("form-msg error")
    expect(panel.get_by_role("button", name="Reconcile now")).to_be_enabled()
    assert watch.page_errors == []
