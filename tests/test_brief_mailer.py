"""The brief's email against a real SMTP server (aiosmtpd on 127.0.0.1): what arrives (an
HTML body with a plain-text alternative and its charts inline, to exactly the ALERT_TO
addresses), and what `send` answers when mail goes wrong (a refused login, a refused
recipient, no server, a silent server, the wrong kind of TLS) without ever showing the
password. Nothing leaves this machine.
"""

from __future__ import annotations

import email
import email.policy
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from echopilot.briefs import mailer
from echopilot.briefs.mailer import Outgoing
from echopilot.config import Settings
from tests.api_support import free_port

SENDER = "brief@example.com"
TO = ["ceo@example.com", "cfo@example.com"]
USER = "echopilot"
PASSWORD = "smtp-pass-Kq93zTw"
SUBJECT = "Brief — 3 anomalies"


def png(width: int, height: int, shade: int) -> bytes:
    """A real, tiny RGB PNG (its bytes hold \\r\\n and \\0, which a careless transfer mangles)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + bytes([shade, 13, 10]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


CHARTS = {"revenue": png(4, 3, 200), "anomalies.png": png(2, 2, 0)}
BRIEF = Outgoing(
    subject=SUBJECT,
    text="Daily brief\n\nRevenue: $1,240 (+12%)\nAnomalies: 3\n",
    html=(
        "<h1>Daily brief</h1><p>Revenue: $1,240 (+12%)</p>"
        '<img src="cid:revenue" alt="revenue"><img src=\'cid:anomalies.png\' alt="anomalies">'
    ),
    images=CHARTS,
)


# ------------------------------------------------------------------ the local server


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts, and can refuse recipients."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"


class Login:
    """An aiosmtpd authenticator that accepts one login and, refusing, echoes the password
    it was given (as a careless server might)."""

    def __init__(self, user: str, password: str) -> None:
        self.expected = (user.encode(), password.encode())
        self.tried: list[tuple[bytes, bytes]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.tried.append((auth_data.login, auth_data.password))
        if (auth_data.login, auth_data.password) == self.expected:
            return AuthResult(success=True)
        echoed = auth_data.password.decode()
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad password {echoed}")


@contextmanager
def smtp_server(mailbox: Mailbox | None = None, **options: Any) -> Iterator[tuple[Mailbox, int]]:
    mailbox = mailbox or Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield mailbox, int(controller.port)
    finally:
        controller.stop()


@pytest.fixture
def mail_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings for a plain local relay on `port`, sending to TO."""

    def make(port: int, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "smtp_from": SENDER,
            "alert_to": ", ".join(TO),
            **overrides,
        }
        return make_settings(**values)

    return make


