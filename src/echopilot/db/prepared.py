"""Core statements compiled once per database and run straight on the driver's cursor.

The worker's hot path runs about a dozen small statements a job. Through SQLAlchemy's
execution machinery (compiled-cache lookup, parameter construction, events, result setup)
each cost more than the database took to run it; here the statement is compiled once per
dialect, its parameters go through the same type processors (so a datetime or a JSON value
is stored exactly as SQLAlchemy stores it), and the SQL goes to the cursor of the
connection's own transaction. Errors are raised as SQLAlchemy's DBAPIError, like any other
statement's, and a lost connection is invalidated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


class Prepared:
    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, str, str], tuple[SQLCompiler, dict[str, Any]]] = {}

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Run with `params` (by bound-parameter name) in `conn`'s transaction; return the
        driver's cursor (rowcount, lastrowid, fetchone)."""
        dialect = conn.dialect
        compiled, processors = self._compiled.get(_key(dialect)) or self._compile(conn)
        values = compiled.construct_params(params, _check=False)
        for name, process in processors.items():
            if name in values:
                values[name] = process(values[name])
        positions = compiled.positiontup
        arguments: Any = [values[name] for name in positions] if positions else values
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute(compiled.string, arguments)
        except dialect.loaded_dbapi.Error as exc:
            lost = dialect.is_disconnect(exc, raw, cursor)
            if lost:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                compiled.string,
                None,
                exc,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=lost,
            ) from exc
        return cursor

    def insert(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run an INSERT and return the new row's id."""
        cursor = self.execute(conn, params)
        compiled, _ = self._compiled[_key(conn.dialect)]
        if compiled.effective_returning:  # PostgreSQL: INSERT ... RETURNING id
            return int(cursor.fetchone()[0])
        return int(cursor.lastrowid)

    def _compile(self, conn: Connection) -> tuple[SQLCompiler, dict[str, Any]]:
        compiled = self.statement.compile(dialect=conn.dialect)
        assert isinstance(compiled, SQLCompiler)
        # Parameters rendered at execution time (an expanding IN, a literal LIMIT) need
        # SQLAlchemy's own execution: such statements do not belong here.
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError(f"not a statement to prepare: {compiled.string[:80]}")
        # SQLAlchemy keeps the per-type converters of a compiled statement here (no public
        # accessor); pyproject.toml pins the minor release this was written for.
        processors = dict(compiled._bind_processors)
        self._compiled[_key(conn.dialect)] = (compiled, processors)
        return compiled, processors


def _key(dialect: Any) -> tuple[str, str, str]:
    return (dialect.name, dialect.driver, dialect.paramstyle)
