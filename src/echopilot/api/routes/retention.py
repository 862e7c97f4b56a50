"""/api/retention/run: prune old report files and operational rows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from echopilot import audit, retention
from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope, ok
from echopilot.api.schemas import RetentionOut
from echopilot.db.engine import write_session

router = APIRouter(prefix="/retention", tags=["retention"])


@router.post("/run", response_model=Envelope[RetentionOut])
def retention_run(
    runtime: RuntimeDep,
    dry_run: Annotated[bool, Query(description="Report only; delete nothing")] = False,
) -> dict[str, Any]:
    result = retention.run(runtime, dry_run=dry_run).as_dict()
    if not dry_run:
        with write_session(runtime.sessions) as session:
            audit.record(
                session,
                actor="api",
                action="retention.run",
                details={k: result[k] for k in ("deleted", "bytes_freed", "errors")},
            )
    return ok(result)
