"""/api/retention/run: prune old report files and operational rows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from echopilot import retention
from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope, ok
from echopilot.api.schemas import RetentionOut

router = APIRouter(prefix="/retention", tags=["retention"])


@router.post("/run", response_model=Envelope[RetentionOut])
def retention_run(
    runtime: RuntimeDep,
    dry_run: Annotated[bool, Query(description="Report only; delete nothing")] = False,
) -> dict[str, Any]:
    return ok(retention.run_by(runtime, actor="api", dry_run=dry_run))
