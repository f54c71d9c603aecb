"""Index paused schedules, so counting them (metrics, health) reads only the paused ones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_workflow_schedules_paused",
        "workflow_schedules",
        ["paused_at"],
        postgresql_where=sa.text("paused_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_schedules_paused", table_name="workflow_schedules")
