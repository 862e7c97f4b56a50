"""scheduler: schedule runs, scheduler instances and the pause switch

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "schedule_runs",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("scheduler_id", sa.String(200), nullable=True),
        sa.UniqueConstraint("task", "slot", name="uq_schedule_runs_task_slot"),
    )
    op.create_index("ix_schedule_runs_status", "schedule_runs", ["status"])
    op.create_index("ix_schedule_runs_task_started", "schedule_runs", ["task", "started_at"])
    op.create_table(
        "scheduler_instances",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_scheduler_instances_heartbeat_at", "scheduler_instances", ["heartbeat_at"])
    op.create_table(
        "scheduler_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("scheduler_state")
    op.drop_index("ix_scheduler_instances_heartbeat_at", table_name="scheduler_instances")
    op.drop_table("scheduler_instances")
    op.drop_index("ix_schedule_runs_task_started", table_name="schedule_runs")
    op.drop_index("ix_schedule_runs_status", table_name="schedule_runs")
    op.drop_table("schedule_runs")
