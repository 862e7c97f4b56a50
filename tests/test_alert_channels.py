"""Alert channels against real local servers: an SMTP server (aiosmtpd) that receives the
alert email Apprise sends, an HTTP receiver for Apprise's json:// URLs, a channel that
refuses connections (recorded, retried at the next check, alone), the log when no channel
is set, Telegram's URL built from its two settings without a network call, and bad
channel settings and silences refused by the CLI and the API, naming the setting.

Every server listens on 127.0.0.1; nothing leaves this machine.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import apprise
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from echopilot.alerts import channels
from echopilot.alerts.engine import check
from echopilot.config import Settings
from echopilot.db.engine import read_session
from echopilot.db.models import Alert, AlertEvent, AlertSilence
from echopilot.jobs import intake
from echopilot.jobs.intake import JobRequest
from echopilot.runtime import Runtime
from tests.api_support import api_client, assert_error, assert_ok, free_port
from tests.conftest import BACKENDS, run_cli

TEXT = "Confidential clinic figures: forty clinics enrolled, costs stayed flat."
SMTP_SECRET = "smtp-pass-Zq81xWv"
TELEGRAM_TOKEN = "123456:ABC-secret"
RECIPIENTS = {"ops@example.com", "cto@example.com"}
DASHBOARD = "http://127.0.0.1:8000/dashboard"
# ------------------------------------------------------------------ local servers


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that records every JSON body posted to it."""

    def __init__(self, port: int = 0) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield mailbox, int(controller.port)
    finally:
        controller.stop()


def closed_port() -> int:
    """A port nothing listens on (connections to it are refused)."""
    return free_port()


# ------------------------------------------------------------------ helpers


def waiting_job(rt: Runtime) -> int:
    """A queued job and no worker heartbeat: the no_live_worker condition."""
    request = JobRequest(name="waiting job", task_type="summary", input=TEXT, source="api")
    return intake.submit(rt, request, actor="test").id


def channel_for(rt: Runtime, port: int) -> channels.Channel:
    found = [c for c in channels.configured(rt.settings).usable if f":{port}/" in c.url]
    assert len(found) == 1, found
    return found[0]


def the_alert(rt: Runtime, key: str = "no_live_worker") -> Alert:
    with read_session(rt.sessions) as session:
        alert = session.scalars(select(Alert).where(Alert.key == key)).one()
        session.expunge(alert)
        return alert


def events(rt: Runtime, event: str | None = None) -> list[AlertEvent]:
    with read_session(rt.sessions) as session:
        query = select(AlertEvent).order_by(AlertEvent.id)
        if event is not None:
            query = query.where(AlertEvent.event == event)
        rows = list(session.scalars(query))
        for row in rows:
            session.expunge(row)
        return rows


