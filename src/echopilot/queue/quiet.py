"""Huey's consumer logs a full traceback every time a read of the queue fails: a Redis
restart of a few seconds writes thousands of lines per worker. While the queue or the
database is away, the first error of a minute is one line; the rest are counted into it.
"""

from __future__ import annotations

import logging
import threading
import time

from echopilot.db.outage import outage_of

# Huey's consumer loggers whose errors repeat for as long as an outage lasts.
CONSUMER_LOGGERS = ("huey.consumer.Worker", "huey.consumer.Scheduler", "huey.consumer")
WINDOW_SECONDS = 60.0


class OutageFilter(logging.Filter):
    """Pass one record per message per window for an outage, without its traceback."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        super().__init__()
        self.window = window
        self._lock = threading.Lock()
        self._shown: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        found = outage_of(error) if error is not None else None
        if found is None:
            return True
        key = record.getMessage()
        now = time.monotonic()
        with self._lock:
            if now - self._shown.get(key, float("-inf")) < self.window:
                self._dropped[key] = self._dropped.get(key, 0) + 1
                return False
            self._shown[key] = now
            dropped = self._dropped.pop(key, 0)
        record.msg = f"{key}: {found.described}" + (
            f" ({dropped} more like it since the last line)" if dropped else ""
        )
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_consumer_outages() -> OutageFilter:
    """Install one filter on Huey's consumer loggers; return it."""
    outage_filter = OutageFilter()
    for name in CONSUMER_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, OutageFilter)]:
            logger.removeFilter(old)
        logger.addFilter(outage_filter)
    return outage_filter
