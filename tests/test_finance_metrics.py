"""Finance figures (issue 10): exact over every job of a window, whatever happened to the
jobs, on SQLite and PostgreSQL.

Jobs are written straight into the database (as any process could), then changed the
ways jobs change: finished, retried onto another day, approved, paid, deleted. The
figures read through the roll-ups must equal a plain recomputation over all jobs, written
here independently of the code under test.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from echopilot.db.models import Client, FinanceDaily, FinanceHourly, Job, LatencyDaily
from echopilot.finance import metrics, rollup_sql
from echopilot.runtime import Runtime
from tests import job_rows
from tests.conftest import run_cli

BOTH = pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
# Not on an hour: a window's first and last hours are partial.
NOW = datetime(2026, 11, 20, 14, 37, 12, 345678, tzinfo=UTC)
TYPES = ("research", "drafting", "transcription")
MODELS = ("gpt-4o", "gpt-4o-mini", None)


def job_row(**values: Any) -> dict[str, Any]:
    return job_rows.job_row(**{"created_at": NOW - timedelta(days=1), "updated_at": NOW, **values})


def add_jobs(rt: Runtime, rows: list[dict[str, Any]]) -> list[int]:
    return job_rows.insert_rows(rt.engine, Job, rows)


def reference(rt: Runtime, start: datetime, end: datetime) -> dict[str, Any]:
    """The window's figures from every job, by hand."""
    with rt.engine.connect() as conn:
        jobs = conn.execute(select(Job)).mappings().all()
    inside = [j for j in jobs if j["finished_at"] is not None and start <= j["finished_at"] <= end]
    billed = [
        j
        for j in inside
        if j["status"] == "done" and j["payment_status"] != "na" and j["price_cents"] is not None
    ]
    revenue = sum(j["price_cents"] for j in billed)
    cost = sum(j["cost_micros"] for j in inside)
    scored = [j["qa_score"] for j in inside if j["qa_score"] is not None]
    ended = [j for j in inside if j["status"] in ("done", "needs_review", "dead")]
    return {
        "jobs": len(inside),
        "submitted": sum(1 for j in jobs if start <= j["created_at"] <= end),
        "revenue": Decimal(revenue) / 100,
        "cost": Decimal(cost) / 1_000_000,
        "profit": Decimal(revenue) / 100 - Decimal(cost) / 1_000_000,
        "avg_qa": round(sum(round(q * 10) for q in scored) / len(scored) / 10, 1)
        if scored
        else None,
        "dead": sum(1 for j in inside if j["status"] == "dead"),
        "failure_rate_pct": round(100 * sum(j["status"] == "dead" for j in ended) / len(ended), 1)
        if ended
        else None,
        "unpriced_jobs": sum(1 for j in inside if j["unpriced_models"]),
        "by_type": {
            t: sum(j["price_cents"] for j in billed if j["task_type"] == t)
            for t in {j["task_type"] for j in billed}
        },
        "owed": sum(
            j["price_cents"]
            for j in jobs
            if j["finished_at"] is not None
            and j["finished_at"] <= end
            and j["status"] == "done"
            and j["payment_status"] not in ("na", "paid", "refunded")
            and j["price_cents"] is not None
        ),
    }


def assert_window_matches(rt: Runtime, days: int, now: datetime = NOW) -> dict[str, Any]:
    with rt.engine.connect() as conn:
        got = metrics.finance(conn, now=now, days=(days,))
    w = got["windows"][f"{days}d"]
    want = reference(rt, now - timedelta(days=days), now)
    assert w["jobs"] == want["jobs"]
    assert w["submitted"] == want["submitted"]
    assert Decimal(w["revenue"]) == want["revenue"]
    assert Decimal(w["cost"]) == want["cost"]
    assert Decimal(w["profit"]) == want["profit"]
    assert w["avg_qa"] == want["avg_qa"]
    assert w["dead"] == want["dead"]
    assert w["failure_rate_pct"] == want["failure_rate_pct"]
    assert w["unpriced_jobs"] == want["unpriced_jobs"]
    by_type = {row["key"]: Decimal(row["revenue"]) for row in w["breakdown"]["task_type"]}
    assert {k: v for k, v in by_type.items() if v} == {
        k: Decimal(v) / 100 for k, v in want["by_type"].items() if v
    }
    assert Decimal(got["owed"]["amount"]) == Decimal(want["owed"]) / 100
    return got


