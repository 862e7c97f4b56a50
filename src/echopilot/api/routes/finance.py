"""/api/finance-metrics: revenue, cost, profit, margin and ROI by window and breakdown."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.api.schemas import FinanceMetrics
from echopilot.finance import metrics

router = APIRouter(tags=["finance"])


@router.get("/finance-metrics", response_model=Envelope[FinanceMetrics])
async def finance_metrics(
    runtime: RuntimeDep,
    request: Request,
    days: Annotated[
        int | None,
        Query(
            ge=1,
            le=metrics.MAX_DAYS,
            description="One window of this many days instead of 7 and 30",
        ),
    ] = None,
) -> Response:
    def work() -> dict[str, Any]:
        with runtime.engine.connect() as conn:
            return metrics.finance(conn, days=metrics.WINDOWS if days is None else (days,))

    return await answer(request, work)
