"""The CEO brief as its users get it: `echopilot brief` in a clean environment, its email
through a real SMTP server (aiosmtpd on 127.0.0.1) once per brief and again only when a
resend is asked for, mail problems answered in one line and never raised, the /api/exec
routes (key, stamps, newest brief, its files and nothing outside their folder), the
scheduled task (one brief and one email per slot, its time from SCHED_BRIEF_UTC) and no
secret in any file, log line or answer.

The CLI runs as a child process with only the settings' variables, as a user's shell would
run it; the API through the app with the key; the scheduled task through the scheduler's
inline runner. Nothing leaves this machine.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from echopilot import keys
from echopilot.briefs import service
from echopilot.briefs.render import POLICY
from echopilot.db.engine import read_session
from echopilot.db.models import Brief
from echopilot.runtime import Runtime
from echopilot.scheduler.executor import InlineRunner
from tests import api_support
from tests.api_support import TEST_KEY, api_client, app_routes, free_port
from tests.conftest import run_cli
from tests.fakes.model_server import FakeModelServer, Reply
from tests.test_brief_mailer import Login, Mailbox, smtp_server

SENDER = "brief@example.com"
TO = ["ceo@example.com", "cfo@example.com"]
USER = "echopilot"
SMTP_SECRET = "smtp-pass-Brief-73qZ"
OPENAI_SECRET = "sk-brief-test-9f8e7d6c5b4a"
CHART_NAMES = {"money", "quality", "jobs", "types"}
STAMP = re.compile(r"^\d{8}_\d{6}(?:-\d{1,4})?$")
SLOT = datetime(2025, 3, 15, 8, 0, tzinfo=UTC)
# ------------------------------------------------------------------ helpers


def mail_values(port: int, **overrides: Any) -> dict[str, Any]:
    """Settings for the local relay on `port`, sending to TO."""
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_from": SENDER,
        "alert_to": ", ".join(TO),
        **overrides,
    }


def mail_env(port: int, **extra: str) -> dict[str, str]:
    """The same settings as a child process's environment."""
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": SENDER,
        "ALERT_TO": ", ".join(TO),
        **extra,
    }


# The TestClient answers with its own httpx's Response class; api_support's helpers read
# only what every Response has.
def assert_ok(response: Any, status: int = 200) -> Any:
    return api_support.assert_ok(response, status)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    return api_support.assert_error(response, status, code)


def closed_port() -> int:
    """A port nothing listens on: connections to it are refused at once."""
    return free_port()


