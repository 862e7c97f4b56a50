"""The scheduler's built-in tasks (each feature adds its own when it lands)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from echopilot import retention
from echopilot.queue.recovery import sweep
from echopilot.scheduler.tasks import TaskContext, TaskDef, register


def _recovery_sweep(ctx: TaskContext) -> dict[str, Any]:
    return sweep(ctx.runtime, now=ctx.now).as_dict()


def _retention(ctx: TaskContext) -> dict[str, Any]:
    return retention.run(ctx.runtime, now=ctx.now, dry_run=False).as_dict()


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
