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

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from echopilot import ndjson
from echopilot.alerts import channels as channel_mod
from echopilot.alerts.rules import RULES, Context, Finding, Rule, severity_rank
from echopilot.alerts.silences import active_silences
from echopilot.clock import as_utc, utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Alert, AlertEvent
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)
LOG_CHANNEL = "log"


@dataclass
class Notice:
    """A message decided in the check's transaction, sent after it."""

    alert_id: int
    key: str
    kind: str  # fired | escalated | reminder | resolved | retry
    title: str
    body: str
    channels: list[str] | None = None  # None: every usable channel
    results: dict[str, str | None] = field(default_factory=dict)


def _subject(kind: str, severity: str, title: str) -> str:
    label = {"resolved": "RESOLVED", "reminder": f"{severity.upper()} (still open)"}.get(
        kind, severity.upper()
    )
    return f"[EchoPilot] {label}: {title}"


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def _body(alert: Alert, kind: str, now: datetime, link: str) -> str:
    since = as_utc(alert.since) or as_utc(alert.first_seen_at) or now
    lines = [alert.title, alert.detail or ""]
    if kind == "resolved":
        lines.append(
            f"Resolved at {now:%Y-%m-%d %H:%M} UTC; it was open since "
            f"{since:%Y-%m-%d %H:%M} UTC ({_age(now - since)})."
        )
    else:
        lines.append(
            f"Severity: {alert.severity}. Since {since:%Y-%m-%d %H:%M} UTC ({_age(now - since)})."
        )
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
    rule: str | None = None,
    channel: str | None = None,
    **detail: Any,
) -> None:
    session.add(
        AlertEvent(
            at=now,
            alert_id=alert.id if alert is not None else None,
            rule=rule or (alert.rule if alert is not None else None),
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
    findings, errors = _evaluate(runtime, rules, now)
    link = dashboard_link(runtime)
    for _attempt in range(3):
        try:
            outcome, notices = _reconcile(runtime, rules, findings, errors, now, link)
            break
        except IntegrityError:
            continue  # another check opened the same alert a moment ago: look again
    else:
        raise RuntimeError("alert check kept colliding with another check")
    targets = found.usable
    for notice in notices:
        chosen = [c for c in targets if notice.channels is None or c.name in notice.channels]
        if not targets:
            notice.results[LOG_CHANNEL] = None
        for channel in chosen:
            notice.results[channel.name] = channel_mod.send(
                channel, notice.title, notice.body, secrets=_secrets(settings)
            )
    _save_results(runtime, notices, now)
    ndjson.append(
        logfile,
        "check",
        now=now,
        actor=actor,
        rules=len(rules),
        firing=[f.key for _, f in findings],
        opened=outcome["opened"],
        resolved=outcome["resolved"],
        silenced=outcome["silenced"],
        rule_errors=errors,
    )
    for notice in notices:
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
    runtime: Runtime, rules: list[Rule], now: datetime
) -> tuple[list[tuple[Rule, Finding]], list[dict[str, str]]]:
    findings: list[tuple[Rule, Finding]] = []
    errors: list[dict[str, str]] = []
    with read_session(runtime.sessions) as session:
        ctx = Context(session=session, settings=runtime.settings, now=now)
        for rule in rules:
            try:
                findings.extend((rule, finding) for finding in rule.evaluate(ctx))
            except Exception as exc:
                log.exception("alert rule %s failed", rule.name)
                errors.append({"rule": rule.name, "error": f"{type(exc).__name__}: {exc}"[:300]})
                session.rollback()
    return findings, errors


def _reconcile(
    runtime: Runtime,
    rules: list[Rule],
    findings: list[tuple[Rule, Finding]],
    errors: list[dict[str, str]],
    now: datetime,
    link: str,
) -> tuple[dict[str, Any], list[Notice]]:
    default_cooldown = timedelta(hours=runtime.settings.alert_cooldown_hours)
    failed_rules = {e["rule"] for e in errors}
    evaluated = [r.name for r in rules if r.name not in failed_rules]
    notices: list[Notice] = []
    opened: list[str] = []
    resolved: list[str] = []
    silenced: list[str] = []
    with write_session(runtime.sessions) as session:
        muted = {s.rule for s in active_silences(session, now)}
        open_alerts = {
            a.key: a
            for a in session.scalars(
                select(Alert).where(Alert.status == "open", Alert.rule.in_(evaluated))
            )
        }
        for rule, finding in findings:
            alert = open_alerts.pop(finding.key, None)
            kind: str | None
            if alert is None:
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
                session.flush()  # a second open alert with this key fails here
                _record(session, now, "fired", alert=alert, severity=finding.severity)
                opened.append(finding.key)
                kind = "fired"
            else:
                rose = severity_rank(finding.severity) > severity_rank(alert.sent_severity or "")
                alert.severity = finding.severity
                alert.title, alert.detail = finding.title, finding.detail
                alert.last_seen_at, alert.count = now, alert.count + 1
                cooldown = rule.cooldown or default_cooldown
                last = as_utc(alert.last_sent_at)
                if alert.last_sent_at is None:
                    kind = "fired"
                elif rose:
                    kind = "escalated"
                    _record(session, now, "escalated", alert=alert, severity=finding.severity)
                elif last is not None and now - last >= cooldown:
                    kind = "reminder"
                else:
                    kind = None
            if kind is not None and rule.name in muted:
                _record(session, now, "silenced", alert=alert)
                silenced.append(finding.key)
                kind = None
            if kind is not None:
                alert.last_sent_at, alert.sent_severity, alert.pending = now, alert.severity, None
                notices.append(
                    Notice(
                        alert.id,
                        alert.key,
                        kind,
                        _subject(kind, alert.severity, alert.title),
                        _body(alert, kind, now, link),
                    )
                )
            elif alert.pending:
                notices.append(_retry(alert, now, link))
        for alert in open_alerts.values():  # conditions that no longer hold
            alert.status, alert.resolved_at = "resolved", now
            _record(session, now, "resolved", alert=alert)
            resolved.append(alert.key)
            if alert.last_sent_at is not None and alert.rule not in muted:
                alert.pending = None
                notices.append(
                    Notice(
                        alert.id,
                        alert.key,
                        "resolved",
                        _subject("resolved", alert.severity, alert.title),
                        _body(alert, "resolved", now, link),
                    )
                )
        # Failed sends of alerts resolved earlier are retried too.
        for alert in session.scalars(
            select(Alert).where(Alert.status == "resolved", Alert.pending.is_not(None))
        ):
            if alert.pending and alert.key not in resolved:
                notices.append(_retry(alert, now, link))
        for notice in notices:
            target = session.get(Alert, notice.alert_id)
            if target is not None and notice.kind == "resolved":
                target.resolve_sent_at = now
        _record(
            session,
            now,
            "check",
            rules=[r.name for r in rules],
            firing=len(findings),
            opened=len(opened),
            resolved=len(resolved),
            errors=len(errors),
        )
    return {"opened": opened, "resolved": resolved, "silenced": silenced}, notices


def _retry(alert: Alert, now: datetime, link: str) -> Notice:
    pending = dict(alert.pending or {})
    alert.pending = None  # claimed by this check
    kind = str(pending.get("kind", "fired"))
    return Notice(
        alert.id,
        alert.key,
        kind,
        _subject(kind, alert.severity, alert.title),
        _body(alert, "resolved" if kind == "resolved" else kind, now, link),
        channels=list(pending.get("channels", [])),
    )


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
