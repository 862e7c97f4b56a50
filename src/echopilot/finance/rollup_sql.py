"""The finance roll-ups, kept by the database itself: triggers on `jobs` add each job's
contribution to `finance_hourly` (and its latency to `latency_daily`) and take it away
again whenever the job changes, so the figures stay exact whatever code path, process or
bulk load wrote the job: a retry that moves a job's finish to another day, an approval that
makes it billable, a payment that settles it, a deletion.

One row of `finance_hourly` per UTC hour (hours since the Unix epoch), dimension and key,
and the same per UTC day (days since the epoch) in `finance_daily` (a long window reads its
whole days there, and only the hours of its first and last day in `finance_hourly`):
- dim `all` (key ''), `task_type`, `client` (client id as text, '' for none), `model` ('' for
  none): what the jobs that finished in that hour contributed, and (`all`, `task_type`,
  `client` only) how many jobs were submitted in that hour;
- dim `unpriced_model`: per model with no known price, how many jobs that finished in that
  hour used it (`finished`).
`latency_daily` is a histogram of done and needs-review jobs' durations per UTC day (days
since the epoch), in buckets of two significant digits.

A job's share is written once, as SQL, and used three ways: by the triggers, by
`rebuild()`, and by `shares_sql()` for the jobs of a window's partial hours. Tests hold all
of it to a plain recount of the jobs.

A SQLite table rebuilt by Alembic's batch mode loses its triggers: a later migration that
batch-alters `jobs` calls `install()` again.
"""

from __future__ import annotations

from sqlalchemy import Connection

COUNTS = (
    "created",
    "finished",
    "done",
    "needs_review",
    "dead",
    "cancelled",
    "billed",
    "billed_cents",
    "owed",
    "owed_cents",
    "cost_micros",
    "qa_jobs",
    "qa_tenths",
    "unpriced",
    "latency_jobs",
    "latency_ms",
)
# Columns whose change moves a finished job's contribution.
FINANCE_COLUMNS = (
    "finished_at",
    "status",
    "payment_status",
    "price_cents",
    "cost_micros",
    "qa_score",
    "duration_ms",
    "task_type",
    "client_id",
    "model",
    "unpriced_models",
)
CREATED_COLUMNS = ("created_at", "task_type", "client_id")
# Payment statuses of a billed job that owe nothing (any other means money is owed):
# echopilot.payments.status.SETTLED, spelled out here so that a migration's triggers do
# not change when that module does.
SETTLED = ("paid", "partially_refunded", "refunded", "disputed", "dispute_lost")
LATENCY_STATUSES = ("done", "needs_review")
TABLES = ("finance_hourly", "finance_daily", "latency_daily")
TRIGGERS = (
    "jobs_finance_ins",
    "jobs_finance_upd",
    "jobs_finance_del",
    "jobs_created_ins",
    "jobs_created_upd",
    "jobs_created_del",
)


def _dims(ref: str, *, with_model: bool) -> list[tuple[str, str]]:
    dims = [
        ("all", "''"),
        ("task_type", f"{ref}.task_type"),
        ("client", f"COALESCE(CAST({ref}.client_id AS TEXT), '')"),
    ]
    if with_model:
        dims.append(("model", f"COALESCE({ref}.model, '')"))
    return dims


