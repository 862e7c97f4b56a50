"""lost leases counted apart from model failures; the original's QA pass marks per type;
billing status in the finished-jobs covering index (revenue counts billed jobs only)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The pass marks the original system used per task type (DESIGN section 8). Summary is not
# among them and keeps the global ECHOPILOT_QA_THRESHOLD.
ORIGINAL_THRESHOLDS = {
    "research": 95,
    "drafting": 90,
    "data_transform": 92,
    "transcription": 88,
    "other": 95,
}


COVER = ["finished_at", "status", "price_cents", "qa_score", "duration_ms"]


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("lost_leases", sa.Integer(), nullable=False, server_default="0"))
    op.drop_index("ix_jobs_finished_cover", table_name="jobs")
    op.create_index("ix_jobs_finished_cover", "jobs", [*COVER, "payment_status"])
    task_types = sa.table(
        "task_types", sa.column("name", sa.String), sa.column("qa_threshold", sa.Integer)
    )
    for name, threshold in ORIGINAL_THRESHOLDS.items():
        # Only types still on the global default: an owner's own setting stays.
        op.execute(
            task_types.update()
            .where(task_types.c.name == name, task_types.c.qa_threshold.is_(None))
            .values(qa_threshold=threshold)
        )


def downgrade() -> None:
    task_types = sa.table(
        "task_types", sa.column("name", sa.String), sa.column("qa_threshold", sa.Integer)
    )
    for name, threshold in ORIGINAL_THRESHOLDS.items():
        op.execute(
            task_types.update()
            .where(task_types.c.name == name, task_types.c.qa_threshold == threshold)
            .values(qa_threshold=None)
        )
    op.drop_index("ix_jobs_finished_cover", table_name="jobs")
    op.create_index("ix_jobs_finished_cover", "jobs", COVER)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lost_leases")
