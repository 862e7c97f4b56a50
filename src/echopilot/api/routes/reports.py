"""/api/reports/daily: make a day's report, read the newest, list the recent ones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.clock import utcnow
from echopilot.reports import service
from echopilot.reports.day import choose

router = APIRouter(prefix="/reports", tags=["reports"])
ACTOR = "api"


class LateSource(BaseModel):
    source: str = Field(description="day | jobs | payments")
    detail: str
    count: int | None


class DailyReportRun(BaseModel):
    date: str
    summary_line: str = Field(description='"Jobs N | QA x % | ROI y | Retries z"')
    cutoff: str
    generated_at: str
    day_complete: bool
    late_sources: list[LateSource]
    paths: dict[str, str] = Field(description="The files written: json, html, csv")
    replaced: bool = Field(description="Whether the day had a report, now replaced")
    target: str = Field(description="channels, or log when no alert channel is set")
    sent: dict[str, str] = Field(description='Per channel: "ok" or why it failed')


class DailyReportListed(BaseModel):
    date: str | None
    summary_line: str | None
    cutoff: str | None
    generated_at: str | None
    day_complete: bool | None
    late_sources: list[LateSource]


class DailyReportList(BaseModel):
    reports: list[DailyReportListed]


@router.post("/daily", response_model=Envelope[DailyReportRun])
async def daily_report(
    runtime: RuntimeDep,
    request: Request,
    date: Annotated[
        str | None,
        Query(
            max_length=32,
            description="The UTC day, YYYY-MM-DD, not in the future; default yesterday",
        ),
    ] = None,
) -> Response:
    """Write the day's report (JSON, HTML, CSV; replacing that day's earlier one) and send
    its summary line to the alert channels."""

    def work() -> dict[str, Any]:
        day = choose(date, utcnow())  # 422 naming `date`, before anything is written
        return service.run_by(runtime, actor=ACTOR, day=day)

    return await answer(request, work, slow=True)


@router.get("/daily/latest", response_model=Envelope[dict[str, Any]])
async def daily_report_latest(runtime: RuntimeDep, request: Request) -> Response:
    """The newest day's report, the whole JSON document (404 when there is none yet)."""
    return await answer(request, lambda: service.latest(runtime))


@router.get("/daily", response_model=Envelope[DailyReportList])
async def daily_reports(
    runtime: RuntimeDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=service.LISTED_AT_MOST)] = 10,
) -> Response:
    """The newest reports' days, summary lines, cut-offs and late sources (newest first)."""
    return await answer(request, lambda: service.listing(runtime, limit=limit))
