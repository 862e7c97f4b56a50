"""Logging: readable lines on stderr, NDJSON in <home>/logs/<component>.log.

Every NDJSON line has `ts` (UTC ISO 8601), `event`, `level`, `logger` and the event's fields.
Job inputs and secrets are never logged.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import sys
import time
from pathlib import Path

import structlog

# A record logged with extra={CONSOLE: False} goes to the log file only (tracebacks of a
# failed command: the terminal gets one line).
CONSOLE = "echopilot_console"


def _for_console(record: logging.LogRecord) -> bool:
    return bool(getattr(record, CONSOLE, True))


class _LogFile(logging.handlers.WatchedFileHandler):
    """The NDJSON file. A full disk drops log lines with one notice a minute on stderr,
    instead of logging's traceback for every line (the command's own error says more)."""

    _FULL = (errno.ENOSPC, errno.EDQUOT)
    _noticed_at = float("-inf")

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not (isinstance(error, OSError) and error.errno in self._FULL):
            super().handleError(record)
            return
        now = time.monotonic()
        if now - self._noticed_at >= 60:
            self._noticed_at = now
            print(
                f"echopilot: cannot write {self.baseFilename}: no space left on the disk; "
                "log lines are dropped until there is space",
                file=sys.stderr,
            )


_PRE_CHAIN: list[structlog.types.Processor] = [
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
]


def setup(home: Path, component: str, level: str = "info", *, console: bool = True) -> Path:
    """Configure the root logger for this process; return the NDJSON log file's path."""
    log_dir = home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{component}.log"
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level.upper())

    file_handler = _LogFile(path, encoding="utf-8")
    file_handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_PRE_CHAIN,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root.addHandler(file_handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=_PRE_CHAIN,
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    # Plain tracebacks: the rich default prints every frame's locals, which
                    # can hold secrets (request headers, keys).
                    structlog.dev.ConsoleRenderer(
                        colors=False, exception_formatter=structlog.dev.plain_traceback
                    ),
                ],
            )
        )
        stream.addFilter(_for_console)
        root.addHandler(stream)
    # Huey logs every task at INFO; that is noise at our level of detail.
    logging.getLogger("huey").setLevel(max(root.level, logging.WARNING))
    # A line per HTTP request (two for stripe's); openai 3.x sends through httpx2.
    for noisy in ("httpx", "httpx2", "stripe"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Apprise's lines can carry the URLs they were given, tokens included: they never reach
    # EchoPilot's logs (alerts/channels.py records a failed send in its own words).
    logging.getLogger("apprise").propagate = False
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    structlog.configure(
        processors=[*_PRE_CHAIN, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    return path
