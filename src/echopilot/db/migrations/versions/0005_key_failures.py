"""key_failures: failed dashboard-key attempts and lock-outs, shared by every API process

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_failures",
        sa.Column("client", sa.String(200), primary_key=True),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_key_failures_locked_until", "key_failures", ["locked_until"])
    op.create_index("ix_key_failures_last_failure_at", "key_failures", ["last_failure_at"])


def downgrade() -> None:
    op.drop_index("ix_key_failures_last_failure_at", table_name="key_failures")
    op.drop_index("ix_key_failures_locked_until", table_name="key_failures")
    op.drop_table("key_failures")
