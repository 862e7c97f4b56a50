"""The scheduler's built-in tasks (each feature adds its own when it lands)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from echopilot import retention
from echopilot.alerts import engine as alerts
from echopilot.briefs import service as briefs
from echopilot.errors import OperationFailed
from echopilot.finance import optimizer
from echopilot.notion import service as notion
from echopilot.payments import reconcile as payments
from echopilot.queue.recovery import sweep
from echopilot.reports import service as reports
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


def _daily_report(ctx: TaskContext) -> dict[str, Any]:
    day = reports.scheduled_day(ctx.slot)
    return reports.make(ctx.runtime, day, actor="scheduler", now=ctx.now)


def _brief(ctx: TaskContext) -> dict[str, Any]:
    return briefs.scheduled(ctx.runtime, slot=ctx.slot, now=ctx.now)


def _optimizer(ctx: TaskContext) -> dict[str, Any]:
    # A proposal for the owner to apply, unless ECHOPILOT_OPTIMIZER_AUTO_APPLY says apply it.
    auto_apply = ctx.runtime.settings.optimizer_auto_apply
    return optimizer.run(ctx.runtime, dry_run=not auto_apply, actor="scheduler", now=ctx.now)


def _payment_reconcile(ctx: TaskContext) -> dict[str, Any]:
    result = payments.run(ctx.runtime, actor="scheduler", now=ctx.now)
    if not result["ok"]:
        # Recorded (the reports' freshness line reads it); the run shows as failed.
        raise OperationFailed(result["error"])
    return result


def _notion_poll(ctx: TaskContext) -> dict[str, Any]:
    return notion.poll(ctx.runtime)


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
register(
    TaskDef(
        name="optimizer",
        func=_optimizer,
        default_schedule="0 6 * * 1",  # Mondays 06:00 UTC
        timeout=timedelta(minutes=30),
        description="Propose task types' prices from QA and margin (applied only with "
        "ECHOPILOT_OPTIMIZER_AUTO_APPLY).",
    )
)
register(
    TaskDef(
        name="daily_report",
        func=_daily_report,
        default_schedule="daily 09:00",
        schedule_from=lambda settings: f"daily {settings.sched_report_utc}",
        timeout=timedelta(minutes=30),
        description="Write the previous UTC day's report (JSON, HTML, CSV) and send its "
        "summary line to the alert channels.",
    )
)
register(
    TaskDef(
        name="brief",
        func=_brief,
        default_schedule="daily 08:00",
        schedule_from=lambda settings: f"daily {settings.sched_brief_utc}",
        timeout=timedelta(minutes=30),
        description="Make the CEO brief (JSON, HTML, Markdown) and email it to ALERT_TO, "
        "with a short version to the alert channels.",
    )
)
register(
    TaskDef(
        name="payment_reconcile",
        func=_payment_reconcile,
        default_schedule="every 15m",
        schedule_from=lambda settings: "every 15m" if settings.payments_enabled else "off",
        timeout=timedelta(minutes=10),
        description="Apply Stripe events the webhook missed and make payment links that "
        "are still pending (when STRIPE_SECRET_KEY is set).",
    )
)
register(
    TaskDef(
        name="notion_poll",
        func=_notion_poll,
        default_schedule="every 60s",
        schedule_from=lambda settings: (
            f"every {settings.notion_poll_seconds}s" if settings.notion_enabled else "off"
        ),
        timeout=timedelta(minutes=10),
        run_at_start=True,  # the schema check at start: a broken database is named at once
        description="Take ticked pages of the Notion queue as jobs and write jobs back to "
        "their pages (when NOTION_TOKEN and NOTION_QUEUE_DB_ID are set).",
    )
)
