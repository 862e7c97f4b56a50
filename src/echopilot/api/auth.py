"""The dashboard key: constant-time comparison and a lock-out for repeated failures.

Failed attempts are counted per client address in the database (table key_failures), so
that every API process (`echopilot serve --workers N`, a restarted `echopilot up`) sees
the same count and the same lock-outs. The success path stays in memory: each process keeps
a snapshot of locked clients and of clients with failures, refreshed from the database at
most once a second, so a lock-out made by another process holds here within about a
second. A failed attempt is written in a worker thread, never on the event loop.

The client is the connecting address; uvicorn replaces it with the X-Forwarded-For address
only when the connection comes from a proxy named in ECHOPILOT_TRUSTED_PROXIES. IPv6
clients are counted per /64 network, the block one host or household usually holds.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
import structlog
from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from echopilot import audit
from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import KeyFailure
from echopilot.runtime import Runtime

MAX_FAILURES = 10
WINDOW_SECONDS = 60.0
LOCKOUT_SECONDS = 300.0
REFRESH_SECONDS = 1.0  # how stale this process's view of other processes' lock-outs may be
PRUNE_SECONDS = 60.0  # how often a process deletes rows that no longer matter
MAX_CLIENT_CHARS = 200  # the column's width
ACTOR = "api"

log = logging.getLogger("echopilot.api")
# The same `echopilot.api` logger, with the event's fields as NDJSON fields in api.log.
events = structlog.stdlib.get_logger("echopilot.api")


class AuthError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Attempt:
    """What the logs and the audit log say of a failed attempt (never the key)."""

    reason: str  # "missing key" | "wrong key"
    method: str
    path: str


@dataclass(frozen=True)
class Outcome:
    """A failed attempt once counted: failures in the window, and the lock if any."""

    failures: int
    locked_until: datetime | None
    already_locked: bool  # the client was locked before this attempt (by another process)


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key in X-Dash-Key or `Authorization: Bearer`, from raw ASGI headers."""
    bearer = None
    for name, value in headers:
        if name == b"x-dash-key" and value:
            return value.decode("latin-1")
        if name == b"authorization" and bearer is None:
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return bearer


