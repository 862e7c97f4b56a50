"""The jobs and metrics API: job objects equal the CLI's, listing pages cleanly, retry and
cancel move jobs, the KPI figures agree with SQL over the demo history, /health is public
and /metrics speaks Prometheus."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from echopilot.config import Settings, load_settings
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import AuditLog, SchedulerInstance
from echopilot.jobs import pipeline
from echopilot.runtime import Runtime
from tests.api_support import TEST_KEY, api_client, assert_error, assert_ok, clean_environment
from tests.conftest import run_cli

JOB = {"name": "Quarterly summary", "task_type": "summary", "input": "Revenue grew; costs fell."}
# The job object's fields promised by DESIGN.md (more may be added).
JOB_FIELDS = {
    "id", "name", "task_type", "status", "attempts", "qa_score", "qa_threshold", "model",
    "provider", "tokens_in", "tokens_out", "cost_usd", "price_usd", "payment_status",
    "created_at", "finished_at", "error",
}  # fmt: skip
ATTEMPT_FIELDS = {"n", "status", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "error"}


def cli_json(settings: Settings, *args: str) -> Any:
    result = run_cli(settings, *args, "--json", check=True)
    return json.loads(result.stdout)


def test_a_submitted_job_is_201_and_the_same_object_as_the_cli_shows(offline: Runtime) -> None:
    with api_client(offline) as client:
        created = assert_ok(
            client.post("/api/jobs", json={**JOB, "client": "ops@example.com", "qa_target": 0}),
            201,
        )
        assert set(created) >= JOB_FIELDS, JOB_FIELDS - set(created)
        assert created["status"] == "queued"
        assert created["source"] == "api"
        assert created["client"] == "ops@example.com"
        assert created["attempt_log"] == []
        assert created == cli_json(offline.settings, "jobs", "show", str(created["id"]))

        assert pipeline.process(offline, created["id"]) == "done"
        shown = assert_ok(client.get(f"/api/jobs/{created['id']}"))
        listed = assert_ok(client.get("/api/jobs"))["items"]
    assert shown["status"] == "done"
    assert shown["provider"] == "offline"
    assert shown["attempts"] == 1 and len(shown["attempt_log"]) == 1
    assert set(shown["attempt_log"][0]) >= ATTEMPT_FIELDS
    assert Decimal(shown["price_usd"]) > 0
    assert shown == cli_json(offline.settings, "jobs", "show", str(created["id"]))
    assert listed == cli_json(offline.settings, "jobs", "list", "--limit", "50")


def _pages(client: Any, query: str, limit: int, between: Callable[[], None] = lambda: None) -> list:
    ids: list[int] = []
    cursor = None
    for _ in range(100):
        suffix = f"&cursor={cursor}" if cursor else ""
        page = assert_ok(client.get(f"/api/jobs?limit={limit}{query}{suffix}"))
        assert len(page["items"]) <= limit
        ids += [item["id"] for item in page["items"]]
        between()
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("paging did not end")


def test_listing_pages_by_cursor_without_duplicates_or_gaps(offline: Runtime) -> None:
    with api_client(offline) as client:
        ids = [assert_ok(client.post("/api/jobs", json=JOB), 201)["id"] for _ in range(23)]
        cancelled = ids[::3]
        for job_id in cancelled:
            assert assert_ok(client.post(f"/api/jobs/{job_id}/cancel"))["status"] == "cancelled"

        assert _pages(client, "", 5) == sorted(ids, reverse=True)
        assert _pages(client, "", 23) == sorted(ids, reverse=True)  # an exact multiple
        assert _pages(client, "&status=cancelled", 3) == sorted(cancelled, reverse=True)
        queued = sorted(set(ids) - set(cancelled), reverse=True)
        assert _pages(client, "&status=queued", 4) == queued

        # Jobs submitted while paging do not shift the pages already promised.
        added: list[int] = []

        def submit_one() -> None:
            added.append(assert_ok(client.post("/api/jobs", json=JOB), 201)["id"])

        assert _pages(client, "", 6, between=submit_one) == sorted(ids, reverse=True)
        assert min(added) > max(ids)

        items = assert_ok(client.get("/api/jobs?status=cancelled&limit=500"))["items"]
        assert {item["status"] for item in items} == {"cancelled"}
        done = assert_ok(client.get("/api/jobs?status=done"))
        assert done == {"items": [], "next_cursor": None}


def test_retry_and_cancel_move_a_job_and_are_audited(offline: Runtime) -> None:
    with api_client(offline) as client:
        job = assert_ok(client.post("/api/jobs", json=JOB), 201)
        path = f"/api/jobs/{job['id']}"

        cancelled = assert_ok(client.post(path + "/cancel"))
        assert cancelled["status"] == "cancelled"
        assert cancelled["finished_at"] is not None
        assert assert_ok(client.get(path))["status"] == "cancelled"
        assert pipeline.process(offline, job["id"]) is None  # a cancelled job is not run

        retried = assert_ok(client.post(path + "/retry"))
        assert retried["status"] == "queued"
        assert retried["finished_at"] is None
        assert pipeline.process(offline, job["id"]) in ("done", "needs_review")
        finished = assert_ok(client.get(path))
        assert finished["attempts"] == 1

        assert_error(client.post(path + "/cancel"), 409, "conflict")

    with read_session(offline.sessions) as session:
        audit = [
            (row.actor, row.action, row.target)
            for row in session.scalars(select(AuditLog).order_by(AuditLog.id))
        ]
    target = f"job:{job['id']}"
    assert audit == [
        ("api", "job.submit", target),
        ("api", "job.cancel", target),
        ("api", "job.retry", target),
    ]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A home with the demo history loaded by `echopilot demo seed` (shared by the module)."""
    with clean_environment():
        settings = load_settings(
            home=tmp_path_factory.mktemp("demo") / "var", _env_file=None, ai_provider="offline"
        )
        settings.home.mkdir(parents=True)
        seeded = cli_json(settings, "demo", "seed")
    assert seeded["jobs"] > 300
    yield settings


