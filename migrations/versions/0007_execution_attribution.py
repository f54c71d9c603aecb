"""An AMC execution belongs to at most one run; runs record when their call is under way.

Adds ``schedule_runs.call_started_at`` and the run status ``unresolved``, and makes
``schedule_runs.amc_execution_id`` unique. Before this revision, recovery could give a run an
execution another run had already recorded; such later runs are detached from the shared
execution and marked ``unresolved`` with the reason (their slot may never have run in AMC),
so that the constraint can be created and an operator sees them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATUSES = (
    "'pending', 'claimed', 'dispatching', 'dispatched', 'succeeded', 'failed', 'skipped', "
    "'cancelled'"
)

DETACH_SHARED_EXECUTIONS = """
WITH ranked AS (
    SELECT id, amc_execution_id,
           first_value(id) OVER attribution AS keeper,
           row_number() OVER attribution AS n
      FROM schedule_runs
     WHERE amc_execution_id IS NOT NULL
    WINDOW attribution AS (PARTITION BY amc_execution_id
                           ORDER BY started_at NULLS LAST, created_at, id)
), detached AS (
    UPDATE schedule_runs AS r
       SET status = 'unresolved', amc_execution_id = NULL, execution_id = NULL,
           finished_at = COALESCE(r.finished_at, now()),
           error_message = 'AMC execution ' || ranked.amc_execution_id
                           || ' was also attributed to run ' || ranked.keeper
                           || ' (found by migration 0007); this slot may never have run in AMC'
      FROM ranked
     WHERE r.id = ranked.id AND ranked.n > 1
    RETURNING r.id
)
DELETE FROM workflow_executions AS e USING detached WHERE e.schedule_run_id = detached.id
"""


def upgrade() -> None:
    op.drop_constraint(op.f("ck_schedule_runs_status_allowed"), "schedule_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_schedule_runs_status_allowed"),
        "schedule_runs",
        sa.text(f"status IN ({STATUSES}, 'unresolved')"),
    )
    op.add_column(
        "schedule_runs",
        sa.Column(
            "call_started_at",
            sa.DateTime(timezone=True),
            comment="set while a call to the executor is under way; cleared when it is over",
        ),
    )
    op.alter_column(
        "schedule_runs",
        "started_at",
        comment="when the run first began dispatching (database clock)",
        existing_type=sa.DateTime(timezone=True),
    )
    op.execute(DETACH_SHARED_EXECUTIONS)
    op.create_index(
        "uq_schedule_runs_amc_execution_id",
        "schedule_runs",
        ["amc_execution_id"],
        unique=True,
        postgresql_where=sa.text("amc_execution_id IS NOT NULL"),
    )
    op.create_index(
        "ix_schedule_runs_unresolved",
        "schedule_runs",
        ["created_at"],
        postgresql_where=sa.text("status = 'unresolved'"),
    )


def downgrade() -> None:
    op.drop_index("ix_schedule_runs_unresolved", table_name="schedule_runs")
    op.drop_index("uq_schedule_runs_amc_execution_id", table_name="schedule_runs")
    op.alter_column(
        "schedule_runs", "started_at", comment=None, existing_type=sa.DateTime(timezone=True)
    )
    op.drop_column("schedule_runs", "call_started_at")
    op.execute("UPDATE schedule_runs SET status = 'failed' WHERE status = 'unresolved'")
    op.drop_constraint(op.f("ck_schedule_runs_status_allowed"), "schedule_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_schedule_runs_status_allowed"), "schedule_runs", sa.text(f"status IN ({STATUSES})")
    )
