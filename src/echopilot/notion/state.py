"""The connector's state row: on, off or stopped, and why; what the last check found."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from echopilot.db.models import NotionState
from echopilot.notion.schema import Layout

ON, OFF, STOPPED = "on", "off", "stopped"
ROW = 1


def load(session: Session, now: datetime) -> NotionState:
    """The state row, made (off, not checked yet) when there is none."""
    found = session.get(NotionState, ROW, with_for_update=True)
    if found is None:
        found = NotionState(
            id=ROW, status=OFF, reason="not checked yet", changed_at=now, properties={}
        )
        session.add(found)
        session.flush()
    return found


def peek(session: Session) -> NotionState | None:
    return session.get(NotionState, ROW)


def change(state: NotionState, status: str, reason: str | None, now: datetime) -> None:
    if state.status != status or state.reason != reason:
        state.status, state.reason, state.changed_at = status, reason, now


def layouts(state: NotionState) -> tuple[Layout | None, Layout | None]:
    """The queue's and the Job Log's layouts from the last passing check."""
    return _layout(state.properties.get("queue")), _layout(state.properties.get("joblog"))


def _layout(raw: Any) -> Layout | None:
    if not isinstance(raw, dict):
        return None
    return Layout(title=str(raw["title"]), types={str(k): str(v) for k, v in raw["types"].items()})
