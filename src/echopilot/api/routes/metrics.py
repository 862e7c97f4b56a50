"""/api/metrics-summary and /api/metrics/daily: the KPI cards and the charts."""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from echopilot import metrics
from echopilot.api.deps import RuntimeDep, SessionDep
from echopilot.api.envelope import Envelope, ok
from echopilot.api.schemas import DailyMetrics, MetricsSummary

router = APIRouter(tags=["metrics"])


class _Cached:
    """The last summary and when it expires: dashboards poll the same figures every few
    seconds, and one computation can serve them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expires = 0.0
        self.data: dict[str, Any] | None = None


@router.get("/metrics-summary", response_model=Envelope[MetricsSummary])
def metrics_summary(session: SessionDep, runtime: RuntimeDep, request: Request) -> dict[str, Any]:
    ttl = runtime.settings.metrics_cache_seconds
    if not ttl:
        return ok(metrics.summary(session))
    cache: _Cached | None = getattr(request.app.state, "metrics_cache", None)
    if cache is None:
        cache = request.app.state.metrics_cache = _Cached()
    with cache.lock:  # one thread computes; the others wait and reuse it
        if cache.data is None or time.monotonic() >= cache.expires:
            cache.data = metrics.summary(session)
            cache.expires = time.monotonic() + ttl
        return ok(cache.data)


@router.get("/metrics/daily", response_model=Envelope[DailyMetrics])
def metrics_daily(
    session: SessionDep,
    runtime: RuntimeDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    data = metrics.daily(session, days=days)
    data["qa_threshold"] = runtime.settings.qa_threshold
    return ok(data)
