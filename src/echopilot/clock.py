"""The one clock: every service takes `now` and defaults to this.

It is the wall clock, unless ECHOPILOT_CLOCK_FILE names a clock file (simulations and tests
only): then every process that reads the file shares one time, the instant written in it
plus the real time since it was written. A test advances the whole platform (API, workers,
scheduler, queue ETAs) by writing a later instant with `set_file`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

CLOCK_FILE_ENV = "ECHOPILOT_CLOCK_FILE"


class ClockFileError(RuntimeError):
    """The clock file is missing or unreadable: no time can be told."""


class _FileClock:
    """The time of a clock file, re-read only when the file changes (one stat a call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._reading: tuple[datetime, float] | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        try:
            info = self.path.stat()
        except OSError as exc:
            raise ClockFileError(f"{CLOCK_FILE_ENV}: cannot read {self.path}: {exc}") from exc
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        reading = self._reading
        if seen != self._seen or reading is None:
            with self._lock:
                reading = self._reading = _read(self.path)
                self._seen = seen
        instant, written = reading
        return instant + timedelta(seconds=max(0.0, time.time() - written))


def _read(path: Path) -> tuple[datetime, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        instant = datetime.fromisoformat(data["now"])
        written = float(data["written"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClockFileError(f"{CLOCK_FILE_ENV}: {path} is not a clock file: {exc}") from exc
    if instant.tzinfo is None:
        raise ClockFileError(f"{CLOCK_FILE_ENV}: {path} holds a time without a zone")
    return instant.astimezone(UTC), written


def _from_environment() -> _FileClock | None:
    path = os.environ.get(CLOCK_FILE_ENV)
    return _FileClock(Path(path)) if path else None


_file_clock = _from_environment()


def utcnow() -> datetime:
    if _file_clock is None:
        return datetime.now(UTC)
    return _file_clock.now()


def simulated() -> bool:
    """Whether this process runs on a clock file rather than the wall clock."""
    return _file_clock is not None


def file_time(path: Path) -> datetime:
    """The time a clock file tells now (what every process on it reads)."""
    return _FileClock(path).now()


def set_file(path: Path, instant: datetime) -> None:
    """Make `path` a clock file that reads `instant` from now on (atomically: a reader sees
    the old time or the new one)."""
    if instant.tzinfo is None:
        raise ValueError("a clock file's time must be timezone-aware")
    body = json.dumps({"now": instant.astimezone(UTC).isoformat(), "written": time.time()})
    spare = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    spare.write_text(body, encoding="utf-8")
    spare.replace(path)


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
