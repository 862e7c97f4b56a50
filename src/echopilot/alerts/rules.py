"""The alert rules: each looks at the database and says which of its conditions hold now.

A rule returns one Finding per thing that is wrong (one per task type, per client, per
scheduled task, or a single one); the engine opens, repeats, escalates and resolves alerts
from those. Rules that count failures look at a rolling window (N in a row, or a rate over
a minimum sample), never at one bad event. Thresholds come from settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Integer, func, select
from sqlalchemy.orm import Session

from echopilot.clock import age_text, as_utc
from echopilot.config import Settings
from echopilot.db.models import (
    AuditLog,
    Job,
    JobAttempt,
    JobEvent,
    SchedulerInstance,
    SchedulerState,
    ScheduleRun,
)
from echopilot.finance import optimizer_data, totals
from echopilot.finance.optimizer_policy import Policy, is_quality_hold
from echopilot.finance.totals import Totals
from echopilot.jobs import budget
from echopilot.jobs.status import Status
from echopilot.money import micros_text
from echopilot.queue import recovery
from echopilot.scheduler import control

SEVERITIES = ("info", "warning", "high", "critical")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass(frozen=True)
class Finding:
    """A condition that holds now: `key` names it for deduplication (rule[:subject])."""

    key: str
    severity: str
    title: str  # what is wrong, in a short line
    detail: str  # the numbers behind it
    since: datetime | None = None


@dataclass(frozen=True)
class Context:
    session: Session
    settings: Settings
    now: datetime


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    description: str
    evaluate: Callable[[Context], list[Finding]]
    cooldown: timedelta | None = None  # None: ECHOPILOT_ALERT_COOLDOWN_HOURS


RULES: dict[str, Rule] = {}


def rule(
    name: str, severity: str, description: str, cooldown: timedelta | None = None
) -> Callable[[Callable[[Context], list[Finding]]], Callable[[Context], list[Finding]]]:
    def register(func: Callable[[Context], list[Finding]]) -> Callable[[Context], list[Finding]]:
        RULES[name] = Rule(name, severity, description, func, cooldown)
        return func

    return register


# Retries self-heal made (failed -> queued, its reason starts "self-heal:"); the retries a
# job gets on its own within its backoff are the model-error rule's concern.
@rule("retries", "warning", "More than ECHOPILOT_ALERT_RETRIES_24H self-heal retries in 24 hours.")
def _retries(ctx: Context) -> list[Finding]:
    since = ctx.now - timedelta(hours=24)
    count = (
        ctx.session.scalar(
            select(func.count(JobEvent.id)).where(
                JobEvent.at >= since,
                JobEvent.from_status == Status.FAILED,
                JobEvent.to_status == Status.QUEUED,
                JobEvent.reason.like("self-heal:%"),
            )
        )
        or 0
    )
    limit = ctx.settings.alert_retries_24h
    if count <= limit:
        return []
    return [
        Finding(
            "retries",
            "warning",
            f"self-heal retried {count} jobs in the last 24 hours",
            f"more than {limit} (ECHOPILOT_ALERT_RETRIES_24H); see the failed jobs' errors",
        )
    ]


def _week(ctx: Context) -> Totals:
    """The finance totals of the last 7 days (the same figures as `echopilot finance`)."""
    by_dim = totals.window(ctx.session.connection(), ctx.now - timedelta(days=7), ctx.now)
    return by_dim["all"].get("", totals.empty())


@rule("profit_7d", "high", "Profit over the last 7 days below ECHOPILOT_ALERT_PROFIT_7D_MIN_USD.")
def _profit(ctx: Context) -> list[Finding]:
    week = _week(ctx)
    revenue, cost = week["billed_cents"] * 10_000, week["cost_micros"]
    if revenue == 0 and cost == 0:
        return []  # no activity: nothing to judge
    profit = revenue - cost
    floor = int(ctx.settings.alert_profit_7d_min_usd * 1_000_000)
    if profit >= floor:
        return []
    return [
        Finding(
            "profit_7d",
            "high",
            f"7-day profit is {_usd(profit)}",
            f"revenue {_usd(revenue)}, model cost {_usd(cost)}; "
            f"the floor is {_usd(floor)} (ECHOPILOT_ALERT_PROFIT_7D_MIN_USD)",
        )
    ]


@rule("qa_7d", "warning", "Average QA score over 7 days below ECHOPILOT_ALERT_QA_7D_MIN.")
def _qa(ctx: Context) -> list[Finding]:
    week = _week(ctx)
    count = week["qa_jobs"]
    average = week["qa_tenths"] / count / 10 if count else 0.0
    minimum = ctx.settings.alert_qa_7d_min
    if not count or count < ctx.settings.alert_min_sample or average >= minimum:
        return []
    return [
        Finding(
            "qa_7d",
            "warning",
            f"7-day average QA is {float(average):.1f}",
            f"over {count} scored jobs; the minimum is {minimum} (ECHOPILOT_ALERT_QA_7D_MIN)",
        )
    ]


# Attempts that ended by the model's or the answer's doing; a lost worker is not one.
_JUDGED = ("ok", "needs_review", "failed")


@rule(
    "task_type_failures",
    "high",
    "ECHOPILOT_ALERT_TYPE_FAILURES or more consecutive failed attempts of one task type.",
    cooldown=timedelta(hours=1),
)
def _type_failures(ctx: Context) -> list[Finding]:
    streak = ctx.settings.alert_type_failures
    since = ctx.now - timedelta(days=7)
    types = ctx.session.scalars(
        select(Job.task_type)
        .join(JobAttempt, JobAttempt.job_id == Job.id)
        .where(JobAttempt.started_at >= since, JobAttempt.status == "failed")
        .distinct()
    ).all()
    found = []
    for task_type in types:
        latest = ctx.session.execute(
            select(JobAttempt.status, JobAttempt.finished_at, JobAttempt.error_kind)
            .join(Job, JobAttempt.job_id == Job.id)
            .where(Job.task_type == task_type, JobAttempt.status.in_(_JUDGED))
            .order_by(JobAttempt.finished_at.desc(), JobAttempt.id.desc())
            .limit(streak)
        ).all()
        if len(latest) == streak and all(status == "failed" for status, _, _ in latest):
            found.append(
                Finding(
                    f"task_type_failures:{task_type}",
                    "high",
                    f"the last {streak} attempts of task type {task_type!r} failed",
                    "see `echopilot jobs list --status failed` for their errors",
                    since=as_utc(latest[-1][1]),
                )
            )
    return found


@rule("scheduler_stale", "high", "The scheduler's heartbeat is older than the limit.")
def _scheduler(ctx: Context) -> list[Finding]:
    """Workers check this rule too (a dead scheduler runs no alert check of its own)."""
    paused = ctx.session.scalar(select(SchedulerState.paused).where(SchedulerState.id == 1))
    if paused or control.stopped_marker(ctx.settings).exists():
        return []  # paused, or stopped with `scheduler stop`: on purpose
    # Whether it crashed or was closed by `up` after a crash, its heartbeat tells.
    newest = as_utc(ctx.session.scalar(select(func.max(SchedulerInstance.heartbeat_at))))
    if newest is None:
        return []  # no scheduler has ever run here
    limit = timedelta(minutes=ctx.settings.alert_scheduler_stale_minutes)
    if ctx.now - newest <= limit:
        return []
    return [
        Finding(
            "scheduler_stale",
            "high",
            "the scheduler is silent",
            f"last heartbeat {age_text(ctx.now - newest)} ago; scheduled tasks are not running "
            "(start it with `echopilot scheduler start` or `make start-automations`)",
            since=newest,
        )
    ]


@rule("no_live_worker", "high", "Jobs wait and no worker has beaten its heartbeat lately.")
def _no_worker(ctx: Context) -> list[Finding]:
    fresh = timedelta(minutes=ctx.settings.alert_worker_stale_minutes)
    waiting, oldest = recovery.waiting(ctx.session, ctx.settings, ctx.now)
    if not waiting or recovery.live_workers(ctx.session, ctx.now, fresh):
        return []
    return [
        Finding(
            "no_live_worker",
            "high",
            f"no live worker while {_count(waiting, 'job waits', 'jobs wait')}",
            f"no worker heartbeat in the last {age_text(fresh)}; start one with `echopilot worker` "
            "(or `make run`)",
            since=oldest,
        )
    ]


@rule(
    "schedule_failed", "warning", "A scheduled task's latest run was abandoned, failed or missed."
)
def _schedule(ctx: Context) -> list[Finding]:
    """Per task in the schedule (not off): its latest run that ran, or was skipped because
    its slot was missed, tells. A skip for another reason (debounce, still running) says
    nothing either way; a task turned off or gone has its alert closed."""
    from echopilot.scheduler.table import build

    found = []
    tasks = [name for name, entry in build(ctx.settings).items() if not entry.schedule.off]
    for task in tasks:
        run = ctx.session.execute(
            select(ScheduleRun.status, ScheduleRun.slot, ScheduleRun.note, ScheduleRun.error)
            .where(
                ScheduleRun.task == task,
                ScheduleRun.status != "running",
                (ScheduleRun.status != "skipped") | ScheduleRun.note.like(f"%{MISSED}"),
            )
            .order_by(ScheduleRun.started_at.desc(), ScheduleRun.id.desc())
            .limit(1)
        ).first()
        if run is None:
            continue
        status, slot, note, error = run
        missed = status == "skipped"
        if status not in ("abandoned", "failed") and not missed:
            continue
        what = "missed" if missed else status
        why = (error or note or "").splitlines()[0][:200] if (error or note) else ""
        found.append(
            Finding(
                f"schedule_failed:{task}",
                "warning",
                f"scheduled task {task!r}: its last run was {what}",
                f"slot {as_utc(slot):%Y-%m-%d %H:%M} UTC" + (f": {why}" if why else ""),
                since=as_utc(slot),
            )
        )
    return found


# The end of the scheduler's note on a slot it skipped because it came too late.
MISSED = "catch-up policy is skip"


@rule("queue_age", "warning", "The oldest waiting job has waited longer than the limit.")
def _queueage_text(ctx: Context) -> list[Finding]:
    waiting, oldest = recovery.waiting(ctx.session, ctx.settings, ctx.now)
    limit = timedelta(minutes=ctx.settings.alert_queue_age_minutes)
    if not waiting or oldest is None or ctx.now - oldest <= limit:
        return []
    return [
        Finding(
            "queue_age",
            "warning",
            f"the oldest of {_count(waiting, 'waiting job', 'waiting jobs')} has waited "
            f"{age_text(ctx.now - oldest)}",
            f"more than {age_text(limit)} (ECHOPILOT_ALERT_QUEUE_AGE_MINUTES); "
            "are workers keeping up?",
            since=oldest,
        )
    ]


@rule("model_errors", "high", "Share of failed model attempts in the last hour over the limit.")
def _model_errors(ctx: Context) -> list[Finding]:
    since = ctx.now - timedelta(hours=1)
    total, failed = ctx.session.execute(
        select(
            func.count(JobAttempt.id),
            func.coalesce(func.sum((JobAttempt.status == "failed").cast(Integer)), 0),
        ).where(JobAttempt.started_at >= since, JobAttempt.status.in_(_JUDGED))
    ).one()
    total, failed = int(total or 0), int(failed or 0)
    rate = ctx.settings.alert_error_rate
    if total < ctx.settings.alert_min_sample or failed / total <= rate:
        return []
    return [
        Finding(
            "model_errors",
            "high",
            f"{failed} of {total} attempts failed in the last hour ({failed / total:.0%})",
            f"over {rate:.0%} (ECHOPILOT_ALERT_ERROR_RATE); check the model server and key",
        )
    ]


@rule("key_failures", "high", "Many failed dashboard-key attempts in 10 minutes (security).")
def _key_failures(ctx: Context) -> list[Finding]:
    count = (
        ctx.session.scalar(
            select(func.count(AuditLog.id)).where(
                AuditLog.action == "auth.failed", AuditLog.at >= ctx.now - timedelta(minutes=10)
            )
        )
        or 0
    )
    limit = ctx.settings.alert_key_failures
    if count < limit:
        return []
    return [
        Finding(
            "key_failures",
            "high",
            f"{count} failed dashboard-key attempts in 10 minutes",
            "someone may be guessing the key; the activity feed lists the addresses",
        )
    ]


@rule("budget", "warning", "Model spend against ECHOPILOT_DAILY_BUDGET_USD and client budgets.")
def _budget(ctx: Context) -> list[Finding]:
    found = []
    warn_at = Decimal(str(ctx.settings.alert_budget_warn))
    for state in budget.states(ctx.session, ctx.settings, ctx.now):
        if state.limit_micros <= 0 or state.spent_micros < state.limit_micros * warn_at:
            continue
        used = Decimal(state.spent_micros) / state.limit_micros
        stopped = state.spent_micros >= state.limit_micros
        found.append(
            Finding(
                state.key,
                "high" if stopped else "warning",
                f"{state.label}: {used:.0%} used" + ("; new model calls wait" if stopped else ""),
                f"spent {_usd(state.spent_micros)} of {_usd(state.limit_micros)} "
                f"({state.setting}); resumes {state.resets_at:%Y-%m-%d %H:%M} UTC or when raised",
            )
        )
    return found


# The price optimiser's quality hold, judged as the optimiser judges it, so the alert opens
# when a type's QA falls below the floor and resolves when it recovers, whenever it runs.
@rule(
    "optimizer_quality",
    "warning",
    "A task type's average QA over the price optimiser's sample is below "
    "ECHOPILOT_OPTIMIZER_QA_FLOOR (its price is held).",
)
def _optimizer_quality(ctx: Context) -> list[Finding]:
    policy = Policy.from_settings(ctx.settings)
    found = []
    for price_rule in optimizer_data.rules(ctx.session):
        sample = optimizer_data.sample(ctx.session, price_rule.task_type, policy.sample)
        if not is_quality_hold(policy, sample):
            continue
        found.append(
            Finding(
                f"optimizer_quality:{price_rule.task_type}",
                "warning",
                f"task type {price_rule.task_type!r}: average QA {sample.avg_qa or 0:.1f} over "
                f"its last {_count(sample.jobs, 'billed job', 'billed jobs')}",
                f"below {policy.qa_floor:g} (ECHOPILOT_OPTIMIZER_QA_FLOOR): the price optimiser "
                "holds its price rather than raise it; review its recent answers and its "
                "instructions",
            )
        )
    return found


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _usd(micros: int) -> str:
    text = micros_text(abs(micros))
    return ("-$" if micros < 0 else "$") + f"{Decimal(text):.2f}"


# Features register their rules here by being imported (they use `rule` above).
from echopilot.notion import alerting as _notion  # noqa: E402, F401
from echopilot.payments import alerting as _payments  # noqa: E402, F401
