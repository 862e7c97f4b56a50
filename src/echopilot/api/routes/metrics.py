"""/api/metrics-summary and /api/metrics/daily: the KPI cards and the charts."""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.api.schemas import DailyMetrics, MetricsSummary
from echopilot.finance import metrics
from echopilot.runtime import Runtime

router = APIRouter(tags=["metrics"])


class _Cached:
    """The last summary and when it expires: dashboards poll the same figures every few
    seconds, and one computation can serve them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expires = 0.0
        self.data: dict[str, Any] | None = None


@router.get("/metrics-summary", response_model=Envelope[MetricsSummary])
async def metrics_summary(runtime: RuntimeDep, request: Request) -> Response:
    ttl = runtime.settings.metrics_cache_seconds
    if not ttl:
        return await answer(request, lambda: _summary(runtime))
    cache: _Cached | None = getattr(request.app.state, "metrics_cache", None)
    if cache is None:
        cache = request.app.state.metrics_cache = _Cached()

    def cached() -> dict[str, Any]:
        with cache.lock:  # one thread computes; the others wait and reuse it
            if cache.data is None or time.monotonic() >= cache.expires:
                cache.data = _summary(runtime)
                cache.expires = time.monotonic() + ttl
            return cache.data

    return await answer(request, cached)


@router.get("/metrics/daily", response_model=Envelope[DailyMetrics])
async def metrics_daily(
    runtime: RuntimeDep,
    request: Request,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Response:
    def work() -> dict[str, Any]:
        with runtime.sessions() as session:
            data = metrics.daily(session.connection(), days=days)
        data["qa_threshold"] = runtime.settings.qa_threshold
        return data

    return await answer(request, work)


def _summary(runtime: Runtime) -> dict[str, Any]:
    with runtime.sessions() as session:
        return metrics.summary(session.connection())
