"""Track status polling of submitted executions: when to look next, how often we looked.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workflow_executions", sa.Column("next_poll_at", sa.DateTime(timezone=True)))
    op.add_column(
        "workflow_executions",
        sa.Column("poll_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("workflow_executions", sa.Column("raw_status", sa.Text()))
    op.create_index(
        "ix_workflow_executions_polling",
        "workflow_executions",
        ["next_poll_at"],
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_executions_polling", table_name="workflow_executions")
    op.drop_column("workflow_executions", "raw_status")
    op.drop_column("workflow_executions", "poll_count")
    op.drop_column("workflow_executions", "next_poll_at")
