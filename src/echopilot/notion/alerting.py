"""The Notion alert rules (registered with the alert engine's rules): the connector stopped
or off because of the databases, and write-backs Notion has not shown."""

from __future__ import annotations

from sqlalchemy import func, select

from echopilot.alerts.rules import Context, Finding, rule
from echopilot.clock import as_utc
from echopilot.db.models import NotionPage
from echopilot.notion import state as st


@rule(
    "notion_stopped",
    "high",
    "The Notion connector is stopped (Notion refused the token or a database) or off "
    "because a database lacks a property: no task is taken from the queue.",
)
def _stopped(ctx: Context) -> list[Finding]:
    if not ctx.settings.notion_enabled:
        return []
    row = st.peek(ctx.session)
    if row is None or row.status == st.ON or (row.checked_at is None and row.status == st.OFF):
        return []
    fix = (
        "fix it, then run `echopilot notion check`"
        if row.status == st.STOPPED
        else "fix the database; the next poll turns the connector back on"
    )
    return [
        Finding(
            "notion_stopped",
            "high",
            f"Notion connector {row.status}",
            f"{row.reason or 'no reason recorded'}; {fix}",
            since=as_utc(row.changed_at),
        )
    ]


@rule(
    "notion_writes_pending",
    "warning",
    "Results written to Notion that Notion has not shown within the confirm limit.",
)
def _pending(ctx: Context) -> list[Finding]:
    if not ctx.settings.notion_enabled:
        return []
    count, oldest = ctx.session.execute(
        select(func.count(), func.min(NotionPage.pending_since)).where(
            NotionPage.pending_since.is_not(None), NotionPage.settled.is_(False)
        )
    ).one()
    if not count:
        return []
    return [
        Finding(
            "notion_writes_pending",
            "warning",
            f"{count} Notion write-back{'s' if count != 1 else ''} not shown by Notion",
            f"not seen within {ctx.settings.notion_confirm_seconds} s of the write; self-heal "
            "sends them again, or run `echopilot notion sync`",
            since=as_utc(oldest),
        )
    ]
