"""The scheduler's built-in tasks (each feature adds its own when it lands)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from echopilot import retention
from echopilot.alerts import engine as alerts
from echopilot.queue.recovery import sweep
from echopilot.scheduler.tasks import TaskContext, TaskDef, register
from echopilot.selfheal import heal


def _recovery_sweep(ctx: TaskContext) -> dict[str, Any]:
    return sweep(ctx.runtime, now=ctx.now).as_dict()


def _retention(ctx: TaskContext) -> dict[str, Any]:
    return retention.run(ctx.runtime, now=ctx.now, dry_run=False).as_dict()


def _self_heal(ctx: TaskContext) -> dict[str, Any]:
    return heal.run(ctx.runtime, now=ctx.now).as_dict()


def _alert_check(ctx: TaskContext) -> dict[str, Any]:
    return alerts.check(ctx.runtime, now=ctx.now, actor="scheduler")


register(
    TaskDef(
        name="recovery_sweep",
        func=_recovery_sweep,
        default_schedule="every 1m",
        timeout=timedelta(minutes=2),
        description="Re-enqueue stuck and orphaned jobs.",
    )
)
register(
    TaskDef(
        name="retention",
        func=_retention,
        default_schedule="daily 03:00",
        timeout=timedelta(minutes=30),
        run_at_start=True,
        description="Keep the newest report files and prune old operational rows.",
    )
)
register(
    TaskDef(
        name="self_heal",
        func=_self_heal,
        default_schedule="every 6h",
        schedule_from=lambda settings: f"every {settings.sched_selfheal_every_hours}h",
        timeout=timedelta(minutes=30),
        run_at_start=True,
        description="Re-queue stuck and failed jobs, end hopeless ones, list follow-ups.",
    )
)
register(
    TaskDef(
        name="alert_check",
        func=_alert_check,
        default_schedule="every 15m",
        timeout=timedelta(minutes=10),
        description="Evaluate the alert rules and notify once per incident.",
    )
)
