"""The CEO brief's HTML page as its reader sees it: opened from disk in headless Chromium it
shows its headline and its four charts (inline PNGs, decoded), logs no error and fetches
nothing; user text (a task type named like a script) is shown as text in the HTML and is
inert in the Markdown.

A month of jobs is written straight into the database, ending with a day whose QA dropped,
and a task type whose name is markup scoring low: the brief has anomalies to show.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from sqlalchemy import insert

from echopilot.briefs import service
from echopilot.db.models import Job, TaskType
from echopilot.runtime import Runtime
from tests import job_rows
from tests.browser_support import chromium, require_browser

NOW = datetime(2025, 3, 15, 8, 0, tzinfo=UTC)  # the brief's cut-off
TODAY = NOW.replace(hour=0)
EVIL_TYPE = "<script>alert(1)</script>"
ESCAPED_TYPE = "&lt;script&gt;alert(1)&lt;/script&gt;"
DAYS = 30
ARTEFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def at(days_ago: int, hour: int) -> datetime:
    return TODAY - timedelta(days=days_ago) + timedelta(hours=hour)


def finished_job(task_type: str, finished: datetime, qa: float) -> dict[str, Any]:
    return job_rows.job_row(
        name=f"{task_type} job",
        task_type=task_type,
        created_at=finished - timedelta(minutes=10),
        updated_at=finished,
        finished_at=finished,
        price_cents=2500,
        payment_status="unpaid",
        cost_micros=150_000,
        qa_score=qa,
        qa_threshold=80,
        duration_ms=20_000,
    )


def seed_month(rt: Runtime) -> None:
    """Thirty days of research jobs scoring about 92, the last whole day 40 (a QA drop),
    and three recent jobs of a task type named like a script, all scored low."""
    with rt.engine.begin() as conn:
        conn.execute(
            insert(TaskType),
            {"name": EVIL_TYPE, "label": EVIL_TYPE, "instructions": "Answer.", "active": True},
        )
    rows = []
    for days_ago in range(DAYS, 0, -1):
        for n in range(4):
            qa = 40.0 if days_ago == 1 else 90.0 + (days_ago + n) % 5
            rows.append(finished_job("research", at(days_ago, 9 + n), qa))
    rows += [finished_job(EVIL_TYPE, at(days_ago, 15), 55.0) for days_ago in (3, 2, 1)]
    job_rows.insert_rows(rt.engine, Job, rows)


@pytest.fixture
def brief(make_runtime: Callable[..., Runtime]) -> dict[str, Any]:
    rt = make_runtime(ai_provider="offline")
    seed_month(rt)
    made = service.make(rt, actor="test", now=NOW)
    # The page shows what the seed made: high risks, the script-named type's among them.
    assert made["counts"]["high"] >= 1, made["counts"]
    assert f"quality.low_qa_run:{EVIL_TYPE}" in {a["rule"] for a in made["top_risks"]}
    return made


def test_the_qa_drop_is_found_on_the_last_whole_day(brief: dict[str, Any]) -> None:
    analysis_path = Path(brief["paths"]["json"]).with_name(f"analysis_{brief['stamp']}.json")
    analysis = json.loads(analysis_path.read_text())
    drops = [a for a in analysis["anomalies"] if a["rule"] == "stats.avg_qa"]
    assert [a["evidence"]["day"] for a in drops] == [(TODAY - timedelta(days=1)).date().isoformat()]
    assert drops[0]["evidence"]["value"] < drops[0]["evidence"]["median"]


def dismissed(dialog: Any, seen: list[str]) -> None:
    """Record a dialog (an alert() the page should never open) and close it."""
    seen.append(dialog.message)
    dialog.dismiss()


def test_the_html_brief_renders_its_charts_offline_in_headless_chromium(
    brief: dict[str, Any], tmp_path: Path
) -> None:
    require_browser()
    page_file = Path(brief["paths"]["html"]).resolve()
    url = page_file.as_uri()

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        requested: list[str] = []
        problems: list[str] = []
        dialogs: list[str] = []
        try:
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("dialog", lambda dialog: dismissed(dialog, dialogs))
            page.goto(url)
            title = page.title()
            headline = page.locator(".headline")
            headline_shown = headline.is_visible()
            headline_text = headline.inner_text()
            images = page.eval_on_selector_all(
                "img.chart",
                """imgs => Promise.all(imgs.map(async img => {
                    await img.decode();
                    const box = img.getBoundingClientRect();
                    return {alt: img.alt, complete: img.complete, natural: img.naturalWidth,
                            naturalHeight: img.naturalHeight, shown: box.width,
                            scheme: img.src.split(':')[0]};
                }))""",
            )
            scripts = page.evaluate("document.scripts.length")
            risks = page.locator(".risk h3").all_inner_texts()
            shot = tmp_path / "brief.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()

    ARTEFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTEFACTS / "brief.png")
    assert shot.stat().st_size > 10_000

    assert title == f"EchoPilot CEO brief {NOW.date().isoformat()}"
    assert headline_shown and headline_text == brief["headline"]
    assert re.match(r"^\d+ HIGH SEVERITY ALERTS?$", headline_text), headline_text
    assert [i["alt"] for i in images] == [
        "Money per day",
        "Quality per day",
        "Jobs per day",
        "Quality by task type",
    ]
    for image in images:
        assert image["complete"] and image["natural"] > 0 and image["naturalHeight"] > 0, image
        assert image["shown"] > 200, image
        assert image["scheme"] == "data", image
    # The task type's name is read as text: no script, no dialog.
    assert scripts == 0 and dialogs == []
    assert any(EVIL_TYPE in risk for risk in risks), risks
    assert problems == []
    assert requested == [url]  # the file itself, and nothing else


def test_user_text_is_escaped_in_the_html_and_inert_in_the_markdown(
    brief: dict[str, Any],
) -> None:
    html = Path(brief["paths"]["html"]).read_text()
    markdown = Path(brief["paths"]["md"]).read_text()

    assert ESCAPED_TYPE in html
    assert "<script" not in html.lower()
    assert "default-src 'none'" in html

    assert EVIL_TYPE not in markdown
    assert r"\<script\>alert(1)\</script\>" in markdown
    # A Markdown reader that passes HTML through still shows it as text.
    rendered = MarkdownIt("commonmark", {"html": True}).render(markdown)
    assert "<script" not in rendered.lower()
    assert ESCAPED_TYPE in rendered
