"""The numbers an owner decides with, exact to the cent, over every job of a window.

A window is [now - N days, now], by the time each job finished (UTC). Its figures:
- revenue billed: the price of every billable job that ended done (or was approved); the
  offline provider's jobs and jobs awaiting review are never billed;
- revenue paid: money received net of refunds and disputes, on the day it moved (from
  the payments ledger: Stripe's events and payments marked by hand);
- cost: the model spend of every attempt of every job, failed and unbilled ones included;
  calls to a model with no known price are not costed as zero: their jobs are counted and
  the models named;
- profit = revenue billed - cost; margin % = profit / revenue billed; ROI = profit / cost.

Money stays integer (cents for prices, micro-dollars for costs) until it is shown:
revenue as dollars with 2 decimals, cost and profit with 6, all exact. Margin % is rounded
to 0.1 and ROI to 0.01, halves to even. Average QA is over the jobs that have a score.
Latency percentiles come from per-day histograms of two significant digits (reported at
a bucket's middle: within 5 % of the exact value) over the UTC days the window touches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, func, select, text

from echopilot.clock import iso, utcnow
from echopilot.db.models import Client, FinanceDaily, Job, LatencyDaily
from echopilot.finance import totals
from echopilot.finance.rollup_sql import COUNTS
from echopilot.finance.totals import EPOCH, Totals
from echopilot.jobs.status import Status
from echopilot.money import cents_text, micros_text
from echopilot.payments import ledger

MICROS_PER_CENT = 10_000
WINDOWS = (7, 30)
MAX_DAYS = 366
BREAKDOWNS = ("task_type", "client", "model")
AGEING = (("0_7d", 0, 7), ("8_30d", 7, 30), ("over_30d", 30, None))
ACTIVE = (Status.QUEUED, Status.PROCESSING, Status.FAILED)
TERMINAL = (Status.DONE, Status.NEEDS_REVIEW, Status.DEAD, Status.CANCELLED)
NO_PAYMENTS_NOTE = (
    "revenue paid is 0: no payment is recorded yet (they arrive from Stripe or by "
    "`echopilot payments mark-paid`); money owed counts every billed job not yet paid"
)
EMPTY_NOTE = "no job has finished yet: every figure is zero"


def billed() -> ColumnElement[bool]:
    """Jobs whose price is revenue: done and billed (the offline provider's are priced for
    show only, payment status `na`)."""
    return and_(Job.status == Status.DONE, Job.payment_status != "na", Job.price_cents.is_not(None))


def _ratio(part: int, whole: int, places: str) -> str | None:
    if whole == 0:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal(places)))


def figures(t: Mapping[str, int]) -> dict[str, Any]:
    """The shown figures of one set of totals."""
    revenue_micros = t["billed_cents"] * MICROS_PER_CENT
    profit = revenue_micros - t["cost_micros"]
    ended = t["done"] + t["needs_review"] + t["dead"]
    return {
        "jobs": t["finished"],
        "submitted": t["created"],
        "done": t["done"],
        "needs_review": t["needs_review"],
        "dead": t["dead"],
        "cancelled": t["cancelled"],
        "billed_jobs": t["billed"],
        "revenue": cents_text(t["billed_cents"]),
        "cost": micros_text(t["cost_micros"]),
        "profit": micros_text(profit),
        "margin_pct": _ratio(profit * 100, revenue_micros, "0.1"),
        "roi": _ratio(profit, t["cost_micros"], "0.01"),
        "avg_qa": None if not t["qa_jobs"] else round(t["qa_tenths"] / t["qa_jobs"] / 10, 1),
        "failure_rate_pct": None if not ended else round(100 * t["dead"] / ended, 1),
        "unpriced_jobs": t["unpriced"],
    }


# Nearest-rank p50 and p95 over the latency histogram, found by the database: the first
# bucket whose running count reaches q % of the total (cum >= ceil(q/100 * total) is
# cum * 100 >= q * total for whole numbers). Per day, or over a range of days at once.
_PERCENTILES = """
WITH buckets AS (
  SELECT {group} AS grp, bucket_ms, SUM(jobs) AS n FROM latency_daily
  WHERE day >= :first AND day <= :last AND jobs > 0 GROUP BY grp, bucket_ms
), running AS (
  SELECT grp, bucket_ms,
    SUM(n) OVER (PARTITION BY grp ORDER BY bucket_ms) AS cum,
    SUM(n) OVER (PARTITION BY grp) AS total
  FROM buckets
)
SELECT grp, MIN(CASE WHEN cum * 100 >= 50 * total THEN bucket_ms END),
  MIN(CASE WHEN cum * 100 >= 95 * total THEN bucket_ms END)
