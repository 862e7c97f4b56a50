"""Run every check in order and gather what they found."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from echopilot.config import SECRET_FIELDS, Settings, load_settings
from echopilot.doctor import local, remote
from echopilot.doctor.finding import Finding, Report, fail, skip
from echopilot.errors import ConfigError

log = logging.getLogger("echopilot.doctor")
NEED_DATABASE = ("migrations", "clock", "scheduler", "workers")


def run(*, send_test: bool = False, settings: Settings | None = None) -> Report:
    """Check everything; with `send_test`, send each alert channel a test message."""
    report = Report()
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            report.findings.append(
                fail(
                    "settings",
                    str(exc),
                    "correct it in the environment or in .env (docs/configuration.md)",
                )
            )
            return report
    hidden = _secrets(settings)

    def add(check: str, do: Callable[[], Finding | list[Finding]]) -> None:
        started = time.monotonic()
        try:
            found = do()
        except Exception as exc:  # a check's own bug must not hide the other checks
            log.debug("doctor: the %s check raised %s", check, type(exc).__name__)
            found = fail(
                check,
                f"the check could not finish ({type(exc).__name__}: {str(exc)[:200]})",
                "run `echopilot doctor` again; if it stays, report it with this line",
            )
        spent = time.monotonic() - started
        for finding in found if isinstance(found, list) else [found]:
            report.findings.append(replace(finding.scrubbed(hidden), seconds=spent))

    add("settings", lambda: local.settings_finding(settings))
    add("home", lambda: local.home_finding(settings))
    engine: Engine | None = None

    def database() -> Finding:
        nonlocal engine
        engine, found = local.open_database(settings)
        return found

    add("database", database)
    try:
        if engine is None:
            because = "no usable database (see above)"
            for check in NEED_DATABASE:
                add(check, lambda check=check: local.not_checked(check, because))  # type: ignore[misc]
        else:
            ready = engine
            add("migrations", lambda: local.migrations_finding(ready))
            add("clock", lambda: local.clock_finding(ready))
            if local.has_process_tables(ready):
                add("scheduler", lambda: local.scheduler_finding(settings, ready))
                add("workers", lambda: local.workers_finding(ready))
            else:
                because = "the database holds no EchoPilot tables yet"
                add("scheduler", lambda: skip("scheduler", f"not checked: {because}"))
                add("workers", lambda: skip("workers", f"not checked: {because}"))
        add("queue", lambda: local.queue_finding(settings))
        add("model", lambda: remote.model_finding(settings))
        add("email", lambda: remote.email_finding(settings))
        add("alert channels", lambda: remote.channel_findings(settings, send_test=send_test))
        add("stripe", lambda: remote.stripe_finding(settings, engine))
        add("notion", lambda: remote.notion_finding(settings, engine))
    finally:
        if engine is not None:
            engine.dispose()
    return report


def _secrets(settings: Settings) -> tuple[str, ...]:
    """Every value the report must never show: the secret settings and URL passwords."""
    found: list[str] = []
    for field in SECRET_FIELDS:
        value = getattr(settings, field, None)
        if value is not None:
            found.append(value.get_secret_value())
    # Both URLs were checked when the settings loaded: they parse.
    for url in (settings.database_url, settings.queue_url):
        password = make_url(url).password if url and "://" in url else None
        if password:
            found.append(str(password))
    return tuple(found)
