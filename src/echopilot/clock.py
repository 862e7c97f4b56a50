"""The one clock: every service takes `now` and defaults to this."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(moment: datetime) -> datetime:
    """Databases such as SQLite hand back naive datetimes; EchoPilot stores UTC only."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(value: datetime | str | None) -> str | None:
    """A stored timestamp as ISO 8601 in UTC, or None."""
    moment = as_utc(value)
    return moment.isoformat() if moment else None


def age_text(delta: timedelta) -> str:
    """A duration as people say it: 45 s, 12 min, 5 h, 3 days."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86_400} days"


def as_utc(value: datetime | str | None) -> datetime | None:
    """A stored timestamp as it comes from the driver (SQLite hands back text in UTC,
    PostgreSQL a datetime) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return ensure_utc(value)
