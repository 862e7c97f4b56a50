"""/api/optimizer: the price optimiser's proposal (run it, or read the latest) and rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.finance import optimizer

router = APIRouter(tags=["optimizer"])
ACTOR = "api"


class SampleOut(BaseModel):
    jobs: int
    revenue_usd: str
    cost_usd: str
    margin_pct: str | None
    avg_qa: float | None


class LastDaysOut(BaseModel):
    jobs: int
    billed_usd: str
    at_new_rate_usd: str
    difference_usd: str


class ProposalOut(BaseModel):
    task_type: str
    unit: str
    old_rate_usd: str
    new_rate_usd: str
    change_pct: str
    decision: str = Field(description="raise | modest_raise | hold | quality_hold")
    reason: str
    sample: SampleOut
    last_30d: LastDaysOut = Field(description="The last 30 days' billed jobs re-priced")
    floor_usd: str
    ceiling_usd: str
    alert: str | None = Field(description="The quality alert's key, for a quality hold")


class OptimizerOut(BaseModel):
    dry_run: bool
    applied: list[str] = Field(description="Task types whose new rate was written")
    proposals: list[ProposalOut]
    notes: list[str]
    policy: dict[str, Any] | None = None
    ran_at: str | None
    trigger: str | None = Field(
        default=None, description="latest only: scheduled, catchup or manual"
    )


class RollbackOut(BaseModel):
    task_type: str
    unit: str
    from_rate_usd: str
    to_rate_usd: str
    restored_version: int
    restored_version_at: str | None
    rolled_back_at: str


@router.post("/optimizer/run", response_model=Envelope[OptimizerOut])
async def optimizer_run(
    runtime: RuntimeDep,
    request: Request,
    dry_run: Annotated[bool, Query(description="Propose only; change nothing")] = False,
) -> Response:
    """Propose each task type's rate and, unless a dry run, apply the changes."""
    return await answer(
        request, lambda: optimizer.run_by(runtime, actor=ACTOR, dry_run=dry_run), slow=True
    )


@router.get("/optimizer/latest", response_model=Envelope[OptimizerOut])
async def optimizer_latest(runtime: RuntimeDep, request: Request) -> Response:
    """The last recorded run: the weekly proposal, or a person's apply."""
    return await answer(request, lambda: optimizer.latest(runtime))


@router.post("/optimizer/rollback", response_model=Envelope[RollbackOut])
async def optimizer_rollback(
    runtime: RuntimeDep,
    request: Request,
    task_type: Annotated[
        str, Query(min_length=1, max_length=64, description="The task type to roll back")
    ],
) -> Response:
    """Restore a task type's previous rate (409 when it has none)."""
    return await answer(
        request, lambda: optimizer.rollback(runtime, task_type, actor=ACTOR), slow=True
    )
