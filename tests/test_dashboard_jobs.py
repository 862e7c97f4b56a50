"""The jobs table and the job detail dialog in a real browser, against a real `echopilot
serve` with demo history plus jobs run by the offline provider: the client column, prices
that are not billed, one money precision, Approve and Reject for jobs that need review, the
job's input (as text, all of it on demand) and its QA breakdown.

Skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import (
    PageWatch,
    Server,
    expect,
    filter_jobs,
    job_row,
    offline_settings,
    require_browser,
    save_screenshot,
    signed_in,
    start_server,
)
from tests.conftest import run_cli

TWO_DECIMALS = re.compile(r"^-?\$[\d,]+\.\d{2}$")
NOT_BILLED = re.compile(r"^\$[\d,]+\.\d{2} \(not billed\)$")
# The input of the long job: markup that must stay text, then more than 4,000 characters.
LONG_INPUT = (
    '<img src="/nowhere.png" id="injected"> <b>bold?</b>\n'
    + "The quarterly figures improved across every region. " * 95
    + "THE-END-MARKER"
)
RUBRIC = {"clarity": 30, "accuracy": 30, "completeness": 20, "tone": 20}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Demo history, plus two jobs run by the offline provider (a long input and a short
    one with a client)."""
    require_browser()
    settings = offline_settings(tmp_path_factory.mktemp("jobs") / "var")
    run_cli(settings, "demo", "seed", "--json", check=True)
    served = start_server(settings)
    try:  # the server is stopped even when the set-up below fails
        served.api(
            "POST",
            "/api/jobs",
            json={"name": "long input job", "task_type": "summary", "input": LONG_INPUT},
        )
        served.api(
            "POST",
            "/api/jobs",
            json={
                "name": "offline job with a client",
                "task_type": "drafting",
                "input": "Draft a short thank-you note to a customer for renewing their plan.",
                "client": "ada@example.com",
            },
        )
        run_cli(settings, "worker", "--burst", check=True)
        yield served
    finally:
        served.stop()


def find_job(server: Server, name: str) -> dict[str, Any]:
    items = server.api("GET", "/api/jobs?limit=20")["items"]
    return next(job for job in items if job["name"] == name)


def demo_job(server: Server, status: str, skip: int = 0) -> int:
    """The id of a demo job (a model's, billable) in `status`; `skip` passes over the newest."""
    items = server.api("GET", f"/api/jobs?status={status}&limit=100")["items"]
    return int([job["id"] for job in items if job["provider"] == "demo"][skip])


def open_detail(page: Any, job_id: int) -> Any:
    job_row(page, job_id).click()
    dialog = page.locator("#job-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#job-dialog-title")).to_contain_text(f"Job {job_id}:")
    expect(dialog.locator(".fields")).to_be_visible()
    return dialog


def cell(row: Any, column: str) -> Any:
    """The cell of `row` under the jobs table's heading `column`."""
    headings = [h.strip() for h in row.page.locator("#jobs-table thead th").all_text_contents()]
    return row.locator("td").nth(headings.index(column))


