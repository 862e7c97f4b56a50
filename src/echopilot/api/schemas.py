"""Request and response bodies of the API (the job object matches the CLI's --json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class JobCreate(BaseModel):
    # Empty or blank name and input are refused by intake's validation, with the CLI's
    # words ("input: must not be empty"). Numbers are strict: true, 1.0 and "1" are no ints.
    name: str = Field(max_length=200)
    task_type: str = Field(min_length=1, max_length=64)
    input: str
    client: str | None = Field(default=None, max_length=320, description="Client email")
    qa_target: int | None = Field(default=None, ge=0, le=100, strict=True)
    priority: int = Field(default=0, ge=-100, le=100, strict=True)


class JobOut(BaseModel):
    id: int
    name: str
    task_type: str
    status: str
    priority: int
    source: str
    client: str | None
    attempts: int
    max_attempts: int
    qa_score: float | None
    qa_threshold: int | None
    qa_target: int | None
    qa_breakdown: dict[str, float] | None
    qa_note: str | None
    model: str | None
    provider: str | None
    answer_path: str | None
    tokens_in: int
    tokens_out: int
    cost_usd: str | None = Field(description="Decimal USD; null when a model's price is unknown")
    cost_known_usd: str
    unpriced_models: list[str]
    price_usd: str | None
    payment_status: str = Field(
        description="na (not billed), not_configured, link_pending, unpaid, payment_failed, "
        "paid, partially_refunded, refunded, disputed or dispute_lost"
    )
    payment_link: str | None = Field(default=None, description="The Stripe payment link")
    error: str | None
    error_kind: str | None
    retry_at: str | None
    hold_reason: str | None = Field(
        default=None, description="Why a waiting job is not started (a spending limit)"
    )
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_ms: int | None


class AttemptOut(BaseModel):
    n: int
    status: str
    model: str | None
    tokens_in: int
    tokens_out: int
    cost_usd: str
    latency_ms: int | None
    error: str | None
    error_kind: str | None
    worker: str | None
    calls: list[dict[str, Any]]
    started_at: str | None
    finished_at: str | None


class JobDetail(JobOut):
    input: str = Field(
        description="The job's input: its first 4,000 characters unless "
        "full_input=true was asked for"
    )
    input_chars: int = Field(description="Length of the whole input")
    input_truncated: bool
    result: str | None
    attempt_log: list[AttemptOut]


class RejectBody(BaseModel):
    reason: str | None = Field(default=None, max_length=500, description="Why it was rejected")


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page")


MONEY_RULE = (
    "Money is exact: prices are summed in integer cents and shown with 2 decimals, model "
    "costs in integer micro-dollars shown with 6; profit = revenue - cost to the "
    "micro-dollar. Margin % (profit / revenue) is rounded to 0.1 and ROI (profit / cost) to "
    "0.01, halves to even; null when the divisor is 0."
)


class MetricsSummary(BaseModel):
    """The KPI cards: jobs that finished in the last 7 days (UTC, to the second)."""

    model_config = {"json_schema_extra": {"description": MONEY_RULE}}

    window_days: int
    jobs_7d: int = Field(description="Jobs that finished in the window, however they ended")
    submitted_7d: int = Field(description="Jobs submitted in the window")
    revenue_7d: str = Field(description="Price of the billable jobs done in the window, USD")
    cost_7d: str = Field(description="Model cost of every attempt of those jobs, USD")
    profit_7d: str
    margin_7d_pct: str | None
    roi_7d: str | None
    avg_qa_7d: float | None
    finished_7d: int = Field(description="Jobs done, needing review or dead in the window")
    failure_rate_7d_pct: float | None = Field(description="Dead jobs among finished_7d")
    p50_latency_ms_7d: int | None
    p95_latency_ms_7d: int | None
    unpriced_jobs_7d: int = Field(description="Jobs that used a model with no known price")
    jobs_by_status: dict[str, int]
    as_of: str


class DailyRow(BaseModel):
    day: str
    jobs: dict[str, int] = Field(description="Jobs that finished that UTC day, by how they ended")
    submitted: int
    avg_qa: float | None
    revenue: str
    revenue_paid: str
    cost: str
    profit: str
    margin_pct: str | None
    latency_p50_ms: int | None
    latency_p95_ms: int | None


class FinanceWindow(BaseModel):
    days: int
    from_: str = Field(alias="from")
    to: str
    jobs: int
    submitted: int
    done: int
    needs_review: int
    dead: int
    cancelled: int
    billed_jobs: int
    revenue: str
    revenue_paid: str = Field(
        description="Money that came in during the window net of refunds and disputes, USD"
    )
    payments: dict[str, str] = Field(
        description="USD that moved in the window: received, refunded, disputed (held or "
        "lost), reinstated (disputes won) and net"
    )
    cost: str
    profit: str
    margin_pct: str | None
    roi: str | None
    avg_qa: float | None
    failure_rate_pct: float | None
    unpriced_jobs: int
    unpriced_models: list[dict[str, Any]]
    latency: dict[str, int | None]
    breakdown: dict[str, list[dict[str, Any]]] = Field(
        description="By task_type, client and model: the same figures per key"
    )


class FinanceMetrics(BaseModel):
    """Finance over every job of each window, by finish time (UTC)."""

    model_config = {"json_schema_extra": {"description": MONEY_RULE}}

    as_of: str
    windows: dict[str, FinanceWindow]
    owed: dict[str, Any] = Field(
        description="Billed and not paid, over all history: jobs, amount, and ageing by "
        "days since the job finished (0_7d, 8_30d, over_30d)"
    )
    revenue_7d: str | None = None
    revenue_30d: str | None = None
    cost_7d: str | None = None
    cost_30d: str | None = None
    profit_7d: str | None = None
    profit_30d: str | None = None
    roi_7d: str | None = None
    roi_30d: str | None = None
    jobs_7d: int | None = None
    jobs_30d: int | None = None
    notes: list[str]


class DailyMetrics(BaseModel):
    days: list[DailyRow]
    qa_threshold: int


class QueueHealth(BaseModel):
    ok: bool
    depth: int | None


class Health(BaseModel):
    status: str
    version: str
    db: str
    queue: QueueHealth


class WorkerOut(BaseModel):
    worker: str
    heartbeat_age_s: float
    concurrency: int
    in_flight: int


class SystemStatus(BaseModel):
    provider: str
    provider_label: str
    models: dict[str, str | None]
    database: str
    queue: QueueHealth
    workers: list[WorkerOut]
    features: dict[str, bool]


class RunOut(BaseModel):
    """One scheduled task run (also each task's `last_run` in the automations status)."""

    id: int
    task: str
    slot: str
    trigger: str
    status: str
    started_at: str
    finished_at: str | None
    duration_ms: int | None
    summary: dict[str, Any] | None
    error: str | None
    note: str | None
    host: str
    pid: int


class ScheduleRow(BaseModel):
    task: str
    schedule: str
    catchup: str
    description: str
    next_run: str | None
    last_run: RunOut | None


class SchedulerInstanceOut(BaseModel):
    host: str
    pid: int
    started_at: str
    heartbeat_age_s: float


class AutomationsStatus(BaseModel):
    running: bool
    paused: bool
    pid: int | None
    host: str | None
    instances: list[SchedulerInstanceOut]
    uptime_s: int | None
    heartbeat_age_s: float | None
    daemon_pid: int | None
    stopped_by_cli: bool = Field(
        description="This home's scheduler was stopped with `echopilot scheduler stop`"
    )
    schedule: list[ScheduleRow]


class ControlResult(BaseModel):
    action: str
    status: AutomationsStatus


class RetentionPattern(BaseModel):
    pattern: str
    kept: int
    deleted: int
    bytes_freed: int
    unstamped: int
    errors: list[str]
    would_delete: list[str]


class RetentionOut(BaseModel):
    dry_run: bool
    keep: int
    patterns: list[RetentionPattern]
    rows: dict[str, int]
    row_cutoff: str
    deleted: int
    bytes_freed: int
    errors: int


class SelfHealOut(BaseModel):
    dry_run: bool
    retried_count: int
    retried: list[int]
    recovered_stuck: int
    recovered: list[int]
    enqueued_orphans: int
    dead: int = Field(description="Jobs this run made dead (permanent error, out of attempts)")
    dead_jobs: list[dict[str, Any]]
    dead_last_24h: list[dict[str, Any]]
    waiting_backoff: int
    eligible_unpaid: list[dict[str, Any]]
    needs_review_waiting: list[dict[str, Any]]
    worker_restart_suggested: bool
    live_workers: int
    jobs_waiting: int
    pruned_heartbeats: int
    notes: list[str]


class AlertFinding(BaseModel):
    key: str
    severity: str
    title: str
    detail: str
    since: str | None


class AlertSent(BaseModel):
    key: str
    kind: str
    channels: dict[str, str]


class AlertCheckOut(BaseModel):
    checked_at: str
    rules: list[str]
    firing: list[AlertFinding]
    opened: list[str]
    resolved: list[str]
    silenced: list[str]
    sent: list[AlertSent]
    target: str = Field(description='"channels", or "log" when no channel is configured')
    channels: list[str]
    channel_problems: list[str]
    rule_errors: list[dict[str, str]]


class AlertOut(BaseModel):
    id: int
    key: str
    rule: str
    severity: str
    status: str
    title: str
    detail: str | None
    since: str | None
    age_s: int
    first_seen_at: str | None
    last_seen_at: str | None
    count: int
    last_sent_at: str | None
    resolved_at: str | None
    channels: dict[str, Any]
    send_pending: bool


class SilenceOut(BaseModel):
    id: int
    rule: str
    until: str | None
    reason: str | None
    created_by: str
    created_at: str


class AlertsOut(BaseModel):
    open: list[AlertOut]
    recent: list[AlertOut]
    silences: list[SilenceOut]
    rules: list[dict[str, str]]
    last_check_at: str | None
    target: str
    channels: list[str]
    channel_problems: list[str]
