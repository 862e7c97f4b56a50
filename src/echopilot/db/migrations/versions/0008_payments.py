"""payments: job_payments (links, Stripe ids), payments (the ledger), stripe_events,
disputes, payment_reconciles; roll-up triggers re-installed for the new settled statuses

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from echopilot.finance import rollup_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _job(ondelete: str, **kw: object) -> sa.Column[int]:
    return sa.Column(
        "job_id",
        _ID,
        sa.ForeignKey("jobs.id", ondelete=ondelete),
        **kw,  # type: ignore[arg-type]
    )


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "job_payments",
        _job("CASCADE", primary_key=True),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("link_id", sa.String(100), nullable=True, unique=True),
        sa.Column("link_url", sa.Text(), nullable=True),
        sa.Column("link_attempts", sa.Integer(), nullable=False),
        sa.Column("link_error", sa.Text(), nullable=True),
        _when("link_created_at"),
        sa.Column("payment_intent", sa.String(100), nullable=True, unique=True),
        sa.Column("charge", sa.String(100), nullable=True, unique=True),
        sa.Column("failure", sa.Text(), nullable=True),
        _when("failed_at"),
        _when("updated_at", nullable=False),
    )
    op.create_table(
        "payments",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("entry_key", sa.String(200), nullable=False, unique=True),
        _job("SET NULL", nullable=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stripe_event", sa.String(100), nullable=True),
        sa.Column("stripe_object", sa.String(100), nullable=True),
        sa.Column("payment_intent", sa.String(100), nullable=True),
        sa.Column("actor", sa.String(100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _when("moved_at", nullable=False),
        _when("recorded_at", nullable=False),
    )
    op.create_index("ix_payments_job_id", "payments", ["job_id"])
    op.create_index("ix_payments_moved", "payments", ["moved_at", "currency", "amount_cents"])
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        _when("created_at", nullable=False),
        _when("received_at", nullable=False),
        sa.Column("via", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("object_id", sa.String(100), nullable=True),
        sa.Column("payment_intent", sa.String(100), nullable=True),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
    )
    op.create_index("ix_stripe_events_received_at", "stripe_events", ["received_at"])
    op.create_index("ix_stripe_events_job_id", "stripe_events", ["job_id"])
    op.create_index("ix_stripe_events_pending", "stripe_events", ["outcome", "payment_intent"])
    op.create_table(
        "disputes",
        sa.Column("id", sa.String(100), primary_key=True),
        _job("SET NULL", nullable=True),
        sa.Column("charge", sa.String(100), nullable=True),
        sa.Column("payment_intent", sa.String(100), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("reason", sa.String(100), nullable=True),
        _when("evidence_due_by"),
        _when("opened_at", nullable=False),
        _when("closed_at"),
        _when("updated_at", nullable=False),
    )
    op.create_index("ix_disputes_job_id", "disputes", ["job_id"])
    op.create_table(
        "payment_reconciles",
        sa.Column("id", _ID, primary_key=True),
        _when("started_at", nullable=False),
        _when("finished_at"),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        _when("read_from"),
        sa.Column("events_read", sa.Integer(), nullable=False),
        sa.Column("events_applied", sa.Integer(), nullable=False),
        sa.Column("links_created", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_payment_reconciles_started_at", "payment_reconciles", ["started_at"])
    op.create_index("ix_jobs_payment_status", "jobs", ["payment_status", "finished_at", "id"])
    conn = op.get_bind()
    rollup_sql.uninstall(conn)
    # Before payments, `unpaid` meant billed and owed with no link; now it means a Stripe
    # link is out. Those jobs were billed with no payment provider: `not_configured` (paid
    # by hand). One that cost nothing owes nothing.
    conn.exec_driver_sql(
        "UPDATE jobs SET payment_status = CASE WHEN COALESCE(price_cents, 0) > 0 "
        "THEN 'not_configured' ELSE 'na' END WHERE payment_status = 'unpaid'"
    )
    # Refunded and disputed jobs owe nothing: the triggers learn the new settled statuses.
    rollup_sql.install(conn)
    rollup_sql.rebuild(conn)


def downgrade() -> None:
    op.drop_index("ix_jobs_payment_status", table_name="jobs")
    for table in ("payment_reconciles", "disputes", "stripe_events", "payments", "job_payments"):
        op.drop_table(table)