FROM running GROUP BY grp
"""
_LATENCY_OVER_DAYS = text(_PERCENTILES.format(group="0"))
_LATENCY_PER_DAY = text(_PERCENTILES.format(group="day"))


def _middle(bucket: int | None) -> int | None:
    """A two-significant-digit bucket reported at its middle (within 5 % of any value in it)."""
    return None if bucket is None else int(bucket) + bucket_width(int(bucket)) // 2


_LATENCY_CHECK = select(
    func.coalesce(func.sum(LatencyDaily.changes), 0), func.coalesce(func.sum(LatencyDaily.jobs), 0)
).where(LatencyDaily.day >= bindparam("first"), LatencyDaily.day <= bindparam("last"))
_LATENCY_CHECK_PER_DAY = (
    select(LatencyDaily.day, func.sum(LatencyDaily.changes), func.sum(LatencyDaily.jobs))
    .where(LatencyDaily.day >= bindparam("first"), LatencyDaily.day <= bindparam("last"))
    .group_by(LatencyDaily.day)
)
Check = tuple[int, int]
Pair = tuple[int | None, int | None]


class _Percentiles:
    """Percentiles computed before, by database and days, with the histogram's change
    count (every trigger write adds 1 to a row's `changes`) and job count when they were:
    only days whose histogram changed since (today, mostly) are read again."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.found: dict[tuple[str, int, int], tuple[Check, Pair]] = {}
        self.lock = threading.Lock()

    def get(self, where: tuple[str, int, int], check: Check) -> Pair | None:
        with self.lock:
            hit = self.found.get(where)
        return hit[1] if hit is not None and hit[0] == check else None

    def put(self, where: tuple[str, int, int], check: Check, value: Pair) -> None:
        with self.lock:
            if len(self.found) >= self.size:
                self.found.clear()
            self.found[where] = (check, value)


_percentiles = _Percentiles()


def _latency(conn: Connection, first_day: int, last_day: int) -> dict[str, int | None]:
    days = {"first": first_day, "last": last_day}
    where = (_database(conn), first_day, last_day)
    changes, jobs = conn.execute(_LATENCY_CHECK, days).one()
    check = (int(changes), int(jobs))
    found = _percentiles.get(where, check)
    if found is None:
        row = conn.execute(_LATENCY_OVER_DAYS, days).first()
        found = (None, None) if row is None else (_middle(row[1]), _middle(row[2]))
        _percentiles.put(where, check, found)
    return {"p50_ms": found[0], "p95_ms": found[1]}


def _latency_per_day(conn: Connection, first: int, last: int) -> dict[int, Pair]:
    """p50 and p95 of each day from `first` to `last` that has timed jobs."""
    database = _database(conn)
    days = {"first": first, "last": last}
    checks = {
        int(day): (int(changes), int(jobs))
        for day, changes, jobs in conn.execute(_LATENCY_CHECK_PER_DAY, days)
    }
    out: dict[int, Pair] = {}
    stale = []
    for day, check in checks.items():
        found = _percentiles.get((database, day, day), check)
        if found is None:
            stale.append(day)
        else:
            out[day] = found
    if stale:
        read = {
            int(d): (_middle(p50), _middle(p95))
            for d, p50, p95 in conn.execute(
                _LATENCY_PER_DAY, {"first": min(stale), "last": max(stale)}
            )
        }
        for day in stale:
            out[day] = read.get(day, (None, None))
            _percentiles.put((database, day, day), checks[day], out[day])
    return out


def _database(conn: Connection) -> str:
    """Which database: its URL with the password (two databases may differ only by it)."""
    return conn.engine.url.render_as_string(hide_password=False)


def bucket_width(bucket: int) -> int:
    """The width of a two-significant-digit bucket: 1 below 100 ms, then a tenth of its decade."""
    if bucket < 100:
        return 1
    return int(10 ** (len(str(bucket)) - 2))


def _figures_of(
    conn: Connection, start: datetime, end: datetime, by_dim: dict[str, totals.ByKey]
) -> dict[str, Any]:
    out = figures(by_dim["all"].get("", totals.empty()))
    out.update(
        {
            "from": iso(start),
            "to": iso(end),
            "revenue_paid": (moved := ledger.moved(conn, start, end))["net"],
            "payments": moved,
            "latency": _latency(conn, totals.day_of(start), totals.day_of(end)),
        }
    )
    return out


def between(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """The figures of the jobs that finished in [start, end], broken down by task type,
    client and model, with the unpriced models named (a report's period)."""
    by_dim = totals.window(conn, start, end, ("all", *BREAKDOWNS, "unpriced_model"))
    out = _figures_of(conn, start, end, by_dim)
    names = _client_names(conn, by_dim["client"])
    out["breakdown"] = {
        dim: _breakdown(by_dim[dim], names if dim == "client" else None) for dim in BREAKDOWNS
    }
    out["unpriced_models"] = _named(by_dim["unpriced_model"])
    return out


def _breakdown(
    by_key: totals.ByKey, names: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    rows = []
    for key, t in by_key.items():
        if not t["finished"]:
            continue  # submitted in the window but not finished: no figures yet
        row = {"key": key, **figures(t)}
        if names is not None:
            row["name"] = names.get(key, "(no client)" if key == "" else f"client {key}")
        rows.append(row)
    rows.sort(key=lambda r: (-Decimal(r["revenue"]), -Decimal(r["cost"]), r["key"]))
    return rows


def _client_names(conn: Connection, keys: Iterable[str]) -> dict[str, str]:
    ids = [int(k) for k in keys if k.isdigit()]
    if not ids:
        return {}
    query = select(Client.id, Client.name, Client.email).where(Client.id.in_(ids))
    return {str(i): f"{name} <{email}>" for i, name, email in conn.execute(query)}


def _named(found: totals.ByKey) -> list[dict[str, Any]]:
    return [
        {"model": model, "jobs": t["finished"]}
        for model, t in sorted(found.items(), key=lambda kv: (-kv[1]["finished"], kv[0]))
        if t["finished"]
    ]


def owed(conn: Connection, now: datetime) -> dict[str, Any]:
    """Money billed and not yet paid for jobs finished up to `now`, by how long before
    `now` they finished: 0-7 days, 8-30 days, over 30 days."""
    bounds = [now - timedelta(days=older) for _, _, older in AGEING if older is not None]
    found = totals.windows(conn, [*bounds, EPOCH], now)
    within = [w["all"].get("", totals.empty()) for w in found]  # 7 d, 30 d, all
    cents = [w["owed_cents"] for w in within]
    aged = [cents[0], cents[1] - cents[0], cents[2] - cents[1]]
    return {
        "jobs": within[-1]["owed"],
        "amount": cents_text(cents[-1]),
        "ageing": {name: cents_text(v) for (name, _, _), v in zip(AGEING, aged, strict=True)},
    }


def finance(
    conn: Connection,
    *,
    now: datetime | None = None,
    days: Iterable[int] = WINDOWS,
    breakdowns: tuple[str, ...] = BREAKDOWNS,
) -> dict[str, Any]:
    """The 7- and 30-day figures (or the windows asked for), each broken down by task type,
    client and model (or the `breakdowns` asked for: each costs a read of its roll-ups),
    and money owed with its ageing."""
    now = now or utcnow()
    days = list(days)
    starts = [now - timedelta(days=n) for n in days]
    found = totals.windows(conn, starts, now, ("all", *breakdowns, "unpriced_model"))
    clients = {key for by_dim in found for key in by_dim.get("client", {})}
    names = _client_names(conn, clients)
    windows: dict[str, Any] = {}
    for n, start, by_dim in zip(days, starts, found, strict=True):
        w = _figures_of(conn, start, now, by_dim)
        w["days"] = n
        w["breakdown"] = {
            dim: _breakdown(by_dim[dim], names if dim == "client" else None) for dim in breakdowns
        }
        w["unpriced_models"] = _named(by_dim["unpriced_model"])
        windows[f"{n}d"] = w
    out: dict[str, Any] = {"as_of": iso(now), "windows": windows, "owed": owed(conn, now)}
    for key, w in windows.items():  # the flat names of the contract
        out[f"jobs_{key}"] = w["jobs"]
        out[f"revenue_{key}"] = w["revenue"]
        out[f"revenue_paid_{key}"] = w["revenue_paid"]
        out[f"cost_{key}"] = w["cost"]
        out[f"profit_{key}"] = w["profit"]
        out[f"margin_{key}_pct"] = w["margin_pct"]
        out[f"roi_{key}"] = w["roi"]
    notes = [] if ledger.any_recorded(conn) else [NO_PAYMENTS_NOTE]
    if not any(w["jobs"] for w in windows.values()):
        notes.insert(0, EMPTY_NOTE)
    notes += [f"{key}: {unpriced_note(w)}" for key, w in windows.items() if w["unpriced_jobs"]]
    out["notes"] = notes
    return out


def unpriced_note(figures_: Mapping[str, Any]) -> str:
    """What a period's jobs with unpriced models mean for its cost."""
    models = ", ".join(m["model"] for m in figures_["unpriced_models"])
    return (
        f"{figures_['unpriced_jobs']} jobs used models with no known price ({models}); "
        "their calls to those models are not in cost (set ECHOPILOT_MODEL_PRICES)"
    )


def jobs_by_status(conn: Connection) -> dict[str, int]:
    """Every job by its status now: the unfinished counted in the jobs table (few), the
    finished summed from the roll-ups (many)."""
    counts = {s.value: 0 for s in Status}
    active = select(Job.status, func.count()).where(Job.status.in_(ACTIVE)).group_by(Job.status)
    for status, n in conn.execute(active):
        counts[status] = int(n)
    ended = conn.execute(
        select(
            *(func.coalesce(func.sum(getattr(FinanceDaily, s.value)), 0) for s in TERMINAL)
        ).where(FinanceDaily.dim == "all")
    ).one()
    for status, n in zip(TERMINAL, ended, strict=True):
        counts[status.value] = int(n)
    return counts


def summary(conn: Connection, *, now: datetime | None = None, days: int = 7) -> dict[str, Any]:
    """The dashboard's KPI cards: the last `days` days (the `_7d` names hold for the default)."""
    now = now or utcnow()
    start = now - timedelta(days=days)
    w = _figures_of(conn, start, now, totals.window(conn, start, now))
    return {
        "window_days": days,
        "jobs_7d": w["jobs"],
        "submitted_7d": w["submitted"],
        "revenue_7d": w["revenue"],
        "cost_7d": w["cost"],
        "profit_7d": w["profit"],
        "margin_7d_pct": w["margin_pct"],
        "roi_7d": w["roi"],
        "avg_qa_7d": w["avg_qa"],
        "finished_7d": w["done"] + w["needs_review"] + w["dead"],
        "failure_rate_7d_pct": w["failure_rate_pct"],
        "p50_latency_ms_7d": w["latency"]["p50_ms"],
        "p95_latency_ms_7d": w["latency"]["p95_ms"],
        "unpriced_jobs_7d": w["unpriced_jobs"],
        "jobs_by_status": jobs_by_status(conn),
        "as_of": iso(now),
    }


_DAYS = select(FinanceDaily.day, *(getattr(FinanceDaily, name) for name in COUNTS)).where(
    FinanceDaily.dim == "all", FinanceDaily.key == "", FinanceDaily.day >= bindparam("first")
)


def daily(conn: Connection, *, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    """One row per UTC day, oldest first, for the last `days` days including today: jobs by
    how they ended and money by the day they finished (paid revenue by the day it moved)."""
    now = now or utcnow()
    last = totals.day_of(now)
    first = last - days + 1
    per_day: dict[int, Totals] = {}
    for number, *values in conn.execute(_DAYS, {"first": first}):
        per_day[int(number)] = dict(zip(COUNTS, (int(v or 0) for v in values), strict=True))
    latency = _latency_per_day(conn, first, last)
    paid = ledger.net_by_day(conn, EPOCH + timedelta(days=first), now)
    out = []
    for number in range(first, last + 1):
        t = per_day.get(number, totals.empty())
        f = figures(t)
        p50, p95 = latency.get(number, (None, None))
        day = (EPOCH + timedelta(days=number)).date().isoformat()
        out.append(
            {
                "day": day,
                "jobs": {s.value: t[s.value] for s in TERMINAL},
                "submitted": t["created"],
                "avg_qa": f["avg_qa"],
                "revenue": f["revenue"],
                "revenue_paid": cents_text(paid.get(day, 0)),
                "cost": f["cost"],
                "profit": f["profit"],
                "margin_pct": f["margin_pct"],
                "latency_p50_ms": p50,
                "latency_p95_ms": p95,
            }
        )
    return {"days": out}
