"""/api/notion: the Notion connector's status, its check, and a poll now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.clock import utcnow
from echopilot.notion import service

router = APIRouter(prefix="/notion", tags=["notion"])
ACTOR = "api"
# An HTTP caller should not wait out Notion's whole lag: the next poll confirms the rest.
SYNC_BUDGET_SECONDS = 15.0


class NotionStatus(BaseModel):
    enabled: bool
    status: str = Field(description="on | off | stopped")
    reason: str | None
    checked_at: str | None
    polled_at: str | None
    poll_error: str | None
    pages_taken: int
    pages_taken_24h: int
    pending_writes: int = Field(description="Writes Notion did not show in time (retried)")
    verifying_writes: int = Field(description="Writes being read back now")
    unseen_writes_total: int
    worst_lag_seconds_24h: float | None
    joblog: bool
    poll_every_seconds: int
    confirm_seconds: int


class NotionCheck(BaseModel):
    ok: bool
    status: str
    problems: list[str]
    checked_at: str | None = None
    queue: dict[str, Any] | None = None
    joblog: dict[str, Any] | None = None


class NotionSync(BaseModel):
    ok: bool
    seen: int
    taken: int
    jobs: list[int]
    refused: list[dict[str, str]]
    already_taken: int
    written: int
    confirmed: int
    went_pending: int
    joblog_rows: int
    worst_lag_seconds: float | None
    errors: list[str]
    requests: int


@router.get("/status", response_model=Envelope[NotionStatus])
async def notion_status(runtime: RuntimeDep, request: Request) -> Response:
    """State (on, off, stopped and why), last poll, pages taken, pending write-backs and
    the worst read-after-write lag of the last 24 hours."""
    return await answer(request, lambda: service.status(runtime, now=utcnow()))


@router.post("/check", response_model=Envelope[NotionCheck])
async def notion_check(runtime: RuntimeDep, request: Request) -> Response:
    """Check the token and the databases' properties now; a stopped connector that passes
    is on again. `ok: false` lists each problem (a property named, with the type it needs)."""
    return await answer(request, lambda: service.check(runtime, actor=ACTOR), slow=True)


@router.post("/sync", response_model=Envelope[NotionSync])
async def notion_sync(runtime: RuntimeDep, request: Request) -> Response:
    """Poll now: take ticked pages, write jobs back (pending writes too), and read the
    writes back for up to 15 s (the scheduled poll confirms the rest). 502 when Notion
    could not be read; 409 when the connector is off or stopped."""
    return await answer(
        request,
        lambda: service.sync_by(runtime, actor=ACTOR, budget=SYNC_BUDGET_SECONDS),
        slow=True,
    )