class _Dialect:
    def __init__(self, name: str) -> None:
        self.pg = name == "postgresql"

    def hour(self, ts: str) -> str:
        if self.pg:
            return f"CAST(floor(extract(epoch FROM {ts}) / 3600) AS BIGINT)"
        # Whole seconds only: strftime rounds fractional seconds to the millisecond.
        return f"(CAST(strftime('%s', substr({ts}, 1, 19)) AS INTEGER) / 3600)"

    def day(self, ts: str) -> str:
        if self.pg:
            return f"CAST(floor(extract(epoch FROM {ts}) / 86400) AS BIGINT)"
        return f"(CAST(strftime('%s', substr({ts}, 1, 19)) AS INTEGER) / 86400)"

    def tenths(self, value: str) -> str:
        """QA score in tenths of a point, halves up (scores are never negative)."""
        if self.pg:
            return f"CAST(floor({value} * 10 + 0.5) AS BIGINT)"
        return f"CAST({value} * 10 + 0.5 AS INTEGER)"

    def as_array(self, value: str) -> str:
        """The JSON value if it is an array, else an empty one (a stray scalar or null
        must not break the write of a job)."""
        if self.pg:
            return f"(CASE WHEN json_typeof({value}) = 'array' THEN {value} ELSE '[]'::json END)"
        return f"(CASE WHEN json_type({value}) = 'array' THEN {value} ELSE '[]' END)"

    def json_elements(self, value: str) -> str:
        array = self.as_array(value)
        if self.pg:
            return f"json_array_elements_text({array}) WITH ORDINALITY AS e(value, key)"
        return f"json_each({array}) AS e"

    def first_occurrence(self, value: str) -> str:
        """e.value's first place in the array: a model named twice counts once."""
        array = self.as_array(value)
        if self.pg:
            d = f"json_array_elements_text({array}) WITH ORDINALITY AS d(value, key)"
        else:
            d = f"json_each({array}) AS d"
        return f"NOT EXISTS (SELECT 1 FROM {d} WHERE d.value = e.value AND d.key < e.key)"

    def distinct(self, a: str, b: str) -> str:
        return f"{a} IS DISTINCT FROM {b}" if self.pg else f"{a} IS NOT {b}"

    def changed(self, column: str) -> str:
        text = "::text" if self.pg and column == "unpriced_models" else ""
        return self.distinct(f"OLD.{column}{text}", f"NEW.{column}{text}")


def latency_bucket(ref: str) -> str:
    """The duration floored to two significant digits (integer division in both databases)."""
    d = f"{ref}.duration_ms"
    whens = " ".join(
        f"WHEN {d} < {10 ** (digits + 1)} THEN {d} / {10 ** (digits - 1)} * {10 ** (digits - 1)}"
        for digits in range(2, 10)
    )
    return f"CASE WHEN {d} < 100 THEN {d} {whens} ELSE {d} END"


def _finished_values(ref: str, sign: str, dialect: _Dialect) -> dict[str, str]:
    billed = (
        f"{ref}.status = 'done' AND {ref}.payment_status <> 'na' AND {ref}.price_cents IS NOT NULL"
    )
    settled = ", ".join(f"'{s}'" for s in SETTLED)
    owed = f"{billed} AND {ref}.payment_status NOT IN ({settled})"
    timed = ", ".join(f"'{s}'" for s in LATENCY_STATUSES)
    latency = f"{ref}.status IN ({timed}) AND {ref}.duration_ms IS NOT NULL"

    def when(condition: str, value: str) -> str:
        return f"CASE WHEN {condition} THEN {value} ELSE 0 END"

    return {
        "finished": sign,
        "done": when(f"{ref}.status = 'done'", sign),
        "needs_review": when(f"{ref}.status = 'needs_review'", sign),
        "dead": when(f"{ref}.status = 'dead'", sign),
        "cancelled": when(f"{ref}.status = 'cancelled'", sign),
        "billed": when(billed, sign),
        "billed_cents": when(billed, f"{sign} * {ref}.price_cents"),
        "owed": when(f"{owed}", sign),
        "owed_cents": when(f"{owed}", f"{sign} * {ref}.price_cents"),
        "cost_micros": f"{sign} * {ref}.cost_micros",
        "qa_jobs": when(f"{ref}.qa_score IS NOT NULL", sign),
        "qa_tenths": when(
            f"{ref}.qa_score IS NOT NULL", f"{sign} * {dialect.tenths(f'{ref}.qa_score')}"
        ),
        "unpriced": when(
            f"json_array_length({dialect.as_array(f'{ref}.unpriced_models')}) > 0", sign
        ),
        "latency_jobs": when(latency, sign),
        "latency_ms": when(latency, f"{sign} * {ref}.duration_ms"),
    }


def _upsert(
    table: str, keys: list[str], values: dict[str, str], source: str, *, grouped: bool = False
) -> str:
    """INSERT ... SELECT ... ON CONFLICT that adds `values` to the row of `keys`; `grouped`
    sums the rows of one key first (PostgreSQL refuses to update one row twice in a
    statement)."""
    names = list(values)
    sets = ", ".join(f"{n} = {table}.{n} + excluded.{n}" for n in names if n not in keys)
    select_list = ", ".join(f"{values[n]} AS {n}" for n in names)
    query = f"SELECT {select_list} {source}"
    if grouped:
        sums = ", ".join(n if n in keys else f"SUM({n})" for n in names)
        query = f"SELECT {sums} FROM ({query}) AS share GROUP BY {', '.join(keys)}"
        query += " HAVING true"  # SQLite: a WHERE or HAVING before ON CONFLICT
    return (
        f"INSERT INTO {table} ({', '.join(names)}) {query} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets};"
    )