@functools.lru_cache(maxsize=4096)
def client_id(address: str) -> str:
    """What failures are counted against: the IPv4 address, the /64 of an IPv6 address
    (one host can hold a whole /64), or the text as given when it is not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:MAX_CLIENT_CHARS] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def lockout_message(retry_after: int) -> str:
    minutes = int(LOCKOUT_SECONDS // 60)
    return (
        f"too many failed key attempts from this address; locked out for {minutes} minutes "
        f"(try again in {retry_after} s)"
    )


class KeyGuard:
    """Checks presented keys; a client with MAX_FAILURES failures within WINDOW_SECONDS is
    answered 429 for LOCKOUT_SECONDS, whatever key it then presents, in every process that
    shares the database."""

    def __init__(
        self, key: str, runtime: Runtime, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._digest = hashlib.sha256(key.encode()).digest()
        self._runtime = runtime
        self._clock = clock
        self._locked: dict[str, datetime] = {}  # client -> locked until
        self._locked_here: dict[str, float] = {}  # client -> when this process locked it
        self._failing: dict[str, datetime] = {}  # client -> last failure (rows to clear)
        self._refreshed_at = -math.inf  # monotonic
        self._pruned_at = -math.inf
        self._state = threading.Lock()
        self._refreshing = threading.Lock()

    # The request path: in memory, but for a refresh at most once a second.

    async def check(
        self, address: str, presented: str | None, *, method: str = "GET", path: str = "/"
    ) -> None:
        """Return when `presented` is the key; raise AuthError 401 or 429 otherwise.
        `method` and `path` only go into the logs and the audit log."""
        if time.monotonic() - self._refreshed_at >= REFRESH_SECONDS:
            await anyio.to_thread.run_sync(self.refresh)
        client = client_id(address)
        now = self._clock()
        until = self._locked.get(client)
        if until is not None and until > now:
            raise self._locked_error(until, now)
        if self.matches(presented):
            if client in self._failing:
                await anyio.to_thread.run_sync(self.clear, client)
            return
        reason = "missing key" if presented is None else "wrong key"
        attempt = Attempt(reason=reason, method=method, path=path[:MAX_CLIENT_CHARS])
        outcome = await anyio.to_thread.run_sync(self.record_failure, client, attempt)
        if outcome.already_locked and outcome.locked_until is not None:
            raise self._locked_error(outcome.locked_until, self._clock())
        what = "missing dashboard key" if presented is None else "wrong dashboard key"
        raise AuthError(401, f"{what}: send it as X-Dash-Key or Authorization: Bearer")

    def matches(self, presented: str | None) -> bool:
        # Compare digests in constant time: equal lengths, so not even the key's length leaks.
        return presented is not None and hmac.compare_digest(
            hashlib.sha256(presented.encode()).digest(), self._digest
        )

    @staticmethod
    def _locked_error(until: datetime, now: datetime) -> AuthError:
        retry_after = max(1, math.ceil((until - now).total_seconds()))
        return AuthError(429, lockout_message(retry_after), retry_after=retry_after)

    # Database work, in worker threads.

    def refresh(self) -> None:
        """Reload locked clients and clients with failures from the database."""
        with self._refreshing:
            if time.monotonic() - self._refreshed_at < REFRESH_SECONDS:
                return  # another thread just did
            started = time.monotonic()
            now = self._clock()
            recent = now - timedelta(seconds=WINDOW_SECONDS)
            try:
                with read_session(self._runtime.sessions) as session:
                    rows = session.execute(
                        select(
                            KeyFailure.client, KeyFailure.locked_until, KeyFailure.last_failure_at
                        ).where(
                            or_(KeyFailure.locked_until > now, KeyFailure.last_failure_at > recent)
                        )
                    ).all()
            except Exception:
                log.warning("could not read key failures; keeping the last view", exc_info=True)
                self._refreshed_at = started
                return
            with self._state:
                # The database is the truth (an operator may delete a row to lift a
                # lock-out early), but for lock-outs this process made after the query
                # began. A stale "failing" entry costs at most one DELETE.
                locked = {
                    c: self._locked[c]
                    for c, at in self._locked_here.items()
                    if at >= started and c in self._locked
                }
                self._locked_here = {c: at for c, at in self._locked_here.items() if at >= started}
                failing = {c: t for c, t in self._failing.items() if t > recent}
                for client, until, last in rows:
                    if until is not None and until > now:
                        locked[client] = max(until, locked.get(client, until))
                    if last > recent:
                        failing[client] = max(last, failing.get(client, last))
                self._locked, self._failing = locked, failing
                self._refreshed_at = started

    def clear(self, client: str) -> None:
        """A success: forget the client's failures (never an unexpired lock-out)."""
        now = self._clock()
        try:
            with write_session(self._runtime.sessions) as session:
                session.execute(
                    delete(KeyFailure).where(
                        KeyFailure.client == client,
                        or_(KeyFailure.locked_until.is_(None), KeyFailure.locked_until <= now),
                    )
                )
        except Exception:
            log.warning("could not clear the key failures of %s", client, exc_info=True)
            return
        with self._state:
            self._failing.pop(client, None)

    def record_failure(self, client: str, attempt: Attempt) -> Outcome:
        """Count a failed attempt (and lock the client out at MAX_FAILURES); audit and log
        it. Atomic across processes: the row is locked (PostgreSQL) or the database is
        (SQLite) while it is counted."""
        now = self._clock()
        try:
            outcome = self._count(client, attempt, now)
        except Exception:
            log.warning("could not record a failed key attempt from %s", client, exc_info=True)
            return Outcome(failures=0, locked_until=None, already_locked=False)
        with self._state:
            self._failing[client] = now
            if outcome.locked_until is not None:
                self._locked[client] = outcome.locked_until
                self._locked_here[client] = time.monotonic()
        if not outcome.already_locked:
            events.warning(
                "auth.failed",
                client=client,
                reason=attempt.reason,
                method=attempt.method,
                path=attempt.path,
                failures=outcome.failures,
                max_failures=MAX_FAILURES,
                window_seconds=int(WINDOW_SECONDS),
            )
        if outcome.locked_until is not None and not outcome.already_locked:
            events.warning(
                "auth.locked_out",
                client=client,
                failures=outcome.failures,
                lockout_seconds=int(LOCKOUT_SECONDS),
                locked_until=outcome.locked_until.isoformat(),
            )
        return outcome

    def _count(self, client: str, attempt: Attempt, now: datetime) -> Outcome:
        with write_session(self._runtime.sessions) as session:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            session.execute(
                insert(KeyFailure)
                .values(client=client, window_started_at=now, failures=0, last_failure_at=now)
                .on_conflict_do_nothing(index_elements=["client"])
            )
            row = session.scalars(
                select(KeyFailure)
                .where(KeyFailure.client == client)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one()
            if row.locked_until is not None and row.locked_until > now:
                return Outcome(row.failures, row.locked_until, already_locked=True)
            if (
                row.locked_until is not None
                or (now - row.window_started_at).total_seconds() >= WINDOW_SECONDS
            ):
                row.window_started_at, row.failures, row.locked_until = now, 0, None
            row.failures += 1
            row.last_failure_at = now
            target = f"client:{client}"
            audit.record(
                session,
                actor=ACTOR,
                action="auth.failed",
                target=target,
                details={
                    "reason": attempt.reason,
                    "method": attempt.method,
                    "path": attempt.path,
                    "failures": row.failures,
                    "max_failures": MAX_FAILURES,
                    "window_seconds": int(WINDOW_SECONDS),
                },
                now=now,
            )
            if row.failures >= MAX_FAILURES:
                row.locked_until = now + timedelta(seconds=LOCKOUT_SECONDS)
                audit.record(
                    session,
                    actor=ACTOR,
                    action="auth.locked_out",
                    target=target,
                    details={
                        "failures": row.failures,
                        "lockout_seconds": int(LOCKOUT_SECONDS),
                        "locked_until": row.locked_until.isoformat(),
                    },
                    now=now,
                )
            outcome = Outcome(row.failures, row.locked_until, already_locked=False)
            if time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
                self._pruned_at = time.monotonic()
                session.execute(
                    delete(KeyFailure).where(
                        KeyFailure.last_failure_at < now - timedelta(seconds=WINDOW_SECONDS),
                        or_(KeyFailure.locked_until.is_(None), KeyFailure.locked_until <= now),
                    )
                )
        return outcome
