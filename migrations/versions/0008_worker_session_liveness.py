"""A daemon's liveness bound to its database session: a crashed daemon is dead at once.

Each daemon holds a session-level advisory lock keyed by its worker id for as long as its
process lives; PostgreSQL releases it the moment the session ends (the process died, or its
connection was cut). ``scheduler_worker_session_alive`` tells whether a worker still holds it;
``scheduler_workers.session_pid`` is the backend that holds it (NULL: the worker does not use
session liveness, e.g. behind a transaction-mode pooler, and only its heartbeat counts).
``worker_status`` says how a dead worker was found dead.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# pg_locks shows a bigint advisory key's high half in classid and its low half in objid.
FUNCTIONS = """
CREATE FUNCTION scheduler_worker_lock_key(worker text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT hashtextextended('scheduler-daemon worker ' || worker, 0) $$;

CREATE FUNCTION scheduler_held_advisory_keys() RETURNS SETOF bigint
LANGUAGE sql STABLE
AS $$
    SELECT (l.classid::bigint << 32) | l.objid::bigint
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
$$;

CREATE FUNCTION scheduler_worker_session_alive(worker text) RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT scheduler_worker_lock_key(worker) IN (SELECT scheduler_held_advisory_keys())
$$;
"""

WORKER_STATUS = """
CREATE OR REPLACE VIEW worker_status AS
WITH held AS MATERIALIZED (SELECT scheduler_held_advisory_keys() AS key)
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
           WHEN w.session_pid IS NOT NULL AND w.heartbeat_at > now() - interval '5 minutes'
                AND scheduler_worker_lock_key(w.worker_id) NOT IN (SELECT key FROM held)
               THEN 'dead'
           WHEN w.heartbeat_at > now() - interval '5 minutes' THEN 'live'
           ELSE 'dead'
       END AS state,
       (SELECT count(*) FROM workflow_schedules s WHERE s.locked_by = w.worker_id)
           AS locks_held,
       CASE
           WHEN w.stopped_at IS NOT NULL THEN NULL
           WHEN w.session_pid IS NOT NULL
                AND scheduler_worker_lock_key(w.worker_id) NOT IN (SELECT key FROM held)
               THEN 'session gone'
           WHEN w.heartbeat_at <= now() - interval '5 minutes' THEN 'heartbeat stale'
       END AS dead_because,
       w.session_pid
  FROM scheduler_workers w
"""

OLD_WORKER_STATUS = """
CREATE OR REPLACE VIEW worker_status AS
SELECT w.worker_id, w.hostname, w.pid, w.version, w.started_at, w.heartbeat_at,
       now() - w.heartbeat_at AS heartbeat_age, w.clock_skew_seconds, w.stopped_at,
       CASE
           WHEN w.stopped_at IS NOT NULL THEN 'stopped'
           WHEN w.heartbeat_at > now() - interval '5 minutes' THEN 'live'
           ELSE 'dead'
       END AS state,
       (SELECT count(*) FROM workflow_schedules s WHERE s.locked_by = w.worker_id) AS locks_held
  FROM scheduler_workers w
"""


def upgrade() -> None:
    op.add_column(
        "scheduler_workers",
        sa.Column(
            "session_pid",
            sa.Integer(),
            comment="the backend holding this worker's session lock; NULL: heartbeat only",
        ),
    )
    op.execute(FUNCTIONS)
    op.execute(WORKER_STATUS)


def downgrade() -> None:
    op.execute("DROP VIEW live_workers")
    op.execute("DROP VIEW worker_status")
    op.execute(OLD_WORKER_STATUS)
    op.execute("CREATE VIEW live_workers AS SELECT * FROM worker_status WHERE state = 'live'")
    op.execute("DROP FUNCTION scheduler_worker_session_alive(text)")
    op.execute("DROP FUNCTION scheduler_held_advisory_keys()")
    op.execute("DROP FUNCTION scheduler_worker_lock_key(text)")
    op.drop_column("scheduler_workers", "session_pid")
