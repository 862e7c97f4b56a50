"""/api/retention/run: prune old report files and operational rows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from echopilot import retention
from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.api.schemas import RetentionOut

router = APIRouter(prefix="/retention", tags=["retention"])


@router.post("/run", response_model=Envelope[RetentionOut])
async def retention_run(
    runtime: RuntimeDep,
    request: Request,
    dry_run: Annotated[bool, Query(description="Report only; delete nothing")] = False,
) -> Response:
    return await answer(
        request, lambda: retention.run_by(runtime, actor="api", dry_run=dry_run), slow=True
    )
