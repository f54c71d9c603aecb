"""Create the operators' views: schedule status, overdue and stalled schedules, failures, workers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

VIEWS = {
    "schedule_status": """
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
               last_run.status AS last_run_status,
               last_run.finished_at AS last_run_finished_at
          FROM workflow_schedules s
          JOIN workflows w ON w.id = s.workflow_id
          LEFT JOIN LATERAL (
                SELECT r.status, r.finished_at
                  FROM schedule_runs r
                 WHERE r.schedule_id = s.id
                 ORDER BY r.scheduled_for DESC
                 LIMIT 1
          ) last_run ON true
    """,
    "overdue_schedules": """
        SELECT s.id AS schedule_id,
               s.name,
               s.next_run_at,
               now() - s.next_run_at AS overdue_by,
               s.timezone,
               COALESCE(s.cron_expression, '@every ' || s.interval_seconds || 's') AS spec
          FROM workflow_schedules s
         WHERE s.enabled
           AND s.deleted_at IS NULL
           AND s.paused_at IS NULL
           AND s.locked_by IS NULL
           AND s.next_run_at < now()
    """,
    "stalled_schedules": """
        SELECT s.id AS schedule_id,
               s.name,
               s.locked_by,
               s.locked_at,
               now() - s.locked_at AS lock_age,
               w.heartbeat_at AS worker_heartbeat_at,
               now() - w.heartbeat_at AS worker_heartbeat_age,
               w.stopped_at AS worker_stopped_at
          FROM workflow_schedules s
          LEFT JOIN scheduler_workers w ON w.worker_id = s.locked_by
         WHERE s.locked_by IS NOT NULL
    """,
    "recent_failures": """
        SELECT r.id AS run_id,
               r.schedule_id,
               s.name AS schedule_name,
               r.scheduled_for,
               r.trigger,
               r.finished_at,
               r.attempts,
               r.error_message,
               r.worker_id,
               r.correlation_id
          FROM schedule_runs r
          JOIN workflow_schedules s ON s.id = r.schedule_id
         WHERE r.status = 'failed'
           AND r.finished_at > now() - interval '7 days'
    """,
    "worker_status": """
        SELECT w.worker_id,
               w.hostname,
               w.pid,
               w.version,
               w.started_at,
               w.heartbeat_at,
               now() - w.heartbeat_at AS heartbeat_age,
               w.clock_skew_seconds,
               w.stopped_at,
               CASE
                   WHEN w.stopped_at IS NOT NULL THEN 'stopped'
                   WHEN w.heartbeat_at > now() - interval '5 minutes' THEN 'live'
                   ELSE 'dead'
               END AS state,
               (SELECT count(*) FROM workflow_schedules s WHERE s.locked_by = w.worker_id)
                   AS locks_held
          FROM scheduler_workers w
    """,
    "live_workers": "SELECT * FROM worker_status WHERE state = 'live'",
}


def upgrade() -> None:
    for name, query in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {query}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
