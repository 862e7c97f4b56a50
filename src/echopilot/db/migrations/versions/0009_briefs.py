"""briefs: one row per CEO brief (its document, files and email state)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "briefs",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("stamp", sa.String(40), nullable=False, unique=True),
        _when("created_at", nullable=False),
        _when("cutoff", nullable=False),
        _when("slot"),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("headline", sa.Text(), nullable=False),
        sa.Column("high", sa.Integer(), nullable=False),
        sa.Column("anomalies", sa.Integer(), nullable=False),
        sa.Column("narrative", sa.String(20), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("paths", sa.JSON(), nullable=False),
        sa.Column("email_status", sa.String(20), nullable=False),
        _when("email_claimed_at"),
        _when("emailed_at"),
        sa.Column("email_to", sa.Text(), nullable=True),
        sa.Column("email_error", sa.Text(), nullable=True),
        sa.Column("email_sends", sa.Integer(), nullable=False),
        sa.UniqueConstraint("slot", name="uq_briefs_slot"),
    )
    op.create_index("ix_briefs_created_at", "briefs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_briefs_created_at", table_name="briefs")
    op.drop_table("briefs")
