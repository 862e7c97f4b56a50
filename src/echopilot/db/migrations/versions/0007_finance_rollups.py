"""finance roll-ups kept by triggers on jobs: finance_hourly, finance_daily, latency_daily;
covering indexes for a window's partial hours

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from echopilot.finance import rollup_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


FINISHED_COVER = (
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
)


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "finance_hourly",
        # Clustered by (dim, hour): a window of one dimension is one range.
        sa.Column("dim", sa.String(16), primary_key=True),
        sa.Column("hour", sa.BigInteger(), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        *[_count(name) for name in rollup_sql.COUNTS],
        sqlite_with_rowid=False,
    )
    op.create_table(
        "finance_daily",
        sa.Column("dim", sa.String(16), primary_key=True),
        sa.Column("day", sa.BigInteger(), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        *[_count(name) for name in rollup_sql.COUNTS],
        sqlite_with_rowid=False,
    )
    # A window's partial first and last hours read these jobs' columns from the index alone.
    op.drop_index("ix_jobs_finished_cover", table_name="jobs")
    if op.get_bind().dialect.name == "postgresql":  # json has no B-tree order: included
        op.create_index(
            "ix_jobs_finished_cover",
            "jobs",
            list(FINISHED_COVER),
            postgresql_include=["unpriced_models"],
        )
    else:
        op.create_index("ix_jobs_finished_cover", "jobs", [*FINISHED_COVER, "unpriced_models"])
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.create_index("ix_jobs_created", "jobs", ["created_at", "task_type", "client_id"])
    # The optimiser's "last N finished jobs of a type", whatever the planner's statistics.
    op.create_index("ix_jobs_type_finished", "jobs", ["task_type", "finished_at"])
    op.create_table(
        "latency_daily",
        sa.Column("day", sa.BigInteger(), primary_key=True),
        sa.Column("bucket_ms", sa.BigInteger(), primary_key=True),
        _count("jobs"),
        _count("changes"),
        sqlite_with_rowid=False,
    )
    conn = op.get_bind()
    rollup_sql.install(conn)
    rollup_sql.rebuild(conn)  # the jobs already there


def downgrade() -> None:
    rollup_sql.uninstall(op.get_bind())
    op.drop_table("latency_daily")
    op.drop_table("finance_daily")
    op.drop_table("finance_hourly")
    op.drop_index("ix_jobs_type_finished", table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.create_index("ix_jobs_created", "jobs", ["created_at"])
    op.drop_index("ix_jobs_finished_cover", table_name="jobs")
    op.create_index(
        "ix_jobs_finished_cover",
        "jobs",
        ["finished_at", "status", "price_cents", "qa_score", "duration_ms", "payment_status"],
    )
