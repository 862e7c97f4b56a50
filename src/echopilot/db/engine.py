"""Engines and sessions.

SQLite runs in WAL mode with a busy timeout. Its write transactions start with
BEGIN IMMEDIATE: a deferred transaction that reads first and writes later fails at
once with "database is locked" when another writer got in between, whatever the
busy timeout, so every session that writes takes the write lock up front. Within one
process, writers also queue on a Python lock first: SQLite's busy handler polls with
sleeps of up to 100 ms, which many threads turn into long, needless waits.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_IMMEDIATE = "echopilot_immediate"


def make_engine(
    url: str, *, pool_size: int = 10, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, pool_size, busy_timeout_ms)
    return create_engine(
        url,
        # Day boundaries in SQL (date(), casts) are UTC days whatever the server's zone.
        connect_args={"options": "-c timezone=UTC"},
        hide_parameters=True,  # errors must not carry job inputs into logs
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        future=True,
    )


def _sqlite_engine(url: str, database: str | None, pool_size: int, busy_ms: int) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        hide_parameters=True,  # errors must not carry job inputs into logs
        connect_args={"check_same_thread": False, "timeout": busy_ms / 1000},
        pool_size=pool_size,
        max_overflow=pool_size,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        _enable_wal(cursor, busy_ms)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    _WRITE_LOCKS[engine] = threading.RLock()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        # On the driver's connection: SQLAlchemy's execution path costs more than BEGIN.
        try:
            conn.connection.dbapi_connection.execute(statement)
        except sqlite3.Error as exc:  # raised like any statement's error ("database is locked")
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc

    return engine


def _enable_wal(cursor: Any, busy_ms: int) -> None:
    """Switch to WAL. On a new database file two processes may race to do it, and SQLite
    then answers "database is locked" at once, without its busy handler: retry a while."""
    deadline = time.monotonic() + busy_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction holds the write lock from its start; commits on success."""
    bind = factory.kw.get("bind")
    lock = _WRITE_LOCKS.get(bind) if bind is not None else None
    with lock or contextlib.nullcontext(), factory() as session:
        session.connection(execution_options={_IMMEDIATE: True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection whose transaction holds the write lock from its start; commits on
    success. The hot path's choice: no Session, no identity map, one pooled connection."""
    lock = _WRITE_LOCKS.get(engine)
    with (
        lock or contextlib.nullcontext(),
        engine.connect().execution_options(**{_IMMEDIATE: True}) as conn,
        conn.begin(),
    ):
        yield conn
