"""The alert check: evaluate the rules, keep one open alert per key, notify once.

A condition that starts holding opens an alert and sends it. While it holds, the alert is
sent again only when its severity rises or its cooldown has passed since the last send.
When it stops holding, the alert closes and, if it was ever sent, one "resolved" notice
goes out. A silenced rule's alerts are recorded but not sent. Whether to send is decided
and claimed in the same transaction that records the check, so two checks at once (the
scheduled one and a person's) never send one notice twice; the sending itself happens
after that commit, and a channel that failed is tried again at the next check.
Every check, firing, send and failed send is recorded in alert_events and alerts.log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from echopilot import ndjson
from echopilot.alerts import channels as channel_mod
from echopilot.alerts.rules import RULES, Context, Finding, Rule, severity_rank
from echopilot.alerts.silences import active_silences
from echopilot.clock import age_text, as_utc, utcnow
from echopilot.db.engine import write_session
from echopilot.db.models import Alert, AlertEvent
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)
LOG_CHANNEL = "log"


@dataclass
class Notice:
    """A message decided in the check's transaction, sent after it."""

    alert_id: int
    key: str
    kind: str  # fired | escalated | reminder | resolved
    title: str
    body: str
    channels: list[str] | None = None  # None: every usable channel
    results: dict[str, str | None] = field(default_factory=dict)


def _subject(kind: str, severity: str, title: str) -> str:
    label = {"resolved": "RESOLVED", "reminder": f"{severity.upper()} (still open)"}.get(
        kind, severity.upper()
    )
    return f"[EchoPilot] {label}: {title}"


def _body(alert: Alert, kind: str, now: datetime, link: str) -> str:
    since = as_utc(alert.since) or as_utc(alert.first_seen_at) or now
    age = age_text(now - since)
    lines = [alert.title, alert.detail or ""]
    if kind == "resolved":
        lines.append(
            f"Resolved at {now:%Y-%m-%d %H:%M} UTC; it was open since "
            f"{since:%Y-%m-%d %H:%M} UTC ({age})."
        )
    else:
        lines.append(f"Severity: {alert.severity}. Since {since:%Y-%m-%d %H:%M} UTC ({age}).")
    lines.append(f"Rule: {alert.rule}. Dashboard: {link}")
    return "\n".join(line for line in lines if line)


def dashboard_link(runtime: Runtime) -> str:
    settings = runtime.settings
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/dashboard"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104  (a wildcard bind is not an address to link to)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}/dashboard"


def _record(
    session: Session,
    now: datetime,
    event: str,
    *,
    alert: Alert | None = None,
    channel: str | None = None,
    **detail: Any,
) -> None:
    session.add(
        AlertEvent(
            at=now,
            alert_id=alert.id if alert is not None else None,
            rule=alert.rule if alert is not None else None,
            key=alert.key if alert is not None else None,
            event=event,
            channel=channel,
            detail=detail,
        )
    )