def _source(rows: str, guard: str, *joined: str) -> str:
    """FROM (the jobs table as `j` for a rebuild, nothing in a trigger) and WHERE (always
    present: SQLite needs it to read ON CONFLICT after INSERT ... SELECT)."""
    tables = ([rows] if rows else []) + list(joined)
    return (f"FROM {', '.join(tables)} " if tables else "") + f"WHERE {guard or 'true'}"


def _grains(ref_column: str, dialect: _Dialect) -> list[tuple[str, str, str]]:
    """(table, time column, its value) of each roll-up grain for the time `ref_column`."""
    return [
        ("finance_hourly", "hour", dialect.hour(ref_column)),
        ("finance_daily", "day", dialect.day(ref_column)),
    ]


def _finished_statements(
    ref: str, sign: str, dialect: _Dialect, *, guard: str = "", rows: str = ""
) -> list[str]:
    """The statements that add (sign '1') or take away ('-1') a finished job's share:
    the trigger's row `ref` (OLD or NEW), or every row of `rows` (a rebuild)."""
    statements = []
    grouped = bool(rows)
    for table, column, when in _grains(f"{ref}.finished_at", dialect):
        keys = ["dim", column, "key"]
        for dim, key in _dims(ref, with_model=True):
            values = {column: when, "dim": f"'{dim}'", "key": key}
            values.update(_finished_values(ref, sign, dialect))
            statements.append(_upsert(table, keys, values, _source(rows, guard), grouped=grouped))
        unpriced = {column: when, "dim": "'unpriced_model'", "key": "e.value", "finished": sign}
        elements = dialect.json_elements(f"{ref}.unpriced_models")
        first = dialect.first_occurrence(f"{ref}.unpriced_models")
        source = _source(rows, f"{guard} AND {first}" if guard else first, elements)
        statements.append(_upsert(table, keys, unpriced, source, grouped=grouped))
    timed = ", ".join(f"'{s}'" for s in LATENCY_STATUSES)
    latency_guard = f"{ref}.status IN ({timed}) AND {ref}.duration_ms IS NOT NULL"
    latency = {
        "day": dialect.day(f"{ref}.finished_at"),
        "bucket_ms": latency_bucket(ref),
        "jobs": sign,
        "changes": "1",  # grows with every change, whatever its sign: what a cache checks
    }
    both = f"{guard} AND {latency_guard}" if guard else latency_guard
    statements.append(
        _upsert(
            "latency_daily", ["day", "bucket_ms"], latency, _source(rows, both), grouped=grouped
        )
    )
    return statements


def _created_statements(ref: str, sign: str, dialect: _Dialect, *, rows: str = "") -> list[str]:
    out = []
    for table, column, when in _grains(f"{ref}.created_at", dialect):
        for dim, key in _dims(ref, with_model=False):
            values = {column: when, "dim": f"'{dim}'", "key": key, "created": sign}
            out.append(
                _upsert(
                    table, ["dim", column, "key"], values, _source(rows, ""), grouped=bool(rows)
                )
            )
    return out


def _any_changed(columns: tuple[str, ...], dialect: _Dialect) -> str:
    return "(" + " OR ".join(dialect.changed(c) for c in columns) + ")"


def _trigger_bodies(dialect: _Dialect) -> dict[str, tuple[str, str, list[str]]]:
    """name -> (event, WHEN condition or '', statements)."""
    old_done = "OLD.finished_at IS NOT NULL"
    new_done = "NEW.finished_at IS NOT NULL"
    finance_changed = f"({old_done} OR {new_done}) AND {_any_changed(FINANCE_COLUMNS, dialect)}"
    return {
        "jobs_finance_ins": (
            "INSERT",
            new_done,
            _finished_statements("NEW", "1", dialect, guard=""),
        ),
        "jobs_finance_upd": (
            "UPDATE",
            finance_changed,
            _finished_statements("OLD", "-1", dialect, guard=old_done)
            + _finished_statements("NEW", "1", dialect, guard=new_done),
        ),
        "jobs_finance_del": (
            "DELETE",
            old_done,
            _finished_statements("OLD", "-1", dialect, guard=""),
        ),
        "jobs_created_ins": ("INSERT", "", _created_statements("NEW", "1", dialect)),
        "jobs_created_upd": (
            "UPDATE",
            _any_changed(CREATED_COLUMNS, dialect),
            _created_statements("OLD", "-1", dialect) + _created_statements("NEW", "1", dialect),
        ),
        "jobs_created_del": ("DELETE", "", _created_statements("OLD", "-1", dialect)),
    }


