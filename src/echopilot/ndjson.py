"""Append-only NDJSON event logs (`<home>/logs/<name>.log`) that operators grep and count.

Each line: `ts` (UTC ISO 8601), `event`, then the event's fields. Callers never pass
secrets or job inputs.

These logs tell what the database already holds: a line that cannot be written (a full
disk, a read-only `logs/`) is a warning in the process's own log, never an error in the
work that wrote it. A scheduler that raised there once left its run "running" for ever.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from echopilot.clock import utcnow

log = logging.getLogger(__name__)

_lock = threading.Lock()
# Files whose last write failed: one warning when a file starts failing, one line when it
# works again, not one per event.
_failing: set[Path] = set()


def log_path(home: Path, name: str) -> Path:
    return home / "logs" / f"{name}.log"


def append(log_file: Path, event: str, *, now: datetime | None = None, **fields: Any) -> bool:
    """Append one event; False (and a warning the first time) when the file cannot take it."""
    line = json.dumps(
        {"ts": (now or utcnow()).isoformat(), "event": event, **fields},
        default=str,
        ensure_ascii=False,
    )
    with _lock:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            _write_line(log_file, (line + "\n").encode("utf-8"))
        except OSError as exc:
            if log_file not in _failing:
                _failing.add(log_file)
                log.warning(
                    "cannot write the event log %s (%s); events are dropped until it can",
                    log_file,
                    exc.strerror or exc,
                )
            return False
        if log_file in _failing:
            _failing.discard(log_file)
            log.info("the event log %s is written again", log_file)
        return True


def _write_line(log_file: Path, data: bytes) -> None:
    """Append `data` whole or not at all. Processes share these files (the scheduler, its
    tasks, the API, the CLI), so the file is locked while we write: a line the disk cut
    short is then ours alone, and cutting it back removes nobody else's line."""
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_size > start:
                    os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)  # and with it the lock