def received(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_one_line(error: str | None) -> str:
    assert error, error
    assert "\n" not in error and "\r" not in error, error
    return error


# ------------------------------------------------------------------ delivery


def test_the_brief_arrives_as_html_with_a_text_alternative_and_its_charts_inline(
    mail_settings: Callable[..., Settings],
) -> None:
    with smtp_server() as (mailbox, port):
        sent = mailer.send(mail_settings(port), BRIEF, timeout=5)

    assert sent == mailer.Sent(ok=True, recipients=TO, error=None)
    [(mail_from, rcpt_tos, raw)] = mailbox.messages
    assert mail_from == SENDER
    assert rcpt_tos == TO
    message = received(raw)
    assert message["Subject"] == SUBJECT
    assert [a.addr_spec for a in message["To"].addresses] == TO
    assert message["Date"] and message["Message-ID"]

    assert message.get_content_type() == "multipart/related"
    body, *images = message.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    plain, html = body.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content().replace("\r\n", "\n") == BRIEF.text  # as sent, CRLF lines
    assert html.get_content_type() == "text/html"
    markup = html.get_content()
    assert "<h1>Daily brief</h1>" in markup

    assert len(images) == len(CHARTS)
    arrived: dict[str, bytes] = {}
    for image in images:
        assert image.get_content_type() == "image/png"
        assert image.get_content_disposition() == "inline"
        content_id = image["Content-ID"]
        assert content_id.startswith("<") and content_id.endswith(">"), content_id
        cid = content_id[1:-1]
        assert f"cid:{cid}" in markup, (cid, markup)
        arrived[cid.split("@", 1)[0]] = image.get_content()
    # Every picture the HTML shows is one of those parts, byte for byte.
    assert arrived == CHARTS
    for name in CHARTS:
        assert f"cid:{name}'" not in markup and f'cid:{name}"' not in markup


def test_a_brief_without_charts_is_just_html_and_its_text_alternative(
    mail_settings: Callable[..., Settings],
) -> None:
    plain_brief = Outgoing(
        subject="Brief", text="Quiet day.\n", html="<p>Quiet day.</p>", images={}
    )
    with smtp_server() as (mailbox, port):
        sent = mailer.send(mail_settings(port, alert_to=TO[0]), plain_brief, timeout=5)

    assert sent.ok and sent.recipients == [TO[0]]
    [(_, rcpt_tos, raw)] = mailbox.messages
    assert rcpt_tos == [TO[0]]
    message = received(raw)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_an_accepted_login_sends_the_brief(mail_settings: Callable[..., Settings]) -> None:
    login = Login(USER, PASSWORD)
    with smtp_server(authenticator=login, auth_require_tls=False) as (mailbox, port):
        settings = mail_settings(port, smtp_user=USER, smtp_pass=PASSWORD)
        sent = mailer.send(settings, BRIEF, timeout=5)

    assert sent.ok, sent.error
    assert login.tried == [(USER.encode(), PASSWORD.encode())]
    assert [rcpts for _, rcpts, _ in mailbox.messages] == [TO]


# ------------------------------------------------------------------ failures


def test_a_refused_login_is_reported_without_the_password(
    mail_settings: Callable[..., Settings],
) -> None:
    login = Login(USER, "the-right-one")
    with smtp_server(authenticator=login, auth_require_tls=False) as (mailbox, port):
        settings = mail_settings(port, smtp_user=USER, smtp_pass=PASSWORD)
        sent = mailer.send(settings, BRIEF, timeout=5)

    assert not sent.ok and sent.recipients == []
    error = assert_one_line(sent.error)
    assert login.tried, "no login was attempted"
    assert "login" in error.lower() and "SMTP_USER" in error, error
    assert "535" in error, error  # the server's own answer, password masked
    assert PASSWORD not in error
    assert mailbox.messages == []


def test_a_refused_recipient_is_named_and_the_others_still_get_the_brief(
    mail_settings: Callable[..., Settings],
) -> None:
    with smtp_server(Mailbox(refuse=frozenset({TO[1]}))) as (mailbox, port):
        sent = mailer.send(mail_settings(port), BRIEF, timeout=5)

    assert not sent.ok
    assert sent.recipients == [TO[0]]
    error = assert_one_line(sent.error)
    assert TO[1] in error and "550" in error and TO[0] not in error, error
    assert [rcpts for _, rcpts, _ in mailbox.messages] == [[TO[0]]]


def test_a_brief_every_recipient_of_which_is_refused_is_not_sent(
    mail_settings: Callable[..., Settings],
) -> None:
    with smtp_server(Mailbox(refuse=frozenset(TO))) as (mailbox, port):
        sent = mailer.send(mail_settings(port), BRIEF, timeout=5)

    assert not sent.ok and sent.recipients == []
    error = assert_one_line(sent.error)
    assert all(address in error for address in TO), error
    assert mailbox.messages == []


def test_an_unreachable_server_fails_at_once_in_one_line(
    mail_settings: Callable[..., Settings],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    started = time.monotonic()
    sent = mailer.send(mail_settings(port), BRIEF, timeout=2)

    assert time.monotonic() - started < 2
    assert not sent.ok and sent.recipients == []
    error = assert_one_line(sent.error)
    assert f"127.0.0.1:{port}" in error and "refused" in error, error


def test_a_server_that_never_answers_times_out(mail_settings: Callable[..., Settings]) -> None:
    # A listening socket nobody serves: the connection opens, no greeting ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = int(silent.getsockname()[1])
        started = time.monotonic()
        sent = mailer.send(mail_settings(port), BRIEF, timeout=0.3)

    assert time.monotonic() - started < 3
    assert not sent.ok
    error = assert_one_line(sent.error)
    assert "did not answer within 0.3 s" in error, error


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"smtp_security": "ssl"}, "TLS with"),
        ({"smtp_security": "starttls"}, "SMTP_SECURITY: "),
        ({"smtp_user": USER, "smtp_pass": PASSWORD}, "SMTP_USER: "),
    ],
    ids=["ssl", "starttls", "login"],
)
def test_what_a_plain_server_does_not_offer_is_named_in_one_line(
    mail_settings: Callable[..., Settings], overrides: dict[str, Any], named: str
) -> None:
    """TLS or a login asked of a local relay that has neither (aiosmtpd offers AUTH only
    when told to)."""
    with smtp_server() as (mailbox, port):
        sent = mailer.send(mail_settings(port, **overrides), BRIEF, timeout=5)

    assert not sent.ok
    error = assert_one_line(sent.error)
    assert error.startswith(named) and f"127.0.0.1:{port}" in error, error
    assert PASSWORD not in error
    assert mailbox.messages == []


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"smtp_host": None}, "SMTP_HOST: not set"),
        ({"alert_to": None}, "ALERT_TO: not set"),
        ({"alert_to": " , "}, "ALERT_TO: not set"),
        ({"alert_to": "ceo@example.com, finance-team"}, "ALERT_TO: 'finance-team' is not an"),
    ],
    ids=["no-host", "no-recipient", "blank-recipients", "malformed-recipient"],
)
def test_a_setting_that_stops_the_brief_email_is_named(
    make_settings: Callable[..., Settings], overrides: dict[str, Any], expected: str
) -> None:
    values = {"smtp_host": "mail.example.com", "alert_to": "ceo@example.com", **overrides}
    settings = make_settings(**values)

    found = mailer.problem(settings)
    assert found is not None and found.startswith(expected), found
    # send says the same, before any connection.
    assert mailer.send(settings, BRIEF, timeout=1) == mailer.Sent(
        ok=False, recipients=[], error=found
    )


def test_complete_settings_have_no_problem(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(smtp_host="mail.example.com", alert_to="ceo@example.com cfo@x.org")
    assert mailer.problem(settings) is None


@pytest.mark.parametrize(
    "brief",
    [
        Outgoing("Brief", "text", '<img src="cid:missing">', {}),
        Outgoing("Brief", "text", '<img src="cid:chart">', {"chart": b"GIF89a..."}),
        Outgoing("Brief", "text", '<img src="cid:a b">', {"a b": png(1, 1, 0)}),
    ],
    ids=["unknown-image", "not-a-png", "bad-name"],
)
def test_a_malformed_brief_is_a_bug_raised_before_any_mail(brief: Outgoing) -> None:
    with pytest.raises(ValueError):
        mailer.build(brief, SENDER, TO)
