"""The system of record. Money columns are integers: cost in micro-USD, prices in cents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from echopilot.clock import ensure_utc, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; EchoPilot stores timezone-aware UTC only")
        value = ensure_utc(value)
        # SQLite compares timestamps as text: store one fixed format without an offset.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else ensure_utc(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # {task_type: rate in micro-USD}; replaces the price rule's rate for this client.
    rate_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Limit on model spend per UTC month (jobs wait once it is used up); None: no limit.
    monthly_budget_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskType(Base):
    """What kinds of work EchoPilot sells; a job's task_type must name one."""

    __tablename__ = "task_types"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text)
    # None: the global ECHOPILOT_QA_THRESHOLD applies.
    qa_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PriceRule(Base):
    __tablename__ = "price_rules"

    task_type: Mapped[str] = mapped_column(ForeignKey("task_types.name"), primary_key=True)
    unit: Mapped[str] = mapped_column(String(20))  # flat | per_minute | per_1k_tokens
    rate_micros: Mapped[int] = mapped_column(BigInteger)
    min_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PriceRuleHistory(Base):
    __tablename__ = "price_rule_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_type: Mapped[str] = mapped_column(String(64), index=True)
    unit: Mapped[str] = mapped_column(String(20))
    rate_micros: Mapped[int] = mapped_column(BigInteger)
    min_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_retry", "status", "retry_at"),
        Index("ix_jobs_status_lease", "status", "lease_until"),
        Index("ix_jobs_created", "created_at", "task_type", "client_id"),
        Index("ix_jobs_type_finished", "task_type", "finished_at"),
        # Billed jobs by payment status, newest finished first (payments list and counts).
        Index("ix_jobs_payment_status", "payment_status", "finished_at", "id"),
        # Everything a finance window reads of the jobs in its partial hours (with
        # unpriced_models: a key column on SQLite, INCLUDEd on PostgreSQL; migration 0007).
        Index(
            "ix_jobs_finished_cover",
            "finished_at",
            "status",
            "price_cents",
            "qa_score",
            "duration_ms",
            "payment_status",
            "cost_micros",
            "task_type",
            "client_id",
            "model",
            postgresql_include=["unpriced_models"],
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    task_type: Mapped[str] = mapped_column(ForeignKey("task_types.name"))
    input: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    qa_target: Mapped[int | None] = mapped_column(Integer, nullable=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), nullable=True)
    source: Mapped[str] = mapped_column(String(20), default="api")
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, index=True)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Attempts that ended because their worker died (kill -9, crash); counted apart from
    # model failures, against ECHOPILOT_MAX_LOST_LEASES.
    lost_leases: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    retry_at: Mapped[datetime | None] = mapped_column(nullable=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(nullable=True)

    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    qa_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    qa_breakdown: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    qa_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    qa_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    provider: Mapped[str | None] = mapped_column(String(20), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    answer_path: Mapped[str | None] = mapped_column(String(20), nullable=True)
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    # Models whose price is unknown: their calls are in tokens but not in cost_micros.
    unpriced_models: Mapped[list[Any]] = mapped_column(default=list)
    price_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    payment_status: Mapped[str] = mapped_column(String(20), default="na")
    payment_link: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # Why a runnable job is not started (a spending limit used up); cleared when claimed.
    hold_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobAttempt(Base):
    __tablename__ = "job_attempts"
    __table_args__ = (
        UniqueConstraint("job_id", "n"),
        Index("ix_job_attempts_started_cost", "started_at", "cost_micros"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    n: Mapped[int] = mapped_column(Integer)
    # running | ok | needs_review | failed | lost | handed_back | discarded
    status: Mapped[str] = mapped_column(String(20), default="running")
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    # One entry per model call: stage, model, tokens, cost, latency.
    calls: Mapped[list[Any]] = mapped_column(default=list)
    latency_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class JobEvent(Base):
    """Every status change of a job, written by the state machine and nothing else."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    concurrency: Mapped[int] = mapped_column(Integer)
    in_flight: Mapped[int] = mapped_column(Integer, default=0)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ScheduleRun(Base):
    """One run of a scheduled task. (task, slot) is unique: that row is the claim."""

    __tablename__ = "schedule_runs"
    __table_args__ = (
        UniqueConstraint("task", "slot", name="uq_schedule_runs_task_slot"),
        Index("ix_schedule_runs_status", "status"),
        Index("ix_schedule_runs_task_started", "task", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    slot: Mapped[datetime] = mapped_column()
    trigger: Mapped[str] = mapped_column(String(20))  # scheduled | catchup | startup | manual
    # running | ok | failed | abandoned | skipped
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    summary: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    scheduler_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class SchedulerInstance(Base):
    """A scheduler process; its heartbeat tells the others (and status) that it lives."""

    __tablename__ = "scheduler_instances"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SchedulerState(Base):
    """One row: whether the automations are paused (survives restarts)."""

    __tablename__ = "scheduler_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class KeyFailure(Base):
    """Failed dashboard-key attempts of one client address, shared by every API process:
    `failures` within the window that began at `window_started_at`, and the lock-out."""

    __tablename__ = "key_failures"

    client: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column()
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    last_failure_at: Mapped[datetime] = mapped_column(index=True)


class Alert(Base):
    """One incident of an alert rule's condition: open while it holds, then resolved.
    Only one alert per key is open at a time (the partial unique index)."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_open_key",
            "key",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))  # rule[:subject]
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # open | resolved
    since: Mapped[datetime | None] = mapped_column(nullable=True)  # the condition's start
    first_seen_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    count: Mapped[int] = mapped_column(Integer)  # checks that found it
    last_sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    sent_severity: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # {channel name: {"ok", "at", "error"}}: the last send on each channel.
    channels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {"kind", "channels"}: a notice that failed on those channels, tried again next check.
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)


class AlertEvent(Base):
    """Every check, firing, escalation, send, failed send, silence and resolution."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    event: Mapped[str] = mapped_column(String(32))
    # A channel's secret-free name; an email channel's lists every recipient (ALERT_TO).
    channel: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AlertSilence(Base):
    """A rule muted until `until` (or until lifted): its alerts are recorded, not sent."""

    __tablename__ = "alert_silences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_at: Mapped[datetime | None] = mapped_column(nullable=True)


def _count() -> Any:
    """A roll-up's running total: 0 until a trigger adds to it."""
    return mapped_column(BigInteger, default=0, server_default="0")


class _RollupCounts:
    """The running totals a roll-up row keeps (echopilot.finance.rollup_sql.COUNTS)."""

    created: Mapped[int] = _count()
    finished: Mapped[int] = _count()
    done: Mapped[int] = _count()
    needs_review: Mapped[int] = _count()
    dead: Mapped[int] = _count()
    cancelled: Mapped[int] = _count()
    billed: Mapped[int] = _count()
    billed_cents: Mapped[int] = _count()
    owed: Mapped[int] = _count()
    owed_cents: Mapped[int] = _count()
    cost_micros: Mapped[int] = _count()
    qa_jobs: Mapped[int] = _count()
    qa_tenths: Mapped[int] = _count()
    unpriced: Mapped[int] = _count()
    latency_jobs: Mapped[int] = _count()
    latency_ms: Mapped[int] = _count()


class FinanceHourly(_RollupCounts, Base):
    """What the jobs that finished (and were submitted) in one UTC hour add up to, per
    dimension: kept by triggers on `jobs` (see echopilot.finance.rollup_sql), never
    written by the application."""

    __tablename__ = "finance_hourly"
    __table_args__ = {"sqlite_with_rowid": False}

    dim: Mapped[str] = mapped_column(String(16), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # hours since the epoch
    key: Mapped[str] = mapped_column(String(200), primary_key=True)


class FinanceDaily(_RollupCounts, Base):
    """FinanceHourly's totals per UTC day (days since the epoch): the whole days of a long
    window in a few rows. Kept by the same triggers."""

    __tablename__ = "finance_daily"
    __table_args__ = {"sqlite_with_rowid": False}

    dim: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)


class LatencyDaily(Base):
    """Done and needs-review jobs per UTC day and duration bucket (two significant digits
    of milliseconds): the latency percentiles without reading every job."""

    __tablename__ = "latency_daily"
    __table_args__ = {"sqlite_with_rowid": False}

    day: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # days since the epoch
    bucket_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    jobs: Mapped[int] = _count()
    # Every change to the row adds 1, whatever its sign: percentiles cached against it
    # are read again exactly when the histogram changed.
    changes: Mapped[int] = _count()


class JobPayment(Base):
    """A billable job's side at Stripe: its payment link, and the Stripe ids that tie
    later events to it (one row per job that ever asked Stripe for a link)."""

    __tablename__ = "job_payments"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    # The key every attempt to create the link sends: one link per job, however often tried.
    idempotency_key: Mapped[str] = mapped_column(String(100))
    link_id: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    link_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    link_attempts: Mapped[int] = mapped_column(Integer, default=0)
    link_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    link_created_at: Mapped[datetime | None] = mapped_column(nullable=True)
    payment_intent: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    charge: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    failure: Mapped[str | None] = mapped_column(Text, nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Payment(Base):
    """The ledger of money that moved for a job: a payment (+), a refund (-), a dispute's
    withdrawal (-) and its reinstatement when won (+), each on the day it moved. `entry_key`
    names the fact (the payment intent, a charge's refunded total, a dispute's withdrawal)
    so that however many events report it, it is written once."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_moved", "moved_at", "currency", "amount_cents"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_key: Mapped[str] = mapped_column(String(200), unique=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(30))  # payment | refund | dispute | dispute_won
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # signed: + in, - out
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    method: Mapped[str] = mapped_column(String(20))  # stripe | manual
    status: Mapped[str] = mapped_column(String(20), default="succeeded")
    stripe_event: Mapped[str | None] = mapped_column(String(100), nullable=True)
    stripe_object: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payment_intent: Mapped[str | None] = mapped_column(String(100), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    moved_at: Mapped[datetime] = mapped_column()
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class StripeEvent(Base):
    """Every Stripe event received, once by its id, written in the same transaction as its
    effect: a second delivery (a replay, a retry, reconciliation) finds it and does nothing.
    An event not yet tied to a job keeps its payload (`pending`) until it can be."""

    __tablename__ = "stripe_events"
    __table_args__ = (Index("ix_stripe_events_pending", "outcome", "payment_intent"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column()  # at Stripe
    received_at: Mapped[datetime] = mapped_column(index=True)
    via: Mapped[str] = mapped_column(String(20))  # webhook | reconcile
    # applied | ignored | pending | not_ours
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    object_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payment_intent: Mapped[str | None] = mapped_column(String(100), nullable=True)
    livemode: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)


class Dispute(Base):
    """A Stripe dispute (chargeback) of a job's payment, as last reported."""

    __tablename__ = "disputes"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    charge: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payment_intent: Mapped[str | None] = mapped_column(String(100), nullable=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    # needs_response | under_review | warning_* | won | lost | ...
    status: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str | None] = mapped_column(String(100), nullable=True)
    evidence_due_by: Mapped[datetime | None] = mapped_column(nullable=True)
    opened_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaymentReconcile(Base):
    """One reconciliation with Stripe: what it read and did, or why Stripe was unreachable.
    The newest successful one says how fresh the payment figures are."""

    __tablename__ = "payment_reconciles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(100))
    read_from: Mapped[datetime | None] = mapped_column(nullable=True)
    events_read: Mapped[int] = mapped_column(Integer, default=0)
    events_applied: Mapped[int] = mapped_column(Integer, default=0)
    links_created: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Brief(Base):
    """One CEO brief: its document (the JSON the API serves), its files, and whether it was
    emailed (a brief is emailed once; sending it again is an explicit resend)."""

    __tablename__ = "briefs"
    __table_args__ = (UniqueConstraint("slot", name="uq_briefs_slot"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    stamp: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    cutoff: Mapped[datetime] = mapped_column()
    # The scheduled slot it was made for: a re-run of that slot sends this brief, not a new one.
    slot: Mapped[datetime | None] = mapped_column(nullable=True)
    actor: Mapped[str] = mapped_column(String(100))
    headline: Mapped[str] = mapped_column(Text)
    high: Mapped[int] = mapped_column(Integer)
    anomalies: Mapped[int] = mapped_column(Integer)
    narrative: Mapped[str] = mapped_column(String(20))  # model | deterministic
    document: Mapped[dict[str, Any]] = mapped_column()
    paths: Mapped[dict[str, Any]] = mapped_column()
    # not_sent | sending | sent | failed | not_configured
    email_status: Mapped[str] = mapped_column(String(20), default="not_sent")
    email_claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    emailed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    email_to: Mapped[str | None] = mapped_column(Text, nullable=True)
    email_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    email_sends: Mapped[int] = mapped_column(Integer, default=0)


class NotionPage(Base):
    """One version of a Notion queue page that EchoPilot took (the page's id and the edit
    time it was read at: a stale read of a page already taken finds this row and makes no
    second job), the job made from it, and how far writing the job back has got."""

    __tablename__ = "notion_pages"
    __table_args__ = (
        UniqueConstraint("page_id", "edited_at", name="uq_notion_pages_version"),
        Index("ix_notion_pages_open", "settled", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    page_id: Mapped[str] = mapped_column(String(64), index=True)
    edited_at: Mapped[datetime] = mapped_column()
    taken_at: Mapped[datetime] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    refused: Mapped[str | None] = mapped_column(Text, nullable=True)  # why no job was made
    # The last write sent to the page and what reading it back has shown.
    written_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    written_final: Mapped[bool] = mapped_column(Boolean, default=False)
    written_at: Mapped[datetime | None] = mapped_column(nullable=True)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    confirmed_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    lag_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    worst_lag_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pending_since: Mapped[datetime | None] = mapped_column(nullable=True)
    unseen_writes: Mapped[int] = mapped_column(Integer, default=0)
    writes: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The Job Log row: asked for (a create whose answer was lost is looked for before
    # another is made), then made.
    joblog_requested_at: Mapped[datetime | None] = mapped_column(nullable=True)
    joblog_page_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Nothing left to write: the final state is confirmed and the Job Log row exists.
    settled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotionState(Base):
    """The connector's one row: on, off (settings or schema) or stopped (Notion refused the
    token or the database: it stays stopped until `echopilot notion check` passes), and
    the last poll."""

    __tablename__ = "notion_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # on | off | stopped
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    changed_at: Mapped[datetime] = mapped_column()
    checked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    queue_source_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    joblog_source_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The property names of this queue (its title property is named by the owner).
    title_property: Mapped[str | None] = mapped_column(String(200), nullable=True)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    polled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    poll_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    pages_taken: Mapped[int] = mapped_column(BigInteger, default=0)
