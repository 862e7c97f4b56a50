"""The one clock: every service takes `now` and defaults to this."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(moment: datetime) -> datetime:
    """Databases such as SQLite hand back naive datetimes; EchoPilot stores UTC only."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def as_utc(value: datetime | str | None) -> datetime | None:
    """A stored timestamp as it comes from the driver (SQLite hands back text in UTC,
    PostgreSQL a datetime) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return ensure_utc(value)
