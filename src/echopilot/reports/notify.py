"""Send a report's one-line summary to the alert channels (Apprise: email, Telegram, any
URL in ECHOPILOT_ALERT_URLS). Each channel is tried on its own; a failing one is recorded
and never fails the report. With no channel set, the summary is only recorded (`log`).
No alert row is made: a report is news, not an incident.
"""

from __future__ import annotations

import logging
from typing import Any

from echopilot.alerts import channels
from echopilot.alerts.engine import LOG_CHANNEL, dashboard_link
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)


def message(report: dict[str, Any], link: str) -> tuple[str, str]:
    """The notice's title and body: the summary line first, then what a reader needs to
    trust it (cut-off, late sources) and where to look."""
    title = f"[EchoPilot] Daily report {report['date']}: {report['summary_line']}"
    lines = [
        report["summary_line"],
        f"Daily report for {report['date']} (UTC), data cut-off {report['cutoff']}.",
    ]
    lines += [f"Late: {item['detail']}" for item in report["late_sources"]]
    lines.append(f"Dashboard: {link}")
    return title, "\n".join(lines)


def send_summary(runtime: Runtime, report: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """Send to every usable channel; return the target ("channels" or "log") and, per
    channel name (secret-free), "ok" or why it failed."""
    title, body = message(report, dashboard_link(runtime))
    return deliver(runtime, title, body, what="the daily report")


def deliver(
    runtime: Runtime, title: str, body: str, *, what: str, skip: frozenset[str] = frozenset()
) -> tuple[str, dict[str, str]]:
    """Send one notice to every usable channel but those from the settings in `skip`."""
    settings = runtime.settings
    found = channels.configured(settings)
    for problem in found.problems:
        log.warning("alert channel not used for %s: %s", what, problem)
    usable = [c for c in found.usable if c.setting not in skip]
    if not usable:
        return LOG_CHANNEL, {LOG_CHANNEL: "ok"}
    secrets = tuple(
        s.get_secret_value()
        for s in (settings.smtp_pass, settings.telegram_bot_token)
        if s is not None
    )
    outcome: dict[str, str] = {}
    for channel in usable:
        try:
            error = channels.send(channel, title, body, secrets=secrets)
        except Exception as exc:  # one channel's bug must not stop the notice or the others
            log.warning("%s: channel %s raised %s", what, channel.name, type(exc).__name__)
            error = f"{type(exc).__name__} while sending"
        outcome[channel.name] = error or "ok"
    return "channels", outcome
