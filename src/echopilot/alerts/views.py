"""What `alerts list` and GET /api/alerts show: open alerts, recent history, silences."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from echopilot.alerts import channels as channel_mod
from echopilot.alerts.rules import RULES, severity_rank
from echopilot.alerts.silences import active_silences, silence_dict
from echopilot.clock import as_utc, iso, utcnow
from echopilot.db.engine import read_session
from echopilot.db.models import Alert, AlertEvent
from echopilot.runtime import Runtime

HISTORY_DAYS = 7


def alert_dict(alert: Alert, now: datetime) -> dict[str, Any]:
    since = as_utc(alert.since) or as_utc(alert.first_seen_at) or now
    end = as_utc(alert.resolved_at) or now
    return {
        "id": alert.id,
        "key": alert.key,
        "rule": alert.rule,
        "severity": alert.severity,
        "status": alert.status,
        "title": alert.title,
        "detail": alert.detail,
        "since": iso(since),
        "age_s": int((end - since).total_seconds()),
        "first_seen_at": iso(alert.first_seen_at),
        "last_seen_at": iso(alert.last_seen_at),
        "count": alert.count,
        "last_sent_at": iso(alert.last_sent_at),
        "resolved_at": iso(alert.resolved_at),
        "channels": alert.channels or {},
        "send_pending": bool(alert.pending),
    }


def listing(runtime: Runtime, *, limit: int = 20, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    found = channel_mod.configured(runtime.settings)
    with read_session(runtime.sessions) as session:
        open_alerts = sorted(
            session.scalars(select(Alert).where(Alert.status == "open")),
            key=lambda a: (-severity_rank(a.severity), a.first_seen_at),
        )
        recent = session.scalars(
            select(Alert)
            .where(
                Alert.status == "resolved",
                Alert.resolved_at >= now - timedelta(days=HISTORY_DAYS),
            )
            .order_by(Alert.resolved_at.desc(), Alert.id.desc())
            .limit(limit)
        ).all()
        last_check = session.scalar(
            select(AlertEvent.at)
            .where(AlertEvent.event == "check")
            .order_by(AlertEvent.at.desc(), AlertEvent.id.desc())
            .limit(1)
        )
        silences = [silence_dict(s) for s in active_silences(session, now)]
        return {
            "open": [alert_dict(a, now) for a in open_alerts],
            "recent": [alert_dict(a, now) for a in recent],
            "silences": silences,
            "rules": [
                {"name": r.name, "severity": r.severity, "description": r.description}
                for r in RULES.values()
            ],
            "last_check_at": iso(last_check),
            "target": "channels" if found.usable else "log",
            "channels": found.names,
            "channel_problems": found.problems,
        }