def check(
    runtime: Runtime,
    *,
    now: datetime | None = None,
    only: list[str] | None = None,
    actor: str = "scheduler",
) -> dict[str, Any]:
    """Run the rules (all, or those named in `only`) and notify; return what happened."""
    now = now or utcnow()
    settings = runtime.settings
    logfile = ndjson.log_path(settings.home, "alerts")
    found = channel_mod.configured(settings)
    for problem in found.problems:
        log.warning("alert channel not used: %s", problem)
    rules = [RULES[name] for name in (only or RULES)]
    link = dashboard_link(runtime)
    # One check at a time (SQLite's write lock; an advisory lock on PostgreSQL), and the
    # rules read inside it: a check never acts on what another changed under it.
    with write_session(runtime.sessions) as session:
        _one_check_at_a_time(session)
        findings, errors = _evaluate(session, runtime, rules, now)
        outcome, notices = _reconcile(session, runtime, rules, findings, errors, now, link)
    ndjson.append(
        logfile,
        "check",
        now=now,
        actor=actor,
        rules=len(rules),
        firing=[f.key for _, f in findings],
        rule_errors=errors,
    )
    for event in ("opened", "escalated", "resolved", "silenced"):
        for key in outcome[event]:
            ndjson.append(logfile, event, now=now, key=key)
    targets = found.usable
    for notice in notices:
        chosen = [c for c in targets if notice.channels is None or c.name in notice.channels]
        if not targets:
            notice.results[LOG_CHANNEL] = None
        for channel in chosen:
            notice.results[channel.name] = channel_mod.send(
                channel, notice.title, notice.body, secrets=_secrets(settings)
            )
        for name, error in notice.results.items():
            ndjson.append(
                logfile,
                "send_failed" if error else "sent",
                now=now,
                key=notice.key,
                kind=notice.kind,
                channel=name,
                error=error,
            )
    _save_results(runtime, notices, now)
    sent = [
        {"key": n.key, "kind": n.kind, "channels": {k: (v or "ok") for k, v in n.results.items()}}
        for n in notices
    ]
    return {
        "checked_at": now.isoformat(),
        "rules": [r.name for r in rules],
        "firing": [_finding_dict(f) for _, f in findings],
        **outcome,
        "sent": sent,
        "target": "channels" if targets else LOG_CHANNEL,
        "channels": found.names,
        "channel_problems": found.problems,
        "rule_errors": errors,
    }


# pg_advisory_xact_lock's key for the alert check (any fixed number; "ALRT").
_PG_LOCK = 0x414C5254


def _one_check_at_a_time(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})


def _secrets(settings: Any) -> tuple[str, ...]:
    values = [settings.smtp_pass, settings.telegram_bot_token]
    return tuple(v.get_secret_value() for v in values if v is not None)


def _finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "key": finding.key,
        "severity": finding.severity,
        "title": finding.title,
        "detail": finding.detail,
        "since": finding.since.isoformat() if finding.since else None,
    }


