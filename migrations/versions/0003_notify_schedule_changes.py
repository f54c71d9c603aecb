"""Wake the daemons at once when a schedule becomes due sooner or a manual run is queued.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CHANNEL = "scheduler_daemon_wakeup"

# Claims and releases by the daemons themselves never match these conditions, so a burst of
# claims does not wake every daemon; an empty payload lets PostgreSQL fold repeated
# notifications of one transaction into one.
UPGRADE = f"""
CREATE FUNCTION scheduler_daemon_notify_wakeup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER workflow_schedules_wakeup_on_insert
AFTER INSERT ON workflow_schedules
FOR EACH ROW
WHEN (NEW.enabled AND NEW.next_run_at IS NOT NULL AND NEW.paused_at IS NULL
      AND NEW.deleted_at IS NULL)
EXECUTE FUNCTION scheduler_daemon_notify_wakeup();

CREATE TRIGGER workflow_schedules_wakeup_on_update
AFTER UPDATE ON workflow_schedules
FOR EACH ROW
WHEN (NEW.enabled AND NEW.locked_by IS NULL AND NEW.deleted_at IS NULL
      AND (NEW.paused_at IS NULL OR NEW.paused_until IS NOT NULL)
      AND (OLD.enabled IS DISTINCT FROM NEW.enabled
           OR OLD.paused_at IS DISTINCT FROM NEW.paused_at
           OR OLD.paused_until IS DISTINCT FROM NEW.paused_until
           OR (OLD.locked_by IS NULL AND NEW.next_run_at < OLD.next_run_at)
           OR (OLD.next_run_at IS NULL AND NEW.next_run_at IS NOT NULL)))
EXECUTE FUNCTION scheduler_daemon_notify_wakeup();

CREATE TRIGGER schedule_runs_wakeup_on_manual_run
AFTER INSERT ON schedule_runs
FOR EACH ROW
WHEN (NEW.status = 'pending')
EXECUTE FUNCTION scheduler_daemon_notify_wakeup();
"""

DOWNGRADE = """
DROP TRIGGER schedule_runs_wakeup_on_manual_run ON schedule_runs;
DROP TRIGGER workflow_schedules_wakeup_on_update ON workflow_schedules;
DROP TRIGGER workflow_schedules_wakeup_on_insert ON workflow_schedules;
DROP FUNCTION scheduler_daemon_notify_wakeup();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
