"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 03:26:01.816857
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# The catalogue a new install starts with. Prices are in micro-USD (rates) and cents (bounds);
# qa_threshold None means the global ECHOPILOT_QA_THRESHOLD applies.
TASK_TYPES = [
    (
        "research",
        "Research brief",
        "Research the material below and write a concise brief: key findings first, then open "
        "questions. Do not invent facts that the material does not support.",
        "flat",
        25_000_000,
        None,
        None,
    ),
    (
        "drafting",
        "Drafting",
        "Write a clear, professional draft (email, post or letter) from the notes below.",
        "flat",
        15_000_000,
        None,
        None,
    ),
    (
        "data_transform",
        "Data transform",
        "Transform the data below as asked (CSV to JSON, JSON to CSV, clean-up). Output only the "
        "transformed data.",
        "per_1k_tokens",
        500_000,
        500,
        None,
    ),
    (
        "transcription",
        "Transcript clean-up",
        "Clean up the transcript below: remove filler words, fix punctuation and capitalisation, "
        "keep the speaker's meaning.",
        "per_minute",
        1_200_000,
        300,
        None,
    ),
    (
        "summary",
        "Summary",
        "Summarise the text below in a few sentences for a busy reader.",
        "flat",
        8_000_000,
        None,
        None,
    ),
    (
        "other",
        "Other",
        "Complete the request below as a professional assistant would.",
        "flat",
        10_000_000,
        None,
        None,
    ),
]


def _seed() -> None:
    task_types = sa.table(
        "task_types",
        sa.column("name", sa.String),
        sa.column("label", sa.String),
        sa.column("instructions", sa.Text),
        sa.column("qa_threshold", sa.Integer),
        sa.column("active", sa.Boolean),
    )
    price_rules = sa.table(
        "price_rules",
        sa.column("task_type", sa.String),
        sa.column("unit", sa.String),
        sa.column("rate_micros", sa.BigInteger),
        sa.column("min_cents", sa.BigInteger),
        sa.column("max_cents", sa.BigInteger),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(
        task_types,
        [
            {"name": n, "label": label, "instructions": text, "qa_threshold": None, "active": True}
            for n, label, text, *_ in TASK_TYPES
        ],
    )
    op.bulk_insert(
        price_rules,
        [
            {
                "task_type": n,
                "unit": unit,
                "rate_micros": rate,
                "min_cents": lo,
                "max_cents": hi,
                "updated_at": now,
            }
            for n, _label, _text, unit, rate, lo, hi in TASK_TYPES
        ],
    )


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)

    op.create_table(
        "clients",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("rate_overrides", sa.JSON(), nullable=False),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_index(op.f("ix_clients_is_demo"), "clients", ["is_demo"], unique=False)

    op.create_table(
        "price_rule_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("rate_micros", sa.BigInteger(), nullable=False),
        sa.Column("min_cents", sa.BigInteger(), nullable=True),
        sa.Column("max_cents", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_price_rule_history_task_type"), "price_rule_history", ["task_type"], unique=False
    )

    op.create_table(
        "task_types",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("qa_threshold", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("worker"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("qa_target", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("qa_score", sa.Float(), nullable=True),
        sa.Column("qa_breakdown", sa.JSON(), nullable=True),
        sa.Column("qa_threshold", sa.Integer(), nullable=True),
        sa.Column("qa_note", sa.Text(), nullable=True),
        sa.Column("provider", sa.String(length=20), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("answer_path", sa.String(length=20), nullable=True),
        sa.Column("tokens_in", sa.BigInteger(), nullable=False),
        sa.Column("tokens_out", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("unpriced_models", sa.JSON(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=True),
        sa.Column("payment_status", sa.String(length=20), nullable=False),
        sa.Column("payment_link", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["task_type"],
            ["task_types.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_jobs_created", "jobs", ["created_at"], unique=False)
    op.create_index(op.f("ix_jobs_external_id"), "jobs", ["external_id"], unique=False)
    op.create_index("ix_jobs_finished", "jobs", ["finished_at"], unique=False)
    op.create_index(op.f("ix_jobs_is_demo"), "jobs", ["is_demo"], unique=False)
    op.create_index("ix_jobs_status_lease", "jobs", ["status", "lease_until"], unique=False)
    op.create_index("ix_jobs_status_retry", "jobs", ["status", "retry_at"], unique=False)

    op.create_table(
        "price_rules",
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("rate_micros", sa.BigInteger(), nullable=False),
        sa.Column("min_cents", sa.BigInteger(), nullable=True),
        sa.Column("max_cents", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_type"],
            ["task_types.name"],
        ),
        sa.PrimaryKeyConstraint("task_type"),
    )
    op.create_table(
        "job_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("tokens_in", sa.BigInteger(), nullable=False),
        sa.Column("tokens_out", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(length=20), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "n"),
    )
    op.create_index(op.f("ix_job_attempts_job_id"), "job_attempts", ["job_id"], unique=False)

    op.create_table(
        "job_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_job_events_job_id"), "job_events", ["job_id"], unique=False)
    _seed()


def downgrade() -> None:
    op.drop_index(op.f("ix_job_events_job_id"), table_name="job_events")

    op.drop_table("job_events")
    op.drop_index(op.f("ix_job_attempts_job_id"), table_name="job_attempts")

    op.drop_table("job_attempts")
    op.drop_table("price_rules")
    op.drop_index("ix_jobs_status_retry", table_name="jobs")
    op.drop_index("ix_jobs_status_lease", table_name="jobs")
    op.drop_index(op.f("ix_jobs_is_demo"), table_name="jobs")
    op.drop_index("ix_jobs_finished", table_name="jobs")
    op.drop_index(op.f("ix_jobs_external_id"), table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")

    op.drop_table("jobs")
    op.drop_table("worker_heartbeats")
    op.drop_table("task_types")
    op.drop_index(op.f("ix_price_rule_history_task_type"), table_name="price_rule_history")

    op.drop_table("price_rule_history")
    op.drop_index(op.f("ix_clients_is_demo"), table_name="clients")

    op.drop_table("clients")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")

    op.drop_table("audit_log")
