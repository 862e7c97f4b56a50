"""The Notion connector as a user meets it: `echopilot notion check|sync|status` and the
settings they read, as real child processes in a clean environment; `/api/notion/*` through
the HTTP API and its key; and the dashboard's Notion panel in headless Chromium against a
real `echopilot serve`.

Only Notion is fake (tests/fakes/notion_server.py, spoken to through the real
`notion-client` SDK). It runs on the real clock here, because the child processes and the
server read the real clock too; the fake adds no lag, so the read-backs are seen at once.
What is checked is what a user sees: exit codes, the one line that names the setting to
fix, the JSON, the pages in Notion, the jobs, the manual run and the audit in EchoPilot, a
token that is never shown, and the panel's words and buttons.

The browser tests are skipped with the reason when Playwright or Chromium is missing,
unless ECHOPILOT_TEST_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from echopilot.db.engine import read_session
from echopilot.db.models import AuditLog, ScheduleRun
from echopilot.runtime import Runtime
from tests.api_support import api_client, assert_error, assert_ok
from tests.browser_support import (
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
from tests.fakes.notion_server import TOKEN, NotionServer, queue_schema
from tests.test_cli_first_run import one_line
from tests.test_notion_connector import notion_jobs, notion_settings

OFF_HINT = "set NOTION_TOKEN and NOTION_QUEUE_DB_ID"
REFUSED = "Notion refused the token (NOTION_TOKEN)"
STATUS_FIELDS = {
    "enabled",
    "status",
    "reason",
    "checked_at",
    "polled_at",
    "poll_error",
    "pages_taken",
    "pages_taken_24h",
    "pending_writes",
    "verifying_writes",
    "worst_lag_seconds_24h",
}


def notion_env(server: NotionServer, *, joblog: bool = True) -> dict[str, str]:
    """The variables a user sets to point EchoPilot at `server`."""
    env = {
        "NOTION_TOKEN": TOKEN,
        "NOTION_QUEUE_DB_ID": server.queue_db_id,
        "ECHOPILOT_NOTION_API_BASE": server.base_url,
    }
    if joblog:
        env["NOTION_JOBLOG_DB_ID"] = server.joblog_db_id
    return env


def cli(
    rt: Runtime, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(rt.settings, *args, extra_env=env)


def cli_json(rt: Runtime, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = cli(rt, *args, "--json", env=env)
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON: {result.stdout!r} {result.stderr!r}") from None


def in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run independent child processes at once (each takes a second or two to start)."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda call: call(), calls))


def audit_of(rt: Runtime, action: str) -> list[tuple[str, dict[str, Any]]]:
    with read_session(rt.sessions) as session:
        rows = session.execute(
            select(AuditLog.actor, AuditLog.details)
            .where(AuditLog.action == action)
            .order_by(AuditLog.id)
        )
        return [(actor, details) for actor, details in rows]


def manual_runs(rt: Runtime) -> list[tuple[str, str, str | None]]:
    with read_session(rt.sessions) as session:
        runs = session.scalars(select(ScheduleRun).where(ScheduleRun.task == "notion_poll"))
        return [(r.trigger, r.status, r.note) for r in runs]


def notion_link(object_id: str, title: str, *, view: bool = True) -> str:
    """A database's link as Notion's "Copy link" gives it."""
    link = f"https://www.notion.so/acme/{title}-{uuid.UUID(object_id).hex}"
    return link + (f"?v={uuid.uuid4().hex}" if view else "")


def files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.fixture
def fake() -> Iterator[NotionServer]:
    """A fake Notion on the real clock (the CLI's child processes read the real clock)."""
    with NotionServer() as server:
        yield server


# ---- echopilot notion check -------------------------------------------------------------


def test_check_reports_a_usable_queue_and_its_title(offline: Runtime, fake: NotionServer) -> None:
    env = notion_env(fake)
    (code, data), human = in_parallel(
        [
            lambda: cli_json(offline, "notion", "check", env=env),
            lambda: cli(offline, "notion", "check", env=env),
        ]
    )

    assert code == 0, data
    assert (data["ok"], data["status"], data["problems"]) == (True, "on", [])
    assert data["queue"]["title"] == "Name"
    assert data["queue"]["types"]["Trigger"] == "checkbox"
    assert data["joblog"]["title"] == "Name"
    assert human.returncode == 0, human.stderr
    assert "the queue database is usable (title 'Name')" in human.stdout
    assert "The Job Log database is usable." in human.stdout


def test_check_names_a_missing_property_and_exits_1(offline: Runtime) -> None:
    with NotionServer(queue_schema=queue_schema(Trigger=None, Status="rich_text")) as broken:
        env = notion_env(broken)
        (code, data), human = in_parallel(
            [
                lambda: cli_json(offline, "notion", "check", env=env),
                lambda: cli(offline, "notion", "check", env=env),
            ]
        )

    assert code == 1, data
    assert data["ok"] is False and data["status"] == "off"
    assert len(data["problems"]) == 2
    trigger = next(p for p in data["problems"] if "'Trigger'" in p)
    assert "Checkbox" in trigger
    assert human.returncode == 1
    lines = human.stdout.splitlines()
    assert lines[0] == "Notion connector off:"
    assert lines[1:] == [f"- {problem}" for problem in data["problems"]]


def test_check_prints_a_long_problem_on_one_line(offline: Runtime, fake: NotionServer) -> None:
    """Notion refusing the token is a problem longer than a terminal's 80 columns: it is
    still one line, as print_error's are (scripts grep them)."""
    fake.deny(401)
    result = cli(offline, "notion", "check", env=notion_env(fake))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "Notion connector stopped:"
    assert len(lines) == 2 and lines[1].startswith(f"- {REFUSED}"), result.stdout
    assert lines[1].endswith("API token is invalid."), result.stdout


def test_check_without_settings_says_which_to_set(offline: Runtime) -> None:
    (code, data), human = in_parallel(
        [lambda: cli_json(offline, "notion", "check"), lambda: cli(offline, "notion", "check")]
    )

    assert code == 1
    assert data["ok"] is False and data["status"] == "off"
    assert any(OFF_HINT in problem for problem in data["problems"]), data
    assert human.returncode == 1
    assert OFF_HINT in human.stdout


# ---- echopilot notion sync --------------------------------------------------------------


def test_sync_takes_ticked_pages_as_jobs_records_a_manual_run_and_audits_it(
    offline: Runtime, fake: NotionServer
) -> None:
    ticked = [
        fake.add_page("Market scan", description="Scan the EV charger market."),
        fake.add_page("Tidy CSV", task_type="Data-transform", description="a,b\n1,2"),
    ]
    waiting = fake.add_page("Not yet", trigger=False, description="Later.")
    env = notion_env(fake)

    code, data = cli_json(offline, "notion", "sync", env=env)

    assert code == 0, data
    assert (data["seen"], data["taken"], data["refused"]) == (2, 2, [])
    assert data["errors"] == [] and data["went_pending"] == 0
    jobs = notion_jobs(offline)
    assert sorted(j.external_id or "" for j in jobs) == sorted(ticked)
    assert sorted(data["jobs"]) == [j.id for j in jobs]
    for job in jobs:
        page = fake.page(job.external_id or "")
        assert page["Trigger"] is False
        assert page["Status"] in ("Processing", "Done", "Waiting Human")
        assert page["Job ID"] == job.id
    assert fake.writes(waiting) == [] and fake.page(waiting)["Status"] is None

    (_, listed), (_, scheduler), (_, status) = in_parallel(
        [
            lambda: cli_json(offline, "jobs", "list", env=env),
            lambda: cli_json(offline, "scheduler", "status", env=env),
            lambda: cli_json(offline, "notion", "status", env=env),
        ]
    )
    assert {j["id"] for j in listed} == {j.id for j in jobs}
    (poll_row,) = [row for row in scheduler["schedule"] if row["task"] == "notion_poll"]
    last = poll_row["last_run"]
    assert (last["trigger"], last["status"], last["note"]) == ("manual", "ok", "run by cli")
    assert last["summary"]["taken"] == 2
    assert manual_runs(offline) == [("manual", "ok", "run by cli")]
    ((actor, details),) = audit_of(offline, "notion.sync")
    assert actor == "cli"
    assert details == {"taken": 2, "written": 2, "confirmed": 2, "went_pending": 0}
    assert (status["status"], status["pages_taken"], status["pages_taken_24h"]) == ("on", 2, 2)
    assert status["pending_writes"] == 0 and status["poll_error"] is None


def test_sync_refused_by_notion_is_one_line_naming_the_token_and_stops_the_connector(
    offline: Runtime, fake: NotionServer
) -> None:
    fake.add_page("Blocked", description="Some work.")
    fake.deny(401)
    env = notion_env(fake)

    result = cli(offline, "notion", "sync", env=env)

    assert result.returncode == 1
    assert "NOTION_TOKEN" in one_line(result)
    assert result.stdout == ""
    (code, status), human = in_parallel(
        [
            lambda: cli_json(offline, "notion", "status", env=env),
            lambda: cli(offline, "notion", "status", env=env),
        ]
    )
    assert code == 0, status
    assert status["status"] == "stopped" and REFUSED in status["reason"]
    first = human.stdout.splitlines()[0]
    assert first == f"Notion connector: stopped ({status['reason']})", human.stdout
    assert notion_jobs(offline) == []
    assert audit_of(offline, "notion.sync") == []


def test_sync_with_the_connector_off_is_one_line_and_records_nothing(offline: Runtime) -> None:
    human, (code, data) = in_parallel(
        [lambda: cli(offline, "notion", "sync"), lambda: cli_json(offline, "notion", "sync")]
    )

    assert human.returncode == 1
    assert OFF_HINT in one_line(human)
    assert human.stdout == ""
    assert code == 1
    assert data["ok"] is False and data["error"]["code"] == "conflict"
    assert manual_runs(offline) == [] and audit_of(offline, "notion.sync") == []


# ---- the token is a secret ----------------------------------------------------------------


def test_the_token_is_never_shown_or_logged(offline: Runtime, fake: NotionServer) -> None:
    env = notion_env(fake)
    fake.add_page("Fine", description="Some work.")
    synced = cli(offline, "notion", "sync", env=env)
    assert synced.returncode == 0, synced.stderr
    fake.add_page("Refused", description="More work.")
    fake.deny(401)
    refused = cli(offline, "notion", "sync", env=env)
    assert refused.returncode == 1
    (code, shown), spaced = in_parallel(
        [
            lambda: cli_json(offline, "config", "show", env=env),
            lambda: cli(
                offline, "notion", "status", env={**env, "NOTION_TOKEN": TOKEN[:20] + " x"}
            ),
        ]
    )

    assert code == 0
    assert shown["NOTION_TOKEN"] == "****" + TOKEN[-2:]
    assert shown["NOTION_QUEUE_DB_ID"] == fake.queue_db_id
    assert spaced.returncode == 2
    assert one_line(spaced).startswith("error: NOTION_TOKEN: ")
    outputs = [synced, refused, spaced]
    assert all(TOKEN not in r.stdout + r.stderr for r in outputs)
    assert TOKEN[:20] not in spaced.stderr
    assert TOKEN not in json.dumps(shown)
    logs = offline.settings.home / "logs"
    assert (logs / "notion.log").is_file() and (logs / "cli.log").is_file()
    assert files_holding(offline.settings.home, TOKEN) == []


# ---- the database ids ---------------------------------------------------------------------

BAD_IDS = [
    ("NOTION_QUEUE_DB_ID", "not-an-id", ("notion", "sync")),
    ("NOTION_QUEUE_DB_ID", "not-an-id", ("jobs", "list")),
    ("NOTION_QUEUE_DB_ID", "0123456789abcdef0123456789abcde", ("notion", "status")),
    ("NOTION_JOBLOG_DB_ID", "https://www.notion.so/acme/Job-Log", ("notion", "check")),
]


def test_a_bad_database_id_stops_every_command_with_one_line_naming_it(
    offline: Runtime, fake: NotionServer
) -> None:
    def run(name: str, value: str, command: tuple[str, ...]) -> Any:
        return cli(offline, *command, env={**notion_env(fake), name: value})

    bad_queue = {**notion_env(fake), "NOTION_QUEUE_DB_ID": "not-an-id"}
    *results, (code, data) = in_parallel(
        [lambda case=case: run(*case) for case in BAD_IDS]
        + [lambda: cli_json(offline, "notion", "status", env=bad_queue)]
    )

    for (name, value, command), result in zip(BAD_IDS, results, strict=True):
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        line = one_line(result)
        assert line.startswith(f"error: {name}: must be a Notion database id"), line
        assert repr(value) in line, line
    assert code == 2 and data["error"]["code"] == "bad_configuration"
    assert data["error"]["message"].startswith("NOTION_QUEUE_DB_ID: ")
    assert fake.requests == []


def test_a_databases_notion_link_is_accepted_as_its_id(
    offline: Runtime, fake: NotionServer
) -> None:
    env = {
        **notion_env(fake),
        "NOTION_QUEUE_DB_ID": notion_link(fake.queue_db_id, "Automation-Queue"),
        "NOTION_JOBLOG_DB_ID": notion_link(fake.joblog_db_id, "Job-Log", view=False),
    }
    (code, checked), (_, shown) = in_parallel(
        [
            lambda: cli_json(offline, "notion", "check", env=env),
            lambda: cli_json(offline, "config", "show", env=env),
        ]
    )

    assert code == 0, checked
    assert checked["ok"] is True and checked["joblog"] is not None
    assert shown["NOTION_QUEUE_DB_ID"] == fake.queue_db_id
    assert shown["NOTION_JOBLOG_DB_ID"] == fake.joblog_db_id


# ---- the HTTP API -------------------------------------------------------------------------


@pytest.fixture
def api_rt(make_runtime: Callable[..., Runtime], fake: NotionServer) -> Runtime:
    return make_runtime(ai_provider="offline", **notion_settings(fake))


def test_status_needs_the_key_and_shows_the_connector(api_rt: Runtime, fake: NotionServer) -> None:
    fake.add_page("First", description="Some work.")
    with api_client(api_rt, key=None) as stranger:
        assert_error(stranger.get("/api/notion/status"), 401, "unauthorized")
    with api_client(api_rt) as client:
        before = assert_ok(client.get("/api/notion/status"))
        assert_ok(client.post("/api/notion/sync"))
        after = assert_ok(client.get("/api/notion/status"))

    assert set(before) >= STATUS_FIELDS
    assert (before["enabled"], before["pages_taken"], before["polled_at"]) == (True, 0, None)
    assert before["poll_every_seconds"] == 60 and before["joblog"] is True
    assert (after["status"], after["reason"], after["poll_error"]) == ("on", None, None)
    assert (after["pages_taken"], after["pages_taken_24h"]) == (1, 1)
    assert after["polled_at"] is not None and after["pending_writes"] == 0


def test_check_lists_the_problems_of_a_broken_schema(
    make_runtime: Callable[..., Runtime],
) -> None:
    with NotionServer(queue_schema=queue_schema(Trigger=None, Description="number")) as broken:
        rt = make_runtime(ai_provider="offline", **notion_settings(broken))
        with api_client(rt) as client:
            checked = assert_ok(client.post("/api/notion/check"))
            status = assert_ok(client.get("/api/notion/status"))

    assert (checked["ok"], checked["status"], checked["queue"]) == (False, "off", None)
    assert checked["problems"] == [
        "the queue database has no property 'Trigger': add it as Checkbox",
        "the queue database's property 'Description' is Number; it must be Text",
    ]
    assert status["status"] == "off" and "'Trigger'" in status["reason"]


def test_sync_takes_every_ticked_page_and_is_audited(api_rt: Runtime, fake: NotionServer) -> None:
    ticked = [fake.add_page(f"Brief {i}", description=f"Write brief {i}.") for i in range(3)]
    fake.add_page("Draft", trigger=False, description="Not yet.")
    with api_client(api_rt) as client:
        synced = assert_ok(client.post("/api/notion/sync"))

    assert (synced["seen"], synced["taken"], synced["already_taken"]) == (3, 3, 0)
    assert sorted(j.external_id or "" for j in notion_jobs(api_rt)) == sorted(ticked)
    assert all(fake.page(p)["Trigger"] is False for p in ticked)
    assert manual_runs(api_rt) == [("manual", "ok", "run by api")]
    assert [actor for actor, _ in audit_of(api_rt, "notion.sync")] == ["api"]


def test_sync_with_the_connector_off_is_409(offline: Runtime) -> None:
    with api_client(offline) as client:
        error = assert_error(client.post("/api/notion/sync"), 409, "conflict")
    assert OFF_HINT in error["message"]
    assert manual_runs(offline) == []


def test_sync_when_notion_is_down_is_502_after_five_tries(
    api_rt: Runtime, fake: NotionServer
) -> None:
    """Notion answering 503 is retried with backoff (1 + 2 + 4 + 8 s, on the real clock)
    before the answer says so."""
    fake.add_page("Later", description="Some work.")
    fake.fail(100, status=503)
    with api_client(api_rt) as client:
        error = assert_error(client.post("/api/notion/sync"), 502, "upstream_failed")
        status = assert_ok(client.get("/api/notion/status"))

    assert "503" in error["message"]
    assert len(fake.requests) == 5
    assert notion_jobs(api_rt) == [] and manual_runs(api_rt) == []
    # Notion being down does not stop the connector: the next poll asks again.
    assert status["status"] != "stopped" and "503" in (status["poll_error"] or "")


def test_a_refused_token_is_502_then_409_until_a_check_passes(
    api_rt: Runtime, fake: NotionServer
) -> None:
    fake.add_page("Waiting", description="Some work.")
    fake.deny(401)
    with api_client(api_rt) as client:
        refused = assert_error(client.post("/api/notion/sync"), 502, "upstream_failed")
        asked = len(fake.requests)
        stopped = assert_error(client.post("/api/notion/sync"), 409, "conflict")
        assert len(fake.requests) == asked  # stopped: Notion is not called
        still = assert_ok(client.post("/api/notion/check"))
        fake.deny(None)
        fixed = assert_ok(client.post("/api/notion/check"))
        synced = assert_ok(client.post("/api/notion/sync"))

    assert REFUSED in refused["message"] and "stopped" in stopped["message"]
    assert (still["ok"], still["status"]) == (False, "stopped")
    assert REFUSED in still["problems"][0]
    assert (fixed["ok"], fixed["status"]) == (True, "on")
    assert synced["taken"] == 1


# ---- the dashboard's Notion panel -----------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard_notion() -> Iterator[NotionServer]:
    with NotionServer() as server:
        yield server


def start_with_dotenv(home: Path, values: dict[str, str]) -> Server:
    """`echopilot serve` reading `values` from the `.env` of the folder it runs in, where a
    user keeps such secrets (start_server passes no Notion variable itself)."""
    home.parent.mkdir(parents=True, exist_ok=True)
    (home.parent / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return start_server(offline_settings(home))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, dashboard_notion: NotionServer
) -> Iterator[Server]:
    """The connector on, pointed at the module's fake Notion."""
    require_browser()
    served = start_with_dotenv(
        tmp_path_factory.mktemp("notion-on") / "var", notion_env(dashboard_notion)
    )
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def off_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No Notion setting at all."""
    require_browser()
    served = start_server(offline_settings(tmp_path_factory.mktemp("notion-off") / "var"))
    try:
        yield served
    finally:
        served.stop()


def sync_button(panel: Any) -> Any:
    return panel.get_by_role("button", name="Sync now", include_hidden=True)


def check_button(panel: Any) -> Any:
    return panel.get_by_role("button", name="Check again", include_hidden=True)


def test_the_panel_says_how_to_turn_the_connector_on_when_off(
    browser: Any, off_server: Server
) -> None:
    watch = PageWatch()
    with open_page(browser, off_server, watch) as tab:
        signed_in(tab)
        panel = tab.locator("#panel-notion")
        expect(panel.locator("h2")).to_have_text("Notion")
        expect(panel.locator(".notion-state")).to_have_text(
            "Off: set NOTION_TOKEN and NOTION_QUEUE_DB_ID to take tasks from a Notion queue."
        )
        expect(sync_button(panel)).to_be_hidden()
        expect(check_button(panel)).to_be_hidden()
        expect(panel.locator(".notion-facts")).to_be_hidden()
    watch.assert_clean(off_server.netloc)


def test_the_panel_shows_the_connector_on_and_sync_now_takes_a_new_page(
    page: Any, server: Server, dashboard_notion: NotionServer, watch: PageWatch, tmp_path: Path
) -> None:
    fake = dashboard_notion
    for i in (1, 2):
        fake.add_page(f"Brief {i}", description=f"Write brief {i}.")
    assert server.api("POST", "/api/notion/sync")["taken"] == 2

    signed_in(page)
    panel = page.locator("#panel-notion")
    state = panel.locator(".notion-state")
    taken = panel.locator('[data-fact="taken"]')
    expect(state).to_have_text("On: polling the queue every 60 s.")
    expect(state).not_to_have_class(re.compile("warn-text"))
    expect(taken).to_have_text("2 (2 in 24 h)")
    expect(panel.locator('[data-fact="pending"]')).to_have_text("0")
    expect(panel.locator('[data-fact="polled"]')).not_to_have_text("never")
    expect(panel.locator('[data-fact="lag"]')).to_have_text(re.compile(r"^[\d.]+ s$"))
    expect(check_button(panel)).to_be_visible()
    save_screenshot(page, tmp_path, "notion-panel.png", panel)

    new = fake.add_page("Brief 3", description="Write brief 3.")
    sync_button(panel).click()

    expect(panel.locator(".form-msg")).to_have_text(
        re.compile(r"^Took 1 page; wrote 1, Notion showed 1\.$")
    )
    expect(taken).to_have_text("3 (3 in 24 h)")
    shown = fake.page(new)
    assert shown["Trigger"] is False and shown["Status"] == "Processing"
    assert isinstance(shown["Job ID"], int)
    posts = [r.url.rsplit("/api/", 1)[1] for r in watch.requests if r.method == "POST"]
    assert posts == ["notion/sync"]
    watch.assert_clean(server.netloc)


def test_a_stopped_connector_shows_why_and_check_again_turns_it_back_on(
    page: Any, server: Server, dashboard_notion: NotionServer, watch: PageWatch
) -> None:
    fake = dashboard_notion
    fake.deny(401)
    try:
        answer = httpx.post(
            server.url + "/api/notion/sync", headers={"X-Dash-Key": TEST_KEY}, timeout=30
        )
        assert_error(answer, 502, "upstream_failed")

        signed_in(page)
        panel = page.locator("#panel-notion")
        state = panel.locator(".notion-state")
        expect(state).to_have_text(re.compile(r"^Stopped: " + re.escape(REFUSED)))
        expect(state).to_have_class(re.compile("warn-text"))
        expect(sync_button(panel)).to_be_hidden()
        expect(check_button(panel)).to_be_visible()

        check_button(panel).click()  # Notion still refuses
        expect(panel.locator(".form-msg")).to_contain_text(REFUSED)
        expect(state).to_have_text(re.compile("^Stopped: "))
        expect(sync_button(panel)).to_be_hidden()
    finally:
        fake.deny(None)

    check_button(panel).click()

    expect(panel.locator(".form-msg")).to_have_text(
        "The databases are usable: the connector is on."
    )
    expect(state).to_have_text("On: polling the queue every 60 s.")
    expect(sync_button(panel)).to_be_visible()
    watch.assert_clean(server.netloc)