def assert_days_match(rt: Runtime, days: int = 40) -> None:
    """Each UTC day's row of the daily series against the jobs that finished that day."""
    with rt.engine.connect() as conn:
        series = metrics.daily(conn, days=days, now=NOW)["days"]
    for row in series:
        day = datetime.fromisoformat(row["day"]).replace(tzinfo=UTC)
        want = reference(rt, day, day + timedelta(days=1) - timedelta(microseconds=1))
        got_jobs = sum(row["jobs"].values())
        assert (got_jobs, Decimal(row["revenue"]), Decimal(row["cost"])) == (
            want["jobs"],
            want["revenue"],
            want["cost"],
        ), row["day"]
        assert row["submitted"] == want["submitted"], row["day"]


def rollups(rt: Runtime) -> tuple[list[Any], list[Any], list[Any]]:
    with rt.engine.connect() as conn:
        hourly = conn.execute(select(FinanceHourly)).all()
        daily = conn.execute(select(FinanceDaily)).all()
        latency = conn.execute(select(LatencyDaily)).all()
    # `changes` counts writes, so it differs after a rebuild by design; the counts may not.
    return (
        sorted(tuple(r) for r in hourly if any(r[3:])),
        sorted(tuple(r) for r in daily if any(r[3:])),
        sorted(tuple(r)[:3] for r in latency if r[2]),
    )


@BOTH
def test_a_job_counts_inside_the_window_to_the_second(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    add_jobs(
        rt,
        [
            job_row(
                price_cents=1000,
                payment_status="unpaid",
                finished_at=NOW - timedelta(days=7) + timedelta(seconds=1),
            ),
            job_row(
                price_cents=300,
                payment_status="unpaid",
                finished_at=NOW - timedelta(days=7) - timedelta(seconds=1),
            ),
            job_row(price_cents=5, payment_status="unpaid", finished_at=NOW),
        ],
    )
    with rt.engine.connect() as conn:
        got = metrics.finance(conn, now=NOW)
    assert got["revenue_7d"] == "10.05"  # 7 d minus 1 s in, plus 1 s out, now itself in
    assert got["revenue_30d"] == "13.05"
    assert got["jobs_7d"] == 2 and got["jobs_30d"] == 3


@BOTH
def test_figures_equal_a_recount_of_every_job_after_retries_approvals_payments_and_deletes(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    rng = random.Random(10)
    with rt.engine.begin() as conn:
        clients = [
            conn.execute(
                insert(Client).returning(Client.id),
                {"name": f"Client {n}", "email": f"c{n}@example.com"},
            ).scalar_one()
            for n in range(3)
        ]
    rows = []
    for _ in range(400):  # more than the original's 100-row cut-off
        finished = NOW - timedelta(seconds=rng.randint(0, 40 * 86400))
        status = rng.choice(["done", "done", "done", "needs_review", "dead", "cancelled"])
        price = rng.randint(1, 5000) if status in ("done", "needs_review") else None
        rows.append(
            job_row(
                task_type=rng.choice(TYPES),
                status=status,
                client_id=rng.choice([None, *clients]),
                model=rng.choice(MODELS),
                provider=rng.choice(["openai", "openai", "offline"]),
                price_cents=price,
                payment_status=(
                    rng.choice(["unpaid", "paid"])
                    if status == "done" and price is not None
                    else "na"
                ),
                cost_micros=rng.randint(0, 90_000),
                qa_score=rng.choice([None, round(rng.uniform(40, 100), 1)]),
                duration_ms=rng.choice([None, rng.randint(5, 200_000)]),
                unpriced_models=rng.choice([[], [], [], ["mystery-model"]]),
                created_at=finished - timedelta(seconds=rng.randint(0, 3 * 86400)),
                finished_at=finished,
            )
        )
    ids = add_jobs(rt, rows)
    for days in (7, 30):
        assert_window_matches(rt, days)

    with rt.engine.begin() as conn:
        for job_id in rng.sample(ids, 60):  # retried: back in the queue, then done later on
            conn.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status="queued", finished_at=None, payment_status="na")
            )
        for job_id in rng.sample(ids, 40):
            conn.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued")
                .values(
                    status="done",
                    finished_at=NOW - timedelta(seconds=rng.randint(0, 86400)),
                    price_cents=777,
                    payment_status="unpaid",
                    cost_micros=Job.cost_micros + 1234,
                )
            )
        conn.execute(  # approved from review: billed now
            update(Job)
            .where(Job.status == "needs_review")
            .values(status="done", payment_status="unpaid")
        )
        conn.execute(  # paid late
            update(Job)
            .where(Job.payment_status == "unpaid", Job.id % 3 == 0)
            .values(payment_status="paid")
        )
        conn.execute(delete(Job).where(Job.id.in_(rng.sample(ids, 30))))
    on_the_hour = NOW.replace(minute=0, second=0, microsecond=0)
    for now in (NOW, on_the_hour, on_the_hour.replace(hour=0), on_the_hour.replace(hour=23)):
        for days in (1, 7, 30):
            assert_window_matches(rt, days, now=now)
    assert_days_match(rt)

    kept = rollups(rt)
    with rt.engine.begin() as conn:
        rollup_sql.rebuild(conn)
    assert rollups(rt) == kept  # the triggers kept what a recount gives


