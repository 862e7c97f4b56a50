"""Silences: a rule muted for a while (maintenance). Its alerts are still recorded, not
sent; a silence ends by itself when its time is up, or when lifted."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from echopilot import audit, ndjson
from echopilot.alerts.rules import RULES
from echopilot.clock import iso, utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import AlertSilence
from echopilot.errors import InputError, NotFoundError
from echopilot.runtime import Runtime

LONGEST = timedelta(days=30)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str, field: str = "--for") -> timedelta:
    """'90m', '2h', '1d' as a timedelta; InputError naming `field` unless 0 < it <= 30 days."""
    match = _DURATION.match(text or "")
    if not match:
        raise InputError(field, f"{text!r} is not a duration such as 30m, 2h or 1d")
    length = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
    check_length(length, field)
    return length


def check_length(length: timedelta, field: str) -> None:
    if length <= timedelta(0):
        raise InputError(field, "must be longer than zero")
    if length > LONGEST:
        raise InputError(field, "must be at most 30 days (30d)")


def check_rule(rule: str, field: str = "RULE") -> str:
    if rule not in RULES:
        raise InputError(field, f"no alert rule {rule!r}; rules: {', '.join(sorted(RULES))}")
    return rule


def active_silences(session: Session, now: datetime) -> list[AlertSilence]:
    return list(
        session.scalars(
            select(AlertSilence)
            .where(AlertSilence.until > now, AlertSilence.lifted_at.is_(None))
            .order_by(AlertSilence.until)
        )
    )


def silence_dict(row: AlertSilence) -> dict[str, Any]:
    return {
        "id": row.id,
        "rule": row.rule,
        "until": iso(row.until),
        "reason": row.reason,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
    }


def silence(
    runtime: Runtime,
    rule: str,
    length: timedelta,
    *,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Mute `rule` for `length` (replacing a silence of it still running)."""
    now = now or utcnow()
    check_rule(rule)
    check_length(length, "for")
    if reason is not None and len(reason) > 500:
        raise InputError("reason", "must be at most 500 characters")
    with write_session(runtime.sessions) as session:
        for row in session.scalars(
            select(AlertSilence).where(
                AlertSilence.rule == rule,
                AlertSilence.lifted_at.is_(None),
                AlertSilence.until > now,
            )
        ):
            row.lifted_at = now
        row = AlertSilence(
            rule=rule, until=now + length, reason=reason, created_by=actor, created_at=now
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="alerts.silence",
            target=f"rule:{rule}",
            details={"until": row.until.isoformat(), "reason": reason},
            now=now,
        )
        shown = silence_dict(row)
    ndjson.append(ndjson.log_path(runtime.settings.home, "alerts"), "silenced", now=now, **shown)
    return shown


def lift(runtime: Runtime, rule: str, *, actor: str, now: datetime | None = None) -> int:
    """End every running silence of `rule`; return how many."""
    now = now or utcnow()
    check_rule(rule)
    with write_session(runtime.sessions) as session:
        rows = list(
            session.scalars(
                select(AlertSilence).where(
                    AlertSilence.rule == rule,
                    AlertSilence.lifted_at.is_(None),
                    AlertSilence.until > now,
                )
            )
        )
        if not rows:
            raise NotFoundError("silence of rule", rule, "it is not silenced")
        for row in rows:
            row.lifted_at = now
        audit.record(
            session, actor=actor, action="alerts.unsilence", target=f"rule:{rule}", now=now
        )
    ndjson.append(
        ndjson.log_path(runtime.settings.home, "alerts"), "unsilenced", now=now, rule=rule
    )
    return len(rows)


def current(runtime: Runtime, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    with read_session(runtime.sessions) as session:
        return [silence_dict(row) for row in active_silences(session, now)]
