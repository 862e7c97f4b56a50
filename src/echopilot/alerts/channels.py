"""Where alerts go: Apprise URLs from ECHOPILOT_ALERT_URLS, plus URLs built from the
Telegram and SMTP settings. Sending is Apprise's; this module only builds, checks and names
the channels, and sends to each on its own so one failing channel never stops the others.

A channel's `name` is what the database, logs and answers show: the scheme and, for the
web and mail schemes whose host is a plain address, the host; never a path, a login or
options, where tokens live. The URL itself never leaves this process.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import apprise

from echopilot.config import Settings
from echopilot.errors import ConfigError
from echopilot.jobs.intake import EMAIL

log = logging.getLogger(__name__)

# Entries are separated by white space, or by a comma that starts a new URL (a comma
# inside a URL, as in mailto://...?to=a@x,b@y, stays).
_SPLIT = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


@dataclass(frozen=True)
class Channel:
    name: str  # secret-free
    url: str  # secret
    setting: str  # the setting it comes from


@dataclass(frozen=True)
class Channels:
    usable: list[Channel]
    problems: list[str]  # one line each, naming the setting

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.usable]


def split_urls(raw: str) -> list[str]:
    return [part for part in _SPLIT.split(raw.strip()) if part]


def telegram_url(token: str, chat_id: str) -> str:
    return f"tgram://{quote(token, safe=':')}/{quote(chat_id, safe='-@')}"


def recipients(raw: str) -> list[str]:
    return [r.strip() for r in re.split(r"[,;\s]+", raw) if r.strip()]


def smtp_url(settings: Settings) -> str:
    """The Apprise mailto URL for the SMTP_* settings and ALERT_TO."""
    secure = settings.smtp_security != "none"
    host = settings.smtp_host or ""
    shown_host = f"[{host}]" if ":" in host else host
    credentials = ""
    if settings.smtp_user:
        credentials = quote(settings.smtp_user, safe="")
        if settings.smtp_pass is not None:
            credentials += ":" + quote(settings.smtp_pass.get_secret_value(), safe="")
        credentials += "@"
    query = {
        "smtp": host,
        "from": settings.smtp_sender,
        "to": ",".join(recipients(settings.alert_to or "")),
    }
    if secure:
        query["mode"] = settings.smtp_security
    port = settings.smtp_port or (465 if settings.smtp_security == "ssl" else 587 if secure else 25)
    scheme = "mailtos" if secure else "mailto"
    return f"{scheme}://{credentials}{shown_host}:{port}/?{urlencode(query, safe=',@')}"


def _check(url: str, setting: str, label: str) -> tuple[Channel | None, str | None]:
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if not plugin:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        return None, f"{setting}: {label} ({scheme}://...) is not a valid Apprise URL"
    return Channel(name=channel_name(url, setting), url=url, setting=setting), None


# Schemes whose host part is an address, not a token (Telegram's, Slack's and many more
# carry their tokens there).
_ADDRESS_SCHEMES = frozenset(
    {"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos", "ntfy", "ntfys"}
)


def channel_name(url: str, setting: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _ADDRESS_SCHEMES and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{scheme}://{parts.hostname}{port}"
    return f"{scheme}://... ({setting})"


def configured(settings: Settings) -> Channels:
    """The channels the settings describe; a malformed one is left out and named in
    `problems` (the others still work)."""
    usable: list[Channel] = []
    problems: list[str] = []

    def add(url: str, setting: str, label: str) -> None:
        channel, problem = _check(url, setting, label)
        if channel is not None:
            taken = {c.name for c in usable}
            name, n = channel.name, 1
            while name in taken:  # two channels to one place: their names stay apart
                n += 1
                name = f"{channel.name} #{n}"
            usable.append(Channel(name=name, url=channel.url, setting=channel.setting))
        if problem is not None:
            problems.append(problem)

    if settings.alert_urls is not None:
        urls = split_urls(settings.alert_urls.get_secret_value())
        for n, url in enumerate(urls, 1):
            add(url, "ECHOPILOT_ALERT_URLS", f"entry {n}")
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    chat = settings.telegram_chat_id or ""
    if token and chat:
        add(telegram_url(token, chat), "TELEGRAM_BOT_TOKEN", "the Telegram bot token and chat id")
    elif token or chat:
        missing = "TELEGRAM_CHAT_ID" if token else "TELEGRAM_BOT_TOKEN"
        problems.append(
            f"{missing}: needed with {'TELEGRAM_BOT_TOKEN' if token else 'TELEGRAM_CHAT_ID'}"
        )
    if settings.smtp_host:
        wrong = [r for r in recipients(settings.alert_to or "") if not EMAIL.match(r)]
        if not settings.alert_to or not recipients(settings.alert_to):
            problems.append("ALERT_TO: needed with SMTP_HOST (one or more email addresses)")
        elif wrong:
            problems.append(f"ALERT_TO: {wrong[0]!r} is not an email address")
        else:
            add(smtp_url(settings), "SMTP_HOST", "the SMTP settings")
    elif settings.alert_to:
        problems.append("SMTP_HOST: needed with ALERT_TO (the mail server alerts go through)")
    return Channels(usable, problems)


def require_valid(settings: Settings) -> None:
    """For a person's check: refuse a malformed channel setting, naming it (the scheduler's
    check reports it and uses the other channels)."""
    problems = configured(settings).problems
    if problems:
        raise ConfigError(problems[0])


def send(channel: Channel, title: str, body: str, secrets: tuple[str, ...] = ()) -> str | None:
    """Deliver one message on one channel; None when delivered, else why not (secret-free)."""
    notifier = apprise.Apprise()
    if not notifier.add(channel.url):
        return "not a valid Apprise URL"
    with apprise.LogCapture(level=apprise.logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        try:
            # Plain text in: an HTML channel (email) then keeps the body's line breaks.
            delivered = bool(
                notifier.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
            )
        except Exception as exc:  # a plugin bug must not stop the other channels
            delivered = False
            log.warning("alert channel %s raised %s", channel.name, type(exc).__name__)
        text = captured.getvalue()
    if delivered:
        return None
    reason = next((line for line in reversed(text.splitlines()) if line.strip()), "")
    reason = reason.split(" - ", 2)[-1].strip() if reason else "delivery failed"
    parts = urlsplit(channel.url)
    host = None if parts.scheme.lower() in _ADDRESS_SCHEMES else parts.netloc
    pieces = (channel.url, parts.password, parts.username, host, parts.path, *secrets)
    for secret in pieces:
        if secret and len(secret) > 3:
            reason = reason.replace(secret, "****")
    return reason[:300] or "delivery failed"
