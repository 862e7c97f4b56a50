"""/api/self-heal: put stuck and failed jobs right, list what needs a person."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.api.schemas import SelfHealOut
from echopilot.selfheal.heal import run_by

router = APIRouter(tags=["self-heal"])
ACTOR = "api"


@router.post("/self-heal", response_model=Envelope[SelfHealOut])
async def self_heal(
    runtime: RuntimeDep,
    request: Request,
    dry_run: Annotated[bool, Query(description="Report only; change nothing")] = False,
) -> Response:
    return await answer(request, lambda: run_by(runtime, actor=ACTOR, dry_run=dry_run), slow=True)
