"""indexes for the dashboard's figures: finished jobs by time, attempts by start

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Covering: the 7-day and daily aggregates read only these columns.
    op.create_index(
        "ix_jobs_finished_cover",
        "jobs",
        ["finished_at", "status", "price_cents", "qa_score", "duration_ms"],
    )
    op.create_index("ix_job_attempts_started_cost", "job_attempts", ["started_at", "cost_micros"])
    op.drop_index("ix_jobs_finished", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_finished", "jobs", ["finished_at"])
    op.drop_index("ix_job_attempts_started_cost", table_name="job_attempts")
    op.drop_index("ix_jobs_finished_cover", table_name="jobs")
