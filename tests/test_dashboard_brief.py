"""The CEO brief panel in a real browser, against a real `echopilot serve` with demo history
and a task type whose name is markup: the panel shows the newest brief as the API gives it
(headline, narrative, KPIs, freshness, top risks with their evidence and fix, actions,
confidence, email state); "Generate brief" makes a new one; the HTML and Markdown files are
fetched with the key (a plain link could not send it); with no brief yet it says so; and
user text is only ever text.

Skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, insert

from echopilot.db.models import Job, TaskType
from tests import job_rows
from tests.browser_support import (
    PHONE,
    TEST_KEY,
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

HOSTILE = "<img src=x onerror=alert(1)>"
DASH = "—"
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
KPI_KEYS = ("revenue", "profit", "margin_pct", "roi", "avg_qa", "jobs")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two weeks of demo history, plus three low-scored jobs of a task type named with
    markup (a high-severity run of low QA, whose title and evidence carry the name), and
    one brief made through the API."""
    require_browser()
    settings = offline_settings(tmp_path_factory.mktemp("brief") / "var")
    run_cli(settings, "demo", "seed", "--days", "14", "--json", check=True)
    served = start_server(settings)
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(TaskType), {"name": HOSTILE, "label": HOSTILE, "instructions": "Do it."}
            )
        now = datetime.now(UTC)
        job_rows.insert_rows(
            engine,
            Job,
            [
                job_rows.job_row(
                    name=f"hostile {n}",
                    task_type=HOSTILE,
                    qa_score=40 + n,
                    qa_threshold=80,
                    duration_ms=1500,
                    created_at=now - timedelta(hours=n + 2),
                    finished_at=now - timedelta(hours=n + 1),
                    updated_at=now,
                )
                for n in range(3)
            ],
        )
        served.api("POST", "/api/exec/brief")
        yield served
    finally:
        engine.dispose()
        served.stop()


