"""Schedules and their slots (pure: no clock, no database).

A schedule is a cron expression (UTC), `every <n><s|m|h>`, `daily HH:MM`, or `off`.
A slot is the instant a run is due. Interval slots are aligned to the Unix epoch, so every
scheduler process computes the same slots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

_EVERY = re.compile(r"^every\s+(\d+)\s*([smh])$")
_DAILY = re.compile(r"^daily\s+([01]?\d|2[0-3]):([0-5]\d)$")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TICK = timedelta(microseconds=1)


class ScheduleError(ValueError):
    """The schedule text is not one EchoPilot understands."""


@dataclass(frozen=True)
class Schedule:
    text: str
    cron: str | None = None
    every: timedelta | None = None

    @property
    def off(self) -> bool:
        return self.cron is None and self.every is None

    def latest(self, now: datetime) -> datetime | None:
        """The most recent slot at or before `now`."""
        if self.every is not None:
            step = self.every.total_seconds()
            count = int((now - EPOCH).total_seconds() // step)
            return EPOCH + timedelta(seconds=count * step)
        if self.cron is not None:
            slot: datetime = croniter(self.cron, now + TICK).get_prev(datetime)
            return slot.astimezone(UTC)
        return None

    def following(self, moment: datetime) -> datetime | None:
        """The first slot strictly after `moment`."""
        if self.every is not None:
            latest = self.latest(moment)
            assert latest is not None
            return latest + self.every
        if self.cron is not None:
            slot: datetime = croniter(self.cron, moment).get_next(datetime)
            return slot.astimezone(UTC)
        return None

    def interval(self, around: datetime) -> timedelta | None:
        """The gap between consecutive slots near `around` (cron gaps may vary)."""
        if self.every is not None:
            return self.every
        latest = self.latest(around)
        if latest is None:
            return None
        following = self.following(latest)
        assert following is not None
        return following - latest


def parse(text: str) -> Schedule:
    """Parse a schedule; raise ScheduleError saying what is accepted."""
    value = " ".join(text.strip().lower().split())
    if value == "off":
        return Schedule(text=value)
    match = _EVERY.match(value)
    if match:
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if not 1 <= seconds <= 7 * 86_400:
            raise ScheduleError("an interval must be between 1s and 168h")
        return Schedule(text=value, every=timedelta(seconds=seconds))
    match = _DAILY.match(value) or _HHMM.match(value)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        return Schedule(text=f"daily {hour:02d}:{minute:02d}", cron=f"{minute} {hour} * * *")
    if croniter.is_valid(value) and len(value.split()) == 5:
        return Schedule(text=value, cron=value)
    raise ScheduleError(
        f"{text!r} is not a schedule: use a 5-field cron expression (UTC), "
        "'every 30s|15m|6h', 'daily HH:MM' or 'off'"
    )
