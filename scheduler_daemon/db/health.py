"""The statements of ``health`` and ``workers``: are the daemons alive, and scheduling?

Every age is measured with the database's clock (``now()``) only, so a host with a drifting
clock cannot fool a check. Each function takes a Connection and only reads.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, text

# A running worker is live if its heartbeat is recent and, for one that registered its
# session, that session is still connected (a crashed daemon's session is gone at once).
SELECT_LIVE_WORKERS = text(
    """
    SELECT count(*) FILTER (WHERE heartbeat_at > now() - make_interval(secs => :limit)
                              AND (session_pid IS NULL
                                   OR scheduler_worker_session_alive(worker_id)))
               AS live,
           extract(epoch FROM now() - max(heartbeat_at)) AS last_seen
      FROM scheduler_workers
     WHERE stopped_at IS NULL
    """
)

SELECT_RECENTLY_DEAD = text(
    """
    SELECT worker_id, dead_because, locks_held
      FROM worker_status
     WHERE state = 'dead' AND heartbeat_at > now() - interval '1 hour'
     ORDER BY heartbeat_at DESC
    """
)

# Due but unclaimed: a daemon can heartbeat happily while claiming nothing.
SELECT_OVERDUE = text(
    """
    SELECT count(*) AS overdue, extract(epoch FROM max(overdue_by)) AS worst
      FROM overdue_schedules
     WHERE overdue_by > make_interval(secs => :limit)
    """
)

SELECT_STALE_LOCKS = text(
    """
    SELECT count(*) AS stale, extract(epoch FROM max(now() - locked_at)) AS oldest
      FROM workflow_schedules
     WHERE locked_by IS NOT NULL AND locked_at < now() - make_interval(secs => :lease)
    """
)

# Paused by the daemon, not by an operator: an operator's pause is not a problem.
SELECT_DAEMON_PAUSED = text(
    """
    SELECT name, pause_reason
      FROM workflow_schedules
     WHERE deleted_at IS NULL AND paused_at IS NOT NULL
       AND (pause_reason LIKE 'quarantined:%' OR pause_reason LIKE 'auto-paused%')
     ORDER BY paused_at
    """
)

SELECT_UNRESOLVED = text(
    """
    SELECT r.id, s.name
      FROM schedule_runs r
      JOIN workflow_schedules s ON s.id = r.schedule_id
     WHERE r.status = 'unresolved'
     ORDER BY r.created_at
    """
)

SELECT_FAILURES = text(
    """
    SELECT count(*) FILTER (WHERE status = 'failed') AS failed, count(*) AS finished
      FROM schedule_runs
     WHERE status IN ('succeeded', 'failed')
       AND finished_at > now() - make_interval(secs => :window)
    """
)

# ``workers``: live ones first, each with how it was found dead, if it was.
LIST_WORKERS = text(
    """
    SELECT worker_id, hostname, pid, version, state, dead_because, heartbeat_at,
           heartbeat_age, clock_skew_seconds, locks_held, started_at, stopped_at,
           session_pid
      FROM worker_status
     ORDER BY state = 'live' DESC, heartbeat_at DESC
    """
)


# The API's and console's overview: schedules by state, the last day's runs by status, and what
# needs an eye (live daemons, slots past and not claimed, runs an operator must settle).
SELECT_OVERVIEW = text(
    """
    SELECT (SELECT coalesce(jsonb_object_agg(state, n), '{}')
              FROM (SELECT state, count(*) AS n FROM schedule_status
                     WHERE state <> 'deleted' GROUP BY state) states) AS schedules,
           (SELECT coalesce(jsonb_object_agg(status, n), '{}')
              FROM (SELECT status, count(*) AS n FROM schedule_runs
                     WHERE scheduled_for >= now() - interval '24 hours'
                     GROUP BY status) statuses) AS runs_last_24_hours,
           (SELECT count(*) FROM worker_status WHERE state = 'live') AS live_workers,
           (SELECT count(*) FROM workflow_schedules
             WHERE enabled AND deleted_at IS NULL AND paused_at IS NULL
               AND next_run_at < now()) AS due_not_claimed,
           (SELECT count(*) FROM schedule_runs WHERE status = 'unresolved') AS unresolved_runs
    """
)


def overview(conn: Connection) -> dict[str, Any]:
    return dict(conn.execute(SELECT_OVERVIEW).mappings().one())


def live_workers(conn: Connection, heartbeat_limit: float) -> Row[Any]:
    """``live`` (a count) and ``last_seen`` (seconds since the newest heartbeat, or None)."""
    return conn.execute(SELECT_LIVE_WORKERS, {"limit": heartbeat_limit}).one()


def recently_dead(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(SELECT_RECENTLY_DEAD).all())


def overdue(conn: Connection, limit: float) -> Row[Any]:
    """``overdue`` (a count) and ``worst`` (seconds, or None)."""
    return conn.execute(SELECT_OVERDUE, {"limit": limit}).one()


def stale_locks(conn: Connection, lease: float) -> Row[Any]:
    """``stale`` (a count) and ``oldest`` (seconds, or None)."""
    return conn.execute(SELECT_STALE_LOCKS, {"lease": lease}).one()


def daemon_paused(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(SELECT_DAEMON_PAUSED).all())


def unresolved_runs(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(SELECT_UNRESOLVED).all())


def recent_failures(conn: Connection, window: float) -> Row[Any]:
    """``failed`` and ``finished`` runs in the window."""
    return conn.execute(SELECT_FAILURES, {"window": window}).one()


def list_workers(conn: Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(LIST_WORKERS).mappings()]
