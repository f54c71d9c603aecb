"""Index what the API and the console list by, and let counts of schedules skip their runs.

- ``GET /runs`` lists every run newest slot first: an index in that order reads a page
  instead of sorting the whole history (287 ms → 2 ms at 220,000 runs).
- Schedules listed by next run (soonest first; none sorts last) or by creation read a page
  of an index too, instead of sorting every live schedule (117 ms → 1 ms at 100,000).
- ``schedule_status`` finds each schedule's last run with a scalar subquery instead of a
  lateral join: the same rows, but a query that reads neither run column (a count by state)
  no longer looks up 100,000 last runs (630 ms → 50 ms).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_STATUS_VIEW = """
    CREATE OR REPLACE VIEW schedule_status AS
    SELECT s.id AS schedule_id,
           s.name,
           w.name AS workflow_name,
           s.workflow_id,
           COALESCE(s.cron_expression, '@every ' || s.interval_seconds || 's') AS spec,
           s.timezone,
           CASE
               WHEN s.deleted_at IS NOT NULL THEN 'deleted'
               WHEN NOT s.enabled THEN 'disabled'
               WHEN s.paused_at IS NOT NULL THEN 'paused'
               WHEN s.locked_by IS NOT NULL THEN 'running'
               WHEN s.next_run_at IS NULL THEN 'unscheduled'
               WHEN s.next_run_at < now() THEN 'due'
               ELSE 'scheduled'
           END AS state,
           s.enabled,
           s.next_run_at,
           s.last_run_at,
           s.locked_by,
           s.locked_at,
           s.paused_at,
           s.paused_until,
           s.pause_reason,
           s.consecutive_failures,
           s.last_error,
           {last_run_status} AS last_run_status,
           {last_run_finished_at} AS last_run_finished_at
      FROM workflow_schedules s
      JOIN workflows w ON w.id = s.workflow_id
      {lateral}
"""

_SCALAR = """(SELECT r.{column} FROM schedule_runs r WHERE r.schedule_id = s.id
                ORDER BY r.scheduled_for DESC LIMIT 1)"""

_LATERAL = """LEFT JOIN LATERAL (
            SELECT r.status, r.finished_at
              FROM schedule_runs r
             WHERE r.schedule_id = s.id
             ORDER BY r.scheduled_for DESC
             LIMIT 1
      ) last_run ON true"""


def upgrade() -> None:
    op.create_index(
        "ix_schedule_runs_newest",
        "schedule_runs",
        [sa.text("scheduled_for DESC"), sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_workflow_schedules_next_run_listed",
        "workflow_schedules",
        [sa.text("coalesce(next_run_at, 'infinity')"), "id"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_workflow_schedules_created_listed",
        "workflow_schedules",
        ["created_at", "id"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.execute(
        _STATUS_VIEW.format(
            last_run_status=_SCALAR.format(column="status"),
            last_run_finished_at=_SCALAR.format(column="finished_at"),
            lateral="",
        )
    )


def downgrade() -> None:
    op.execute(
        _STATUS_VIEW.format(
            last_run_status="last_run.status",
            last_run_finished_at="last_run.finished_at",
            lateral=_LATERAL,
        )
    )
    op.drop_index("ix_workflow_schedules_created_listed", table_name="workflow_schedules")
    op.drop_index("ix_workflow_schedules_next_run_listed", table_name="workflow_schedules")
    op.drop_index("ix_schedule_runs_newest", table_name="schedule_runs")