def _sql(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(settings.home / "echopilot.db")
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def _stamp(moment: datetime) -> str:
    """A UTC instant as the embedded database stores it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_metrics_summary_and_daily_agree_with_sql_over_the_demo_history(
    demo_home: Settings,
) -> None:
    rt = Runtime(demo_home)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        with api_client(rt) as client, time_machine.travel(now, tick=False):
            summary = assert_ok(client.get("/api/metrics-summary"))
            daily = assert_ok(client.get("/api/metrics/daily?days=30"))
    finally:
        rt.close()

    # The finance rules, in plain SQL: a job counts in the window it finished in; revenue
    # is the price of billed done jobs; cost is every attempt's, held on the job.
    since = _stamp(now - timedelta(days=7))
    billed = "status = 'done' AND payment_status <> 'na' AND price_cents IS NOT NULL"
    [(revenue_cents, done_7d)] = _sql(
        demo_home,
        f"SELECT COALESCE(SUM(price_cents), 0), COUNT(*) FROM jobs WHERE {billed} "
        "AND finished_at >= ?",
        since,
    )
    [(jobs_7d, cost_micros)] = _sql(
        demo_home,
        "SELECT COUNT(*), COALESCE(SUM(cost_micros), 0) FROM jobs WHERE finished_at >= ?",
        since,
    )
    [(submitted_7d,)] = _sql(demo_home, "SELECT COUNT(*) FROM jobs WHERE created_at >= ?", since)
    [(attempt_micros,)] = _sql(
        demo_home,
        "SELECT COALESCE(SUM(a.cost_micros), 0) FROM job_attempts a JOIN jobs j "
        "ON j.id = a.job_id WHERE j.finished_at >= ?",
        since,
    )
    [(avg_qa,)] = _sql(
        demo_home,
        "SELECT AVG(qa_score) FROM jobs WHERE finished_at >= ? AND qa_score IS NOT NULL",
        since,
    )
    by_status = dict(_sql(demo_home, "SELECT status, COUNT(*) FROM jobs GROUP BY status"))

    assert done_7d > 0 and revenue_cents > 0, "the demo history has recent revenue"
    assert Decimal(summary["revenue_7d"]) == Decimal(revenue_cents) / 100
    assert cost_micros == attempt_micros, "a job's cost is all of its attempts'"
    assert Decimal(summary["cost_7d"]) == Decimal(cost_micros) / 1_000_000
    assert Decimal(summary["profit_7d"]) == Decimal(summary["revenue_7d"]) - Decimal(
        summary["cost_7d"]
    )
    assert summary["jobs_7d"] == jobs_7d
    assert summary["submitted_7d"] == submitted_7d
    assert summary["avg_qa_7d"] == round(avg_qa, 1)
    assert {k: v for k, v in summary["jobs_by_status"].items() if v} == by_status

    days = daily["days"]
    today = now.date()
    assert [row["day"] for row in days] == [
        (today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)
    ]
    first = _stamp(datetime.combine(today - timedelta(days=29), datetime.min.time(), UTC))
    revenue_by_day = dict(
        _sql(
            demo_home,
            f"SELECT date(finished_at), SUM(price_cents) FROM jobs WHERE {billed} "
            "AND finished_at >= ? GROUP BY date(finished_at)",
            first,
        )
    )
    finished_by_day = dict(
        _sql(
            demo_home,
            "SELECT date(finished_at), COUNT(*) FROM jobs WHERE finished_at >= ? "
            "GROUP BY date(finished_at)",
            first,
        )
    )
    for row in days:
        assert Decimal(row["revenue"]) == Decimal(revenue_by_day.get(row["day"], 0)) / 100, row
        assert sum(row["jobs"].values()) == finished_by_day.get(row["day"], 0), row
    assert (
        sum(Decimal(row["revenue"]) for row in days) == Decimal(sum(revenue_by_day.values())) / 100
    )
    assert sum(Decimal(row["revenue"]) for row in days if row["day"] != today.isoformat()) > 0


def test_health_is_public_and_tells_no_secrets(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline", openai_api_key="sk-secret-health-0123456789")
    with api_client(rt, key=None) as client:
        data = assert_ok(client.get("/health"))
        wrong = client.get("/health", headers={"X-Dash-Key": "wrong-wrong-wrong-wrong"})
        text = client.get("/health").text
    assert wrong.status_code == 200
    assert set(data) == {"status", "version", "db", "queue"}
    assert data["status"] == "ok" and data["db"] == "ok"
    assert data["queue"]["ok"] is True
    for secret in (TEST_KEY, "sk-secret", str(rt.settings.home), "sqlite:", "dashboard.key"):
        assert secret not in text, secret


def test_prometheus_metrics_expose_the_promised_series_with_values_from_sql(
    demo_home: Settings,
) -> None:
    rt = Runtime(demo_home)
    try:
        with api_client(rt) as client:
            response = client.get("/metrics")
    finally:
        rt.close()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    for name in (
        "echopilot_jobs",
        "echopilot_queue_depth",
        "echopilot_attempt_latency_seconds_bucket",
        "echopilot_cost_usd_total",
        "echopilot_revenue_usd_total",
        "echopilot_scheduler_heartbeat_age_seconds",
    ):
        assert name in samples, f"{name} missing from /metrics"

    jobs = {s.labels["status"]: s.value for s in samples["echopilot_jobs"]}
    by_status = dict(_sql(demo_home, "SELECT status, COUNT(*) FROM jobs GROUP BY status"))
    assert {k: v for k, v in jobs.items() if v} == by_status
    assert {"queued", "processing", "done", "dead", "cancelled"} <= set(jobs)

    [(revenue_cents,)] = _sql(
        demo_home, "SELECT COALESCE(SUM(price_cents), 0) FROM jobs WHERE status = 'done'"
    )
    [(cost_micros, timed)] = _sql(
        demo_home, "SELECT COALESCE(SUM(cost_micros), 0), COUNT(latency_ms) FROM job_attempts"
    )
    [revenue] = samples["echopilot_revenue_usd_total"]
    [cost] = samples["echopilot_cost_usd_total"]
    assert revenue.value == pytest.approx(revenue_cents / 100)
    assert cost.value == pytest.approx(cost_micros / 1_000_000)

    buckets = [
        (s.labels["le"], s.value) for s in samples["echopilot_attempt_latency_seconds_bucket"]
    ]
    counts = [value for _, value in buckets]
    assert counts == sorted(counts), "histogram buckets are cumulative"
    assert buckets[-1] == ("+Inf", timed)
    [depth] = samples["echopilot_queue_depth"]
    assert depth.value >= 0
    [age] = samples["echopilot_scheduler_heartbeat_age_seconds"]
    assert math.isnan(age.value), "no scheduler ever ran on this home"


def test_prometheus_scheduler_heartbeat_age_is_a_number_once_a_scheduler_beat(
    offline: Runtime,
) -> None:
    beat = datetime.now(UTC) - timedelta(seconds=30)
    with write_session(offline.sessions) as session:
        session.add(
            SchedulerInstance(id="test:1", host="test", pid=1, started_at=beat, heartbeat_at=beat)
        )
    with api_client(offline) as client:
        text = client.get("/metrics").text
    [age] = [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "echopilot_scheduler_heartbeat_age_seconds"
    ]
    assert 29 <= age < 120
