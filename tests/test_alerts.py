"""Alert rules and the alert lifecycle with time controlled: dedupe, cooldown, escalation,
resolve, silences, rolling windows; two checks at once; the CLI and API surfaces.

No channel is configured here (alerts go to the log); channels have their own tests."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from echopilot import audit
from echopilot.alerts import engine, silences
from echopilot.alerts.views import listing
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import (
    Alert,
    AlertEvent,
    AlertSilence,
    Job,
    JobAttempt,
    SchedulerInstance,
    ScheduleRun,
    WorkerHeartbeat,
)
from echopilot.errors import InputError
from echopilot.jobs import intake
from echopilot.jobs.intake import JobRequest
from echopilot.runtime import Runtime
from tests.api_support import api_client
from tests.conftest import run_cli

BOTH = pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TEXT = "Quarterly numbers for the board, with a short summary of risks."


def submit(rt: Runtime, name: str = "job", task_type: str = "summary") -> int:
    request = JobRequest(name=name, task_type=task_type, input=TEXT, source="api")
    return intake.submit(rt, request, actor="test").id


def waiting_job(rt: Runtime, at: datetime) -> int:
    job_id = submit(rt, "waiting")
    with write_session(rt.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.created_at = job.enqueued_at = at
    return job_id


def beat(rt: Runtime, at: datetime, worker: str = "w1") -> None:
    with write_session(rt.sessions) as session:
        row = session.get(WorkerHeartbeat, worker)
        if row is None:
            session.add(
                WorkerHeartbeat(worker=worker, concurrency=1, started_at=at, heartbeat_at=at)
            )
        else:
            row.heartbeat_at = at


def kinds(result: dict[str, Any], key: str) -> list[str]:
    return [s["kind"] for s in result["sent"] if s["key"] == key]


def alert_row(rt: Runtime, key: str) -> Alert:
    with read_session(rt.sessions) as session:
        row = session.scalars(
            select(Alert).where(Alert.key == key).order_by(Alert.id.desc())
        ).first()
        assert row is not None
        session.expunge(row)
        return row


@BOTH
def test_an_alert_is_sent_once_repeated_after_its_cooldown_and_resolved_once(
    offline: Runtime,
) -> None:
    rt = offline
    waiting_job(rt, T0)
    only = ["no_live_worker"]

    first = engine.check(rt, now=T0 + timedelta(minutes=1), only=only)
    assert first["opened"] == ["no_live_worker"] and kinds(first, "no_live_worker") == ["fired"]
    assert first["target"] == "log" and first["sent"][0]["channels"] == {"log": "ok"}

    for minutes in (16, 31, 60 * 5):  # inside the 6 h cooldown: recorded, not sent again
        again = engine.check(rt, now=T0 + timedelta(minutes=minutes), only=only)
        assert again["opened"] == [] and kinds(again, "no_live_worker") == []
    assert alert_row(rt, "no_live_worker").count == 4

    later = engine.check(rt, now=T0 + timedelta(hours=6, minutes=2), only=only)
    assert kinds(later, "no_live_worker") == ["reminder"]

    beat(rt, T0 + timedelta(hours=6, minutes=5))
    cleared = engine.check(rt, now=T0 + timedelta(hours=6, minutes=6), only=only)
    assert cleared["resolved"] == ["no_live_worker"] and kinds(cleared, "no_live_worker") == [
        "resolved"
    ]
    row = alert_row(rt, "no_live_worker")
    assert row.status == "resolved" and row.resolved_at is not None

    quiet = engine.check(rt, now=T0 + timedelta(hours=6, minutes=7), only=only)
    assert quiet["resolved"] == [] and quiet["sent"] == []

    # The condition comes back: a new incident, sent again.
    with write_session(rt.sessions) as session:
        session.execute(WorkerHeartbeat.__table__.delete())
    back = engine.check(rt, now=T0 + timedelta(hours=7), only=only)
    assert back["opened"] == ["no_live_worker"] and kinds(back, "no_live_worker") == ["fired"]

    log = (rt.settings.home / "logs" / "alerts.log").read_text()
    events = [json.loads(line)["event"] for line in log.splitlines()]
    assert events.count("check") == 8 and "sent" in events
    assert TEXT not in log
    with read_session(rt.sessions) as session:
        recorded = set(session.scalars(select(AlertEvent.event)))
    assert {"check", "fired", "sent", "resolved"} <= recorded


@BOTH
def test_a_rising_severity_is_sent_at_once_and_the_budget_rule_escalates(
    make_runtime: Any,
) -> None:
    rt = make_runtime(ai_provider="offline", daily_budget_usd="1.00")
    job_id = submit(rt)

    def spend(micros: int, at: datetime) -> None:
        with write_session(rt.sessions) as session:
            n = (session.scalar(select(func.count(JobAttempt.id))) or 0) + 1
            session.add(
                JobAttempt(
                    job_id=job_id,
                    n=n,
                    status="ok",
                    cost_micros=micros,
                    started_at=at,
                    finished_at=at,
                )
            )

    spend(850_000, T0)
    warn = engine.check(rt, now=T0 + timedelta(minutes=1), only=["budget"])
    assert warn["firing"][0]["severity"] == "warning"
    assert kinds(warn, "budget_daily") == ["fired"]

    spend(200_000, T0 + timedelta(minutes=2))
    high = engine.check(rt, now=T0 + timedelta(minutes=3), only=["budget"])
    assert high["firing"][0]["severity"] == "high"
    assert "new model calls wait" in high["firing"][0]["title"]
    assert kinds(high, "budget_daily") == ["escalated"]  # within the cooldown, sent anyway

    # The UTC day turns: nothing spent today, the alert resolves.
    next_day = engine.check(rt, now=T0 + timedelta(days=1), only=["budget"])
    assert next_day["resolved"] == ["budget_daily"]


@BOTH
def test_silences_record_without_sending_and_end_by_themselves(offline: Runtime) -> None:
    rt = offline
    waiting_job(rt, T0)
    silences.silence(
        rt, "no_live_worker", timedelta(hours=2), actor="test", reason="maintenance", now=T0
    )

    muted = engine.check(rt, now=T0 + timedelta(minutes=1), only=["no_live_worker"])
    assert muted["opened"] == ["no_live_worker"] and muted["silenced"] == ["no_live_worker"]
    assert muted["sent"] == []
    shown = listing(rt, now=T0 + timedelta(minutes=2))
    assert [s["rule"] for s in shown["silences"]] == ["no_live_worker"]
    assert shown["open"][0]["last_sent_at"] is None

    after = engine.check(rt, now=T0 + timedelta(hours=2, minutes=1), only=["no_live_worker"])
    assert kinds(after, "no_live_worker") == ["fired"]  # the silence ran out by itself
    assert listing(rt, now=T0 + timedelta(hours=3))["silences"] == []


@BOTH
def test_an_alert_resolved_while_silenced_and_never_sent_sends_nothing(offline: Runtime) -> None:
    rt = offline
    waiting_job(rt, T0)
    silences.silence(rt, "no_live_worker", timedelta(hours=1), actor="test", now=T0)
    engine.check(rt, now=T0 + timedelta(minutes=1), only=["no_live_worker"])
    beat(rt, T0 + timedelta(minutes=2))
    result = engine.check(rt, now=T0 + timedelta(minutes=3), only=["no_live_worker"])
    assert result["resolved"] == ["no_live_worker"] and result["sent"] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0m", "longer than zero"),
        ("-1h", "not a duration"),
        ("31d", "at most 30 days"),
        ("soon", "not a duration"),
    ],
)
def test_bad_silence_lengths_are_refused(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        silences.parse_duration(text)
    assert caught.value.field == "--for"


@BOTH
def test_failure_rules_look_at_a_rolling_window_not_one_event(offline: Runtime) -> None:
    rt = offline
    job_id = submit(rt, task_type="research")
    n = 0

    def attempt(status: str, at: datetime) -> None:
        nonlocal n
        n += 1
        with write_session(rt.sessions) as session:
            session.add(
                JobAttempt(
                    job_id=job_id,
                    n=n,
                    status=status,
                    started_at=at,
                    finished_at=at,
                    error="503" if status == "failed" else None,
                )
            )

    for minute in (1, 2):
        attempt("failed", T0 + timedelta(minutes=minute))
    check = engine.check(
        rt, now=T0 + timedelta(minutes=5), only=["task_type_failures", "model_errors"]
    )
    assert check["firing"] == []  # two in a row, and too few attempts for a rate

    attempt("failed", T0 + timedelta(minutes=3))
    fired = engine.check(rt, now=T0 + timedelta(minutes=6), only=["task_type_failures"])
    assert fired["opened"] == ["task_type_failures:research"]

    attempt("ok", T0 + timedelta(minutes=7))
    cleared = engine.check(rt, now=T0 + timedelta(minutes=8), only=["task_type_failures"])
    assert cleared["resolved"] == ["task_type_failures:research"]

    # Error rate: 4 failed of 11 in the last hour is over 20 % with the minimum sample.
    for minute in range(10, 17):
        attempt("ok", T0 + timedelta(minutes=minute))
    attempt("failed", T0 + timedelta(minutes=20))
    rate = engine.check(rt, now=T0 + timedelta(minutes=30), only=["model_errors"])
    assert [f["key"] for f in rate["firing"]] == ["model_errors"]
    assert "4 of 12" in rate["firing"][0]["title"]
    gone = engine.check(rt, now=T0 + timedelta(hours=2), only=["model_errors"])
    assert gone["resolved"] == ["model_errors"]


@BOTH
def test_operational_rules(offline: Runtime) -> None:
    rt = offline
    # Scheduler: silent, crashed (never marked stopped) for 6 minutes.
    with write_session(rt.sessions) as session:
        session.add(SchedulerInstance(id="s1", host="h", pid=1, started_at=T0, heartbeat_at=T0))
        session.add(
            ScheduleRun(
                task="retention",
                slot=T0,
                trigger="scheduled",
                status="abandoned",
                started_at=T0,
                host="h",
                pid=1,
                note="its scheduler died",
            )
        )
    stale = engine.check(
        rt, now=T0 + timedelta(minutes=6), only=["scheduler_stale", "schedule_failed"]
    )
    assert sorted(stale["opened"]) == ["schedule_failed:retention", "scheduler_stale"]
    with write_session(rt.sessions) as session:
        # The scheduler is back: its heartbeat is fresh again.
        session.get(SchedulerInstance, "s1").heartbeat_at = T0 + timedelta(minutes=8)  # type: ignore[union-attr]
        session.add(
            ScheduleRun(
                task="retention",
                slot=T0 + timedelta(minutes=8),
                trigger="manual",
                status="ok",
                started_at=T0 + timedelta(minutes=8),
                host="h",
                pid=1,
            )
        )
    fine = engine.check(
        rt, now=T0 + timedelta(minutes=9), only=["scheduler_stale", "schedule_failed"]
    )
    assert sorted(fine["resolved"]) == ["schedule_failed:retention", "scheduler_stale"]

    # Queue age: a job waiting 11 minutes, a worker alive.
    beat(rt, T0 + timedelta(minutes=20))
    waiting_job(rt, T0 + timedelta(minutes=10))
    old = engine.check(rt, now=T0 + timedelta(minutes=21), only=["queue_age", "no_live_worker"])
    assert old["opened"] == ["queue_age"]

    # Security: 10 failed key attempts within 10 minutes; older ones do not count.
    with write_session(rt.sessions) as session:
        for n in range(9):
            audit.record(
                session,
                actor="api",
                action="auth.failed",
                target="client:10.0.0.9",
                now=T0 + timedelta(minutes=10, seconds=n),
            )
        audit.record(
            session,
            actor="api",
            action="auth.failed",
            target="client:10.0.0.9",
            now=T0 - timedelta(hours=1),
        )
    assert engine.check(rt, now=T0 + timedelta(minutes=15), only=["key_failures"])["firing"] == []
    with write_session(rt.sessions) as session:
        audit.record(
            session,
            actor="api",
            action="auth.failed",
            target="client:10.0.0.9",
            now=T0 + timedelta(minutes=14),
        )
    sec = engine.check(rt, now=T0 + timedelta(minutes=15), only=["key_failures"])
    assert sec["opened"] == ["key_failures"] and sec["firing"][0]["severity"] == "high"


@BOTH
def test_money_and_quality_rules(offline: Runtime) -> None:
    rt = offline
    for n in range(10):
        job_id = submit(rt, f"j{n}")
        with write_session(rt.sessions) as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.status, job.finished_at, job.qa_score, job.price_cents = "done", T0, 70.0, 100
            # Billed, with its attempt's cost (as the pipeline keeps them).
            job.payment_status, job.cost_micros = "unpaid", 1_500_000
            session.add(
                JobAttempt(
                    job_id=job_id,
                    n=1,
                    status="ok",
                    cost_micros=1_500_000,
                    started_at=T0,
                    finished_at=T0,
                )
            )
    result = engine.check(rt, now=T0 + timedelta(hours=1), only=["profit_7d", "qa_7d"])
    assert sorted(result["opened"]) == ["profit_7d", "qa_7d"]
    profit = next(f for f in result["firing"] if f["key"] == "profit_7d")
    assert profit["title"] == "7-day profit is -$5.00"  # $10.00 revenue, $15.00 cost
    assert engine.check(rt, now=T0 + timedelta(days=8), only=["profit_7d", "qa_7d"])["resolved"]


@BOTH
def test_two_checks_at_once_send_one_notice(offline: Runtime) -> None:
    rt = offline
    waiting_job(rt, T0)
    barrier = threading.Barrier(2)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            results.append(engine.check(rt, now=T0 + timedelta(minutes=1), only=["no_live_worker"]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(len(kinds(r, "no_live_worker")) for r in results) == 1
    with read_session(rt.sessions) as session:
        assert session.scalar(select(func.count(Alert.id))) == 1


@BOTH
def test_alerts_from_the_cli_and_the_api(offline: Runtime) -> None:
    rt = offline
    waiting_job(rt, datetime.now(UTC) - timedelta(minutes=30))

    checked = run_cli(rt.settings, "alerts", "check", "--json")
    assert checked.returncode == 0, checked.stderr
    assert "no_live_worker" in json.loads(checked.stdout)["opened"]

    listed = run_cli(rt.settings, "alerts", "list", "--json")
    data = json.loads(listed.stdout)
    assert {a["key"] for a in data["open"]} >= {"no_live_worker", "queue_age"}
    assert data["target"] == "log"

    silenced = run_cli(rt.settings, "alerts", "silence", "queue_age", "--for", "2h", "--json")
    assert silenced.returncode == 0, silenced.stderr
    assert json.loads(silenced.stdout)["rule"] == "queue_age"
    for args, named in (
        (("alerts", "silence", "nosuch", "--for", "1h"), "RULE"),
        (("alerts", "silence", "queue_age", "--for", "0m"), "--for"),
        (("alerts", "silence", "queue_age", "--for", "45d"), "--for"),
    ):
        refused = run_cli(rt.settings, *args)
        assert refused.returncode == 2 and named in refused.stderr
    with read_session(rt.sessions) as session:
        assert session.scalar(select(func.count(AlertSilence.id))) == 1

    with api_client(rt) as client:
        shown = client.get("/api/alerts").json()["data"]
        assert [s["rule"] for s in shown["silences"]] == ["queue_age"]
        trigger = client.post("/api/alerts/trigger")
        assert trigger.status_code == 200 and trigger.json()["data"]["target"] == "log"
        bad = client.post("/api/alerts/silences", json={"rule": "queue_age", "duration": "0s"})
        assert bad.status_code == 422 and "duration" in bad.json()["error"]["message"]
        unknown = client.post("/api/alerts/silences", json={"rule": "nope", "duration": "1h"})
        assert unknown.status_code == 422 and "rule" in unknown.json()["error"]["message"]
        lifted = client.delete("/api/alerts/silences/queue_age")
        assert lifted.status_code == 200 and lifted.json()["data"]["lifted"] == 1
        assert client.get("/api/alerts").json()["data"]["silences"] == []


@BOTH
def test_the_retries_rule_counts_self_heal_retries(offline: Runtime) -> None:
    from echopilot.selfheal import heal

    rt = offline
    for n in range(4):
        job_id = submit(rt, f"f{n}")
        with write_session(rt.sessions) as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.status, job.attempts, job.error_kind = "failed", 1, "transient"
            job.retry_at = datetime.now(UTC) - timedelta(seconds=1)
    assert heal.run(rt).as_dict()["retried_count"] == 4
    result = engine.check(rt, only=["retries"])
    assert result["opened"] == ["retries"]
    assert result["firing"][0]["title"] == "self-heal retried 4 jobs in the last 24 hours"


@BOTH
def test_a_scheduler_stopped_on_purpose_raises_no_alert(offline: Runtime) -> None:
    from echopilot.scheduler import control

    rt = offline
    with write_session(rt.sessions) as session:
        session.add(
            SchedulerInstance(
                id="s1", host="h", pid=1, started_at=T0, heartbeat_at=T0, stopped_at=T0
            )
        )
    marker = control.stopped_marker(rt.settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    assert engine.check(rt, now=T0 + timedelta(hours=1), only=["scheduler_stale"])["firing"] == []
    marker.unlink()  # not stopped by its owner: silent is silent
    fired = engine.check(rt, now=T0 + timedelta(hours=1), only=["scheduler_stale"])
    assert fired["opened"] == ["scheduler_stale"]


@BOTH
def test_a_failed_send_is_not_retried_under_a_silence_nor_after_it_resolves(
    make_runtime: Any,
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once this block ends: refused
    rt = make_runtime(ai_provider="offline", alert_urls=f"json://127.0.0.1:{port}/hook")
    waiting_job(rt, T0)
    first = engine.check(rt, now=T0 + timedelta(minutes=1), only=["no_live_worker"])
    assert first["sent"][0]["channels"][f"json://127.0.0.1:{port}"] != "ok"
    assert alert_row(rt, "no_live_worker").pending is not None

    silences.silence(
        rt, "no_live_worker", timedelta(hours=1), actor="test", now=T0 + timedelta(minutes=2)
    )
    muted = engine.check(rt, now=T0 + timedelta(minutes=3), only=["no_live_worker"])
    assert muted["sent"] == []  # the retry waits out the silence
    beat(rt, T0 + timedelta(minutes=4))
    cleared = engine.check(rt, now=T0 + timedelta(minutes=5), only=["no_live_worker"])
    assert cleared["resolved"] == ["no_live_worker"] and cleared["sent"] == []
    row = alert_row(rt, "no_live_worker")
    assert row.pending is None  # the failed firing is never sent for a resolved alert
    later = engine.check(rt, now=T0 + timedelta(minutes=6), only=["no_live_worker"])
    assert later["sent"] == []
