"""/api/metrics-summary and /api/metrics/daily: the KPI cards and the charts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from echopilot import metrics
from echopilot.api.deps import RuntimeDep, SessionDep
from echopilot.api.envelope import Envelope, ok
from echopilot.api.schemas import DailyMetrics, MetricsSummary

router = APIRouter(tags=["metrics"])


@router.get("/metrics-summary", response_model=Envelope[MetricsSummary])
def metrics_summary(session: SessionDep) -> dict[str, Any]:
    return ok(metrics.summary(session))


@router.get("/metrics/daily", response_model=Envelope[DailyMetrics])
def metrics_daily(
    session: SessionDep,
    runtime: RuntimeDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    data = metrics.daily(session, days=days)
    data["qa_threshold"] = runtime.settings.qa_threshold
    return ok(data)