def count(rt: Runtime, model: Any) -> int:
    with read_session(rt.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def alert_log(settings: Settings) -> list[dict[str, Any]]:
    path = settings.home / "logs" / "alerts.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_mail(raw: bytes) -> tuple[str, str]:
    """(subject, every text part decoded) of a message as the SMTP server received it."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    texts = [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]
    return str(message["subject"]), "\n".join(texts)


def one_error_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return str(lines[0])


# ------------------------------------------------------------------ delivery


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_an_alert_email_reaches_every_recipient_through_a_local_smtp_server(
    make_runtime: Callable[..., Runtime],
) -> None:
    with smtp_server() as (mailbox, port):
        rt = make_runtime(
            ai_provider="offline",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            smtp_pass=SMTP_SECRET,
            alert_to="ops@example.com, cto@example.com",
            smtp_from="echopilot@example.com",
        )
        found = channels.configured(rt.settings)
        assert found.problems == []
        assert [c.setting for c in found.usable] == ["SMTP_HOST"]
        assert SMTP_SECRET not in found.usable[0].name
        waiting_job(rt)

        answer = check(rt, only=["no_live_worker"])

    assert answer["target"] == "channels"
    assert answer["opened"] == ["no_live_worker"]
    assert [(s["key"], s["kind"]) for s in answer["sent"]] == [("no_live_worker", "fired")]
    assert list(answer["sent"][0]["channels"].values()) == ["ok"], answer["sent"]
    title = answer["firing"][0]["title"]
    assert title == "no live worker while 1 job waits"

    assert mailbox.messages, "the SMTP server received nothing"
    assert {rcpt for _, rcpts, _ in mailbox.messages for rcpt in rcpts} == RECIPIENTS
    for sender, _, raw in mailbox.messages:
        assert sender == "echopilot@example.com"
        subject, body = read_mail(raw)
        assert "HIGH" in subject and title in subject, subject
        assert "Severity: high" in body and "Since " in body, body
        # Line by line, as written (an HTML reading of plain text would run them together).
        plain = email.message_from_bytes(raw, policy=email.policy.default).get_body(("plain",))
        assert plain is not None
        lines = [line.strip() for line in plain.get_content().splitlines()]
        assert any(line.startswith("Severity: high") for line in lines), lines
        assert DASHBOARD in body, body
        assert "no_live_worker" in body
        for secret in (TEXT, "Confidential clinic", SMTP_SECRET):
            assert secret not in body
            assert secret.encode() not in raw
        assert SMTP_SECRET not in subject

    alert = the_alert(rt)
    assert alert.status == "open" and alert.severity == "high"
    assert alert.last_sent_at is not None and alert.pending is None
    assert [state["ok"] for state in alert.channels.values()] == [True]
    assert SMTP_SECRET not in json.dumps(answer)
    assert SMTP_SECRET not in (rt.settings.home / "logs" / "alerts.log").read_text()


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_an_email_to_many_recipients_is_sent_and_recorded(
    make_runtime: Callable[..., Runtime],
) -> None:
    """ALERT_TO may hold up to 2,000 characters: the channel's name (which lists the
    recipients) must still fit where sends are recorded."""
    many = [f"on-call-person-number-{n:02}@example.com" for n in range(40)]
    with smtp_server() as (mailbox, port):
        rt = make_runtime(
            ai_provider="offline",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            alert_to=", ".join(many),
        )
        waiting_job(rt)
        answer = check(rt, only=["no_live_worker"])

    assert [list(s["channels"].values()) for s in answer["sent"]] == [["ok"]]
    assert sorted(r for _, rcpts, _ in mailbox.messages for r in rcpts) == many
    [sent] = events(rt, "sent")
    [name] = the_alert(rt).channels
    assert sent.channel == name == answer["channels"][0]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_json_url_delivers_title_and_message_to_a_local_http_receiver(
    make_runtime: Callable[..., Runtime],
) -> None:
    with Receiver() as receiver:
        rt = make_runtime(ai_provider="offline", alert_urls=receiver.url("/alerts/in"))
        waiting_job(rt)
        answer = check(rt, only=["no_live_worker"])
        # Within the cooldown the same open alert is not sent again.
        again = check(rt, only=["no_live_worker"])

    assert answer["target"] == "channels" and answer["channel_problems"] == []
    assert [s["kind"] for s in answer["sent"]] == ["fired"]
    assert again["sent"] == [] and again["opened"] == []
    assert len(receiver.posts) == 1, receiver.posts
    path, payload = receiver.posts[0]
    assert path == "/alerts/in"
    assert payload["title"] == "[EchoPilot] HIGH: no live worker while 1 job waits"
    message = payload["message"]
    assert message.startswith("no live worker while 1 job waits\n")
    assert "Severity: high. Since " in message
    assert f"Rule: no_live_worker. Dashboard: {DASHBOARD}" in message
    assert TEXT not in message
    assert the_alert(rt).count == 2


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_refused_channel_is_recorded_and_alone_retried_at_the_next_check(
    make_runtime: Callable[..., Runtime],
) -> None:
    refused = closed_port()
    with Receiver() as good:
        rt = make_runtime(
            ai_provider="offline",
            alert_urls=f"{good.url()} json://127.0.0.1:{refused}/hook",
        )
        good_name = channel_for(rt, good.port).name
        bad_name = channel_for(rt, refused).name
        waiting_job(rt)

        first = check(rt, only=["no_live_worker"])

        assert len(good.posts) == 1
        [sent] = first["sent"]
        assert sent["kind"] == "fired"
        assert sent["channels"][good_name] == "ok"
        assert sent["channels"][bad_name] != "ok" and sent["channels"][bad_name]
        alert = the_alert(rt)
        assert alert.channels[good_name]["ok"] is True
        assert alert.channels[bad_name]["ok"] is False
        assert alert.channels[bad_name]["error"]
        assert alert.pending == {"kind": "fired", "channels": [bad_name]}
        failed = events(rt, "send_failed")
        assert [(e.channel, e.alert_id) for e in failed] == [(bad_name, alert.id)]
        assert failed[0].detail["error"]
        logged = [e for e in alert_log(rt.settings) if e["event"] == "send_failed"]
        assert [(e["channel"], e["key"]) for e in logged] == [(bad_name, "no_live_worker")]
        assert logged[0]["error"]

        # The refused channel's port now listens: only it gets the retry.
        with Receiver(refused) as late:
            second = check(rt, only=["no_live_worker"])

    assert len(good.posts) == 1, "the channel that had delivered got the alert twice"
    assert len(late.posts) == 1
    assert late.posts[0][1]["title"] == good.posts[0][1]["title"]
    assert second["sent"] == [
        {"key": "no_live_worker", "kind": "fired", "channels": {bad_name: "ok"}}
    ]
    alert = the_alert(rt)
    assert alert.pending is None
    assert alert.channels[bad_name]["ok"] is True and alert.channels[good_name]["ok"] is True
    assert len(events(rt, "send_failed")) == 1
    assert [e.channel for e in events(rt, "sent")] == [good_name, bad_name]


def test_without_a_channel_the_alert_is_recorded_for_the_log(offline: Runtime) -> None:
    waiting_job(offline)
    answer = check(offline, only=["no_live_worker"])

    assert answer["target"] == "log"
    assert answer["channels"] == [] and answer["channel_problems"] == []
    assert answer["opened"] == ["no_live_worker"]
    assert answer["sent"] == [{"key": "no_live_worker", "kind": "fired", "channels": {"log": "ok"}}]
    alert = the_alert(offline)
    assert alert.status == "open" and alert.rule == "no_live_worker"
    assert [e.event for e in events(offline) if e.event in ("fired", "check")] == [
        "fired",
        "check",
    ]
    logged = [e["event"] for e in alert_log(offline.settings)]
    assert "check" in logged and "sent" in logged


def test_telegram_settings_make_a_masked_tgram_channel_without_a_network_call(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(telegram_bot_token=TELEGRAM_TOKEN, telegram_chat_id="-100200300")

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a network call: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    found = channels.configured(settings)

    assert found.problems == []
    [channel] = found.usable
    assert channel.setting == "TELEGRAM_BOT_TOKEN"
    assert channel.url.startswith("tgram://")
    assert channel.name.startswith("tgram://")
    assert TELEGRAM_TOKEN not in channel.name and "ABC-secret" not in channel.name
    plugin = apprise.Apprise.instantiate(channel.url)
    assert plugin is not None
    assert plugin.bot_token == TELEGRAM_TOKEN
    assert [str(chat) for chat, _topic in plugin.targets] == ["-100200300"]


# ------------------------------------------------------------------ bad input


def test_a_malformed_alert_url_is_named_refused_by_people_and_skipped_by_the_scheduler(
    make_runtime: Callable[..., Runtime],
) -> None:
    with Receiver() as good:
        urls = f"notaurl {good.url()}"
        rt = make_runtime(ai_provider="offline", alert_urls=urls)
        found = channels.configured(rt.settings)
        assert [c.url for c in found.usable] == [good.url()]
        assert len(found.problems) == 1
        assert found.problems[0].startswith("ECHOPILOT_ALERT_URLS: entry 1 ")
        waiting_job(rt)

        cli = run_cli(rt.settings, "alerts", "check", extra_env={"ECHOPILOT_ALERT_URLS": urls})
        assert cli.returncode == 2, (cli.stdout, cli.stderr)
        line = one_error_line(cli)
        assert line.startswith("error: ECHOPILOT_ALERT_URLS:"), line
        assert str(good.port) not in line
        assert events(rt) == [] and count(rt, Alert) == 0
        assert not (rt.settings.home / "logs" / "alerts.log").exists()

        with api_client(rt) as client:
            response = client.post("/api/alerts/trigger")
        error = assert_error(response, 422, "bad_configuration")
        assert error["message"].startswith("ECHOPILOT_ALERT_URLS:")
        assert error["fields"] == ["ECHOPILOT_ALERT_URLS"]
        assert events(rt) == [] and good.posts == []

        # The scheduler's check reports the problem and uses the good channel.
        answer = check(rt, only=["no_live_worker"])

    assert answer["channel_problems"] == found.problems
    assert answer["channels"] == [c.name for c in found.usable]
    assert [s["channels"] for s in answer["sent"]] == [{found.usable[0].name: "ok"}]
    assert len(good.posts) == 1
    assert good.posts[0][1]["title"].endswith("no live worker while 1 job waits")


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"SMTP_PORT": "abc"}, "SMTP_PORT"),
        ({"ALERT_TO": "ops@example.com"}, "SMTP_HOST"),
        ({"SMTP_HOST": "127.0.0.1", "ALERT_TO": "not-an-address"}, "ALERT_TO"),
        ({"SMTP_HOST": "127.0.0.1"}, "ALERT_TO"),
        ({"TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN}, "TELEGRAM_CHAT_ID"),
    ],
)
def test_bad_channel_settings_make_alerts_check_exit_2_naming_the_setting(
    offline: Runtime, env: dict[str, str], setting: str
) -> None:
    waiting_job(offline)
    result = run_cli(offline.settings, "alerts", "check", extra_env=env)

    assert result.returncode == 2, (result.stdout, result.stderr)
    line = one_error_line(result)
    assert line.startswith(f"error: {setting}:"), line
    assert "ABC-secret" not in line
    assert events(offline) == [] and count(offline, Alert) == 0


def test_email_settings_problems_name_the_setting(make_settings: Callable[..., Settings]) -> None:
    alone = channels.configured(make_settings(alert_to="ops@example.com"))
    assert alone.usable == []
    assert len(alone.problems) == 1
    assert alone.problems[0].startswith("SMTP_HOST:") and "ALERT_TO" in alone.problems[0]

    wrong = channels.configured(make_settings(smtp_host="127.0.0.1", alert_to="not-an-address"))
    assert wrong.usable == []
    assert wrong.problems == ["ALERT_TO: 'not-an-address' is not an email address"]

    one_bad = channels.configured(
        make_settings(smtp_host="127.0.0.1", alert_to="ops@example.com, nobody")
    )
    assert one_bad.usable == [] and one_bad.problems[0].startswith("ALERT_TO:")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("nosuchrule", "--for", "1h"), "RULE"),
        (("no_live_worker", "--for", "0m"), "--for"),
        (("no_live_worker", "--for", "-1h"), "--for"),
        (("no_live_worker", "--for", "31d"), "--for"),
        (("no_live_worker", "--for", "soon"), "--for"),
    ],
)
def test_a_bad_silence_exits_2_naming_the_argument_and_writes_nothing(
    offline: Runtime, args: tuple[str, ...], named: str
) -> None:
    result = run_cli(offline.settings, "alerts", "silence", *args)

    assert result.returncode == 2, (result.stdout, result.stderr)
    line = one_error_line(result)
    assert line.startswith(f"error: {named}:"), line
    assert count(offline, AlertSilence) == 0


def test_the_api_refuses_a_bad_silence_with_422_and_accepts_a_good_one(offline: Runtime) -> None:
    bad = [
        ({"rule": "nosuchrule", "duration": "1h"}, "rule"),
        ({"rule": "no_live_worker", "duration": "0m"}, "duration"),
        ({"rule": "no_live_worker", "duration": "-1h"}, "duration"),
        ({"rule": "no_live_worker", "duration": "31d"}, "duration"),
        ({"rule": "no_live_worker", "duration": "forever"}, "duration"),
    ]
    with api_client(offline) as client:
        for body, field in bad:
            error = assert_error(client.post("/api/alerts/silences", json=body), 422)
            assert error["fields"] == [field], (body, error)
        assert count(offline, AlertSilence) == 0
        assert_error(client.delete("/api/alerts/silences/nosuchrule"), 422)

        shown = assert_ok(
            client.post(
                "/api/alerts/silences",
                json={"rule": "no_live_worker", "duration": "2h", "reason": "maintenance"},
            )
        )
    assert shown["rule"] == "no_live_worker" and shown["reason"] == "maintenance"
    assert count(offline, AlertSilence) == 1


def test_a_malformed_alert_url_is_named_at_scheduler_start_and_the_rest_still_work(
    offline: Runtime,
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import env_for

    env = {
        **env_for(offline.settings),
        "ECHOPILOT_ALERT_URLS": "notaurl json://127.0.0.1:9/hook",
        "ECHOPILOT_SCHEDULE_SELF_HEAL": "off",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "echopilot", "scheduler", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=offline.settings.home.parent,
    )
    try:
        seen = ""
        deadline = time.monotonic() + 60
        assert child.stdout is not None
        while "scheduler started" not in seen and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            seen += line
        assert "scheduler started" in seen, seen
        assert "Alert channel not used: ECHOPILOT_ALERT_URLS: entry 1" in seen
        assert "Alert channels: json://127.0.0.1:9" in seen
        assert "notaurl" not in seen  # a URL may hold a token: never echoed
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)
