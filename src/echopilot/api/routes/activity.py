"""/api/activity: the newest audit entries and scheduler runs, merged, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.db.models import AuditLog, ScheduleRun

router = APIRouter(tags=["activity"])


class ActivityItem(BaseModel):
    at: str
    actor: str
    action: str
    target: str | None
    kind: str  # audit | run


class Activity(BaseModel):
    items: list[ActivityItem]


@router.get("/activity", response_model=Envelope[Activity])
async def activity(
    runtime: RuntimeDep, request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> Response:
    def work() -> dict[str, Any]:
        with runtime.sessions() as session:
            return _activity(session, limit)

    return await answer(request, work)


def _activity(session: Session, limit: int) -> dict[str, Any]:
    audits = session.scalars(select(AuditLog).order_by(AuditLog.at.desc()).limit(limit))
    runs = session.scalars(
        select(ScheduleRun)
        .where(ScheduleRun.status != "skipped")
        .order_by(ScheduleRun.started_at.desc())
        .limit(limit)
    )
    items = [
        {
            "at": a.at.isoformat(),
            "actor": a.actor,
            "action": a.action,
            "target": a.target,
            "kind": "audit",
        }
        for a in audits
    ] + [
        {
            "at": (r.finished_at or r.started_at).isoformat(),
            "actor": "scheduler",
            "action": f"{r.task} {r.status}",
            "target": f"{r.trigger} slot {r.slot:%Y-%m-%d %H:%M:%S}",
            "kind": "run",
        }
        for r in runs
    ]
    items.sort(key=lambda item: str(item["at"]), reverse=True)
    return {"items": items[:limit]}
