"""/api/alerts (open, recent, silences), /api/alerts/trigger, and silences."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from echopilot.alerts import channels, silences
from echopilot.alerts.engine import check
from echopilot.alerts.views import listing
from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.api.schemas import AlertCheckOut, AlertsOut, SilenceOut
from echopilot.runtime import Runtime

router = APIRouter(tags=["alerts"])
ACTOR = "api"


class SilenceIn(BaseModel):
    rule: str = Field(min_length=1, max_length=64)
    duration: str = Field(min_length=1, max_length=16, description="30m, 2h, 1d (at most 30d)")
    reason: str | None = Field(default=None, max_length=500)


@router.get("/alerts", response_model=Envelope[AlertsOut])
async def alerts_list(
    runtime: RuntimeDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200, description="Resolved alerts shown")] = 20,
) -> Response:
    return await answer(request, lambda: listing(runtime, limit=limit))


@router.post("/alerts/trigger", response_model=Envelope[AlertCheckOut])
async def alerts_trigger(runtime: RuntimeDep, request: Request) -> Response:
    """Evaluate every rule now and send what fires or resolves."""
    return await answer(request, lambda: _check(runtime), slow=True)


def _check(runtime: Runtime) -> dict[str, Any]:
    channels.require_valid(runtime.settings)
    return check(runtime, actor=ACTOR)


@router.post("/alerts/silences", response_model=Envelope[SilenceOut])
async def alerts_silence(body: SilenceIn, runtime: RuntimeDep, request: Request) -> Response:
    """Mute a rule for a while; it ends by itself."""

    def act() -> dict[str, Any]:
        silences.check_rule(body.rule, "rule")
        length = silences.parse_duration(body.duration, "duration")
        return silences.silence(runtime, body.rule, length, actor=ACTOR, reason=body.reason)

    return await answer(request, act)


@router.delete("/alerts/silences/{rule}", response_model=Envelope[dict[str, Any]])
async def alerts_unsilence(rule: str, runtime: RuntimeDep, request: Request) -> Response:
    """End a rule's silence now."""

    def act() -> dict[str, Any]:
        silences.check_rule(rule, "rule")
        return {"rule": rule, "lifted": silences.lift(runtime, rule, actor=ACTOR)}

    return await answer(request, act)