def money(value: Any) -> str:
    d = Decimal(str(value)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{'-' if d < 0 else ''}${abs(d):,.2f}"


def kpi_text(key: str, value: Any) -> str:
    if value is None:
        return DASH
    if key in ("revenue", "profit"):
        return money(value)
    if key == "margin_pct":
        return f"{float(value):.1f}%"
    if key == "roi":
        return f"{Decimal(value).quantize(Decimal('0.01'), ROUND_HALF_UP):,.2f}"
    if key == "avg_qa":
        return f"{float(value):.1f}"
    return f"{value:,}"


def evidence_text(key: str, value: Any) -> str | None:
    """What the panel shows for one evidence value, or None when it is formatted for
    people (times, durations, lists of objects) and only checked to be there."""
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if not value:
            return DASH
        if key.endswith("job_ids"):
            return ", ".join(f"#{i}" for i in value)
        if isinstance(value[0], dict):
            return None
        parts = [evidence_text("", v) for v in value]
        return None if None in parts else ", ".join(p for p in parts if p is not None)
    if isinstance(value, dict):
        return None
    if isinstance(value, str) and ISO_TIME.match(value):
        return None
    if re.search(r"(^|_)(revenue|cost|profit|owed)(_|$)", key):
        return money(value)
    if isinstance(value, int | float) and (re.search(r"_ms($|_)", key) or key.endswith("_s")):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def worst(counts: dict[str, int]) -> str:
    return next((s for s in ("high", "medium", "low") if counts.get(s)), "ok")


def watch_dialogs(page: Any) -> list[str]:
    dialogs: list[str] = []

    def seen(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)
    return dialogs


def test_the_panel_shows_the_latest_brief_as_the_api_gives_it(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    brief = server.api("GET", "/api/exec/report-latest")
    dialogs = watch_dialogs(page)
    signed_in(page)
    panel = page.locator("#panel-brief")
    expect(panel.locator("h2")).to_have_text("CEO brief")
    content = panel.locator(".brief")
    expect(content).to_have_attribute("data-stamp", brief["stamp"])

    headline = panel.locator(".brief-headline")
    expect(headline).to_have_text(brief["headline"])
    expect(headline).to_have_attribute("data-severity", worst(brief["counts"]))
    expect(headline).to_have_class(re.compile(r"\bbrief-sev-high\b"))
    expect(panel.locator(".brief-summary")).to_have_text(brief["summary"])
    assert brief["narrative"]["source"] == "deterministic"
    expect(panel.locator(".brief-narrative")).to_have_text(
        f"Deterministic narrative ({brief['narrative']['reason']}) · provider: {brief['provider']}"
    )

    week = brief["kpis"]["7d"]
    for key in KPI_KEYS:
        card = panel.locator(f'[data-brief-kpi="{key}"] .brief-kpi-value')
        expect(card).to_have_text(kpi_text(key, week[key]))
    expect(panel.locator('[data-brief-kpi="owed"] .brief-kpi-value')).to_have_text(
        money(brief["kpis"]["owed"])
    )
    expect(panel.locator('[data-brief-kpi="owed"] .brief-kpi-sub')).to_have_text(
        f"on {brief['kpis']['owed_jobs']:,} jobs"
    )

    fresh = panel.locator(".brief-freshness")
    expect(fresh).to_have_text(brief["freshness"]["line"])
    assert brief["freshness"]["late"], "Stripe is off: payments are late"
    expect(fresh).to_have_class(re.compile(r"\bis-late\b"))

    counts = brief["counts"]
    by = ", ".join(f"{counts[s]} {s}" for s in ("high", "medium", "low") if counts[s])
    more = f" · {brief['other_risks']} more not shown" if brief["other_risks"] else ""
    expect(panel.locator(".brief-counts")).to_have_text(f"{counts['total']} risks: {by}{more}")
    risks = panel.locator(".brief-risk")
    expect(risks).to_have_count(len(brief["top_risks"]))
    for n, risk in enumerate(brief["top_risks"]):
        item = risks.nth(n)
        expect(item).to_have_attribute("data-rule", risk["rule"])
        expect(item.locator(".brief-sev")).to_have_text(risk["severity"])
        expect(item.locator(".brief-risk-title")).to_have_text(risk["title"])
        rows = item.locator(".brief-evidence > div")
        expect(rows).to_have_count(len(risk["evidence"]))
        for key, value in risk["evidence"].items():
            dd = item.locator(f'.brief-evidence > div[data-key="{key}"] dd')
            shown = evidence_text(key, value)
            if shown is None:
                expect(dd).not_to_have_text(re.compile(r"^$|null|undefined|\[object"))
            else:
                expect(dd).to_have_text(shown)
        fix = item.locator(".brief-fix")
        expect(fix.locator("summary")).to_have_text("Suggested fix")
        expect(fix.locator("p")).to_be_hidden()  # collapsed until asked
        fix.locator("summary").click()
        expect(fix.locator("p")).to_have_text(risk["suggested_fix"])
    unpaid = next(r for r in brief["top_risks"] if r["rule"] == "finance.unpaid_high_qa")
    ids = unpaid["evidence"]["job_ids"]
    expect(
        panel.locator('[data-rule="finance.unpaid_high_qa"] [data-key="job_ids"] dd')
    ).to_have_text(", ".join(f"#{i}" for i in ids))
    expect(
        panel.locator('[data-rule="finance.unpaid_high_qa"] [data-key="owed_total"] dd')
    ).to_have_text(money(unpaid["evidence"]["owed_total"]))

    for window, actions in (("24h", brief["actions_next_24h"]), ("7d", brief["actions_next_7d"])):
        items = panel.locator(f'.brief-actions[data-window="{window}"] li')
        if not actions:
            expect(items).to_have_text(["Nothing for this window."])
            continue
        expect(items).to_have_count(len(actions))
        for n, action in enumerate(actions):
            item = items.nth(n)
            expect(item).to_have_attribute("data-action", action["id"])
            expect(item.locator(".brief-priority")).to_have_text(action["priority"])
            expect(item.locator(".brief-task")).to_have_text(action["task"])
            expect(item.locator(".brief-owner")).to_contain_text(action["owner"])
            expect(item.locator(".brief-owner")).to_contain_text("ETA ")
    assert brief["actions_next_24h"], "the demo has something to do today"

    confidence = brief["confidence"]
    expect(panel.locator(".brief-confidence p")).to_have_text(
        f"Confidence: {confidence['level']} ({confidence['score']:.2f})"
    )
    expect(panel.locator(".brief-notes li")).to_have_text(confidence["notes"])
    assert brief["email"]["status"] == "not_sent"
    expect(panel.locator(".brief-email")).to_have_text("Not emailed yet.")
    expect(panel.get_by_role("button", name="Open HTML")).to_be_visible()
    expect(panel.get_by_role("button", name="Markdown")).to_be_visible()
    expect(panel).not_to_contain_text("undefined")
    expect(panel).not_to_contain_text("[object")
    save_screenshot(page, tmp_path, "dashboard-brief.png", panel)
    assert dialogs == []
    watch.assert_clean(server.netloc)


def test_a_task_type_named_with_markup_is_shown_as_text(
    page: Any, server: Server, watch: PageWatch
) -> None:
    brief = server.api("GET", "/api/exec/report-latest")
    rule = f"quality.low_qa_run:{HOSTILE}"
    risk = next(r for r in brief["top_risks"] if r["rule"] == rule)
    assert HOSTILE in risk["title"] and risk["evidence"]["task_type"] == HOSTILE
    dialogs = watch_dialogs(page)
    signed_in(page)
    panel = page.locator("#panel-brief")
    item = panel.locator(".brief-risk").filter(has_text=risk["title"])
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-rule", rule)
    expect(item.locator(".brief-risk-title")).to_have_text(risk["title"])
    expect(item.locator('[data-key="task_type"] dd')).to_have_text(HOSTILE)
    expect(item.locator('[data-key="job_ids"] dd')).to_have_text(
        ", ".join(f"#{i}" for i in risk["evidence"]["job_ids"])
    )
    expect(panel.locator("img")).to_have_count(0)
    assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    assert dialogs == []
    watch.assert_clean(server.netloc)


def test_generate_brief_makes_a_new_one_and_shows_it(
    page: Any, server: Server, watch: PageWatch
) -> None:
    before = server.api("GET", "/api/exec/report-latest")["stamp"]
    signed_in(page)
    panel = page.locator("#panel-brief")
    expect(panel.locator(".brief")).to_have_attribute("data-stamp", before)
    panel.get_by_role("button", name="Generate brief").click()
    expect(panel.locator(".form-msg")).to_have_text("Brief generated.")
    after = server.api("GET", "/api/exec/report-latest")
    assert after["stamp"] != before
    expect(panel.locator(".brief")).to_have_attribute("data-stamp", after["stamp"])
    expect(panel.locator(".brief-headline")).to_have_text(after["headline"])
    expect(panel.locator(".brief-meta")).to_contain_text(f"Brief {after['stamp']}, generated ")
    expect(panel.get_by_role("button", name="Generate brief")).to_be_enabled()
    posts = [r for r in watch.requests if r.method == "POST" and "/api/exec/" in r.url]
    assert [r.url.rsplit("/api/", 1)[1] for r in posts] == ["exec/brief"]
    watch.assert_clean(server.netloc)


def test_the_files_are_fetched_with_the_key_and_opened(
    page: Any, server: Server, watch: PageWatch, tmp_path: Path
) -> None:
    stamp = server.api("GET", "/api/exec/report-latest")["stamp"]
    key = {"X-Dash-Key": server.key}
    html = httpx.get(f"{server.url}/api/exec/briefs/{stamp}/html", headers=key, timeout=30)
    markdown = httpx.get(f"{server.url}/api/exec/briefs/{stamp}/md", headers=key, timeout=30)
    assert html.status_code == 200 and markdown.status_code == 200
    assert httpx.get(f"{server.url}/api/exec/briefs/{stamp}/html", timeout=30).status_code == 401
    signed_in(page)
    panel = page.locator("#panel-brief")
    expect(panel.locator(".brief")).to_have_attribute("data-stamp", stamp)

    with page.context.expect_page() as opened:
        panel.get_by_role("button", name="Open HTML").click()
    tab = opened.value
    tab_watch = PageWatch().attach(tab)
    tab.wait_for_load_state()
    assert tab.url.startswith("blob:")
    expect(tab.locator("body")).to_contain_text("CEO brief")
    expect(panel.locator(".form-msg")).to_have_text("HTML opened in a new tab.")

    with page.expect_download() as saved:
        panel.get_by_role("button", name="Markdown").click()
    download = saved.value
    assert download.suggested_filename == f"brief_{stamp}.md"
    assert Path(download.path()).read_text() == markdown.text
    expect(panel.locator(".form-msg")).to_have_text("Markdown saved.")

    files = [r for r in watch.requests if "/api/exec/briefs/" in r.url]
    assert [r.url.rsplit("/api/", 1)[1] for r in files] == [
        f"exec/briefs/{stamp}/html",
        f"exec/briefs/{stamp}/md",
    ]
    for request in files:
        assert request.method == "GET"
        assert request.all_headers().get("x-dash-key") == TEST_KEY
        assert request.response().status == 200
    refused = [
        r.url
        for r in watch.requests
        if "/api/" in r.url and r.response() is not None and r.response().status == 401
    ]
    assert refused == []
    assert tab_watch.page_errors == [] and tab_watch.console_errors() == []
    tab.close()
    watch.assert_clean(server.netloc)


def test_the_panel_fits_a_phone(browser: Any, server: Server, tmp_path: Path) -> None:
    watch = PageWatch()
    with open_page(browser, server, watch, PHONE) as page:
        signed_in(page)
        panel = page.locator("#panel-brief")
        expect(panel.locator(".brief-risk").first).to_be_visible()
        panel.scroll_into_view_if_needed()
        wider = page.evaluate(
            """() => { const box = document.getElementById('panel-brief').getBoundingClientRect();
                return [...document.querySelectorAll('#panel-brief *')]
                  .filter(e => e.getBoundingClientRect().right > box.right + 0.5)
                  .map(e => e.className + ': ' + e.textContent.slice(0, 40)); }"""
        )
        assert wider == [], wider
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        save_screenshot(page, tmp_path, "dashboard-brief-phone.png", panel)
        watch.assert_clean(server.netloc)


def test_with_no_brief_yet_it_says_so_and_generates_the_first(browser: Any, tmp_path: Path) -> None:
    empty = start_server(offline_settings(tmp_path / "var"))
    try:
        watch = PageWatch()
        with open_page(browser, empty, watch) as page:
            signed_in(page)
            panel = page.locator("#panel-brief")
            expect(panel.locator(".brief-none")).to_have_text("No brief yet: generate one.")
            expect(panel.locator(".brief-headline")).to_have_count(0)
            expect(panel.get_by_role("button", name="Open HTML")).to_have_count(0)
            panel.get_by_role("button", name="Generate brief").click()
            expect(panel.locator(".form-msg")).to_have_text("Brief generated.")
            made = empty.api("GET", "/api/exec/report-latest")
            expect(panel.locator(".brief-headline")).to_have_text(made["headline"])
            expect(panel.locator(".brief-none")).to_have_count(0)
            # Before the first brief the panel reads the (empty) listing: nothing answers
            # 404, so the console stays clean on a fresh install.
            failed = [r.url for r in watch.requests if r.response() and r.response().status >= 400]
            assert failed == []
            watch.assert_clean(empty.netloc)
    finally:
        empty.stop()
