"""Find executions due for a status check by when they are due: an index on the due time the
status checks order by (their next check, or their submission for rows from before 0006).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UNFINISHED = sa.text("status IN ('pending', 'running')")


def upgrade() -> None:
    op.drop_index("ix_workflow_executions_polling", table_name="workflow_executions")
    op.create_index(
        "ix_workflow_executions_status_due",
        "workflow_executions",
        [sa.text("COALESCE(next_poll_at, submitted_at)")],
        postgresql_where=UNFINISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_executions_status_due", table_name="workflow_executions")
    op.create_index(
        "ix_workflow_executions_polling",
        "workflow_executions",
        ["next_poll_at"],
        postgresql_where=UNFINISHED,
    )
