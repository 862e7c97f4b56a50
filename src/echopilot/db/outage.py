"""Tell a passing outage of the storage (the database or queue unreachable, a connection cut,
the disk full) from a bug, so that callers can answer "retry later" instead of "internal
error". Only the driver's first line is kept: SQLAlchemy's own text carries the statement.
"""

from __future__ import annotations

import errno
import logging
import sys
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

# Words of psycopg/libpq and sqlite3 for a connection that is gone or never came.
_LOST = (
    "connection refused",
    "could not connect",
    "server closed the connection",
    "terminating connection",
    "connection already closed",
    "consuming input failed",
    "the connection is lost",
    "ssl connection has been closed",
    "timeout expired",
    "timed out",
    "the database system is starting up",
    "the database system is shutting down",
    "cannot connect now",
    # SQLite's busy timeout ran out: another process (a backup, a stuck writer) holds the
    # file's write lock. As good as unreachable for now; a retry later will do.
    "database is locked",
)
_FULL = ("database or disk is full", "no space left on device", "disk quota exceeded")


@dataclass(frozen=True)
class Outage:
    code: str  # database_unavailable | queue_unavailable | disk_full
    message: str  # for anyone: names no host, address or path
    detail: str  # the driver's own first line, for the log and the owner's terminal

    @property
    def described(self) -> str:
        return f"{self.message} ({self.detail})" if self.detail else self.message


def outage_of(exc: BaseException) -> Outage | None:
    """The outage `exc` reports, or None when it is something else (a bug, bad input)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _disk_full(first_line(exc))
    if isinstance(exc, DBAPIError):
        detail = first_line(exc.orig) if exc.orig is not None else type(exc).__name__
        lowered = detail.lower()
        if any(words in lowered for words in _FULL):
            return _disk_full(detail)
        if exc.connection_invalidated or any(words in lowered for words in _LOST):
            return Outage(
                "database_unavailable",
                "the database cannot be reached right now; retry in a few seconds",
                detail,
            )
        return None
    if _is_redis_connection_error(exc):
        return Outage(
            "queue_unavailable",
            "the queue cannot be reached right now; retry in a few seconds",
            first_line(exc),
        )
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:300]


def _disk_full(detail: str) -> Outage:
    return Outage(
        "disk_full",
        "no space left on a disk that holds the data (ECHOPILOT_HOME's, or the database "
        "server's); what failed was not saved; free some space and retry",
        detail,
    )


def _is_redis_connection_error(exc: BaseException) -> bool:
    # Imported lazily: the embedded default never loads redis.
    module = type(exc).__module__
    if not module.startswith("redis"):
        return False
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, (RedisConnectionError, RedisTimeoutError))


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """In an `except` block: an outage (the database, the queue, the disk) as one warning
    line naming it; anything else, a bug, with its traceback."""
    exc = sys.exc_info()[1] or Exception()
    found = outage_of(exc)
    if found is None:
        logger.exception(message, *args)
    elif isinstance(exc, DBAPIError) and exc.statement:
        # Which statement met the outage tells where the work stopped; its parameters
        # (customers' text) stay out of the log.
        statement = " ".join(exc.statement.split())[:200]
        logger.warning(message + ": %s; during: %s", *args, found.described, statement)
    else:
        logger.warning(message + ": %s", *args, found.described)


@dataclass
class EveryFew:
    """Says yes once per `seconds` per key: a log line per outage, not per request."""

    seconds: float
    _last: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def due(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, float("-inf")) < self.seconds:
                return False
            self._last[key] = now
            return True
