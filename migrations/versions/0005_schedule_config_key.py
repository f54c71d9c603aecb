"""Add workflow_schedules.config_key: the identity of a schedule managed by `sync FILE`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "workflow_schedules",
        sa.Column(
            "config_key",
            sa.Text(),
            nullable=True,
            comment="set for schedules managed by a config file: their key in it",
        ),
    )
    op.create_index(
        "uq_workflow_schedules_config_key",
        "workflow_schedules",
        ["config_key"],
        unique=True,
        postgresql_where=sa.text("config_key IS NOT NULL AND deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_workflow_schedules_config_key", table_name="workflow_schedules")
    op.drop_column("workflow_schedules", "config_key")
