"""/metrics in the Prometheus text format, computed from the database at scrape time.

Counters are sums over rows that retention never deletes (attempts, done jobs), so they
only grow, as Prometheus expects; `demo reset` removing demo rows reads as a counter reset.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import case, func, select

from echopilot.api.pool import in_pool
from echopilot.clock import utcnow
from echopilot.db.models import (
    FinanceDaily,
    Job,
    JobAttempt,
    SchedulerInstance,
    WorkerHeartbeat,
)
from echopilot.jobs.status import Status
from echopilot.runtime import Runtime

router = APIRouter(tags=["metrics"])
LATENCY_BUCKETS_S = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class DatabaseCollector:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        with self.runtime.sessions() as session:
            jobs = GaugeMetricFamily("echopilot_jobs", "Jobs by status", labels=["status"])
            counts = {
                status: count
                for status, count in session.execute(
                    select(Job.status, func.count()).group_by(Job.status)
                )
            }
            for status in Status:
                jobs.add_metric([status.value], counts.get(status.value, 0))
            yield jobs

            depth = GaugeMetricFamily("echopilot_queue_depth", "Messages waiting in the queue")
            try:
                depth.add_metric([], self.runtime.queue.depth())
            except Exception:
                depth.add_metric([], float("nan"))
            yield depth

            bounds = [int(b * 1000) for b in LATENCY_BUCKETS_S]
            row = session.execute(
                select(
                    *[func.count(case((JobAttempt.latency_ms <= b, 1))) for b in bounds],
                    func.count(JobAttempt.latency_ms),
                    func.coalesce(func.sum(JobAttempt.latency_ms), 0),
                )
            ).one()
            buckets = [(str(b), int(row[i])) for i, b in enumerate(LATENCY_BUCKETS_S)]
            buckets.append(("+Inf", int(row[len(bounds)])))
            yield HistogramMetricFamily(
                "echopilot_attempt_latency_seconds",
                "Latency of finished job attempts",
                buckets=buckets,
                sum_value=int(row[-1]) / 1000,
            )

            cost = session.scalar(select(func.coalesce(func.sum(JobAttempt.cost_micros), 0)))
            yield CounterMetricFamily(
                "echopilot_cost_usd",
                "Model spend of all attempts",
                value=int(cost or 0) / 1_000_000,
            )
            revenue = session.scalar(  # the roll-ups: no scan of every job per scrape
                select(func.coalesce(func.sum(FinanceDaily.billed_cents), 0)).where(
                    FinanceDaily.dim == "all"
                )
            )
            yield CounterMetricFamily(
                "echopilot_revenue_usd",
                "Price of jobs done and billed",
                value=int(revenue or 0) / 100,
            )

            newest = session.scalar(select(func.max(WorkerHeartbeat.heartbeat_at)))
            age = GaugeMetricFamily(
                "echopilot_worker_heartbeat_age_seconds",
                "Seconds since the freshest worker heartbeat",
            )
            age.add_metric([], (utcnow() - newest).total_seconds() if newest else float("nan"))
            yield age

            beat = session.scalar(select(func.max(SchedulerInstance.heartbeat_at)))
            sched = GaugeMetricFamily(
                "echopilot_scheduler_heartbeat_age_seconds",
                "Seconds since the freshest scheduler heartbeat",
            )
            sched.add_metric([], (utcnow() - beat).total_seconds() if beat else float("nan"))
            yield sched


@router.get(
    "/metrics",
    include_in_schema=True,
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
)
async def prometheus_metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.prometheus
    text = await in_pool(request, lambda: generate_latest(registry), shed=False)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
