"""deferred roll-up triggers: on PostgreSQL the finance roll-ups are updated at commit

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

from echopilot.finance import rollup_sql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite's writers take turns on one lock anyway: its triggers stay as they are.
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        rollup_sql.install(conn)


def downgrade() -> None:
    # The same triggers, deferred or not, keep the same totals: nothing to undo.
    pass