def _evaluate(
    session: Session, runtime: Runtime, rules: list[Rule], now: datetime
) -> tuple[list[tuple[Rule, Finding]], list[dict[str, str]]]:
    findings: list[tuple[Rule, Finding]] = []
    errors: list[dict[str, str]] = []
    ctx = Context(session=session, settings=runtime.settings, now=now)
    for rule in rules:
        try:
            with session.begin_nested():  # a failing rule leaves the check's transaction whole
                findings.extend((rule, finding) for finding in rule.evaluate(ctx))
        except Exception as exc:
            log.exception("alert rule %s failed", rule.name)
            errors.append({"rule": rule.name, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return findings, errors


def _notice(alert: Alert, kind: str, now: datetime, link: str) -> Notice:
    return Notice(
        alert.id,
        alert.key,
        kind,
        _subject(kind, alert.severity, alert.title),
        _body(alert, kind, now, link),
    )


def _reconcile(
    session: Session,
    runtime: Runtime,
    rules: list[Rule],
    findings: list[tuple[Rule, Finding]],
    errors: list[dict[str, str]],
    now: datetime,
    link: str,
) -> tuple[dict[str, list[str]], list[Notice]]:
    """Bring the open alerts of the evaluated rules in line with `findings`; return what
    changed and the notices to send (each claimed here by setting last_sent_at)."""
    default_cooldown = timedelta(hours=runtime.settings.alert_cooldown_hours)
    failed_rules = {e["rule"] for e in errors}
    evaluated = [r.name for r in rules if r.name not in failed_rules]
    notices: list[Notice] = []
    outcome: dict[str, list[str]] = {
        "opened": [],
        "escalated": [],
        "resolved": [],
        "silenced": [],
    }
    muted = {s.rule for s in active_silences(session, now)}
    open_alerts = {
        a.key: a
        for a in session.scalars(
            select(Alert).where(Alert.status == "open", Alert.rule.in_(evaluated))
        )
    }
    for rule, finding in findings:
        alert = open_alerts.pop(finding.key, None)
        if alert is None:
            alert = _open(session, rule, finding, now)
            outcome["opened"].append(finding.key)
            kind: str | None = "fired"
        else:
            kind = _update(session, alert, rule, finding, now, default_cooldown)
            if kind == "escalated":
                outcome["escalated"].append(finding.key)
        if rule.name in muted:
            if kind is not None:
                _record(session, now, "silenced", alert=alert)
                outcome["silenced"].append(finding.key)
            continue  # nothing is sent for a muted rule, not even a retry
        if kind is not None:
            alert.last_sent_at, alert.sent_severity, alert.pending = now, alert.severity, None
            notices.append(_notice(alert, kind, now, link))
        elif alert.pending:
            notices.append(_retry(alert, now, link))
    for alert in open_alerts.values():  # conditions that no longer hold
        alert.status, alert.resolved_at = "resolved", now
        alert.pending = None  # a failed firing is not sent once resolved
        _record(session, now, "resolved", alert=alert)
        outcome["resolved"].append(alert.key)
        # One resolved notice, for an alert that was sent; none under a silence.
        if alert.last_sent_at is not None and alert.rule not in muted:
            notices.append(_notice(alert, "resolved", now, link))
    # Resolved notices that failed earlier are tried again.
    for alert in session.scalars(
        select(Alert).where(
            Alert.status == "resolved", Alert.pending.is_not(None), Alert.rule.in_(evaluated)
        )
    ):
        if alert.pending and alert.key not in outcome["resolved"] and alert.rule not in muted:
            notices.append(_retry(alert, now, link))
    _record(
        session,
        now,
        "check",
        rules=[r.name for r in rules],
        firing=len(findings),
        opened=len(outcome["opened"]),
        resolved=len(outcome["resolved"]),
        errors=len(errors),
    )
    return outcome, notices


def _open(session: Session, rule: Rule, finding: Finding, now: datetime) -> Alert:
    alert = Alert(
        key=finding.key,
        rule=rule.name,
        severity=finding.severity,
        title=finding.title,
        detail=finding.detail,
        status="open",
        since=finding.since or now,
        first_seen_at=now,
        last_seen_at=now,
        count=1,
        channels={},
    )
    session.add(alert)
    session.flush()
    _record(session, now, "fired", alert=alert, severity=finding.severity)
    return alert


def _update(
    session: Session,
    alert: Alert,
    rule: Rule,
    finding: Finding,
    now: datetime,
    default_cooldown: timedelta,
) -> str | None:
    """Record that an open alert still holds; return the notice it is due, if any."""
    rose = severity_rank(finding.severity) > severity_rank(alert.sent_severity or "")
    alert.severity = finding.severity
    alert.title, alert.detail = finding.title, finding.detail
    alert.last_seen_at, alert.count = now, alert.count + 1
    last = as_utc(alert.last_sent_at)
    if last is None:
        return "fired"  # opened under a silence, or never sent
    if rose:
        _record(session, now, "escalated", alert=alert, severity=finding.severity)
        return "escalated"
    if now - last >= (rule.cooldown or default_cooldown):
        return "reminder"
    return None


def _retry(alert: Alert, now: datetime, link: str) -> Notice:
    """The notice that failed on some channels last time, for those channels again."""
    pending = dict(alert.pending or {})
    alert.pending = None  # claimed by this check
    notice = _notice(alert, str(pending.get("kind", "fired")), now, link)
    notice.channels = list(pending.get("channels", []))
    return notice


def _save_results(runtime: Runtime, notices: list[Notice], now: datetime) -> None:
    if not notices:
        return
    with write_session(runtime.sessions) as session:
        for notice in notices:
            alert = session.get(Alert, notice.alert_id)
            if alert is None:
                continue
            states = dict(alert.channels or {})
            failed = []
            for name, error in notice.results.items():
                states[name] = {"ok": error is None, "at": now.isoformat(), "error": error}
                _record(
                    session,
                    now,
                    "send_failed" if error else "sent",
                    alert=alert,
                    channel=name,
                    kind=notice.kind,
                    error=error,
                )
                if error:
                    failed.append(name)
            alert.channels = states
            if failed:
                alert.pending = {"kind": notice.kind, "channels": failed}