def test_the_jobs_table_shows_the_client_and_marks_prices_not_billed(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    offline = find_job(server, "offline job with a client")
    assert offline["provider"] == "offline" and offline["payment_status"] == "na"
    signed_in(page)
    expect(page.locator("#jobs-table thead th", has_text="Client")).to_be_visible()

    row = job_row(page, offline["id"])
    expect(cell(row, "Client")).to_have_text("ada@example.com")
    price = cell(row, "Price")
    expect(price).to_have_text(NOT_BILLED)
    assert "offline" in (price.get_attribute("title") or "")

    review = filter_jobs(page, "needs_review").first
    job = server.api("GET", f"/api/jobs/{review.get_attribute('data-job-id')}")
    assert job["payment_status"] == "na" and job["price_usd"] is not None
    expect(cell(review, "Price")).to_have_text(NOT_BILLED)
    expect(cell(review, "Client")).to_have_text(job["client"] or "—")

    filter_jobs(page, "done")
    billed = server.api("GET", f"/api/jobs/{demo_job(server, 'done')}")
    assert billed["payment_status"] in ("not_configured", "paid")
    expect(cell(job_row(page, billed["id"]), "Price")).to_have_text(TWO_DECIMALS)
    save_screenshot(page, tmp_path, "jobs-table.png", page.locator("#jobs-section"))
    watch.assert_clean(server.netloc)


def shown_amount(text: str) -> Decimal:
    return Decimal(text.split()[0].replace("$", "").replace(",", ""))


def test_money_has_two_decimals_except_a_job_cost_under_a_cent(
    page: Any, server: Server, watch: PageWatch
) -> None:
    signed_in(page)
    for kpi in ("revenue_7d", "cost_7d", "profit_7d"):
        expect(page.locator(f'[data-kpi="{kpi}"] .kpi-value')).to_have_text(TWO_DECIMALS)

    expect(page.locator("#jobs-body tr.clickable")).to_have_count(50)
    jobs = {job["id"]: job for job in server.api("GET", "/api/jobs?limit=50")["items"]}
    rows = page.locator("#jobs-body tr.clickable")
    sub_cent = 0
    for n in range(rows.count()):
        row = rows.nth(n)
        job = jobs[int(row.get_attribute("data-job-id") or 0)]
        price = cell(row, "Price").inner_text()
        if job["price_usd"] is not None:
            assert re.match(r"^\$[\d,]+\.\d{2}( |$)", price), price
            assert shown_amount(price) == Decimal(job["price_usd"])
        cost = cell(row, "Cost").inner_text()
        if job["cost_usd"] is None:
            continue
        exact = Decimal(job["cost_usd"])
        if exact == 0 or exact >= Decimal("0.01"):
            assert TWO_DECIMALS.match(cost), (cost, exact)
            assert abs(shown_amount(cost) - exact) <= Decimal("0.005")
        else:  # under a cent: more decimals, so a cheap job never reads as free
            sub_cent += 1
            assert re.fullmatch(r"\$0\.00\d{1,4}", cost), (cost, exact)
            assert abs(shown_amount(cost) - exact) <= exact / 10
    assert sub_cent > 0, "the demo history has jobs that cost under a cent"

    # The dialog too: price with 2 decimals, a job's cost by the same rule.
    filter_jobs(page, "done")
    job = server.api("GET", f"/api/jobs/{demo_job(server, 'done')}")
    dialog = open_detail(page, job["id"])
    expect(dialog.locator('[data-field="price_usd"] dd')).to_have_text(TWO_DECIMALS)
    cost = dialog.locator('[data-field="cost_usd"] dd').inner_text()
    if Decimal(job["cost_usd"]) >= Decimal("0.01"):
        assert TWO_DECIMALS.match(cost), cost
    watch.assert_clean(server.netloc)


def test_a_job_that_needs_review_is_approved_from_its_detail(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    signed_in(page)
    filter_jobs(page, "needs_review")
    job_id = demo_job(server, "needs_review")
    dialog = open_detail(page, job_id)
    expect(dialog.locator('[data-field="price_usd"] dd')).to_contain_text("(not billed)")
    expect(dialog.locator('[data-field="payment_status"] dd')).to_have_text("not billed")
    approve = dialog.get_by_role("button", name="Approve", exact=True)
    expect(dialog.get_by_role("button", name="Reject…", exact=True)).to_be_visible()
    save_screenshot(page, tmp_path, "job-review.png", dialog)

    approve.click()
    expect(dialog.locator(".detail-actions .status")).to_have_text("done")
    expect(dialog.locator(".detail-actions .form-msg")).to_contain_text("Approved")
    expect(dialog.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    expect(dialog.locator('[data-field="payment_status"] dd')).to_have_text("not_configured")
    shown = server.api("GET", f"/api/jobs/{job_id}")
    assert (shown["status"], shown["payment_status"]) == ("done", "not_configured")
    # The table was refreshed: the job left the needs-review list.
    expect(job_row(page, job_id)).to_have_count(0)
    page.click("#job-dialog-close")
    watch.assert_clean(server.netloc)


def test_approving_a_job_someone_else_handled_shows_the_conflict(page: Any, server: Server) -> None:
    signed_in(page)
    filter_jobs(page, "needs_review")
    job_id = demo_job(server, "needs_review", skip=1)
    dialog = open_detail(page, job_id)
    server.api("POST", f"/api/jobs/{job_id}/approve")  # meanwhile, elsewhere
    dialog.get_by_role("button", name="Approve", exact=True).click()
    message = dialog.locator(".detail-actions .form-msg.error")
    expect(message).to_be_visible()
    expect(message).not_to_be_empty()


def test_a_job_that_needs_review_is_rejected_with_a_reason(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    prompts: list[str] = []
    page.on("dialog", lambda d: (prompts.append(d.type), d.dismiss()))
    signed_in(page)
    filter_jobs(page, "needs_review")
    job_id = demo_job(server, "needs_review", skip=2)
    dialog = open_detail(page, job_id)

    form = dialog.locator("form.review-form")
    expect(form).to_be_hidden()
    dialog.get_by_role("button", name="Reject…", exact=True).click()
    expect(form).to_be_visible()
    form.get_by_role("button", name="Keep for review").click()
    expect(form).to_be_hidden()

    dialog.get_by_role("button", name="Reject…", exact=True).click()
    reason = "<b>Wrong figures</b> for Q3"
    form.get_by_label("Why is it rejected?").fill(reason)
    save_screenshot(page, tmp_path, "job-reject.png", dialog)
    form.get_by_role("button", name="Reject job").click()

    expect(dialog.locator(".detail-actions .status")).to_have_text("cancelled")
    expect(dialog.locator(".detail-actions .form-msg")).to_contain_text("Rejected")
    expect(dialog.locator('[data-field="error"] dd')).to_contain_text(reason)
    expect(dialog.locator("b")).to_have_count(0)  # the reason is text, never markup
    shown = server.api("GET", f"/api/jobs/{job_id}")
    assert shown["status"] == "cancelled" and shown["payment_status"] == "na"
    assert reason in (shown["error"] or "")
    expect(job_row(page, job_id)).to_have_count(0)
    assert prompts == []  # no window.prompt, confirm or alert
    watch.assert_clean(server.netloc)


def test_the_detail_shows_the_input_as_text_and_all_of_it_on_demand(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    job = find_job(server, "long input job")
    total = len(LONG_INPUT)
    assert total > 4000
    signed_in(page)
    dialog = open_detail(page, job["id"])
    text = dialog.locator(".input-text")
    expect(text).to_contain_text('<img src="/nowhere.png" id="injected"> <b>bold?</b>')
    expect(text).not_to_contain_text("THE-END-MARKER")
    expect(dialog.locator(".input-note")).to_contain_text(f"first 4,000 of {total:,} characters")
    save_screenshot(page, tmp_path, "job-input.png", dialog)

    dialog.get_by_role("button", name=f"Show all {total:,} characters").click()
    expect(text).to_contain_text("THE-END-MARKER")
    assert text.inner_text() == LONG_INPUT
    expect(dialog.get_by_role("button", name=re.compile("Show all"))).to_have_count(0)
    assert any("full_input=true" in url for url in watch.urls)
    # Markup in the input stays text: no element was made from it, nothing was fetched.
    expect(page.locator("#injected")).to_have_count(0)
    expect(dialog.locator(".input-text b")).to_have_count(0)
    assert not any("nowhere.png" in url for url in watch.urls)
    watch.assert_clean(server.netloc)


def test_the_detail_shows_the_qa_breakdown_as_a_table(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    job = find_job(server, "offline job with a client")
    breakdown = server.api("GET", f"/api/jobs/{job['id']}")["qa_breakdown"]
    assert set(RUBRIC) <= set(breakdown)
    signed_in(page)
    dialog = open_detail(page, job["id"])
    table = dialog.locator(".qa-breakdown table")
    expect(table).to_be_visible()
    for criterion, out_of in RUBRIC.items():
        cells = table.locator(f'tr[data-criterion="{criterion}"]').locator("th, td")
        expect(cells).to_have_text([criterion, f"{round(breakdown[criterion], 1):g}", str(out_of)])
    expect(table.locator("tfoot")).to_contain_text("100")
    # Not as raw JSON among the fields.
    expect(dialog.locator(".fields")).not_to_contain_text("{")
    expect(dialog.locator(".fields")).not_to_contain_text("qa breakdown")
    save_screenshot(page, tmp_path, "job-qa.png", dialog)
    watch.assert_clean(server.netloc)
