"""Turn any failure of a command into one line a person can act on, and an exit code.

Exit codes: 2 for bad usage, input or configuration; 1 for an operation that failed (a
service unreachable, a lock held too long, a state that does not allow it). Tracebacks go
to the command's log file, never to the terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from echopilot.db.outage import outage_of
from echopilot.errors import (
    AlreadyRunningError,
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    OperationFailed,
)

EXIT_FAILED, EXIT_USAGE = 1, 2
# PostgreSQL's answers to a connection it refuses: no such database, bad password or role.
REFUSED_CONNECTION = frozenset({"3D000", "28P01", "28000"})
# The same, as libpq words it when refusing at connect time (no SQLSTATE is kept then).
REFUSED = re.compile(
    r'(database|role) "[^"]*" does not exist|password authentication failed|'
    r"no password supplied",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Failure:
    code: str  # a short machine-readable name, as in the API's error envelope
    message: str
    exit_code: int
    expected: bool = True  # False: a bug or an unforeseen error, worth its traceback


def explain(exc: BaseException, *, database_url: str | None = None) -> Failure:
    """What went wrong, in one line, for `exc` raised by a command."""
    if isinstance(exc, InputError):
        return Failure("invalid_input", str(exc), EXIT_USAGE)
    if isinstance(exc, NotFoundError):
        return Failure("not_found", str(exc), EXIT_USAGE)
    if isinstance(exc, ConfigError):
        return Failure("bad_configuration", str(exc), EXIT_USAGE)
    if isinstance(exc, AlreadyRunningError):
        return Failure("already_running", str(exc), EXIT_USAGE)
    if isinstance(exc, typer.TyperException):  # the command line did not parse
        return Failure("bad_usage", exc.format_message(), exc.exit_code)
    if isinstance(exc, ConflictError):
        return Failure("conflict", str(exc), EXIT_FAILED)
    if isinstance(exc, OperationFailed):
        return Failure("failed", str(exc), EXIT_FAILED)
    if isinstance(exc, (ArgumentError, NoSuchModuleError)):
        return Failure(
            "bad_configuration",
            "ECHOPILOT_DATABASE_URL: not a usable database URL "
            "(sqlite:///path or postgresql+psycopg://user@host/db)",
            EXIT_USAGE,
        )
    if _unknown_revision(exc):
        return Failure(
            "database_newer",
            f"the database was upgraded by a newer version of EchoPilot ({_first_line(exc)}); "
            "run that version here too (every process must run the same version), or restore "
            "a backup made before the upgrade",
            EXIT_USAGE,
        )
    full = outage_of(exc)
    if full is not None and full.code == "disk_full":
        return Failure("disk_full", full.described, EXIT_FAILED)
    if isinstance(exc, DBAPIError):
        return _database(exc, database_url)
    if _is_redis_error(exc):
        return Failure(
            "queue_unreachable",
            f"cannot reach the queue ({_first_line(exc)}); check ECHOPILOT_QUEUE_URL and "
            "that Redis runs",
            EXIT_FAILED,
        )
    return Failure(
        "internal_error",
        f"unexpected error ({type(exc).__name__}: {_first_line(exc)})",
        EXIT_FAILED,
        expected=False,
    )


def _database(exc: DBAPIError, url: str | None) -> Failure:
    # The driver's own message, never SQLAlchemy's, which appends the statement.
    detail = _first_line(exc.orig) if exc.orig is not None else type(exc).__name__
    where = _where(url)
    lowered = detail.lower()
    if "database is locked" in lowered or "database table is locked" in lowered:
        return Failure(
            "database_locked",
            f"the database {where} stayed locked by another process longer than the busy "
            "timeout (ECHOPILOT_SQLITE_BUSY_SECONDS); try again when it is free",
            EXIT_FAILED,
        )
    if "unable to open database file" in lowered:
        return Failure(
            "bad_configuration",
            f"cannot open the database {where}; check that its folder exists and is writable "
            "(ECHOPILOT_HOME, ECHOPILOT_DATABASE_URL)",
            EXIT_USAGE,
        )
    if getattr(exc.orig, "sqlstate", None) in REFUSED_CONNECTION or REFUSED.search(detail):
        return Failure(
            "bad_configuration",
            f"the database {where} refused the connection: {detail}; check ECHOPILOT_DATABASE_URL",
            EXIT_USAGE,
        )
    unreachable = (
        "connection refused",
        "could not connect",
        "timeout expired",
        "timed out",
        "failed to resolve host",
        "name or service not known",
    )
    lost = outage_of(exc)
    if (
        exc.connection_invalidated
        or any(words in lowered for words in unreachable)
        or (lost is not None and lost.code == "database_unavailable")
    ):
        return Failure(
            "database_unreachable",
            f"cannot reach the database {where} ({detail}); check ECHOPILOT_DATABASE_URL and "
            "that the server runs",
            EXIT_FAILED,
        )
    return Failure(
        "database_error", f"the database {where} failed: {detail}", EXIT_FAILED, expected=False
    )


def _where(url: str | None) -> str:
    if not url:
        return ""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return ""
    if parsed.get_backend_name() == "sqlite":
        return f"at {parsed.database}"
    port = f":{parsed.port}" if parsed.port else ""
    return f"at {parsed.host or 'localhost'}{port}/{parsed.database or ''}"


def _unknown_revision(exc: BaseException) -> bool:
    # Alembic's words for a revision in the database that this version does not ship.
    return type(exc).__module__.startswith("alembic") and "Can't locate revision" in str(exc)


def _is_redis_error(exc: BaseException) -> bool:
    name = type(exc).__name__
    return type(exc).__module__.startswith("redis.") and ("Connection" in name or "Timeout" in name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:300]
