"""Email the daily brief: HTML with a plain-text alternative and its charts as inline PNGs.

Alerts go through Apprise, which sends one body per message and cannot build a
multipart/related email whose HTML shows images by Content-ID. The brief needs exactly
that, so it is sent here with smtplib, over the same SMTP_* settings and to the same
ALERT_TO addresses as the alert emails.

`send` never raises for a mail problem (server unreachable or silent, login refused,
recipient refused, TLS failure): it answers `Sent(ok=False, error=...)` with one
secret-free line, so a scheduled brief can record why and carry on.
"""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import TypeVar

from echopilot.alerts.channels import recipients as split_recipients
from echopilot.clock import utcnow
from echopilot.config import Settings
from echopilot.jobs.intake import EMAIL

T = TypeVar("T")

DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_ERROR = 300

# An image name becomes the left part of a Content-ID, which must be a dot-atom.
_NAME = r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*"
_VALID_NAME = re.compile(rf"^{_NAME}$")
_CID_REFERENCE = re.compile(rf"(?i:cid:)({_NAME})")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True)
class Outgoing:
    subject: str
    text: str  # the plain-text alternative
    html: str  # references images as <img src="cid:NAME">
    images: dict[str, bytes]  # NAME -> PNG bytes


@dataclass(frozen=True)
class Sent:
    ok: bool
    recipients: list[str]  # the addresses the server accepted ([] when nothing was sent)
    error: str | None  # one line, secret-free, naming what was wrong (None when ok)


def problem(settings: Settings) -> str | None:
    """Why the brief cannot be emailed with these settings, in one line naming the setting
    (SMTP_HOST not set; ALERT_TO not set; ALERT_TO 'x' is not an email address), else None."""
    if not settings.smtp_host:
        return "SMTP_HOST: not set (the mail server the brief is sent through)"
    addresses = split_recipients(settings.alert_to or "")
    if not addresses:
        return "ALERT_TO: not set (the email addresses the brief goes to)"
    wrong = next((a for a in addresses if not EMAIL.match(a)), None)
    if wrong is not None:
        return f"ALERT_TO: {wrong!r} is not an email address"
    return None


def build(
    outgoing: Outgoing,
    sender: str,
    recipients: list[str],
    *,
    message_id_domain: str = "echopilot.local",
) -> EmailMessage:
    """multipart/related containing multipart/alternative (text/plain then text/html) and one
    image/png part per image with Content-ID <NAME@...> and Content-Disposition inline; the HTML's
    cid:NAME references rewritten to the full content ids. To lists every recipient; Date and
    Message-ID set.

    Raises ValueError for a message that is wrong in itself (no recipients, an image name that
    cannot be a Content-ID, bytes that are not a PNG, HTML referring to an image not given)."""
    if not recipients:
        raise ValueError("the brief needs at least one recipient")
    for name, data in outgoing.images.items():
        if not _VALID_NAME.match(name):
            raise ValueError(f"image name {name!r}: use letters, digits, '_', '-' and '.'")
        if not data.startswith(PNG_SIGNATURE):
            raise ValueError(f"image {name!r} is not a PNG")

    # Content-IDs should be unique beyond this one message: some mail readers cache
    # images by id across a conversation, and every brief reuses the same chart names.
    unique = secrets.token_hex(8)
    content_ids = {name: f"{name}@{unique}.{message_id_domain}" for name in outgoing.images}

    missing: list[str] = []

    def full_id(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in content_ids:
            missing.append(name)
            return match.group(0)
        return f"cid:{content_ids[name]}"

    html = _CID_REFERENCE.sub(full_id, outgoing.html)
    if missing:
        raise ValueError(f"the HTML refers to images not given: {', '.join(sorted(set(missing)))}")

    message = EmailMessage(policy=policy.SMTP)
    if outgoing.images:
        # Readers show one of the alternatives and look up its images beside it, so the
        # alternative is the first part of a multipart/related (make_related() would
        # refuse to wrap an existing alternative).
        message.make_related()
        message["MIME-Version"] = "1.0"
        body = EmailMessage(policy=policy.SMTP)
        body.set_content(outgoing.text)
        body.add_alternative(html, subtype="html")
        message.attach(body)
        for name, data in outgoing.images.items():
            message.add_related(
                data,
                maintype="image",
                subtype="png",
                cid=f"<{content_ids[name]}>",
                disposition="inline",
                filename=name if name.lower().endswith(".png") else f"{name}.png",
            )
        # RFC 2387 asks the related whole to name the type of its root part.
        message.set_param("type", "multipart/alternative")
    else:
        message.set_content(outgoing.text)
        message.add_alternative(html, subtype="html")
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # parts made as messages carry one; it belongs on top
    # A subject is one header line: a line break in it would be refused by the policy.
    message["Subject"] = " ".join(outgoing.subject.split())
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=message_id_domain)
    return message


