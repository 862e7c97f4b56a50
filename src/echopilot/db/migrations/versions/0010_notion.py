"""notion: the queue pages taken (one row per page version) and the connector's state

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _count(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "notion_pages",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("page_id", sa.String(64), nullable=False),
        _when("edited_at", nullable=False),
        _when("taken_at", nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column(
            "job_id",
            _ID,
            sa.ForeignKey("jobs.id", ondelete="SET NULL"),
            nullable=True,
            unique=True,
        ),
        sa.Column("refused", sa.Text(), nullable=True),
        sa.Column("written_status", sa.String(20), nullable=True),
        sa.Column("written_final", sa.Boolean(), nullable=False, server_default=sa.false()),
        _when("written_at"),
        _count("checks"),
        sa.Column("confirmed_status", sa.String(20), nullable=True),
        _when("confirmed_at"),
        sa.Column("lag_ms", sa.BigInteger(), nullable=True),
        sa.Column("worst_lag_ms", sa.BigInteger(), nullable=True),
        _when("pending_since"),
        _count("unseen_writes"),
        _count("writes"),
        sa.Column("error", sa.Text(), nullable=True),
        _when("joblog_requested_at"),
        sa.Column("joblog_page_id", sa.String(64), nullable=True),
        sa.Column("settled", sa.Boolean(), nullable=False, server_default=sa.false()),
        _when("updated_at", nullable=False),
        sa.UniqueConstraint("page_id", "edited_at", name="uq_notion_pages_version"),
    )
    op.create_index("ix_notion_pages_page_id", "notion_pages", ["page_id"])
    op.create_index("ix_notion_pages_open", "notion_pages", ["settled", "id"])
    op.create_index("ix_notion_pages_confirmed_at", "notion_pages", ["confirmed_at"])
    op.create_table(
        "notion_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _when("changed_at", nullable=False),
        _when("checked_at"),
        sa.Column("queue_source_id", sa.String(64), nullable=True),
        sa.Column("joblog_source_id", sa.String(64), nullable=True),
        sa.Column("title_property", sa.String(200), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=False),
        _when("polled_at"),
        sa.Column("poll_error", sa.Text(), nullable=True),
        sa.Column("pages_taken", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("notion_state")
    op.drop_index("ix_notion_pages_confirmed_at", table_name="notion_pages")
    op.drop_index("ix_notion_pages_open", table_name="notion_pages")
    op.drop_index("ix_notion_pages_page_id", table_name="notion_pages")
    op.drop_table("notion_pages")
