"""/health (public, nothing secret) and /api/system (the dashboard's health badges)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from echopilot import __version__
from echopilot.ai.registry import provider_label
from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.api.schemas import Health, SystemStatus
from echopilot.clock import utcnow
from echopilot.db.models import WorkerHeartbeat
from echopilot.queue.liveness import STALE_AFTER, Holder, holder_state
from echopilot.runtime import Runtime

public = APIRouter(tags=["health"])
router = APIRouter(tags=["system"])
# Features later releases add; the dashboard says "not available yet" for those off here.
FEATURES = {
    "scheduler": True,
    "activity": True,
    "self_heal": True,
    "alerts": True,
    "finance": True,
    "optimizer": True,
    "retention": True,
    "reports": True,
    "briefs": True,
    "payments": True,
    "notion": True,
}


def queue_health(runtime: Runtime) -> dict[str, Any]:
    try:
        return {"ok": True, "depth": runtime.queue.depth()}
    except Exception:
        return {"ok": False, "depth": None}


# A checked health is answered again for this long without a look at the database or the
# queue: /health needs no key, and a flood of it must cost the server next to nothing.
HEALTH_REUSE_SECONDS = 1.0


@public.get("/health", response_model=Envelope[Health])
async def health(runtime: RuntimeDep, request: Request) -> Response:
    last: tuple[float, bytes] | None = getattr(request.app.state, "health", None)
    if last is not None and time.monotonic() - last[0] < HEALTH_REUSE_SECONDS:
        return Response(last[1], media_type="application/json")
    answered = await answer(request, lambda: _health(runtime), shed=False)
    request.app.state.health = (time.monotonic(), bytes(answered.body))
    return answered


def _health(runtime: Runtime) -> dict[str, Any]:
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        db = "ok"
    except Exception:
        db = "error"
    queue = queue_health(runtime)
    status = "ok" if db == "ok" and queue["ok"] else "degraded"
    return {"status": status, "version": __version__, "db": db, "queue": queue}


@router.get("/system", response_model=Envelope[SystemStatus])
async def system(runtime: RuntimeDep, request: Request) -> Response:
    return await answer(request, lambda: _system(runtime))


def _system(runtime: Runtime) -> dict[str, Any]:
    with runtime.sessions() as session:
        workers = _live_workers(session)
    settings = runtime.settings
    offline = settings.provider_name == "offline"
    return {
        "provider": settings.provider_name,
        "provider_label": provider_label(settings.provider_name),
        "models": {
            "task": None if offline else settings.model,
            "qa": None if offline else settings.qa_model,
            "escalation": None if offline else settings.escalation_model,
        },
        "database": runtime.engine.dialect.name,
        "queue": queue_health(runtime),
        "workers": workers,
        "features": FEATURES,
    }


def _live_workers(session: Session) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "worker": w.worker,
            "heartbeat_age_s": round((now - w.heartbeat_at).total_seconds(), 1),
            "concurrency": w.concurrency,
            "in_flight": w.in_flight,
        }
        for w in session.scalars(
            select(WorkerHeartbeat)
            .where(WorkerHeartbeat.heartbeat_at >= now - STALE_AFTER)
            .order_by(WorkerHeartbeat.worker)
        )
        # A worker killed on this host is known dead before its heartbeat goes stale.
        if holder_state(w.worker, w.heartbeat_at, now) != Holder.DEAD
    ]