def send(settings: Settings, outgoing: Outgoing, *, timeout: float = 20.0) -> Sent:
    """Send with smtplib: SMTP_SSL for ssl, SMTP + starttls() for starttls, plain SMTP for none;
    login when SMTP_USER is set (with SMTP_PASS). Never raises for mail problems: an unreachable
    server, a refused login (SMTPAuthenticationError), a refused recipient, a TLS failure or a
    timeout come back as Sent(ok=False, error="...") in one line. The password never appears in
    the error text (mask it if a server echoes it).

    `timeout` bounds each network step (connecting, each command), not the whole exchange.
    A message that is wrong in itself raises ValueError, as `build` does: that is a bug in
    the caller, not a mail problem."""
    server = _server(settings)
    if isinstance(server, str):
        return Sent(ok=False, recipients=[], error=server)
    # The same address twice would be delivered twice.
    to = list(dict.fromkeys(split_recipients(settings.alert_to or "")))
    sender = settings.smtp_sender
    message = build(outgoing, sender, to, message_id_domain=_domain_of(sender))

    def fail(reason: str) -> Sent:
        return Sent(ok=False, recipients=[], error=_one_line(reason, settings, server.password))

    try:
        refused = _session(
            settings, server, timeout, lambda smtp: smtp.send_message(message, to_addrs=to)
        )
    except Exception as exc:
        reason = _mail_error(exc, settings, server.where, timeout)
        if reason is None:
            raise
        return fail(reason)
    if refused:
        # Some got it: resending would reach those twice, so say who did.
        delivered = [address for address in to if address not in refused]
        return Sent(
            ok=False,
            recipients=delivered,
            error=_one_line(
                f"ALERT_TO: {server.where} refused {_refusals(refused)}; sent to the others",
                settings,
                server.password,
            ),
        )
    return Sent(ok=True, recipients=to, error=None)


@dataclass(frozen=True)
class LoginCheck:
    summary: str  # what the exchange showed (empty when it failed)
    error: str | None  # one line, secret-free, naming what was wrong


def check_login(settings: Settings, *, timeout: float = 20.0) -> LoginCheck:
    """Connect, secure and log in exactly as `send` does, then say goodbye without sending:
    `echopilot doctor`'s look at the mail settings."""
    server = _server(settings)
    if isinstance(server, str):
        return LoginCheck(summary="", error=server)
    try:
        _session(settings, server, timeout, lambda smtp: None)
    except Exception as exc:
        reason = _mail_error(exc, settings, server.where, timeout)
        if reason is None:
            raise
        return LoginCheck(summary="", error=_one_line(reason, settings, server.password))
    login = f"logged in as {settings.smtp_user!r}" if settings.smtp_user else "no login set"
    return LoginCheck(summary=f"{server.where} ({settings.smtp_security}): {login}", error=None)


@dataclass(frozen=True)
class _Server:
    host: str
    port: int
    password: str

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def _server(settings: Settings) -> _Server | str:
    """The mail server and login the settings name, or why they cannot be used (one line
    naming the setting)."""
    trouble = problem(settings)
    if trouble is not None:
        return trouble
    password = settings.smtp_pass.get_secret_value() if settings.smtp_pass else ""
    if not f"{settings.smtp_user or ''}{password}".isascii():
        # smtplib encodes every AUTH exchange as ASCII; it would fail midway.
        return "SMTP_USER/SMTP_PASS: an SMTP login can only hold ASCII characters"
    port = settings.smtp_port or DEFAULT_PORTS[settings.smtp_security]
    return _Server(settings.smtp_host or "", port, password)


