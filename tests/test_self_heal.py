"""Self-heal against seeded states: stuck, dead worker, transient and permanent failures,
exhausted jobs, unpaid high-QA work, old reviews; dry runs; two self-heals at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Alert, Client, Job, JobEvent, WorkerHeartbeat
from echopilot.jobs import intake
from echopilot.jobs.intake import JobRequest
from echopilot.queue.worker import run_worker
from echopilot.runtime import Runtime
from echopilot.selfheal import heal
from tests.api_support import api_client
from tests.conftest import BACKENDS, run_cli

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)
TEXT = "The pilot study enrolled forty clinics. Results were positive. Costs stayed flat."


def now() -> datetime:
    return datetime.now(UTC)


def submit(rt: Runtime, name: str, *, task_type: str = "summary", client: str | None = None) -> int:
    request = JobRequest(
        name=name, task_type=task_type, input=f"{name}: {TEXT}", client_email=client, source="api"
    )
    return intake.submit(rt, request, actor="test").id


def set_job(rt: Runtime, job_id: int, **values: Any) -> None:
    with write_session(rt.sessions) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def job(rt: Runtime, job_id: int) -> Job:
    with read_session(rt.sessions) as session:
        found = session.get(Job, job_id)
        assert found is not None
        session.expunge(found)
        return found


def snapshot(rt: Runtime) -> tuple[list[tuple[Any, ...]], int, int]:
    with read_session(rt.sessions) as session:
        rows = session.execute(
            select(Job.id, Job.status, Job.attempts, Job.retry_at, Job.lease_token).order_by(Job.id)
        ).all()
        events = session.scalar(select(func.count(JobEvent.id))) or 0
        beats = session.scalar(select(func.count(WorkerHeartbeat.worker))) or 0
    return [tuple(r) for r in rows], events, beats


def failed(
    rt: Runtime,
    name: str,
    *,
    kind: str = "transient",
    attempts: int = 1,
    retry_at: datetime | None = None,
    max_attempts: int = 3,
) -> int:
    job_id = submit(rt, name)
    set_job(
        rt,
        job_id,
        status="failed",
        attempts=attempts,
        max_attempts=max_attempts,
        error="model said 503" if kind == "transient" else "bad request: model rejected input",
        error_kind=kind,
        retry_at=retry_at,
        updated_at=now() - timedelta(minutes=10),
    )
    return job_id


@pytest.fixture
def states(offline: Runtime) -> dict[str, int]:
    """One job in each state self-heal must handle, the queue emptied first (every job in
    it was submitted above, so recovery must put back what it needs)."""
    rt = offline
    ids = {
        "stuck": submit(rt, "stuck"),
        "transient": failed(rt, "transient", retry_at=now() - timedelta(seconds=5)),
        "backoff": failed(rt, "backoff", retry_at=now() + timedelta(hours=1)),
        "permanent": failed(rt, "permanent", kind="permanent"),
        "exhausted": failed(rt, "exhausted", attempts=3, retry_at=now() - timedelta(minutes=1)),
        "unpaid": submit(rt, "unpaid", client="ada@example.com"),
        "unpaid_recent": submit(rt, "unpaid recent"),
        "review": submit(rt, "review"),
        "review_recent": submit(rt, "review recent"),
    }
    set_job(
        rt,
        ids["stuck"],
        status="processing",
        attempts=1,
        lease_token="gone",
        lease_owner=None,
        lease_until=now() - timedelta(minutes=5),
    )
    for name, age in (("unpaid", timedelta(days=3)), ("unpaid_recent", timedelta(hours=2))):
        set_job(
            rt,
            ids[name],
            status="done",
            attempts=1,
            qa_score=97.0,
            price_cents=1250,
            payment_status="unpaid",
            finished_at=now() - age,
        )
    for name, age in (("review", timedelta(days=2)), ("review_recent", timedelta(hours=1))):
        set_job(
            rt,
            ids[name],
            status="needs_review",
            attempts=1,
            qa_score=61.0,
            updated_at=now() - age,
            finished_at=now() - age,
        )
    rt.queue.huey.flush()
    return ids


def test_self_heal_recovers_retries_and_ends_what_it_must(
    offline: Runtime, states: dict[str, int]
) -> None:
    rt = offline
    result = heal.run(rt).as_dict()

    assert result["recovered_stuck"] == 1 and result["recovered"] == [states["stuck"]]
    assert states["transient"] in result["retried"]
    assert result["retried_count"] == len(result["retried"]) == 1
    assert result["waiting_backoff"] == 1
    assert result["dead"] == 2
    assert {d["id"] for d in result["dead_jobs"]} == {states["permanent"], states["exhausted"]}
    assert [u["id"] for u in result["eligible_unpaid"]] == [states["unpaid"]]
    unpaid = result["eligible_unpaid"][0]
    assert unpaid["price_usd"] == "12.50" and unpaid["client"] == "ada@example.com"
    assert [r["id"] for r in result["needs_review_waiting"]] == [states["review"]]

    assert job(rt, states["stuck"]).status == "queued"
    assert job(rt, states["transient"]).status == "queued"
    assert job(rt, states["backoff"]).status == "failed"
    assert job(rt, states["permanent"]).status == "dead"
    assert job(rt, states["exhausted"]).status == "dead"
    queued = rt.queue.job_ids(1000)
    assert queued is not None and {states["stuck"], states["transient"]} <= queued

    # A second run finds nothing more to do: dead jobs are never retried in a loop.
    again = heal.run(rt).as_dict()
    assert again["retried_count"] == 0 and again["dead"] == 0 and again["recovered_stuck"] == 0
    assert job(rt, states["permanent"]).status == "dead"

    lines = [
        json.loads(x)
        for x in (rt.settings.home / "logs" / "self_heal.log").read_text().splitlines()
    ]
    events = [line["event"] for line in lines]
    assert {"recover_stuck", "retry", "make_dead", "self_heal_finished"} <= set(events)
    assert all(line["ts"].endswith("+00:00") for line in lines)
    assert TEXT not in (rt.settings.home / "logs" / "self_heal.log").read_text()


def test_a_retried_job_keeps_its_own_type_input_and_client_and_then_runs(offline: Runtime) -> None:
    rt = offline
    job_id = submit(rt, "translate me", task_type="research", client="grace@example.com")
    set_job(
        rt,
        job_id,
        status="failed",
        attempts=1,
        error="timeout",
        error_kind="transient",
        retry_at=now() - timedelta(seconds=1),
    )
    before = job(rt, job_id)
    rt.queue.huey.flush()

    assert heal.run(rt).as_dict()["retried"] == [job_id]
    after = job(rt, job_id)
    assert (after.task_type, after.input, after.client_id) == (
        before.task_type,
        before.input,
        before.client_id,
    )
    assert run_worker(rt, concurrency=2, burst=True) == 0
    done = job(rt, job_id)
    assert done.status in ("done", "needs_review")
    assert done.task_type == "research" and done.attempts == 2


def test_a_dry_run_changes_nothing_and_says_what_it_would_do(
    offline: Runtime, states: dict[str, int]
) -> None:
    rt = offline
    with write_session(rt.sessions) as session:
        session.add(
            WorkerHeartbeat(
                worker="gone-worker",
                concurrency=1,
                started_at=now() - timedelta(days=3),
                heartbeat_at=now() - timedelta(days=2),
            )
        )
    before = snapshot(rt)
    depth = rt.queue.depth()

    result = heal.run(rt, dry_run=True).as_dict()

    assert result["dry_run"] is True
    assert result["recovered"] == [states["stuck"]]
    assert result["retried"] == [states["transient"]]
    assert {d["id"] for d in result["dead_jobs"]} == {states["permanent"], states["exhausted"]}
    assert result["pruned_heartbeats"] == 1
    assert snapshot(rt) == before
    assert rt.queue.depth() == depth
    log = (rt.settings.home / "logs" / "self_heal.log").read_text()
    assert "would_retry" in log and '"event": "retry"' not in log


def test_no_live_worker_suggests_a_restart_raises_the_alert_and_prunes_dead_rows(
    offline: Runtime,
) -> None:
    rt = offline
    submit(rt, "waiting")
    with write_session(rt.sessions) as session:
        session.add(
            WorkerHeartbeat(
                worker="silent",
                concurrency=1,
                started_at=now() - timedelta(hours=1),
                heartbeat_at=now() - timedelta(minutes=6),
            )
        )
        session.add(
            WorkerHeartbeat(
                worker="long-dead",
                concurrency=1,
                started_at=now() - timedelta(days=3),
                heartbeat_at=now() - timedelta(days=2),
            )
        )

    result = heal.run(rt).as_dict()

    assert result["worker_restart_suggested"] is True
    assert result["live_workers"] == 0 and result["jobs_waiting"] >= 1
    assert any("restart the worker" in note for note in result["notes"])
    assert result["pruned_heartbeats"] == 1
    with read_session(rt.sessions) as session:
        workers = set(session.scalars(select(WorkerHeartbeat.worker)))
        alert = session.scalars(select(Alert).where(Alert.key == "no_live_worker")).one()
    assert workers == {"silent"}  # nothing killed, only the day-old row gone
    assert alert.status == "open" and alert.severity == "high"

    with write_session(rt.sessions) as session:
        session.execute(update(WorkerHeartbeat).values(heartbeat_at=now()))
    assert heal.run(rt).as_dict()["worker_restart_suggested"] is False


def test_two_self_heals_at_once_retry_each_job_once(offline: Runtime) -> None:
    rt = offline
    ids = [failed(rt, f"f{n}", retry_at=now() - timedelta(seconds=1)) for n in range(30)]
    rt.queue.huey.flush()
    barrier = threading.Barrier(2)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            results.append(heal.run(rt).as_dict())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    retried = [job_id for r in results for job_id in r["retried"]]
    assert sorted(retried) == sorted(ids)  # every job once, none twice
    with read_session(rt.sessions) as session:
        moves = session.execute(
            select(JobEvent.job_id, func.count(JobEvent.id))
            .where(JobEvent.from_status == "failed", JobEvent.to_status == "queued")
            .group_by(JobEvent.job_id)
        ).all()
    assert sorted(moves) == [(job_id, 1) for job_id in sorted(ids)]


def test_self_heal_from_the_cli_and_the_api(offline: Runtime, states: dict[str, int]) -> None:
    rt = offline
    dry = run_cli(rt.settings, "self-heal", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["retried"] == [states["transient"]]
    assert job(rt, states["transient"]).status == "failed"

    with api_client(rt) as client:
        answer = client.post("/api/self-heal", params={"dry_run": "true"})
        assert answer.status_code == 200
        assert answer.json()["data"]["dry_run"] is True
        assert job(rt, states["transient"]).status == "failed"
        done = client.post("/api/self-heal").json()["data"]
    assert done["retried"] == [states["transient"]]
    assert job(rt, states["transient"]).status == "queued"

    bad = run_cli(rt.settings, "self-heal", "--dry-rn")
    assert bad.returncode == 2


def test_self_heal_is_a_scheduled_task_with_its_own_setting(
    make_settings: Callable[..., Any],
) -> None:
    from echopilot.scheduler.table import build

    table = build(make_settings(sched_selfheal_every_hours=3))
    assert table["self_heal"].schedule.text == "every 3h"
    assert table["self_heal"].task.run_at_start
    assert table["alert_check"].schedule.text == "every 15m"
    overridden = build(
        make_settings(sched_selfheal_every_hours=3, schedules={"self_heal": "every 2h"})
    )
    assert overridden["self_heal"].schedule.text == "every 2h"


def test_a_bad_self_heal_interval_stops_start_up_naming_the_setting(offline: Runtime) -> None:
    result = run_cli(
        offline.settings, "scheduler", "status", extra_env={"SCHED_SELFHEAL_EVERY_HOURS": "0"}
    )
    assert result.returncode == 2
    assert "SCHED_SELFHEAL_EVERY_HOURS" in result.stderr
    result = run_cli(offline.settings, "self-heal", extra_env={"SCHED_SELFHEAL_EVERY_HOURS": "six"})
    assert result.returncode == 2 and "SCHED_SELFHEAL_EVERY_HOURS" in result.stderr


def test_clients_budget_refuses_bad_input_and_sets_the_limit(offline: Runtime) -> None:
    # `clients budget` names the client that does not exist, exit 2, nothing written.
    result = run_cli(
        offline.settings, "clients", "budget", "nobody@example.com", "--monthly-usd", "5"
    )
    assert result.returncode == 2 and "nobody@example.com" in result.stderr
    submit(offline, "for ada", client="ada@example.com")
    for bad in ("0", "-1", "five"):
        refused = run_cli(
            offline.settings, "clients", "budget", "ada@example.com", "--monthly-usd", bad
        )
        assert refused.returncode == 2 and "--monthly-usd" in refused.stderr
    with read_session(offline.sessions) as session:
        assert session.scalar(select(Client.monthly_budget_micros)) is None
    ok = run_cli(
        offline.settings, "clients", "budget", "ada@example.com", "--monthly-usd", "2.5", "--json"
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["monthly_budget_usd"] == "2.500000"
