"""Running totals of jobs per dimension and key over a window: its whole days from the
daily roll-up, the whole hours of its first and last day from the hourly one, and its
partial first and last hour from the jobs themselves, summed by the database with the
triggers' own rules (rollup_sql).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, func, literal, select, text, union_all

from echopilot.db.models import FinanceDaily, FinanceHourly, UTCDateTime
from echopilot.finance.rollup_sql import COUNTS, shares_sql

HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)
DAY = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Totals = dict[str, int]
T = TypeVar("T", int, datetime)
ByKey = dict[str, Totals]


def empty() -> Totals:
    return dict.fromkeys(COUNTS, 0)


def hour_of(moment: datetime) -> int:
    """Hours since the epoch of the hour `moment` falls in."""
    return int((moment - EPOCH) // HOUR)


def day_of(moment: datetime) -> int:
    """Days since the epoch of the UTC day `moment` falls in."""
    return int((moment - EPOCH) // DAY)


def start_of_hour(hour: int) -> datetime:
    return EPOCH + hour * HOUR


def add(into: Totals, other: Mapping[str, int]) -> None:
    for name, value in other.items():
        into[name] = into.get(name, 0) + int(value or 0)


def window(
    conn: Connection, start: datetime, end: datetime, dims: Iterable[str] = ("all",)
) -> dict[str, ByKey]:
    """Totals per dimension and key of the jobs finished (and submitted) in [start, end]."""
    return windows(conn, [start], end, dims)[0]


@dataclass(frozen=True)
class _Plan:
    """Where each window's totals come from: whole days from finance_daily, the whole hours
    of its first and last day from finance_hourly, the rest from the jobs. Each piece is
    (low, high, window index), high exclusive, in days, hours, or datetimes; the live
    pieces that end at the windows' shared end include it."""

    days: list[tuple[int, int, int]]
    hours: list[tuple[int, int, int]]
    live: list[tuple[datetime, datetime, int]]


def _plan(starts: Sequence[datetime], end: datetime) -> _Plan:
    end_hour, end_day = hour_of(end), day_of(end)
    days: list[tuple[int, int, int]] = []
    hours: list[tuple[int, int, int]] = []
    live: list[tuple[datetime, datetime, int]] = []
    for i, start in enumerate(starts):
        first_hour = -(-(start - EPOCH) // HOUR)  # the first hour that starts in the window
        first_day = -(-(start - EPOCH) // DAY)
        if first_hour > end_hour:  # inside one hour: all of it from the jobs
            live.append((start, end, i))
            continue
        live.append((start, start_of_hour(first_hour), i))
        live.append((start_of_hour(end_hour), end, i))
        if first_day < end_day:
            days.append((first_day, end_day, i))
            hours.append((first_hour, first_day * 24, i))
            hours.append((end_day * 24, end_hour, i))
        else:
            hours.append((first_hour, end_hour, i))
    return _Plan(
        days=[p for p in days if p[0] < p[1]],
        hours=[p for p in hours if p[0] < p[1]],
        live=[p for p in live if p[0] < p[1] or p[1] == end],
    )


def _disjoint(pieces: list[tuple[T, T, int]]) -> list[tuple[T, T, frozenset[int]]]:
    """Pieces cut into ranges that do not overlap, each with the windows it belongs to."""
    bounds = sorted({b for lo, hi, _ in pieces for b in (lo, hi)})
    out = []
    for lo, hi in pairwise(bounds):
        owners = frozenset(i for a, b, i in pieces if a <= lo and hi <= b)
        if owners:
            out.append((lo, hi, owners))
    return out


def windows(
    conn: Connection, starts: Sequence[datetime], end: datetime, dims: Iterable[str] = ("all",)
) -> list[dict[str, ByKey]]:
    """window() for several starts that share one end, in four statements whatever their
    number: whole days, whole hours, and the jobs of the partial hours, finished and
    submitted."""
    dims = tuple(dims)
    if any(start > end for start in starts):
        raise ValueError("a window starts after it ends")
    outs: list[dict[str, ByKey]] = [{dim: defaultdict(empty) for dim in dims} for _ in starts]
    plan = _plan(starts, end)
    for table, pieces in ((FinanceDaily, plan.days), (FinanceHourly, plan.hours)):
        ranges = _disjoint(pieces)
        if ranges:
            _read_rollup(conn, table, ranges, dims, outs)
    _read_live(conn, plan.live, end, dims, outs)
    return [{dim: dict(by_key) for dim, by_key in out.items()} for out in outs]


@lru_cache(maxsize=32)
def _rollup_query(table: type[FinanceHourly] | type[FinanceDaily], ranges: int) -> Any:
    """Sums per dimension and key of each of `ranges` time ranges (one SELECT per range,
    each a range of the primary key)."""
    moment = table.hour if table is FinanceHourly else table.day  # type: ignore[union-attr]
    sums = [func.sum(getattr(table, name)) for name in COUNTS]
    parts = [
        select(table.dim, table.key, literal(n).label("part"), *sums)
        .where(
            table.dim.in_(bindparam(f"dims_{n}", expanding=True)),
            moment >= bindparam(f"lo_{n}"),
            moment < bindparam(f"hi_{n}"),
        )
        .group_by(table.dim, table.key)
        for n in range(ranges)
    ]
    return parts[0] if ranges == 1 else union_all(*parts)


def _read_rollup(
    conn: Connection,
    table: type[FinanceHourly] | type[FinanceDaily],
    ranges: list[tuple[int, int, frozenset[int]]],
    dims: tuple[str, ...],
    outs: list[dict[str, ByKey]],
) -> None:
    params: dict[str, Any] = {}
    for n, (lo, hi, _) in enumerate(ranges):
        params.update({f"lo_{n}": lo, f"hi_{n}": hi, f"dims_{n}": list(dims)})
    for dim, key, part, *values in conn.execute(_rollup_query(table, len(ranges)), params):
        counts = dict(zip(COUNTS, values, strict=True))
        for i in ranges[part][2]:
            add(outs[i][dim][key], counts)


@lru_cache(maxsize=64)
def _shares_query(dialect: str, dims: tuple[str, ...], ranges: int) -> Any:
    stamps = [
        bindparam(f"{side}_{n}", type_=UTCDateTime())
        for n in range(ranges)
        for side in ("lo", "hi")
    ]
    return text(shares_sql(dialect, dims, ranges)).bindparams(*stamps)


def _read_live(
    conn: Connection,
    pieces: list[tuple[datetime, datetime, int]],
    end: datetime,
    dims: tuple[str, ...],
    outs: list[dict[str, ByKey]],
) -> None:
    """The jobs of the windows' partial hours, summed by the database."""
    # A piece that ends at the windows' end includes it: times are kept to the microsecond.
    closed = [(lo, hi + MICROSECOND if hi == end else hi, i) for lo, hi, i in pieces]
    ranges = _disjoint(closed)
    if not ranges:
        return
    params: dict[str, Any] = {}
    for n, (lo, hi, _) in enumerate(ranges):
        params.update({f"lo_{n}": lo, f"hi_{n}": hi})
    query = _shares_query(conn.dialect.name, dims, len(ranges))
    for dim, key, part, *values in conn.execute(query, params):
        counts = dict(zip(COUNTS, values, strict=True))
        for i in ranges[part][2]:
            add(outs[i][dim][key], counts)