def _mail_error(exc: Exception, settings: Settings, where: str, timeout: float) -> str | None:
    """Why a talk with the mail server failed, in one line naming the setting to change;
    None for an exception that is not a mail problem."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            f"SMTP_USER/SMTP_PASS: login as {settings.smtp_user!r} refused by {where} "
            f"({_reply(exc.smtp_code, exc.smtp_error)})"
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"ALERT_TO: {where} refused {_refusals(exc.recipients)}"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return (
            f"SMTP_FROM: {where} refused the sender {settings.smtp_sender!r} "
            f"({_reply(exc.smtp_code, exc.smtp_error)})"
        )
    if isinstance(exc, _NotOffered):
        return f"{exc.setting}: {where} does not offer {exc.feature} ({exc.hint})"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # An address that needs SMTPUTF8 from a server without it.
        return f"{where}: {exc}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib reports a reply that never came as a disconnection.
        if isinstance(exc.__context__, TimeoutError):
            return f"{where} did not answer within {timeout:g} s"
        return f"{where} closed the connection: {str(exc) or 'no reason given'}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{where} answered {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPException):
        return f"{where}: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS with {where} failed: certificate not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS with {where} failed: {exc.reason or exc} (is SMTP_SECURITY right for this port?)"
        )
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot reach the mail server {where}: connection refused"
    if isinstance(exc, OSError):
        return f"cannot reach the mail server {where}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeError):
        # The login is ASCII (checked first): what is left to encode is the host name.
        return f"SMTP_HOST: {settings.smtp_host!r} is not a valid host name ({exc})"
    return None


class _NotOffered(Exception):
    """The server lacks what the settings ask of it."""

    def __init__(self, setting: str, feature: str, hint: str) -> None:
        super().__init__(feature)
        self.setting, self.feature, self.hint = setting, feature, hint


def _session(
    settings: Settings, server: _Server, timeout: float, then: Callable[[smtplib.SMTP], T]
) -> T:
    """Connect, secure and log in as the settings say, do `then`, and say goodbye."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_security == "ssl":
        smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
    try:
        # Asked before smtplib would refuse, so that the answer names the setting to change.
        smtp.ehlo_or_helo_if_needed()
        if settings.smtp_security == "starttls":
            if not smtp.has_extn("starttls"):
                raise _NotOffered("SMTP_SECURITY", "STARTTLS", "try ssl, or none for a relay")
            smtp.starttls(context=context)
            smtp.ehlo()  # the server may offer more (a login) once the channel is encrypted
        if settings.smtp_user:
            if not smtp.has_extn("auth"):
                raise _NotOffered("SMTP_USER", "a login (AUTH)", "unset SMTP_USER, or use TLS")
            smtp.login(settings.smtp_user, server.password)
        result = then(smtp)
        # The server has done what was asked: a failed goodbye changes nothing.
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
        return result
    finally:
        smtp.close()


def _domain_of(sender: str) -> str:
    """The sender's domain, for Message-ID and Content-IDs (mail filters like them to
    match); the default when the sender has no dotted domain."""
    # SMTP_FROM may be written 'Name <address>'.
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return domain if "." in domain and _DOMAIN.match(domain) else "echopilot.local"


def _reply(code: int, text: bytes | str) -> str:
    shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {shown}".strip()


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address} ({_reply(*reply)})" for address, reply in refused.items())


def _one_line(text: str, settings: Settings, password: str) -> str:
    """The error as one line with the password, in every form a server could echo, masked."""
    hidden = []
    if password:
        user = settings.smtp_user or ""
        hidden = [
            password,
            # AUTH LOGIN sends it base64-encoded, AUTH PLAIN as base64 of \0user\0password.
            base64.b64encode(password.encode()).decode(),
            base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
            " ".join(password.split()),  # as it reads once the line is joined
        ]
    hidden = [secret for secret in hidden if secret]
    for secret in hidden:
        text = text.replace(secret, "****")
    line = " ".join(text.split())
    for secret in hidden:
        line = line.replace(secret, "****")
    return line[:MAX_ERROR]
