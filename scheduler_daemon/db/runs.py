"""The statements on run history that operators run: list, show, settle and prune runs.

Each function takes a Connection and never commits (the caller owns the transaction), except
``prune_all``, which takes an Engine and commits a batch at a time.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

# Every command that shows runs (``runs list``, ``runs show``, a schedule's recent runs)
# reads them here, so a run has one shape; a filter given as NULL is not applied. Newest slot
# first; a page starts after the run whose (scheduled_for, created_at, id) it is given
# (keyset paging: runs inserted meanwhile neither repeat nor hide one).
LIST_RUNS = text(
    """
    SELECT r.id, s.name AS schedule, r.schedule_id, s.timezone, r.scheduled_for, r.trigger,
           r.status, r.skip_reason, r.missed_slots, r.worker_id, r.attempts,
           r.amc_execution_id, e.status AS execution_status, r.claimed_at, r.started_at,
           r.finished_at, r.error_message AS error, r.parameters_override, r.request,
           r.correlation_id, r.created_at
      FROM schedule_runs r
      JOIN workflow_schedules s ON s.id = r.schedule_id
      LEFT JOIN workflow_executions e ON e.id = r.execution_id
     WHERE (CAST(:run_id AS uuid) IS NULL OR r.id = :run_id)
       AND (CAST(:schedule_id AS uuid) IS NULL OR r.schedule_id = :schedule_id)
       AND (CAST(:status AS text) IS NULL OR r.status = :status)
       AND (CAST(:trigger AS text) IS NULL OR r.trigger = :trigger)
       AND (CAST(:since AS timestamptz) IS NULL OR r.scheduled_for >= :since)
       AND (CAST(:until AS timestamptz) IS NULL OR r.scheduled_for < :until)
       AND (CAST(:after_id AS uuid) IS NULL
            OR (r.scheduled_for, r.created_at, r.id)
               < (CAST(:after_slot AS timestamptz), CAST(:after_created AS timestamptz),
                  CAST(:after_id AS uuid)))
     ORDER BY r.scheduled_for DESC, r.created_at DESC, r.id DESC
     LIMIT :limit
    """
)

# ``schedules show``: how a schedule's runs went. Counts per status over all time and the last
# 7 and 30 days (by slot); the mean duration counts runs that ran to an end. Lateness (slot to
# start) and duration percentiles are over the last 30 days.
SELECT_RUN_STATS = text(
    """
    WITH recent AS (
        SELECT status,
               count(*) FILTER (WHERE scheduled_for >= now() - interval '7 days') AS n_7,
               count(*) AS n_30
          FROM schedule_runs
         WHERE schedule_id = :id AND scheduled_for >= now() - interval '30 days'
         GROUP BY status
    ), spread AS (
        SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (
                   ORDER BY extract(epoch FROM started_at - scheduled_for)) AS lateness,
               percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (
                   ORDER BY extract(epoch FROM finished_at - started_at))
                   FILTER (WHERE status IN ('succeeded', 'failed')) AS duration
          FROM schedule_runs
         WHERE schedule_id = :id
           AND scheduled_for >= now() - interval '30 days'
           AND started_at IS NOT NULL
    )
    SELECT count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           avg(extract(epoch FROM finished_at - started_at))
               FILTER (WHERE status IN ('succeeded', 'failed')) AS mean_seconds,
           (SELECT coalesce(jsonb_object_agg(status, n_7) FILTER (WHERE n_7 > 0), '{}')
              FROM recent) AS last_7_days,
           (SELECT coalesce(jsonb_object_agg(status, n_30), '{}') FROM recent) AS last_30_days,
           (SELECT lateness FROM spread) AS lateness,
           (SELECT duration FROM spread) AS duration
      FROM schedule_runs
     WHERE schedule_id = :id
    """
)

# One batch of finished runs past the age. A batch per transaction keeps its locks short, and
# SKIP LOCKED passes over rows another transaction holds instead of waiting for them.
PRUNE_FINISHED = text(
    """
    DELETE FROM schedule_runs
     WHERE id IN (
           SELECT id FROM schedule_runs
            WHERE finished_at < now() - make_interval(secs => :days * 86400)
              AND status IN ('succeeded', 'failed', 'skipped', 'cancelled')
            LIMIT :batch
              FOR UPDATE SKIP LOCKED)
    """
)

# The demo's feed: every run with its schedule and workflow, oldest first.
RUN_FEED = text(
    """
    SELECT r.id, r.scheduled_for, r.trigger, r.status, r.amc_execution_id, r.error_message,
           s.name AS schedule, w.name AS workflow
      FROM schedule_runs r
      JOIN workflow_schedules s ON s.id = r.schedule_id
      JOIN workflows w ON w.id = r.workflow_id
     ORDER BY r.created_at, r.scheduled_for
    """
)


# The newest slot's run of each schedule in :ids, one index probe each (a listing's page).
SELECT_LAST_RUNS = text(
    """
    SELECT r.schedule_id, r.status, r.scheduled_for, r.started_at, r.finished_at,
           r.skip_reason, r.missed_slots, r.error_message AS error
      FROM unnest(CAST(:ids AS uuid[])) AS listed(id)
     CROSS JOIN LATERAL (
           SELECT *
             FROM schedule_runs
            WHERE schedule_id = listed.id
            ORDER BY scheduled_for DESC
            LIMIT 1
     ) r
    """
)


def last_runs(conn: Connection, schedule_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    rows = conn.execute(SELECT_LAST_RUNS, {"ids": schedule_ids}).mappings()
    return {row["schedule_id"]: dict(row) for row in rows}


def list_runs(
    conn: Connection,
    *,
    run_id: uuid.UUID | None = None,
    schedule_id: uuid.UUID | None = None,
    status: str | None = None,
    trigger: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, datetime, uuid.UUID] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """``after``: the (scheduled_for, created_at, id) of the run a page starts after."""
    params = {
        "run_id": run_id,
        "schedule_id": schedule_id,
        "status": status,
        "trigger": trigger,
        "since": since,
        "until": until,
        "after_slot": None if after is None else after[0],
        "after_created": None if after is None else after[1],
        "after_id": None if after is None else after[2],
        "limit": limit,
    }
    return [dict(row) for row in conn.execute(LIST_RUNS, params).mappings()]


def run_stats(conn: Connection, schedule_id: uuid.UUID) -> dict[str, Any]:
    """``succeeded``, ``failed`` (counts), ``mean_seconds`` (None without finished runs),
    ``last_7_days`` and ``last_30_days`` ({status: count}), and ``lateness`` and ``duration``
    ([p50, p95] in seconds over 30 days, or None without runs)."""
    return dict(conn.execute(SELECT_RUN_STATS, {"id": schedule_id}).mappings().one())


# --- an operator settles an unresolved run ---------------------------------------------------

SELECT_UNRESOLVED_RUN = text(
    """
    SELECT r.id, r.status, r.schedule_id, r.workflow_id, r.trigger, r.scheduled_for,
           r.request, r.parameters_override, r.error_message
      FROM schedule_runs r
     WHERE r.id = :run_id
       FOR UPDATE
    """
)

SELECT_HOLDER = text("SELECT id FROM schedule_runs WHERE amc_execution_id = :execution_id")

# The run takes the execution the operator found in AMC; the status sync follows it from here.
ATTACH_EXECUTION = text(
    """
    WITH lineage AS (
        INSERT INTO workflow_executions (workflow_id, amc_execution_id, status, trigger,
                                         schedule_run_id, request, submitted_at)
        SELECT r.workflow_id, :execution_id, 'pending', r.trigger, r.id, r.request, now()
          FROM schedule_runs r
         WHERE r.id = :run_id
        RETURNING id
    )
    UPDATE schedule_runs AS r
       SET status = 'dispatched', amc_execution_id = :execution_id, finished_at = NULL,
           execution_id = (SELECT id FROM lineage),
           error_message = 'an operator attributed AMC execution ' || :execution_id
                           || ' to this run; it was unresolved: ' || r.error_message
     WHERE r.id = :run_id AND r.status = 'unresolved'
    """
)

# No execution of this run exists in AMC (the operator checked): the run failed to start one.
SETTLE_WITHOUT_EXECUTION = text(
    """
    UPDATE schedule_runs AS r
       SET status = 'failed',
           error_message = 'an operator found no AMC execution of this run; it was '
                           || 'unresolved: ' || r.error_message
     WHERE r.id = :run_id AND r.status = 'unresolved'
    """
)


def select_unresolved_run(conn: Connection, run_id: uuid.UUID) -> dict[str, Any] | None:
    """The run an operator settles, locked; None if there is no such run."""
    row = conn.execute(SELECT_UNRESOLVED_RUN, {"run_id": run_id}).mappings().first()
    return None if row is None else dict(row)


def execution_holder(conn: Connection, execution_id: str) -> uuid.UUID | None:
    """The run that holds the AMC execution, if one does."""
    row = conn.execute(SELECT_HOLDER, {"execution_id": execution_id}).first()
    return None if row is None else row.id


def attach_execution(conn: Connection, run_id: uuid.UUID, execution_id: str) -> None:
    conn.execute(ATTACH_EXECUTION, {"run_id": run_id, "execution_id": execution_id})


def settle_without_execution(conn: Connection, run_id: uuid.UUID) -> None:
    conn.execute(SETTLE_WITHOUT_EXECUTION, {"run_id": run_id})


def prune_batch(conn: Connection, older_than_days: float, batch_size: int) -> int:
    """Delete one batch of finished runs older than the age; returns how many went."""
    return conn.execute(PRUNE_FINISHED, {"days": older_than_days, "batch": batch_size}).rowcount


def prune_all(
    engine: Engine, older_than_days: float, batch_size: int = 1000, max_batches: int | None = None
) -> int:
    """Delete finished runs older than the age, a batch per transaction, until a batch comes
    back short (or after ``max_batches``); returns how many went."""
    deleted = 0
    batches = itertools.count() if max_batches is None else range(max_batches)
    for _ in batches:
        with engine.begin() as conn:
            batch = prune_batch(conn, older_than_days, batch_size)
        deleted += batch
        if batch < batch_size:
            break
    return deleted


def run_feed(conn: Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(RUN_FEED).mappings()]
