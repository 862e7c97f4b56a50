"""The price optimiser: each decision of its policy on seeded jobs, the floor and ceiling,
the 30-day re-pricing to the cent, apply (new versions, new jobs only) and rollback, bad
input and settings, dry runs, logs and audit, the API, the weekly task, and two applies at
once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from echopilot.alerts.engine import check
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import (
    Alert,
    AlertEvent,
    AuditLog,
    Client,
    Job,
    PriceRule,
    PriceRuleHistory,
    ScheduleRun,
)
from echopilot.errors import ConfigError, ConflictError, InputError
from echopilot.finance import optimizer
from echopilot.jobs import intake
from echopilot.jobs.intake import JobRequest
from echopilot.queue.worker import run_worker
from echopilot.runtime import Runtime
from echopilot.scheduler.daemon import Scheduler
from echopilot.scheduler.executor import InlineRunner
from echopilot.scheduler.table import build
from echopilot.scheduler.tasks import TaskContext, registry
from tests.api_support import api_client, assert_error, assert_ok
from tests.conftest import run_cli

pytestmark = pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
USD = 1_000_000  # micro-dollars
LOW_MARGIN_COST = 20 * USD  # a $25 research job costing $20: margin 20 %


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime(ai_provider="offline")


def add_jobs(
    rt: Runtime,
    task_type: str = "research",
    count: int = 20,
    *,
    price: int = 2500,
    cost: int = USD,
    qa: float | None = 90.0,
    days_ago: float = 1.0,
    status: str = "done",
    payment: str = "unpaid",
    client_id: int | None = None,
    at: datetime | None = None,
) -> None:
    """`count` finished jobs, a second apart, `days_ago` days before `at` (now)."""
    finished = (at or now()) - timedelta(days=days_ago)
    with write_session(rt.sessions) as session:
        for n in range(count):
            moment = finished - timedelta(seconds=n)
            session.add(
                Job(
                    name=f"{task_type} {n}",
                    task_type=task_type,
                    input="seeded for the optimiser",
                    status=status,
                    attempts=1,
                    qa_score=qa,
                    price_cents=price,
                    cost_micros=cost,
                    payment_status=payment,
                    client_id=client_id,
                    created_at=moment - timedelta(minutes=1),
                    finished_at=moment,
                    updated_at=moment,
                )
            )


def submit(rt: Runtime, name: str) -> int:
    request = JobRequest(name=name, task_type="research", input="Notes.", source="api")
    return intake.submit(rt, request, actor="test").id


def proposal(result: dict[str, Any], task_type: str = "research") -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in result["proposals"] if p["task_type"] == task_type)
    return found


def rate(rt: Runtime, task_type: str = "research") -> int:
    with read_session(rt.sessions) as session:
        value = session.scalar(
            select(PriceRule.rate_micros).where(PriceRule.task_type == task_type)
        )
    assert value is not None
    return int(value)


def versions(rt: Runtime, task_type: str = "research") -> list[tuple[int, str]]:
    with read_session(rt.sessions) as session:
        rows = session.execute(
            select(PriceRuleHistory.rate_micros, PriceRuleHistory.reason)
            .where(PriceRuleHistory.task_type == task_type)
            .order_by(PriceRuleHistory.changed_at, PriceRuleHistory.id)
        ).all()
    return [(int(r), reason) for r, reason in rows]


def snapshot(rt: Runtime) -> tuple[Any, ...]:
    """Everything the optimiser may write."""
    with read_session(rt.sessions) as session:
        rules = session.execute(
            select(PriceRule.task_type, PriceRule.rate_micros, PriceRule.updated_at).order_by(
                PriceRule.task_type
            )
        ).all()
        counts = tuple(
            session.scalar(select(func.count()).select_from(model))
            for model in (PriceRuleHistory, AuditLog, ScheduleRun, Alert)
        )
    return [tuple(r) for r in rules], counts


def log_lines(rt: Runtime) -> list[dict[str, Any]]:
    path = rt.settings.home / "logs" / "optimizer.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def dry(rt: Runtime, **kwargs: Any) -> dict[str, Any]:
    return optimizer.run(rt, dry_run=True, actor="test", **kwargs)


# ---------------------------------------------------------------- the policy's branches


def test_a_low_margin_raises_the_rate_by_at_most_five_percent(rt: Runtime) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    found = proposal(dry(rt))
    assert found["decision"] == "raise"
    assert (found["old_rate_usd"], found["new_rate_usd"]) == ("25.000000", "26.250000")
    assert found["change_pct"] == "5.00"
    assert "margin 20.0% is below the target 40.0%" in found["reason"]
    assert found["sample"] == {
        "jobs": 20,
        "revenue_usd": "500.00",
        "cost_usd": "400.000000",
        "margin_pct": "20.0",
        "avg_qa": 90.0,
    }


def test_a_margin_just_under_target_rises_only_to_reach_it(rt: Runtime) -> None:
    # $15.50 of cost on $25: margin 38 %; revenue must grow by 15.5 / 15 - 1 = 3.33 %.
    add_jobs(rt, cost=15_500_000)
    found = proposal(dry(rt))
    assert found["decision"] == "raise"
    assert found["new_rate_usd"] == "25.833333"  # rounded half up to a whole micro-dollar
    assert found["change_pct"] == "3.33"


def test_high_qa_with_a_healthy_margin_makes_a_modest_rise(rt: Runtime) -> None:
    add_jobs(rt, qa=97.0)
    found = proposal(dry(rt))
    assert found["decision"] == "modest_raise"
    assert (found["new_rate_usd"], found["change_pct"]) == ("25.500000", "2.00")


def test_ordinary_qa_with_the_margin_on_target_holds(rt: Runtime) -> None:
    add_jobs(rt, qa=90.0)
    found = proposal(dry(rt))
    assert found["decision"] == "hold"
    assert found["new_rate_usd"] == found["old_rate_usd"] == "25.000000"
    assert found["last_30d"]["difference_usd"] == "0.00"


def test_too_few_billed_jobs_hold_and_unbilled_ones_do_not_count(rt: Runtime) -> None:
    add_jobs(rt, count=9, cost=LOW_MARGIN_COST)
    add_jobs(rt, count=5, payment="na")  # the offline provider's: never billed
    add_jobs(rt, count=5, status="needs_review", payment="na")
    found = proposal(dry(rt))
    assert found["decision"] == "hold"
    assert found["reason"] == "too few jobs: 9 billed of the 10 needed"
    assert found["sample"]["jobs"] == 9


def test_low_qa_holds_the_price_and_raises_one_quality_alert(rt: Runtime) -> None:
    # Low QA and a low margin: the original cut the price; this holds it and alerts.
    add_jobs(rt, qa=70.0, cost=LOW_MARGIN_COST)
    person = optimizer.run(rt, dry_run=True, actor="cli")
    found = proposal(person)
    assert found["decision"] == "quality_hold"
    assert found["new_rate_usd"] == "25.000000"
    assert found["alert"] == "optimizer_quality:research"
    assert "average QA 70.0 is below 80" in found["reason"]
    with read_session(rt.sessions) as session:
        assert session.scalar(select(func.count(Alert.id))) == 0  # a person's dry run

    for _ in range(2):  # the weekly run (a proposal), then an apply
        optimizer.run(rt, dry_run=True, actor="scheduler")
    applied = optimizer.run(rt, dry_run=False, actor="cli")
    assert applied["applied"] == [] and rate(rt) == 25 * USD
    with read_session(rt.sessions) as session:
        alerts = session.scalars(select(Alert)).all()
        fired = session.scalar(select(func.count(AlertEvent.id)).where(AlertEvent.event == "fired"))
    assert [(a.key, a.status, a.severity) for a in alerts] == [
        ("optimizer_quality:research", "open", "warning")
    ]
    assert fired == 1

    # Quality recovers (newer jobs): the next alert check resolves it.
    add_jobs(rt, qa=92.0, days_ago=0.1)
    assert "optimizer_quality:research" in check(rt, actor="test")["resolved"]


# ---------------------------------------------------------------- floor and ceiling


def test_the_ceiling_caps_a_rise_and_a_rate_above_it_is_never_cut(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", optimizer_bounds="research=20:25.8")
    add_jobs(rt, cost=LOW_MARGIN_COST)
    found = proposal(dry(rt))
    assert (found["decision"], found["new_rate_usd"]) == ("raise", "25.800000")
    assert "capped at the ceiling $25.80" in found["reason"]
    assert (found["floor_usd"], found["ceiling_usd"]) == ("20.000000", "25.800000")

    above = make_runtime(ai_provider="offline", optimizer_bounds="research=10:24")
    found = proposal(dry(above))
    assert (found["decision"], found["new_rate_usd"]) == ("hold", "25.000000")
    assert "above the ceiling $24.00" in found["reason"]


def test_a_rate_below_its_floor_climbs_toward_it_a_step_at_a_time(
    make_runtime: Callable[..., Runtime],
) -> None:
    near = make_runtime(ai_provider="offline", optimizer_bounds="summary=8.20:20")
    add_jobs(near, "summary", price=800, cost=USD)  # margin on target, QA ordinary
    found = proposal(dry(near), "summary")
    assert (found["decision"], found["new_rate_usd"]) == ("raise", "8.200000")
    assert "below the floor $8.20" in found["reason"]
    far = make_runtime(ai_provider="offline", optimizer_bounds="Summary=9:20")
    found = proposal(dry(far), "summary")
    assert (found["new_rate_usd"], found["change_pct"]) == ("8.400000", "5.00")


def test_default_bounds_are_half_and_twice_the_first_recorded_rate(rt: Runtime) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    assert (proposal(dry(rt))["floor_usd"], proposal(dry(rt))["ceiling_usd"]) == (
        "12.500000",
        "50.000000",
    )
    optimizer.run(rt, dry_run=False, actor="test")
    found = proposal(dry(rt))  # anchored to the first version, not the current rate
    assert (found["floor_usd"], found["ceiling_usd"]) == ("12.500000", "50.000000")


# ---------------------------------------------------------------- the last 30 days


def test_the_30_day_figure_reprices_each_billed_job_to_the_cent(rt: Runtime) -> None:
    with write_session(rt.sessions) as session:
        own = Client(name="Ada", email="ada@example.com", rate_overrides={"research": 30 * USD})
        session.add(own)
        session.flush()
        own_id = own.id
    for days in (2, 3, 4, 5, 6, 7):
        add_jobs(rt, count=1, cost=LOW_MARGIN_COST, days_ago=days)
    add_jobs(rt, count=1, price=3000, cost=LOW_MARGIN_COST, days_ago=8, client_id=own_id)
    add_jobs(rt, count=3, cost=LOW_MARGIN_COST, days_ago=40)  # in the sample, not the window
    add_jobs(rt, count=2, days_ago=3, payment="na")  # not billed
    # per_1k_tokens: scaled by the new rate; a job at the rule's $5 minimum keeps it.
    add_jobs(rt, "data_transform", count=10, price=1046, cost=8 * USD, days_ago=2)
    add_jobs(rt, "data_transform", count=1, price=500, cost=8 * USD, days_ago=2)

    result = dry(rt)
    research = proposal(result)
    assert research["new_rate_usd"] == "26.250000"
    assert research["last_30d"] == {
        "jobs": 7,
        "billed_usd": "180.00",  # 6 x 25.00 + 30.00
        "at_new_rate_usd": "187.50",  # 6 x 26.25 + 30.00 (the client's own rate)
        "difference_usd": "7.50",
    }
    transform = proposal(result, "data_transform")
    assert (transform["decision"], transform["new_rate_usd"]) == ("raise", "0.525000")
    assert transform["last_30d"] == {
        "jobs": 11,
        "billed_usd": "109.60",
        "at_new_rate_usd": "114.80",  # 10 x 10.98 + 5.00
        "difference_usd": "5.20",
    }


# ---------------------------------------------------------------- apply and rollback


def test_apply_writes_a_new_version_and_only_later_jobs_get_the_new_rate(
    rt: Runtime, make_runtime: Callable[..., Runtime]
) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    before = submit(rt, "before")
    assert run_worker(rt, concurrency=1, burst=True) == 0

    applied = run_cli(rt.settings, "optimize", "--apply", "--json")
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert result["dry_run"] is False and result["applied"] == ["research"]
    assert rate(rt) == 26_250_000
    history = versions(rt)
    assert [r for r, _ in history] == [25 * USD, 26_250_000]
    assert history[1][1].startswith("optimiser (cli): raise: margin 20.0%")

    later = make_runtime(ai_provider="offline")  # a worker started after the change
    after = submit(later, "after")
    assert run_worker(later, concurrency=1, burst=True) == 0
    with read_session(rt.sessions) as session:
        rows = session.execute(select(Job.id, Job.price_cents).where(Job.id.in_([before, after])))
        prices = {job_id: price for job_id, price in rows}
    assert prices == {before: 2500, after: 2625}
    latest = optimizer.latest(rt)  # a person's apply is the latest recorded run
    assert latest["trigger"] == "manual" and latest["applied"] == ["research"]


def test_rollback_walks_back_one_version_at_a_time(rt: Runtime) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    for _ in range(2):
        optimizer.run(rt, dry_run=False, actor="test")
    assert rate(rt) == 27_562_500  # 25.00 -> 26.25 -> 27.5625

    undone = run_cli(rt.settings, "optimize", "--rollback", "Research", "--json")
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["to_rate_usd"] == "26.250000"
    assert rate(rt) == 26_250_000
    assert optimizer.rollback(rt, "research", actor="test")["to_rate_usd"] == "25.000000"
    assert rate(rt) == 25 * USD
    rates = [r for r, _ in versions(rt)]
    assert rates == [25 * USD, 26_250_000, 27_562_500, 26_250_000, 25 * USD]

    state = snapshot(rt)
    with pytest.raises(ConflictError, match="no earlier price"):
        optimizer.rollback(rt, "research", actor="test")
    nothing_left = run_cli(rt.settings, "optimize", "--rollback", "research")
    assert nothing_left.returncode == 1
    assert "no earlier price to roll back to" in nothing_left.stderr
    assert snapshot(rt) == state


def test_rollback_of_an_unknown_type_exits_2_and_writes_nothing(rt: Runtime) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    optimizer.run(rt, dry_run=False, actor="test")
    state = snapshot(rt)
    result = run_cli(rt.settings, "optimize", "--rollback", "astrology")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--rollback: unknown task type 'astrology'" in result.stderr
    with pytest.raises(InputError):
        optimizer.rollback(rt, "", actor="test")
    assert snapshot(rt) == state
    both = run_cli(rt.settings, "optimize", "--apply", "--dry-run")
    assert both.returncode == 2 and "one of --dry-run, --apply" in both.stderr


def test_a_floor_above_the_ceiling_stops_the_command_naming_the_setting(rt: Runtime) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    state = snapshot(rt)
    for bounds in ("research=30:20", "research=:10", "astrology=1:2"):
        result = run_cli(
            rt.settings, "optimize", "--apply", extra_env={"ECHOPILOT_OPTIMIZER_BOUNDS": bounds}
        )
        assert result.returncode == 2, (bounds, result.stderr)
        assert result.stderr.startswith("error: ECHOPILOT_OPTIMIZER_BOUNDS: ")
        assert result.stderr.count("\n") == 1
    assert (
        "the floor 30 is above the ceiling 20"
        in run_cli(
            rt.settings,
            "scheduler",
            "status",
            extra_env={"ECHOPILOT_OPTIMIZER_BOUNDS": "research=30:20"},
        ).stderr
    )
    assert snapshot(rt) == state


def test_settings_that_contradict_each_other_are_refused(
    make_settings: Callable[..., Any],
) -> None:
    cases = {
        "ECHOPILOT_OPTIMIZER_MIN_SAMPLE": {"optimizer_sample": 5, "optimizer_min_sample": 6},
        "ECHOPILOT_OPTIMIZER_QA_HIGH": {"optimizer_qa_floor": 90, "optimizer_qa_high": 85},
        "ECHOPILOT_OPTIMIZER_MODEST_STEP_PCT": {"optimizer_modest_step_pct": 6},
        "ECHOPILOT_OPTIMIZER_MAX_STEP_PCT": {"optimizer_max_step_pct": 10},
    }
    for setting, values in cases.items():
        with pytest.raises(ConfigError, match=f"^{setting}: "):
            make_settings(**values)


# ---------------------------------------------------------------- dry runs, logs, audit


def test_a_dry_run_writes_nothing_but_its_log_line(rt: Runtime) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    state = snapshot(rt)
    shown = run_cli(rt.settings, "optimize", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert "dry run: nothing changed" in shown.stdout
    assert "$25.00 -> $26.25" in shown.stdout
    default = run_cli(rt.settings, "optimize", "--json")  # no flag: a dry run too
    assert json.loads(default.stdout)["dry_run"] is True
    assert snapshot(rt) == state
    assert [line["event"] for line in log_lines(rt)] == ["dry_run", "dry_run"]


def test_every_change_is_logged_and_audited(rt: Runtime) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    optimizer.run(rt, dry_run=False, actor="cli")
    optimizer.rollback(rt, "research", actor="api")
    lines = log_lines(rt)
    assert [line["event"] for line in lines] == ["apply", "run", "rollback"]
    assert all(line["ts"].endswith("+00:00") for line in lines)
    apply_line = lines[0]
    assert apply_line["task_type"] == "research" and apply_line["actor"] == "cli"
    assert (apply_line["old_rate_usd"], apply_line["new_rate_usd"]) == ("25.000000", "26.250000")
    assert lines[2]["to_rate_usd"] == "25.000000" and lines[2]["actor"] == "api"
    with read_session(rt.sessions) as session:
        audits = session.execute(
            select(AuditLog.actor, AuditLog.action, AuditLog.target).order_by(AuditLog.id)
        ).all()
    assert [tuple(a) for a in audits] == [
        ("cli", "optimizer.apply", "price_rule:research"),
        ("api", "optimizer.rollback", "price_rule:research"),
    ]


# ---------------------------------------------------------------- the API


def test_the_api_runs_shows_the_latest_and_rolls_back_with_the_key(rt: Runtime) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    with api_client(rt, key=None) as anonymous:
        for method, path in (
            ("GET", "/api/optimizer/latest"),
            ("POST", "/api/optimizer/run?dry_run=true"),
            ("POST", "/api/optimizer/rollback?task_type=research"),
        ):
            assert_error(anonymous.request(method, path), 401)
    with api_client(rt) as client:
        empty = assert_ok(client.get("/api/optimizer/latest"))
        assert empty["proposals"] == [] and empty["ran_at"] is None
        preview = assert_ok(client.post("/api/optimizer/run", params={"dry_run": "true"}))
        assert preview["dry_run"] is True
        assert proposal(preview)["new_rate_usd"] == "26.250000"
        assert rate(rt) == 25 * USD
        assert assert_ok(client.get("/api/optimizer/latest"))["ran_at"] is None

        applied = assert_ok(client.post("/api/optimizer/run"))
        assert applied["applied"] == ["research"] and rate(rt) == 26_250_000
        latest = assert_ok(client.get("/api/optimizer/latest"))
        assert latest["trigger"] == "manual" and latest["applied"] == ["research"]

        error = assert_error(
            client.post("/api/optimizer/rollback", params={"task_type": "astrology"}), 422
        )
        assert error["fields"] == ["task_type"]
        back = assert_ok(client.post("/api/optimizer/rollback", params={"task_type": "research"}))
        assert back["to_rate_usd"] == "25.000000" and rate(rt) == 25 * USD
        assert_error(client.post("/api/optimizer/rollback", params={"task_type": "research"}), 409)


def test_the_api_names_bad_bounds_with_422_and_writes_nothing(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", optimizer_bounds="research=:10")
    add_jobs(rt, cost=LOW_MARGIN_COST)
    state = snapshot(rt)
    with api_client(rt) as client:
        error = assert_error(client.post("/api/optimizer/run"), 422, "bad_configuration")
    assert error["fields"] == ["ECHOPILOT_OPTIMIZER_BOUNDS"]
    assert "the floor $12.50 is above the ceiling $10.00" in error["message"]
    assert snapshot(rt) == state


# ---------------------------------------------------------------- the weekly task


def test_the_weekly_task_proposes_and_the_dashboard_reads_its_proposal(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    table = build(rt.settings)
    assert table["optimizer"].schedule.text == "0 6 * * 1"  # Mondays 06:00 UTC
    monday = datetime(2030, 1, 7, 6, 0, tzinfo=UTC)
    add_jobs(rt, cost=LOW_MARGIN_COST, at=monday)
    clock = {"now": monday - timedelta(seconds=30)}
    sched = Scheduler(
        rt, {"optimizer": table["optimizer"]}, InlineRunner(rt), clock=lambda: clock["now"]
    )
    try:
        sched.start(clock["now"])
        clock["now"] = monday + timedelta(seconds=1)
        assert sched.tick(clock["now"]) == ["optimizer"]
        sched.wait_idle()
    finally:
        sched.shutdown(0)
    assert rate(rt) == 25 * USD  # a proposal only
    latest = optimizer.latest(rt)
    assert latest["trigger"] == "scheduled" and latest["dry_run"] is True
    assert latest["ran_at"].startswith("2030-01-07T06:00")
    assert proposal(latest)["new_rate_usd"] == "26.250000"


def test_the_weekly_task_applies_only_with_auto_apply(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", optimizer_auto_apply=True)
    add_jobs(rt, cost=LOW_MARGIN_COST)
    task = registry()["optimizer"]
    summary = task.func(TaskContext(rt, "optimizer", now(), now(), "scheduled"))
    assert summary["dry_run"] is False and summary["applied"] == ["research"]
    assert rate(rt) == 26_250_000
    with read_session(rt.sessions) as session:
        actor = session.scalar(select(AuditLog.actor).where(AuditLog.action == "optimizer.apply"))
    assert actor == "scheduler"


# ---------------------------------------------------------------- two at once


def test_two_applies_at_once_step_the_rate_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_jobs(rt, cost=LOW_MARGIN_COST)
    both_read = threading.Barrier(2)
    propose = optimizer.propose

    def read_then_wait(*args: Any, **kwargs: Any) -> Any:
        proposals = propose(*args, **kwargs)
        both_read.wait(timeout=30)  # both runs saw $25.00 before either writes
        return proposals

    monkeypatch.setattr(optimizer, "propose", read_then_wait)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def one(actor: str) -> None:
        try:
            results.append(optimizer.run(rt, dry_run=False, actor=actor))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(f"run-{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(len(r["applied"]) for r in results) == [0, 1]
    loser = next(r for r in results if not r["applied"])
    assert any("changed while this ran" in note for note in loser["notes"])
    assert rate(rt) == 26_250_000
    assert [r for r, _ in versions(rt)] == [25 * USD, 26_250_000]
