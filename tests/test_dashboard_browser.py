"""The dashboard in a real browser: Chromium (Debian's) driven by Playwright against a real
`echopilot serve` holding 30 days of demo history.

Skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1. Screenshots go to the test's tmp_path and to
test-results/ (git-ignored).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser_support import (
    CHARTS,
    PHONE,
    TEST_KEY,
    WIDE,
    PageWatch,
    Server,
    expect,
    filter_jobs,
    job_row,
    offline_settings,
    require_browser,
    save_screenshot,
    sign_in,
    signed_in,
    start_server,
    wait_for_charts,
)
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One served app with demo history for the module (seeding takes a few seconds)."""
    require_browser()
    settings = offline_settings(tmp_path_factory.mktemp("dashboard") / "var")
    run_cli(settings, "demo", "seed", "--json", check=True)
    served = start_server(settings)
    served.api("POST", "/api/exec/brief")  # the CEO brief panel then shows one
    yield served
    served.stop()


def test_it_asks_for_the_key_then_shows_kpis_and_health(
    page: Any, server: Server, watch: PageWatch
) -> None:
    page.goto("/dashboard")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#dashboard")).to_be_hidden()

    page.fill("#login-key", TEST_KEY)
    page.click("#login-submit")

    expect(page.locator("#dashboard")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    jobs = page.locator('[data-kpi="jobs_7d"] .kpi-value')
    expect(jobs).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    for money in ("revenue_7d", "cost_7d", "profit_7d"):
        expect(page.locator(f'[data-kpi="{money}"] .kpi-value')).to_have_text(
            re.compile(r"^-?\$[\d,]+\.\d{2,6}$")
        )
    expect(page.locator('[data-kpi="margin_7d_pct"] .kpi-value')).to_have_text(re.compile(r"%$"))
    expect(page.locator('[data-kpi="avg_qa_7d"] .kpi-value')).to_have_text(re.compile(r"^\d"))
    expect(page.locator('[data-kpi="p95_latency_ms_7d"] .kpi-value')).to_have_text(
        re.compile(r"\d.* s$")
    )

    expect(page.locator('[data-badge="api"]')).to_contain_text("ok")
    expect(page.locator('[data-badge="database"]')).to_contain_text("ok")
    expect(page.locator('[data-badge="queue"]')).to_contain_text("waiting")
    expect(page.locator('[data-badge="worker"]')).to_contain_text("no worker running")
    expect(page.locator('[data-badge="scheduler"]')).to_contain_text("stopped")
    provider = page.locator('[data-badge="ai-provider"]')
    expect(provider).to_contain_text("offline")
    expect(provider).to_contain_text("no model")

    expect(page.locator("#panel-automations")).to_contain_text("no scheduler is running")
    expect(page.locator("#panel-brief")).to_contain_text("CEO brief")
    expect(page.locator("#panel-brief .brief-headline")).to_have_text(
        server.api("GET", "/api/exec/report-latest")["headline"]
    )
    expect(page.locator('#panel-operations [data-op="optimizer"]')).to_contain_text("Preview")
    expect(page.locator("#panel-optimizer")).to_contain_text("Dry run now")
    expect(page.locator('#panel-operations [data-op="self_heal"]')).to_contain_text("Dry run")

    # The key lasts for the tab: a reload does not ask again; signing out forgets it.
    page.reload()
    expect(page.locator("#dashboard")).to_be_visible()
    page.click("#sign-out")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#kpis .kpi")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0
    watch.assert_clean(server.netloc)


def test_all_four_charts_draw_with_demo_data(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    signed_in(page)
    wait_for_charts(page)
    for chart in CHARTS:
        traces = page.locator(f"#{chart} .main-svg .trace")
        assert traces.count() > 0, f"{chart} has no traces"
        expect(page.locator(f"#{chart} .chart-empty")).to_have_count(0)
    # Stacked statuses include the demo's dead jobs; the QA chart has its threshold line.
    names = page.evaluate("document.getElementById('chart-jobs').data.map(t => t.name)")
    assert {"done", "dead", "needs review"} <= set(names)
    qa = page.evaluate("document.getElementById('chart-qa').data.map(t => t.name)")
    assert "threshold 80" in qa
    money = page.evaluate("document.getElementById('chart-money').data.map(t => t.type)")
    assert money == ["bar", "bar", "scatter"]

    expect(page.locator("#jobs-body tr.clickable")).to_have_count(50)
    save_screenshot(page, tmp_path, "dashboard.png")
    watch.assert_clean(server.netloc)


def test_the_layout_fits_a_phone_screen(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    page.set_viewport_size(PHONE)
    signed_in(page)
    wait_for_charts(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone"
    save_screenshot(page, tmp_path, "dashboard-phone.png")
    watch.assert_clean(server.netloc)


def test_a_submitted_job_appears_and_a_cancelled_one_can_be_retried(
    page: Any, server: Server, watch: PageWatch
) -> None:
    signed_in(page)
    name = f"browser job <b>{uuid.uuid4().hex[:8]}</b>"
    page.fill("#job-name", name)
    page.select_option("#job-type", "research")
    page.fill("#job-input", "Compare three vector databases for a small team.")
    page.fill("#job-client", "buyer@example.com")
    page.fill("#job-qa", "85")
    page.click("#submit-job")

    expect(page.locator("#submit-msg")).to_contain_text("submitted")
    row = page.locator("#jobs-body tr", has_text=name)
    expect(row).to_have_count(1)
    expect(row.locator(".status")).to_have_text("queued")
    expect(page.locator("#jobs-body b")).to_have_count(0)  # data is text, never markup
    job_id = int(row.get_attribute("data-job-id") or 0)
    shown = server.api("GET", f"/api/jobs/{job_id}")
    assert (shown["name"], shown["task_type"], shown["client"], shown["qa_target"]) == (
        name,
        "research",
        "buyer@example.com",
        85,
    )
    assert page.input_value("#job-name") == ""  # the form was reset

    server.api("POST", f"/api/jobs/{job_id}/cancel")
    page.click("#jobs-refresh")
    expect(job_row(page, job_id).locator(".status")).to_have_text("cancelled")
    job_row(page, job_id).get_by_role("button", name="Retry").click()
    expect(job_row(page, job_id).locator(".status")).to_have_text("queued")
    expect(page.locator(".toast").last).to_contain_text(f"Job {job_id} is queued again")
    assert server.api("GET", f"/api/jobs/{job_id}")["status"] == "queued"
    watch.assert_clean(server.netloc)


def test_the_submit_form_shows_the_field_errors_of_the_answer(page: Any, server: Server) -> None:
    signed_in(page)
    page.fill("#job-name", "a job with a bad client")
    page.fill("#job-input", "some input")
    page.fill("#job-client", "not-an-email")
    page.click("#submit-job")
    expect(page.locator("#submit-msg")).to_contain_text("is not an email address")
    client = page.locator('.field[data-field="client"]')
    expect(client).to_have_class(re.compile(r"\binvalid\b"))
    expect(client.locator(".field-error")).to_contain_text("not an email address")
    expect(page.locator("#job-client")).to_have_attribute("aria-invalid", "true")

    page.fill("#job-client", "")
    page.fill("#job-name", "")
    page.click("#submit-job")
    expect(page.locator('.field[data-field="name"] .field-error')).to_be_visible()
    expect(page.locator('.field[data-field="client"] .field-error')).to_be_hidden()


def test_clicking_a_row_shows_the_job_with_its_attempts_and_result(
    page: Any, server: Server, watch: PageWatch
) -> None:
    signed_in(page)
    dead_id = int(filter_jobs(page, "dead").first.get_attribute("data-job-id") or 0)
    done = filter_jobs(page, "done").first
    done_id = int(done.get_attribute("data-job-id") or 0)

    done.click()
    dialog = page.locator("#job-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#job-dialog-title")).to_contain_text(f"Job {done_id}")
    expect(dialog.locator(".fields")).to_contain_text("payment status")
    expect(dialog.locator(".fields")).to_contain_text("tokens in")
    expect(dialog.locator("table tbody tr")).to_have_count(
        len(server.api("GET", f"/api/jobs/{done_id}")["attempt_log"])
    )
    expect(dialog.locator(".result-text")).to_have_text("[demo result]")
    page.click("#job-dialog-close")
    expect(dialog).to_be_hidden()

    filter_jobs(page, "dead")
    job_row(page, dead_id).click()
    expect(dialog.locator(".fields")).to_contain_text("error kind")
    expect(dialog.get_by_role("button", name="Retry")).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    watch.assert_clean(server.netloc)


def test_the_more_button_loads_the_next_page(page: Any, server: Server) -> None:
    signed_in(page)
    rows = page.locator("#jobs-body tr.clickable")
    expect(rows).to_have_count(50)
    last_id = int(rows.nth(49).get_attribute("data-job-id") or 0)
    page.click("#jobs-more")
    expect(rows).to_have_count(100)
    assert int(rows.nth(50).get_attribute("data-job-id") or 0) < last_id


def test_the_live_figures_refresh_every_ten_seconds(page: Any, server: Server) -> None:
    page.clock.install()
    signed_in(page)
    job = server.api(
        "POST",
        "/api/jobs",
        json={"name": "arrives on its own", "task_type": "summary", "input": "x"},
    )
    page.wait_for_timeout(300)
    expect(job_row(page, job["id"])).to_have_count(0)
    page.clock.run_for(10_500)
    expect(job_row(page, job["id"])).to_have_count(1)


def test_the_page_talks_only_to_its_own_server_and_logs_no_errors(
    page: Any, server: Server, watch: PageWatch
) -> None:
    signed_in(page)
    wait_for_charts(page)
    page.locator("#jobs-body tr.clickable").first.click()
    expect(page.locator("#job-dialog .fields")).to_be_visible()
    page.click("#job-dialog-close")
    filter_jobs(page, "needs_review")
    page.click("#refresh-all")
    expect(page.locator("#refresh-all")).to_be_enabled()

    assert any(url.endswith("/static/vendor/plotly.min.js") for url in watch.urls)
    assert any("/api/metrics/daily?days=30" in url for url in watch.urls)
    assert watch.foreign_urls(server.netloc) == []
    assert watch.console_errors() == []  # CSP violations would be reported here
    assert watch.page_errors == []


def test_the_key_never_appears_in_the_page_or_a_url(
    page: Any, server: Server, watch: PageWatch
) -> None:
    signed_in(page)
    wait_for_charts(page)
    page.locator("#jobs-body tr.clickable").first.click()
    expect(page.locator("#job-dialog .fields")).to_be_visible()
    assert TEST_KEY not in page.content()
    page.click("#job-dialog-close")
    page.click("#sign-out")
    expect(page.locator("#login")).to_be_visible()
    assert TEST_KEY not in page.content()

    assert watch.requests, "no requests recorded"
    for request in watch.requests:
        assert TEST_KEY not in request.url
        sent = request.headers.get("x-dash-key")
        if "/api/" in request.url:
            assert sent == TEST_KEY, request.url
        else:
            assert sent is None, f"key sent outside /api/: {request.url}"
    assert all(TEST_KEY not in text for _, text in watch.console)


def test_a_wrong_key_shows_the_prompt_again_with_an_error(page: Any, server: Server) -> None:
    sign_in(page, key="wrong-key-" + "x" * 22)
    message = page.locator("#login-msg")
    expect(message).to_be_visible()
    expect(message).to_contain_text("not accepted")
    expect(page.locator("#dashboard")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0

    # A key that stops working (changed on the server) sends the user back to the prompt.
    page.evaluate("sessionStorage.setItem('echopilot.dashKey', 'an-old-key-that-changed-0000')")
    page.reload()
    expect(page.locator("#login")).to_be_visible()
    expect(message).to_contain_text("not accepted")
    assert page.evaluate("sessionStorage.length") == 0


def test_too_many_wrong_keys_say_wait(browser: Any, tmp_path: Path) -> None:
    """On a server of its own: the lock-out would shut the other tests out for minutes."""
    locked = start_server(offline_settings(tmp_path / "var"))
    try:
        for _ in range(10):
            httpx.get(locked.url + "/api/system", headers={"X-Dash-Key": "wrong-" + "y" * 20})
        context = browser.new_context(viewport=WIDE, base_url=locked.url)
        try:
            tab = context.new_page()
            sign_in(tab)
            expect(tab.locator("#login-msg")).to_contain_text("Too many attempts")
            expect(tab.locator("#dashboard")).to_be_hidden()
        finally:
            context.close()
    finally:
        locked.stop()


AUTOMATIONS = {
    "running": True,
    "paused": False,
    "pid": 4242,
    "host": "ops-box",
    "heartbeat_age_s": 4.2,
    "schedule": [
        {
            "task": "brief",
            "schedule": "08:00 UTC",
            "next_run": "2030-01-02T08:00:00+00:00",
            "last_run": {
                "slot": "2030-01-01T08:00",
                "status": "ok",
                "started_at": "2030-01-01T08:00:01+00:00",
                "finished_at": "2030-01-01T08:00:09+00:00",
                "summary": {"headline": "All systems nominal"},
            },
        },
        {
            "task": "self_heal",
            "schedule": "every 6h",
            "next_run": "2030-01-01T12:00:00+00:00",
            "last_run": None,
        },
    ],
}


def fake_features(page: Any, **features: bool) -> None:
    """Answer /api/system from the real server with some later features switched on."""

    def handle(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        body["data"]["features"].update(features)
        route.fulfill(response=response, json=body)

    page.route("**/api/system", handle)


def fulfill_ok(data: Any) -> Any:
    return lambda route: route.fulfill(json={"ok": True, "data": data, "error": None})


def test_the_panels_of_later_features_render_their_endpoints_once_enabled(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    """The routes do not exist yet: only they are answered by the test; the rest is real."""
    fake_features(page, scheduler=True, self_heal=True, briefs=True, activity=True)
    page.route("**/api/automations/status", fulfill_ok(AUTOMATIONS))
    held: list[Any] = []
    page.route("**/api/automations/run/*", lambda route: held.append(route))
    paused = {**AUTOMATIONS, "paused": True}
    page.route("**/api/automations/stop", fulfill_ok({"action": "paused", "status": paused}))
    page.route(
        "**/api/self-heal?dry_run=true",
        fulfill_ok({"retried_count": 2, "recovered_stuck": 1, "dead": 0, "eligible_unpaid": []}),
    )
    page.route(
        "**/api/exec/briefs?limit=1",
        fulfill_ok({"briefs": [{"stamp": "20300101_080000", "email_status": "not_sent"}]}),
    )
    page.route(
        "**/api/exec/report-latest",
        fulfill_ok(
            {
                "stamp": "20300101_080000",
                "headline": "2 anomalies detected",
                "summary": "Quality dipped.",
                "top_risks": [
                    {
                        "rule": "quality.avg_below_target",
                        "severity": "medium",
                        "title": "QA below target",
                        "evidence": {"avg_qa_7d": 80.5, "target": 85},
                        "suggested_fix": "Fix the prompts.",
                    }
                ],
                "actions_next_24h": [
                    {
                        "id": "a1",
                        "task": "Review dead jobs",
                        "owner": "ops",
                        "priority": "P1",
                        "eta_hours": 4,
                    }
                ],
            }
        ),
    )
    page.route(
        "**/api/activity?limit=20",
        fulfill_ok(
            {
                "items": [
                    {
                        "at": "2030-01-01T09:00:00+00:00",
                        "actor": "api",
                        "action": "job.retry",
                        "target": "job 7",
                    }
                ]
            }
        ),
    )
    signed_in(page)

    panel = page.locator("#panel-automations")
    expect(panel).to_contain_text("Running (ops-box, pid 4242)")
    expect(panel.locator("tbody tr")).to_have_count(2)
    expect(panel.locator('tr[data-task="brief"]')).to_contain_text("headline: All systems nominal")
    expect(page.locator('[data-badge="scheduler"]')).to_contain_text("running")

    run = panel.locator('tr[data-task="self_heal"]').get_by_role("button", name="Run now")
    run.click()
    busy = panel.locator("button.is-busy")
    expect(busy).to_have_text("Running…")
    expect(busy).to_be_disabled()
    assert len(held) == 1 and held[0].request.method == "POST"
    assert held[0].request.url.endswith("/api/automations/run/self_heal")
    held[0].fulfill(json={"ok": True, "data": {"task": "self_heal"}, "error": None})
    expect(panel).to_contain_text("self_heal: started.")
    expect(panel.locator("button.is-busy")).to_have_count(0)

    panel.get_by_role("button", name="Stop").click()
    expect(panel).to_contain_text("Scheduler: paused.")
    expect(panel.locator(".auto-summary")).to_contain_text("Paused: tasks wait until Start")

    ops = page.locator("#panel-operations")
    ops.locator('[data-op="self_heal"]').get_by_role("button", name="Dry run").click()
    expect(ops.locator(".op-output")).to_contain_text("retried count: 2")
    expect(ops.locator('[data-op="optimizer"]').get_by_role("button", name="Apply")).to_be_visible()

    expect(page.locator("#panel-brief")).to_contain_text("2 anomalies detected")
    expect(page.locator("#panel-brief")).to_contain_text("QA below target")
    action = page.locator('#panel-brief li[data-action="a1"]')
    expect(action.locator(".brief-task")).to_have_text("Review dead jobs")
    expect(action.locator(".brief-owner")).to_have_text("ops · ETA 4 h")
    expect(page.locator("#panel-brief")).not_to_contain_text("null")
    expect(page.locator("#panel-activity")).to_contain_text("job.retry")
    save_screenshot(page, tmp_path, "dashboard-panels.png")
    watch.assert_clean(server.netloc)


def test_an_error_answer_shows_its_message(page: Any, server: Server) -> None:
    fake_features(page, scheduler=True)
    page.route(
        "**/api/automations/status",
        lambda route: route.fulfill(
            status=409,
            json={
                "ok": False,
                "data": None,
                "error": {"code": "conflict", "message": "scheduler lock held by another host"},
            },
        ),
    )
    signed_in(page)
    expect(page.locator("#panel-automations")).to_contain_text(
        "scheduler lock held by another host"
    )


def test_the_scheduler_is_reported_as_not_available_while_its_feature_is_off(
    page: Any, server: Server
) -> None:
    fake_features(page, scheduler=False, retention=False)
    signed_in(page)
    expect(page.locator('[data-badge="scheduler"]')).to_contain_text("scheduler: not available yet")
    panel = page.locator("#panel-automations")
    expect(panel).to_contain_text("Automations")
    expect(panel).to_contain_text("Not available yet: arrives with the scheduler release")
    expect(panel.get_by_role("button")).to_have_count(0)
    expect(page.locator('#panel-operations [data-op="retention"]')).to_contain_text(
        "Not available yet: arrives with the retention release"
    )


def test_the_automations_panel_pauses_resumes_and_runs_a_task(
    page: Any, server: Server, watch: PageWatch
) -> None:
    signed_in(page)
    panel = page.locator("#panel-automations")
    tasks = server.api("GET", "/api/automations/status")["schedule"]
    expect(panel.locator("tbody tr")).to_have_count(len(tasks))
    retention = panel.locator('tr[data-task="retention"]')
    expect(retention).to_contain_text("daily")

    panel.get_by_role("button", name="Stop").click()
    expect(panel).to_contain_text("Scheduler: paused.")
    expect(panel.locator(".auto-summary")).to_contain_text("paused")
    expect(page.locator('[data-badge="scheduler"]')).to_contain_text("paused")
    assert server.api("GET", "/api/automations/status")["paused"] is True

    panel.get_by_role("button", name="Start").click()
    expect(panel).to_contain_text("process control is off")  # resumed, nothing launched
    assert server.api("GET", "/api/automations/status")["paused"] is False

    retention.get_by_role("button", name="Run now").click()
    expect(panel).to_contain_text("retention: ok in")
    expect(retention.locator(".status")).to_have_text("ok")
    expect(retention).to_contain_text("manual")
    expect(retention).to_contain_text("keeping the newest 30")

    ops = page.locator('#panel-operations [data-op="retention"]')
    ops.get_by_role("button", name="Dry run").click()
    expect(ops).to_contain_text("would delete 0 files (0 B)")
    expect(page.locator("#panel-operations .op-output")).to_contain_text("Retention (dry run)")
    watch.assert_clean(server.netloc)