@BOTH
def test_a_retried_job_moves_to_the_day_it_finished_again(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    first = NOW - timedelta(days=3)
    [job_id] = add_jobs(
        rt, [job_row(status="dead", cost_micros=40_000, finished_at=first, duration_ms=1200)]
    )
    with rt.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(status="queued", finished_at=None))
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status="done",
                finished_at=NOW,
                price_cents=2500,
                payment_status="unpaid",
                cost_micros=55_000,
                duration_ms=3000,
            )
        )
    with rt.engine.connect() as conn:
        days = {d["day"]: d for d in metrics.daily(conn, days=5, now=NOW)["days"]}
    old, new = days[first.date().isoformat()], days[NOW.date().isoformat()]
    assert old["jobs"]["dead"] == 0 and old["cost"] == "0.000000"
    assert old["latency_p50_ms"] is None
    assert new["jobs"]["done"] == 1 and new["revenue"] == "25.00" and new["cost"] == "0.055000"
    assert new["latency_p50_ms"] == 3050  # the 3000-3099 ms bucket's middle


@BOTH
def test_non_billable_jobs_cost_but_earn_nothing_and_unpriced_models_are_named(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    at = NOW - timedelta(hours=5)
    add_jobs(
        rt,
        [
            # The offline provider's: priced for show, never billed.
            job_row(provider="offline", price_cents=900, payment_status="na", finished_at=at),
            # Two failed attempts then done: the job's cost holds all three.
            job_row(price_cents=1000, payment_status="unpaid", cost_micros=30_000, finished_at=at),
            job_row(status="dead", cost_micros=12_345, finished_at=at),
            job_row(
                price_cents=100,
                payment_status="unpaid",
                unpriced_models=["house-model"],
                model="house-model",
                finished_at=at,
            ),
        ],
    )
    with rt.engine.connect() as conn:
        got = metrics.finance(conn, now=NOW)
    week = got["windows"]["7d"]
    assert week["revenue"] == "11.00" and week["cost"] == "0.042345"
    assert week["profit"] == "10.957655" and week["roi"] == str(
        (Decimal("10.957655") / Decimal("0.042345")).quantize(Decimal("0.01"))
    )
    assert week["margin_pct"] == "99.6"
    assert week["unpriced_jobs"] == 1
    assert week["unpriced_models"] == [{"model": "house-model", "jobs": 1}]
    assert any("house-model" in note for note in got["notes"])
    assert got["owed"]["jobs"] == 2 and got["owed"]["ageing"]["0_7d"] == "11.00"


def test_an_empty_database_answers_zeros_and_a_note(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime()
    with rt.engine.connect() as conn:
        got = metrics.finance(conn, now=NOW)
        summary = metrics.summary(conn, now=NOW)
    assert got["revenue_7d"] == "0.00" and got["cost_30d"] == "0.000000"
    assert got["roi_30d"] is None and got["jobs_30d"] == 0
    assert any("no job has finished" in note for note in got["notes"])
    assert summary["jobs_7d"] == 0 and summary["p95_latency_ms_7d"] is None


def test_money_owed_is_aged_by_when_the_job_finished(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime()
    add_jobs(
        rt,
        [
            job_row(price_cents=100, payment_status="unpaid", finished_at=NOW - timedelta(days=2)),
            job_row(price_cents=200, payment_status="unpaid", finished_at=NOW - timedelta(days=9)),
            job_row(price_cents=400, payment_status="unpaid", finished_at=NOW - timedelta(days=45)),
            job_row(price_cents=800, payment_status="paid", finished_at=NOW - timedelta(days=45)),
        ],
    )
    with rt.engine.connect() as conn:
        owed = metrics.owed(conn, NOW)
    assert owed == {
        "jobs": 3,
        "amount": "7.00",
        "ageing": {"0_7d": "1.00", "8_30d": "2.00", "over_30d": "4.00"},
    }


def test_the_finance_command_prints_the_figures(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    add_jobs(
        rt, [job_row(price_cents=1234, payment_status="unpaid", finished_at=datetime.now(UTC))]
    )
    shown = run_cli(rt.settings, "finance", "--json", check=True)
    data = json.loads(shown.stdout)
    assert data["revenue_7d"] == "12.34" and data["jobs_30d"] == 1
    text = run_cli(rt.settings, "finance", "--days", "14", check=True).stdout
    assert "14 days" in text and "12.34" in text


@pytest.mark.parametrize("days", ["0", "367", "x"])
def test_days_outside_1_to_366_is_refused(make_runtime: Callable[..., Runtime], days: str) -> None:
    rt = make_runtime()
    refused = run_cli(rt.settings, "finance", "--days", days)
    assert refused.returncode == 2
    assert "--days" in refused.stderr and "Traceback" not in refused.stderr


@BOTH
def test_upgrading_a_database_with_history_fills_the_roll_ups(
    make_settings: Callable[..., Any],
) -> None:
    """Jobs written before the roll-ups existed (revision 0006) count once 0007 is applied."""
    from alembic import command
    from alembic.config import Config

    from echopilot.db import migrate

    rt = Runtime(make_settings())
    try:
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS))
        with rt.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
        add_jobs(
            rt,
            [
                job_row(
                    price_cents=1999, payment_status="unpaid", finished_at=NOW - timedelta(hours=n)
                )
                for n in range(0, 240, 7)
            ],
        )
        assert migrate.upgrade(rt.engine) == ("0006", migrate.head_revision())
        for days in (7, 30):
            assert_window_matches(rt, days)
    finally:
        rt.close()


@BOTH
def test_a_job_in_the_last_millisecond_of_an_hour_stays_in_that_hour_and_day(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    end_of_hour = NOW.replace(minute=59, second=59, microsecond=999_900) - timedelta(hours=1)
    end_of_day = (NOW - timedelta(days=2)).replace(
        hour=23, minute=59, second=59, microsecond=999_700
    )
    add_jobs(
        rt,
        [
            job_row(price_cents=100, payment_status="unpaid", finished_at=end_of_hour),
            job_row(price_cents=200, payment_status="unpaid", finished_at=end_of_day),
        ],
    )
    assert_window_matches(rt, 1)
    with rt.engine.connect() as conn:
        days = {d["day"]: d for d in metrics.daily(conn, days=5, now=NOW)["days"]}
    assert days[end_of_day.date().isoformat()]["revenue"] == "2.00"
    assert days[(end_of_day + timedelta(days=1)).date().isoformat()]["revenue"] == "0.00"


@BOTH
def test_a_model_named_twice_counts_once_and_a_stray_json_value_breaks_nothing(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    at = NOW - timedelta(hours=3)
    add_jobs(
        rt,
        [
            job_row(unpriced_models=["house", "house"], finished_at=at),
            job_row(unpriced_models=None, finished_at=at),
        ],
    )
    with rt.engine.connect() as conn:
        week = metrics.finance(conn, now=NOW)["windows"]["7d"]
    assert week["jobs"] == 2 and week["unpriced_jobs"] == 1
    assert week["unpriced_models"] == [{"model": "house", "jobs": 1}]


@BOTH
def test_latency_percentiles_follow_a_change_that_keeps_count_and_sum(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    at = NOW - timedelta(hours=2)
    _, second, third = add_jobs(
        rt, [job_row(finished_at=at, duration_ms=d) for d in (1000, 1000, 4000)]
    )
    with rt.engine.connect() as conn:
        assert metrics.summary(conn, now=NOW)["p50_latency_ms_7d"] == 1050
        assert metrics.daily(conn, days=1, now=NOW)["days"][0]["latency_p50_ms"] == 1050
    with rt.engine.begin() as conn:  # finished again: 1000 -> 2000 and 4000 -> 3000
        conn.execute(update(Job).where(Job.id == second).values(duration_ms=2000))
        conn.execute(update(Job).where(Job.id == third).values(duration_ms=3000))
    with rt.engine.connect() as conn:
        assert metrics.summary(conn, now=NOW)["p50_latency_ms_7d"] == 2050
        assert metrics.daily(conn, days=1, now=NOW)["days"][0]["latency_p50_ms"] == 2050


def test_money_owed_is_aged_to_the_second(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime()
    add_jobs(
        rt,
        [
            job_row(
                price_cents=100,
                payment_status="unpaid",
                finished_at=NOW - timedelta(days=7) + timedelta(minutes=10),
            ),
            job_row(
                price_cents=200,
                payment_status="unpaid",
                finished_at=NOW - timedelta(days=30) + timedelta(minutes=10),
            ),
            # Finished after the moment asked about: not owed yet then.
            job_row(price_cents=400, payment_status="unpaid", finished_at=NOW + timedelta(hours=1)),
        ],
    )
    with rt.engine.connect() as conn:
        owed = metrics.owed(conn, NOW)
    assert owed == {
        "jobs": 2,
        "amount": "3.00",
        "ageing": {"0_7d": "1.00", "8_30d": "2.00", "over_30d": "0.00"},
    }


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_jobs_written_at_once_do_not_wait_on_each_other_for_the_roll_ups(
    make_runtime: Callable[..., Runtime],
) -> None:
    # Every job of an hour adds to the same roll-up rows. Updated at each job's write, their
    # row locks were held to the end of its transaction, and workers and intake took turns.
    rt = make_runtime()
    finished = NOW - timedelta(minutes=5)
    row = job_row(finished_at=finished, created_at=finished, price_cents=500, cost_micros=7)
    with rt.engine.connect() as first, rt.engine.connect() as second:
        first.execute(insert(Job).values({**row, "name": "first"}))  # not committed yet
        second.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
        second.execute(insert(Job).values({**row, "name": "second"}))  # no wait on `first`
        second.commit()
        first.commit()
    with rt.engine.connect() as conn:
        done, cost = conn.execute(
            select(FinanceDaily.done, FinanceDaily.cost_micros).where(FinanceDaily.dim == "all")
        ).one()
    assert (done, cost) == (2, 14)