def install(conn: Connection) -> None:
    """(Re)create the triggers on `jobs` for the connection's database."""
    dialect = _Dialect(conn.dialect.name)
    uninstall(conn)
    for name, (event, condition, statements) in _trigger_bodies(dialect).items():
        body = "\n  ".join(statements)
        if dialect.pg:
            conn.exec_driver_sql(
                f"CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n  {body}\n  RETURN NULL;\nEND $$"
            )
            when = f"WHEN ({condition})" if condition else ""
            # Deferred to the commit: the roll-up rows are shared by every job of the hour,
            # so their row locks are held only while committing, not from a job's write
            # through the rest of its transaction (which serialised workers and intake).
            conn.exec_driver_sql(
                f"CREATE CONSTRAINT TRIGGER {name} AFTER {event} ON jobs "
                f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {when} "
                f"EXECUTE FUNCTION {name}_fn()"
            )
        else:
            when = f"WHEN {condition}" if condition else ""
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name} AFTER {event} ON jobs FOR EACH ROW {when}\n"
                f"BEGIN\n  {body}\nEND"
            )


def uninstall(conn: Connection) -> None:
    pg = conn.dialect.name == "postgresql"
    for name in TRIGGERS:
        if pg:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON jobs")
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}_fn()")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")


def rebuild(conn: Connection) -> None:
    """Recompute both roll-ups from the jobs table, through the triggers' own statements
    run over every job (after a bulk load with the triggers off, or to check them)."""
    dialect = _Dialect(conn.dialect.name)
    for table in TABLES:
        conn.exec_driver_sql(f"DELETE FROM {table}")
    statements = _created_statements("j", "1", dialect, rows="jobs AS j")
    statements += _finished_statements(
        "j", "1", dialect, guard="j.finished_at IS NOT NULL", rows="jobs AS j"
    )
    for statement in statements:
        conn.exec_driver_sql(statement)


def shares_sql(dialect_name: str, dims: tuple[str, ...], ranges: int) -> str:
    """The totals, per dimension, key and range, of the jobs that finished (and were
    submitted) in `ranges` time ranges [:lo_N, :hi_N): a window's partial hours, summed
    by the database with the triggers' own rules. Columns: dim, key, part, *COUNTS."""
    dialect = _Dialect(dialect_name)
    keyed = dict(_dims("jobs", with_model=True))

    def part(column: str) -> str:
        whens = " ".join(
            f"WHEN jobs.{column} >= :lo_{n} AND jobs.{column} < :hi_{n} THEN {n}"
            for n in range(ranges)
        )
        return f"CASE {whens} END"

    def inside(column: str) -> str:
        return (
            "("
            + " OR ".join(
                f"(jobs.{column} >= :lo_{n} AND jobs.{column} < :hi_{n})" for n in range(ranges)
            )
            + ")"
        )

    def row(
        dim: str, key: str, column: str, values: dict[str, str], joined: str = "", guard: str = ""
    ) -> str:
        sums = ", ".join(
            f"SUM({values[name]}) AS {name}" if name in values else f"0 AS {name}"
            for name in COUNTS
        )
        return (
            f"SELECT '{dim}' AS dim, {key} AS key, {part(column)} AS part, {sums} "
            f"FROM jobs{joined} WHERE {inside(column)}{f' AND {guard}' if guard else ''} "
            "GROUP BY 2, 3"
        )

    finished = _finished_values("jobs", "1", dialect)
    selects = []
    for dim in dims:
        if dim == "unpriced_model":
            elements = dialect.json_elements("jobs.unpriced_models")
            first = dialect.first_occurrence("jobs.unpriced_models")
            selects.append(
                row(dim, "e.value", "finished_at", {"finished": "1"}, f", {elements}", first)
            )
            continue
        selects.append(row(dim, keyed[dim], "finished_at", finished))
        if dim != "model":  # a job's model is not known when it is submitted
            selects.append(row(dim, keyed[dim], "created_at", {"created": "1"}))
    return "\nUNION ALL\n".join(selects)