def cli_brief(rt: Runtime, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli(rt.settings, "brief", *args, "--json", extra_env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def folder(rt: Runtime) -> Path:
    return rt.settings.home / "reports" / "briefs"


def brief_files(rt: Runtime) -> list[str]:
    where = folder(rt)
    return (
        sorted(p.name for p in where.iterdir() if not p.name.startswith("."))
        if where.exists()
        else []
    )


def files_of(stamp: str) -> list[str]:
    return sorted(
        [f"analysis_{stamp}.json", f"ingest_{stamp}.json"]
        + [f"brief_{stamp}.{kind}" for kind in ("html", "md", "json")]
    )


def assert_written(rt: Runtime, brief: dict[str, Any]) -> None:
    """The brief's three files exist in the folder, and its JSON is the brief answered."""
    stamp = brief["stamp"]
    assert STAMP.match(stamp), stamp
    assert brief["paths"] == {
        kind: str(folder(rt) / f"brief_{stamp}.{kind}") for kind in ("html", "md", "json")
    }
    for path in brief["paths"].values():
        assert Path(path).is_file(), path
    saved = json.loads(Path(brief["paths"]["json"]).read_text())
    assert saved["stamp"] == stamp and saved["headline"] == brief["headline"]
    assert brief["headline"] in Path(brief["paths"]["html"]).read_text()


def exec_log(rt: Runtime) -> list[dict[str, Any]]:
    path = rt.settings.home / "logs" / "exec.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def events(rt: Runtime, event: str) -> list[dict[str, Any]]:
    return [line for line in exec_log(rt) if line["event"] == event]


def one_line(reason: Any) -> str:
    assert isinstance(reason, str) and reason, reason
    assert "\n" not in reason and "\r" not in reason, reason
    return reason


def brief_rows(rt: Runtime) -> list[Brief]:
    with read_session(rt.sessions) as session:
        return list(session.scalars(select(Brief).order_by(Brief.id)))


def received(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture
def mail_runtime(make_runtime: Callable[..., Runtime]) -> Callable[..., Runtime]:
    def make(port: int, **overrides: Any) -> Runtime:
        return make_runtime(ai_provider="offline", **mail_values(port, **overrides))

    return make


# ------------------------------------------------------------------ the CLI, no mail


def test_a_brief_on_an_empty_database_says_no_jobs_yet_and_writes_its_files(
    offline: Runtime,
) -> None:
    brief = cli_brief(offline)

    assert brief["headline"] == "No jobs yet"
    assert brief["counts"]["total"] == 0 and brief["top_risks"] == []
    assert brief["email"]["status"] == "not_sent"
    assert_written(offline, brief)
    assert brief_files(offline) == files_of(brief["stamp"])
    [written] = events(offline, "brief_written")
    assert (written["stamp"], written["actor"], written["headline"]) == (
        brief["stamp"],
        "cli",
        "No jobs yet",
    )
    assert [row.stamp for row in brief_rows(offline)] == [brief["stamp"]]


def test_resend_without_email_is_refused_naming_resend(offline: Runtime) -> None:
    result = run_cli(offline.settings, "brief", "--resend")

    assert result.returncode == 2, result.stderr
    assert "--resend" in result.stderr and "--email" in result.stderr, result.stderr
    assert brief_files(offline) == []
    assert brief_rows(offline) == []


def test_email_without_smtp_is_not_configured_logged_and_the_brief_still_written(
    offline: Runtime,
) -> None:
    brief = cli_brief(offline, "--email")

    sent = brief["email"]
    assert sent["status"] == "not_configured" and sent["sent"] is False
    assert "SMTP_HOST" in one_line(sent["reason"])
    assert sent["to"] == []
    assert_written(offline, brief)
    [logged] = events(offline, "brief_email_not_sent")
    assert logged["stamp"] == brief["stamp"] and logged["reason"] == sent["reason"]
    assert service.get(offline, brief["stamp"])["email"]["status"] == "not_configured"


# ------------------------------------------------------------------ email end to end


def test_the_brief_is_emailed_once_with_its_charts_inline_and_again_only_on_resend(
    mail_runtime: Callable[..., Runtime],
) -> None:
    with smtp_server() as (mailbox, port):
        rt = mail_runtime(port)
        brief = cli_brief(rt, "--email", env=mail_env(port))
        stamp = brief["stamp"]

        assert brief["email"]["status"] == "sent", brief["email"]
        assert brief["email"]["to"] == TO
        assert_written(rt, brief)
        [(mail_from, rcpt_tos, raw)] = mailbox.messages
        assert mail_from == SENDER and rcpt_tos == TO

        message = received(raw)
        assert [a.addr_spec for a in message["To"].addresses] == TO
        assert brief["headline"] in message["Subject"]
        assert message.get_content_type() == "multipart/related"
        body, *images = message.iter_parts()
        assert body.get_content_type() == "multipart/alternative"
        plain, html = body.iter_parts()
        assert plain.get_content_type() == "text/plain"
        assert brief["headline"] in plain.get_content()
        assert html.get_content_type() == "text/html"
        markup = html.get_content()
        assert brief["headline"] in markup
        assert len(images) == 4
        names = set()
        for image in images:
            assert image.get_content_type() == "image/png"
            assert image.get_content_disposition() == "inline"
            assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
            cid = image["Content-ID"].strip("<>")
            assert f'src="cid:{cid}"' in markup, cid
            names.add(cid.split("@", 1)[0])
        assert names == CHART_NAMES
        # Every image the HTML shows travels with it: nothing to fetch.
        assert len(re.findall(r'src="cid:', markup)) == 4
        assert "data:image" not in markup
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup)

        with api_client(rt) as client:
            again = client.post("/api/exec/email", params={"stamp": stamp})
            error = assert_error(again, 409, "conflict")
            assert "resend" in error["message"]
            assert len(mailbox.messages) == 1  # nothing sent again

            resent = assert_ok(
                client.post("/api/exec/email", params={"stamp": stamp, "resend": "true"})
            )
            assert (resent["stamp"], resent["status"], resent["to"]) == (stamp, "sent", TO)
            assert len(mailbox.messages) == 2
            assert [rcpts for _, rcpts, _ in mailbox.messages] == [TO, TO]

            latest = assert_ok(client.get("/api/exec/report-latest"))
    assert latest["stamp"] == stamp
    assert latest["email"]["status"] == "sent" and latest["email"]["to"] == TO
    assert latest["email"]["sent_at"] is not None and latest["email"]["error"] is None
    [row] = brief_rows(rt)
    assert (row.email_status, row.email_to, row.email_sends) == ("sent", ",".join(TO), 2)
    emailed = events(rt, "brief_emailed")
    assert [(e["actor"], e["resend"], e["to"]) for e in emailed] == [
        ("cli", False, TO),
        ("api", True, TO),
    ]


def test_a_refused_login_is_answered_in_one_line_and_the_brief_is_kept(
    mail_runtime: Callable[..., Runtime],
) -> None:
    login = Login(USER, "the-right-password")
    with smtp_server(authenticator=login, auth_require_tls=False) as (mailbox, port):
        rt = mail_runtime(port, smtp_user=USER, smtp_pass=SMTP_SECRET)
        with api_client(rt) as client:
            answer = client.post("/api/exec/brief", params={"email": "true"})
            brief = assert_ok(answer)

    sent = brief["email"]
    assert sent["status"] == "failed" and sent["sent"] is False and sent["to"] == []
    reason = one_line(sent["reason"])
    assert "login" in reason.lower() and "SMTP_USER" in reason, reason
    assert login.tried, "no login was attempted"
    assert mailbox.messages == []
    assert_written(rt, brief)
    [failed] = events(rt, "brief_email_failed")
    assert failed["stamp"] == brief["stamp"] and failed["error"] == reason
    # The server echoed the password it was given: nobody else sees it.
    assert SMTP_SECRET not in answer.text
    assert SMTP_SECRET not in (rt.settings.home / "logs" / "exec.log").read_text()
    [row] = brief_rows(rt)
    assert (row.email_status, row.email_error) == ("failed", reason)


def test_an_unreachable_mail_server_is_answered_not_raised(
    mail_runtime: Callable[..., Runtime],
) -> None:
    port = closed_port()
    rt = mail_runtime(port)
    with api_client(rt) as client:
        brief = assert_ok(client.post("/api/exec/brief", params={"email": "true"}))
        latest = assert_ok(client.get("/api/exec/report-latest"))

    sent = brief["email"]
    assert sent["status"] == "failed" and sent["sent"] is False
    reason = one_line(sent["reason"])
    assert f"127.0.0.1:{port}" in reason and "refused" in reason, reason
    assert_written(rt, brief)
    assert [e["stamp"] for e in events(rt, "brief_email_failed")] == [brief["stamp"]]
    assert latest["email"]["status"] == "failed" and latest["email"]["error"] == reason


def test_a_malformed_alert_to_is_not_configured_naming_it(
    mail_runtime: Callable[..., Runtime],
) -> None:
    with smtp_server() as (mailbox, port):
        rt = mail_runtime(port, alert_to="not-an-address")
        with api_client(rt) as client:
            brief = assert_ok(client.post("/api/exec/brief", params={"email": "true"}))

    sent = brief["email"]
    assert sent["status"] == "not_configured" and sent["sent"] is False
    reason = one_line(sent["reason"])
    assert reason.startswith("ALERT_TO") and "not-an-address" in reason, reason
    assert mailbox.messages == []  # neither the brief nor its short version
    assert_written(rt, brief)
    assert [e["reason"] for e in events(rt, "brief_email_not_sent")] == [reason]


# ------------------------------------------------------------------ the API


def exec_operations(client: TestClient) -> list[tuple[str, str]]:
    """Every /api/exec route, its parameters filled with a well-formed value."""
    found = [
        (method, path.replace("{stamp}", "20250315_080000").replace("{kind}", kind))
        for method, path in app_routes(client.app)
        if path.startswith("/api/exec/")
        for kind in (("html", "md", "json") if "{kind}" in path else ("",))
    ]
    assert "{" not in "".join(path for _, path in found), found
    return found


def test_every_exec_route_needs_the_key(offline: Runtime) -> None:
    with api_client(offline, key=None) as client:
        operations = exec_operations(client)
        assert len(operations) >= 8, operations
        for method, path in operations:
            assert_error(client.request(method, path), 401)
        with_wrong_key = client.post("/api/exec/brief", headers={"X-Dash-Key": "x" * len(TEST_KEY)})
        assert_error(with_wrong_key, 401)
    assert brief_files(offline) == []
    assert brief_rows(offline) == []


def test_analyze_reads_the_snapshot_ingest_saved(offline: Runtime) -> None:
    with api_client(offline) as client:
        ingested = assert_ok(client.post("/api/exec/ingest"))
        stamp = ingested["stamp"]
        analyzed = assert_ok(client.post("/api/exec/analyze", params={"stamp": stamp}))

    assert STAMP.match(stamp)
    assert Path(ingested["path"]) == folder(offline) / f"ingest_{stamp}.json"
    assert ingested["signals"]["stamp"] == stamp
    assert analyzed["stamp"] == stamp
    assert Path(analyzed["path"]) == folder(offline) / f"analysis_{stamp}.json"
    saved = json.loads(Path(analyzed["path"]).read_text())
    assert saved["stamp"] == stamp and saved["cutoff"] == ingested["signals"]["cutoff"]
    # That snapshot, not a new one; and no brief.
    assert brief_files(offline) == [f"analysis_{stamp}.json", f"ingest_{stamp}.json"]
    assert brief_rows(offline) == []


MALFORMED_STAMPS = (
    "yesterday",
    "20250315",
    "20250315-080000",
    "../../dashboard.key",
    "20250315_080000.json",
    "20250315_080000-12345",
)


def test_analyze_refuses_a_malformed_stamp(offline: Runtime) -> None:
    with api_client(offline) as client:
        for stamp in MALFORMED_STAMPS:
            answer = client.post("/api/exec/analyze", params={"stamp": stamp})
            error = assert_error(answer, 422, "invalid_input")
            assert "stamp" in error["message"], (stamp, error)
    assert brief_files(offline) == []


def test_analyze_of_an_unknown_snapshot_is_not_found(offline: Runtime) -> None:
    with api_client(offline) as client:
        error = assert_error(
            client.post("/api/exec/analyze", params={"stamp": "20000101_000000"}), 404, "not_found"
        )
    assert "20000101_000000" in error["message"]
    assert brief_files(offline) == []


def test_report_latest_is_not_found_before_a_brief_then_the_newest(offline: Runtime) -> None:
    with api_client(offline) as client:
        assert_error(client.get("/api/exec/report-latest"), 404, "not_found")
        first = assert_ok(client.post("/api/exec/brief"))
        second = assert_ok(client.post("/api/exec/brief"))
        latest = assert_ok(client.get("/api/exec/report-latest"))

    assert first["stamp"] != second["stamp"]  # two briefs in one second keep apart
    assert latest["stamp"] == second["stamp"]
    assert latest["headline"] == "No jobs yet"
    assert latest["email"] == {"status": "not_sent", "sent_at": None, "to": [], "error": None}
    for brief in (first, second):
        assert_written(offline, brief)


def test_a_briefs_files_are_served_and_nothing_outside_their_folder(offline: Runtime) -> None:
    key_file_secret = keys.load_or_create(offline.settings).value  # <home>/dashboard.key
    (offline.settings.home / "reports" / "private.md").parent.mkdir(parents=True, exist_ok=True)
    (offline.settings.home / "reports" / "private.md").write_text("PRIVATE-OUTSIDE-THE-FOLDER")
    with api_client(offline) as client:
        brief = assert_ok(client.post("/api/exec/brief"))
        stamp = brief["stamp"]
        base = f"/api/exec/briefs/{stamp}"

        page = client.get(f"{base}/html")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        # Browsers enforce every policy sent: the brief's own forbids loading anything.
        assert page.headers.get_list("content-security-policy") == [POLICY]  # its own only
        assert "default-src 'none'" in POLICY and "script-src" not in POLICY
        assert page.text == Path(brief["paths"]["html"]).read_text()

        text = client.get(f"{base}/md")
        assert text.status_code == 200
        assert text.headers["content-type"].startswith("text/markdown")
        assert text.text.startswith("# EchoPilot CEO brief: No jobs yet")

        document = client.get(f"{base}/json")
        assert document.status_code == 200
        assert document.json()["stamp"] == stamp

        refused = [
            "/api/exec/briefs/..%2F..%2Fdashboard.key/html",
            "/api/exec/briefs/..%2F..%2F..%2Fdashboard.key/key",
            f"{base}/key",
            f"{base}/..%2F..%2Fdashboard.key",
            f"/api/exec/briefs/{stamp}%2F..%2F..%2F..%2Fdashboard.key/html",
            f"/api/exec/briefs/{stamp}%2F..%2F..%2Fprivate/md",
            "/api/exec/briefs/..%2Fprivate/md",
            f"{base}/html%00",
            "/api/exec/briefs/20000101_000000/html",  # well-formed, no such brief
        ]
        answers = {path: client.get(path) for path in refused}
    for path, answer in answers.items():
        assert answer.status_code in (404, 422), (path, answer.status_code)
        assert key_file_secret not in answer.text, path
        assert "PRIVATE-OUTSIDE-THE-FOLDER" not in answer.text, path
        assert answer.headers["content-type"].startswith("application/json"), path


# ------------------------------------------------------------------ the scheduled task


def test_a_slot_run_twice_makes_one_brief_and_sends_one_email(
    mail_runtime: Callable[..., Runtime],
) -> None:
    with smtp_server(Mailbox()) as (mailbox, port):
        rt = mail_runtime(port)
        runner = InlineRunner(rt)
        first = runner.run("brief", SLOT, SLOT + timedelta(seconds=2), "schedule", timedelta(1))
        # The same slot again (a scheduler restarted after a crash, a second instance).
        again = runner.run("brief", SLOT, SLOT + timedelta(minutes=3), "catchup", timedelta(1))
        by_service = service.scheduled(rt, slot=SLOT, now=SLOT + timedelta(minutes=5))

    assert first.status == "ok" and again.status == "ok", (first.error, again.error)
    assert first.summary is not None and again.summary is not None
    assert first.summary["email"] == "sent"
    assert again.summary["email"] == "sent" and by_service["email"] == "sent"
    assert again.summary["stamp"] == first.summary["stamp"] == by_service["stamp"]
    assert len(mailbox.messages) == 1
    [row] = brief_rows(rt)
    assert row.stamp == first.summary["stamp"] and row.actor == "scheduler"
    assert row.slot is not None and row.slot.replace(tzinfo=UTC) == SLOT
    assert (row.email_status, row.email_sends) == ("sent", 1)
    assert len(events(rt, "brief_written")) == 1
    assert len(events(rt, "brief_emailed")) == 1


def test_a_scheduled_brief_without_smtp_says_not_configured(offline: Runtime) -> None:
    outcome = InlineRunner(offline).run(
        "brief", SLOT, SLOT + timedelta(seconds=1), "schedule", timedelta(1)
    )

    assert outcome.status == "ok", outcome.error
    assert outcome.summary is not None
    assert outcome.summary["email"] == "not_configured"
    assert "SMTP_HOST" in outcome.summary["email_reason"]
    assert outcome.summary["headline"] == "No jobs yet"
    assert all(Path(p).is_file() for p in outcome.summary["paths"].values())


def test_a_bad_sched_brief_utc_stops_start_up_naming_it(offline: Runtime) -> None:
    result = run_cli(
        offline.settings, "scheduler", "status", extra_env={"SCHED_BRIEF_UTC": "25:00"}
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: SCHED_BRIEF_UTC: "), result.stderr
    assert "25:00" in result.stderr and "Traceback" not in result.stderr
    assert brief_files(offline) == []


def test_sched_brief_utc_sets_the_brief_tasks_time(
    make_runtime: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    from echopilot.scheduler.table import build

    default = make_runtime(ai_provider="offline")
    assert build(default.settings)["brief"].schedule.text == "daily 08:00"

    monkeypatch.setenv("SCHED_BRIEF_UTC", "07:30")
    moved = make_runtime(ai_provider="offline")
    with api_client(moved) as client:
        status = assert_ok(client.get("/api/automations/status"))
    [task] = [t for t in status["schedule"] if t["task"] == "brief"]
    assert task["schedule"] == "daily 07:30"
    assert task["next_run"].endswith("T07:30:00+00:00"), task


# ------------------------------------------------------------------ secrets


@pytest.fixture
def secret_world(
    make_runtime: Callable[..., Runtime], model_server: FakeModelServer
) -> Iterator[tuple[Runtime, Mailbox, FakeModelServer]]:
    """A runtime holding every secret: a dashboard key, an OpenAI key (its model server the
    fake one) and an SMTP password that the mail server refuses and echoes back."""
    login = Login(USER, "the-right-password")
    # A model server that refuses the key and, carelessly, repeats it.
    model_server.on("task", *[Reply.error(401, f"Incorrect API key: {OPENAI_SECRET}")] * 10)
    with smtp_server(authenticator=login, auth_require_tls=False) as (mailbox, port):
        rt = make_runtime(
            ai_provider="openai",
            openai_api_key=OPENAI_SECRET,
            openai_base_url=model_server.url,
            dashboard_key=TEST_KEY,
            **mail_values(port, smtp_user=USER, smtp_pass=SMTP_SECRET),
        )
        yield rt, mailbox, model_server


def test_no_secret_reaches_the_files_the_log_or_the_answers(
    secret_world: tuple[Runtime, Mailbox, FakeModelServer],
) -> None:
    rt, mailbox, model_server = secret_world
    answers: list[str] = []
    with api_client(rt) as client:
        for method, path, params in (
            ("POST", "/api/exec/ingest", {}),
            ("POST", "/api/exec/analyze", {}),
            ("POST", "/api/exec/brief", {"email": "true"}),
            ("POST", "/api/exec/email", {"resend": "true"}),
            ("GET", "/api/exec/report-latest", {}),
        ):
            response = client.request(method, path, params=params)
            assert response.status_code == 200, (path, response.text)
            answers.append(response.text)
        stamp = json.loads(answers[-1])["data"]["stamp"]
        for kind in ("html", "md", "json"):
            response = client.get(f"/api/exec/briefs/{stamp}/{kind}")
            assert response.status_code == 200
            answers.append(response.text)

    latest = json.loads(answers[4])["data"]
    assert model_server.count() >= 1  # the model was asked, with the key
    assert latest["narrative"]["source"] == "deterministic", latest["narrative"]
    assert "401" in latest["narrative"]["reason"] and "****" in latest["narrative"]["reason"]
    assert latest["email"]["status"] == "failed", latest["email"]
    assert "login" in latest["email"]["error"].lower()
    assert mailbox.messages == []
    written = [p.read_text() for p in sorted(folder(rt).glob("*_*.*"))]
    assert len(written) >= 7  # one ingest and one analysis alone, then the brief's five
    log = (rt.settings.home / "logs" / "exec.log").read_text()
    assert "brief_email_failed" in log
    for secret in (TEST_KEY, SMTP_SECRET, OPENAI_SECRET):
        for where, text in [("exec.log", log), *(("file", t) for t in written)] + [
            ("answer", a) for a in answers
        ]:
            assert secret not in text, (secret, where)


def test_the_listing_is_empty_before_the_first_brief_then_newest_first(
    offline: Runtime,
) -> None:
    with api_client(offline) as client:
        assert assert_ok(client.get("/api/exec/briefs"))["briefs"] == []
        first = assert_ok(client.post("/api/exec/brief"))
        second = assert_ok(client.post("/api/exec/brief"))
        listed = assert_ok(client.get("/api/exec/briefs?limit=1"))["briefs"]
        assert [b["stamp"] for b in listed] == [second["stamp"]]
        both = assert_ok(client.get("/api/exec/briefs"))["briefs"]
        assert [b["stamp"] for b in both] == [second["stamp"], first["stamp"]]
        assert both[0]["headline"] == second["headline"]
        assert both[0]["email_status"] == "not_sent"
        assert_error(client.get("/api/exec/briefs?limit=0"), 422)
