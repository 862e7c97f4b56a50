"""Which UTC day a report is about: the day asked for, checked, or yesterday."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from echopilot.errors import InputError

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The epoch: the finance roll-ups count hours and days from it, and nothing is older.
FIRST_DAY = date(1970, 1, 1)
DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)


def choose(text: str | None, now: datetime, *, field: str = "date") -> date:
    """The day `text` names (YYYY-MM-DD), or yesterday (UTC) when it is None.

    Raises InputError naming `field` for a malformed day, one before 1970, or one after
    today: a report is never made, nor anything written, for such a day."""
    today = now.astimezone(UTC).date()
    if text is None:
        return today - DAY
    value = text.strip()
    try:
        if not _ISO_DAY.match(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise InputError(field, f"{text!r} is not a date; use YYYY-MM-DD") from None
    if day > today:
        raise InputError(field, f"{value} is in the future; the latest day is today, {today}")
    if day < FIRST_DAY:
        raise InputError(field, f"{value} is before {FIRST_DAY}, when EchoPilot's clock starts")
    return day


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def last_moment(day: date, cutoff: datetime) -> datetime:
    """The last instant of `day` the report reads: its final microsecond, or the cut-off
    while the day is not over (finance's `between` includes its end)."""
    return min(start_of(day) + DAY - TICK, cutoff)


def is_over(day: date, cutoff: datetime) -> bool:
    return cutoff >= start_of(day) + DAY


def stamp(day: date) -> str:
    """The day as file names carry it: 20261119."""
    return day.strftime("%Y%m%d")
