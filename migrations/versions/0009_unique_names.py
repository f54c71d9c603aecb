"""Names are identities: unique per account, instance, workflow and live schedule.

Commands take a name wherever they take an id, so two rows with one name would make a name
mean nothing. Accounts and instances without a name are given their AMC id as one. Existing
duplicates stop the migration with a list of them (nothing is changed) rather than with an
index build error: rename them, then migrate again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler_daemon.errors import InputError

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# table, what the CLI calls it, which rows must have distinct names
_NAMED = (
    ("amc_accounts", "accounts", "true"),
    ("amc_instances", "instances", "true"),
    ("workflows", "workflows", "true"),
    ("workflow_schedules", "schedules", "deleted_at IS NULL"),
)


def _duplicates(conn: sa.Connection) -> list[str]:
    found = []
    for table, noun, live in _NAMED:
        rows = conn.execute(
            sa.text(
                f"""
                SELECT name, string_agg(id::text, ', ' ORDER BY created_at) AS ids
                  FROM {table}
                 WHERE {live}
                 GROUP BY name
                HAVING count(*) > 1
                 ORDER BY name
                """
            )
        ).all()
        found += [f"{noun} named {row.name!r}: {row.ids}" for row in rows]
    return found


def upgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text("UPDATE amc_accounts SET name = account_id WHERE name IS NULL"))
    conn.execute(sa.text("UPDATE amc_instances SET name = instance_id WHERE name IS NULL"))
    duplicates = _duplicates(conn)
    if duplicates:
        raise InputError(
            "names must be unique before this upgrade; rename all but one of each ("
            + "; ".join(duplicates)
            + "), e.g. with 'scheduler-daemon workflows update ID --name NEW', then migrate again"
        )
    for table in ("amc_accounts", "amc_instances"):
        op.alter_column(table, "name", nullable=False)
    for table, _, _ in _NAMED:
        op.create_check_constraint(op.f(f"ck_{table}_name_not_blank"), table, "btrim(name) <> ''")
    for table in ("amc_accounts", "amc_instances", "workflows"):
        op.create_unique_constraint(op.f(f"uq_{table}_name"), table, ["name"])
    op.create_index(
        "uq_workflow_schedules_name",
        "workflow_schedules",
        ["name"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_workflow_schedules_name", table_name="workflow_schedules")
    for table in ("amc_accounts", "amc_instances", "workflows"):
        op.drop_constraint(op.f(f"uq_{table}_name"), table)
    for table, _, _ in _NAMED:
        op.drop_constraint(op.f(f"ck_{table}_name_not_blank"), table)
    for table in ("amc_accounts", "amc_instances"):
        op.alter_column(table, "name", nullable=True)
