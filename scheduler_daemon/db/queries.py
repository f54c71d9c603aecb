"""Every SQL statement of the claim protocol, one named function each.

Each function takes a Connection and never commits: the caller owns the transaction, one short
transaction per step of the tick. Two clocks meet here and are never mixed in one predicate:
slot times (``next_run_at``, ``scheduled_for``) are compared with the tick's ``:now``; lease and
heartbeat times (``locked_at``, ``heartbeat_at``) only with the database's ``now()``.

Fencing: a claim increments ``workflow_schedules.fencing_token`` and copies the new value into
the run rows it creates. Every later write for those runs quotes the token, so a worker whose
claim was reaped touches zero rows.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Result, TextClause, text

from scheduler_daemon.db.tables import EXECUTION_STATUSES, RUN_STATUSES
from scheduler_daemon.domain import (
    IN_PROGRESS_RUN_STATUSES,
    ClaimedRun,
    DueSchedule,
    NewRun,
    Outcome,
    RunContext,
    ScheduleDecision,
    run_log_fields,
)


def _sql(statement: str) -> TextClause:
    """A statement without its indentation. psycopg caches the parsing of a statement's
    placeholders only up to 4,096 characters; the longest statement here is past that with its
    indentation, and is sent for every 50 runs."""
    return text("\n".join(line.strip() for line in statement.strip().splitlines()))


# A run another run of its schedule overlaps with (a pending manual run has not started).
IN_PROGRESS = "(" + ", ".join(f"'{status}'" for status in IN_PROGRESS_RUN_STATUSES) + ")"


def _status_is(column: str, allowed: Sequence[str], every: Sequence[str]) -> str:
    """``column`` is one of ``allowed``, as a test the planner cannot answer from an index.

    For writes keyed by id. The partial indexes on status (unfinished runs, executions being
    polled) hold a handful of rows between bursts, and their statistics say so; during a burst
    they hold thousands. A status test the planner could match to them made each 50-run write
    scan every unfinished run: 100 ms instead of 1 ms. "Not any other status" implies no index
    predicate, so these writes always go through the primary key. The CHECK constraint on the
    column makes the two tests equal."""
    others = ", ".join(f"'{status}'" for status in every if status not in allowed)
    return f"{column} NOT IN ({others})"


def _run_status_is(*allowed: str) -> str:
    return _status_is("r.status", allowed, RUN_STATUSES)


# "Locked by this worker" for writes keyed by schedule id, for the same reason as
# _status_is: a plain "=" implies the predicate of the index of locked schedules
# (``locked_by IS NOT NULL``), whose statistics say few are locked. The worker id is never null.
_LOCKED_BY_ME = "s.locked_by IS NOT DISTINCT FROM :worker_id"


# The batch writes join their rows to ``unnest(:ids, ...)`` and also say ``id = ANY(:ids)``.
# The join alone leaves the planner free to hash the batch against a scan of the whole table,
# which it does when a table grew since it was last analyzed (a new database's first burst):
# every 50-run write then reads every run ever made. ``= ANY`` on the primary key rules that out.

_DUE_PREDICATE = """
    s.enabled AND s.deleted_at IS NULL AND s.paused_at IS NULL AND s.locked_by IS NULL
"""


_RUN_COLUMNS = """
    id, schedule_id, workflow_id, scheduled_for, trigger, status, fencing_token, correlation_id,
    parameters_override
"""
# The same, of runs aliased ``r`` (where a join makes the bare names ambiguous).
_R_RUN_COLUMNS = ", ".join("r." + column.strip() for column in _RUN_COLUMNS.split(","))


_Row = TypeVar("_Row")


def _rows_as(cls: Callable[..., _Row], result: Result[Any]) -> list[_Row]:
    """The rows as ``cls``, built positionally: the statement selects the dataclass's fields, in
    order. (``cls(**row._mapping)`` looks every field up by name, thousands of times a burst.)"""
    _require_leading_columns(cls, result, exactly=True)
    return [cls(*row) for row in result.all()]


def _require_leading_columns(cls: Any, result: Result[Any], *, exactly: bool = False) -> int:
    """The number of ``cls``'s fields, after checking that the result's columns start with
    them, in order (and have nothing after them if ``exactly``)."""
    fields = _field_names(cls)
    columns = tuple(result.keys())
    if columns[: len(fields)] != fields or (exactly and len(columns) != len(fields)):
        raise AssertionError(f"{cls} built from columns {columns}")
    return len(fields)


@functools.cache
def _field_names(cls: Any) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


# --- select due --------------------------------------------------------------------------

SELECT_DUE = _sql(
    f"""
    SELECT s.id, s.workflow_id, s.cron_expression, s.interval_seconds, s.interval_anchor,
           s.timezone, s.next_run_at, s.last_run_at, s.misfire_policy, s.misfire_grace_seconds,
           s.max_catchup_runs, s.overlap_policy,
           EXISTS (
               SELECT 1 FROM schedule_runs r
                WHERE r.schedule_id = s.id AND r.status IN {IN_PROGRESS}
           ) AS has_unfinished_run
      FROM workflow_schedules s
     WHERE {_DUE_PREDICATE} AND s.next_run_at <= :now
     ORDER BY s.next_run_at
     LIMIT :batch_size
       FOR UPDATE OF s SKIP LOCKED
    """
)


def select_due(conn: Connection, now: datetime, batch_size: int) -> list[DueSchedule]:
    """Lock up to ``batch_size`` due schedules, oldest slot first, skipping rows another
    daemon is claiming right now."""
    rows = conn.execute(SELECT_DUE, {"now": now, "batch_size": batch_size})
    return _rows_as(DueSchedule, rows)


# --- claim -------------------------------------------------------------------------------

CLAIM = _sql(
    """
    UPDATE workflow_schedules AS s
       SET locked_by = CASE WHEN v.take_lock THEN :worker_id END,
           locked_at = CASE WHEN v.take_lock THEN now() END,
           last_run_at = v.last_run_at,
           next_run_at = v.next_run_at,
           fencing_token = s.fencing_token + 1,
           updated_at = now()
      FROM unnest(CAST(:ids AS uuid[]), CAST(:old_last AS timestamptz[]),
                  CAST(:new_last AS timestamptz[]), CAST(:new_next AS timestamptz[]),
                  CAST(:take_lock AS boolean[]))
           AS v(id, old_last_run_at, last_run_at, next_run_at, take_lock)
     WHERE s.id = v.id AND s.id = ANY(CAST(:ids AS uuid[]))
       AND s.last_run_at IS NOT DISTINCT FROM v.old_last_run_at
       AND s.locked_by IS NULL
    RETURNING s.id, s.fencing_token
    """
)


def claim(
    conn: Connection, worker_id: str, decisions: Sequence[ScheduleDecision]
) -> dict[uuid.UUID, int]:
    """Optimistically claim schedules; returns {schedule_id: fencing token} for those won."""
    if not decisions:
        return {}
    rows = conn.execute(
        CLAIM,
        {
            "worker_id": worker_id,
            "ids": [d.schedule_id for d in decisions],
            "old_last": [d.old_last_run_at for d in decisions],
            "new_last": [d.last_run_at for d in decisions],
            "new_next": [d.next_run_at for d in decisions],
            "take_lock": [d.take_lock for d in decisions],
        },
    )
    return dict(rows.all())


# What an executor needs to know about a run besides the run itself (see ``resolve``): its
# workflow, the schedule's parameters and zone, the AMC instance and account. Joined to runs
# aliased ``r``.
_CONTEXT_COLUMNS = """
    w.id AS workflow_id, w.name AS workflow_name, w.amc_workflow_id,
    w.parameters AS workflow_parameters, s.parameters AS schedule_parameters, s.timezone,
    i.instance_id AS amc_instance_id, a.account_id AS amc_entity_id, a.marketplace_id, a.region
"""
_CONTEXT_JOINS = """
    JOIN workflow_schedules s ON s.id = r.schedule_id
    LEFT JOIN workflows w ON w.id = r.workflow_id
    LEFT JOIN amc_instances i ON i.id = w.instance_id
    LEFT JOIN amc_accounts a ON a.id = i.account_id
"""

# The new runs come back with their context: the claim's transaction needs no other read.
INSERT_RUNS = _sql(
    f"""
    WITH r AS (
        INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger, status,
                                   skip_reason, missed_slots, error_message, fencing_token,
                                   worker_id, claimed_at, finished_at)
        SELECT v.schedule_id, v.workflow_id, v.scheduled_for, 'scheduled', v.status,
               v.skip_reason, v.missed_slots, v.message, v.token,
               :worker_id, now(), CASE WHEN v.status = 'skipped' THEN now() END
          FROM unnest(CAST(:schedule_ids AS uuid[]), CAST(:workflow_ids AS uuid[]),
                      CAST(:slots AS timestamptz[]), CAST(:statuses AS text[]),
                      CAST(:skip_reasons AS text[]), CAST(:missed AS integer[]),
                      CAST(:messages AS text[]), CAST(:tokens AS bigint[]))
               AS v(schedule_id, workflow_id, scheduled_for, status, skip_reason, missed_slots,
                    message, token)
        ON CONFLICT (schedule_id, scheduled_for) WHERE trigger = 'scheduled' DO NOTHING
        RETURNING {_RUN_COLUMNS}
    )
    SELECT r.*, {_CONTEXT_COLUMNS}
      FROM r
      {_CONTEXT_JOINS}
     WHERE s.id = ANY(CAST(:schedule_ids AS uuid[]))  -- the primary key, as in the batch writes
    """
)


def insert_runs(
    conn: Connection, worker_id: str, runs: Sequence[NewRun], tokens: dict[uuid.UUID, int]
) -> tuple[list[ClaimedRun], dict[uuid.UUID, RunContext]]:
    """Insert the run rows of won claims; returns them and their contexts. A slot that already
    has a row is refused by the unique constraint and simply not returned."""
    if not runs:
        return [], {}
    rows = conn.execute(
        INSERT_RUNS,
        {
            "worker_id": worker_id,
            "schedule_ids": [r.schedule_id for r in runs],
            "workflow_ids": [r.workflow_id for r in runs],
            "slots": [r.scheduled_for for r in runs],
            "statuses": [r.status for r in runs],
            "skip_reasons": [r.skip_reason for r in runs],
            "missed": [r.missed_slots for r in runs],
            "messages": [r.message for r in runs],
            "tokens": [tokens[r.schedule_id] for r in runs],
        },
    )
    return _runs_with_contexts(rows)


def _runs_with_contexts(
    result: Result[Any],
) -> tuple[list[ClaimedRun], dict[uuid.UUID, RunContext]]:
    """Rows of a run's columns followed by its context's (``_CONTEXT_COLUMNS``)."""
    n = _require_leading_columns(ClaimedRun, result)
    if tuple(result.keys())[n:] != _field_names(RunContext):
        raise AssertionError(f"RunContext built from columns {tuple(result.keys())[n:]}")
    runs, contexts = [], {}
    for row in result.all():
        run = ClaimedRun(*row[:n])
        runs.append(run)
        contexts[run.id] = RunContext(*row[n:])
    return runs, contexts


RELEASE_LOCKS = _sql(
    f"""
    UPDATE workflow_schedules AS s
       SET locked_by = NULL, locked_at = NULL, updated_at = now()
      FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[])) AS v(id, token)
     WHERE s.id = v.id AND s.id = ANY(CAST(:ids AS uuid[]))
       AND {_LOCKED_BY_ME} AND s.fencing_token = v.token
    """
)


def release_locks(conn: Connection, worker_id: str, tokens: dict[uuid.UUID, int]) -> int:
    """Release locks that have nothing left to dispatch; returns how many were released."""
    if not tokens:
        return 0
    result = conn.execute(
        RELEASE_LOCKS,
        {"worker_id": worker_id, "ids": list(tokens), "tokens": list(tokens.values())},
    )
    return result.rowcount


# --- manual runs ---------------------------------------------------------------------------

CLAIM_PENDING_MANUAL = _sql(
    f"""
    UPDATE schedule_runs AS r
       SET status = 'claimed', worker_id = :worker_id, claimed_at = now(),
           fencing_token = COALESCE(r.fencing_token, 0) + 1
     WHERE r.id IN (
               SELECT id FROM schedule_runs
                WHERE status = 'pending' AND scheduled_for <= :now
                ORDER BY scheduled_for
                LIMIT :batch_size
                  FOR UPDATE SKIP LOCKED)
    RETURNING {_RUN_COLUMNS}
    """
)


def claim_pending_manual_runs(
    conn: Connection, worker_id: str, now: datetime, batch_size: int
) -> list[ClaimedRun]:
    """Manual runs are claimed on their own row: they never touch the schedule's slot state."""
    rows = conn.execute(
        CLAIM_PENDING_MANUAL, {"worker_id": worker_id, "now": now, "batch_size": batch_size}
    )
    return _rows_as(ClaimedRun, rows)


INSERT_MANUAL_RUN = _sql(
    """
    INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger, status,
                               parameters_override)
    SELECT s.id, s.workflow_id, :scheduled_for, 'manual', 'pending', CAST(:overrides AS jsonb)
      FROM workflow_schedules s
     WHERE s.id = :schedule_id AND s.deleted_at IS NULL
    RETURNING id
    """
)


def insert_manual_run(
    conn: Connection, schedule_id: uuid.UUID, scheduled_for: datetime, overrides_json: str | None
) -> uuid.UUID | None:
    row = conn.execute(
        INSERT_MANUAL_RUN,
        {"schedule_id": schedule_id, "scheduled_for": scheduled_for, "overrides": overrides_json},
    ).first()
    return None if row is None else row.id


# --- dispatch and outcome ------------------------------------------------------------------

# ``started_at`` is when the run first began dispatching (kept when a recovery marks it again):
# an execution created before it, less a skew margin, cannot be this run's. ``call_started_at``
# is set while a call is under way; a recovery clears it, and sets it again only to submit.
# ``request`` is what the call sends, stored before it is sent: recovery compares requests.
MARK_DISPATCHING = _sql(
    f"""
    UPDATE schedule_runs AS r
       SET status = 'dispatching', started_at = COALESCE(r.started_at, now()),
           call_started_at = CASE WHEN r.status = 'claimed' THEN now() END,
           request = COALESCE(r.request, v.request), attempts = r.attempts + 1
      FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[]), CAST(:requests AS jsonb[]))
           AS v(id, token, request)
     WHERE r.id = v.id AND r.id = ANY(CAST(:ids AS uuid[]))
       AND r.fencing_token = v.token AND r.worker_id = :worker_id
       AND {_run_status_is("claimed", "dispatching")}
    -- the stored request only for a run marked before (a recovery looks for it): a burst's
    -- fresh runs do not send their bodies back
    RETURNING r.id, r.started_at, r.attempts, CASE WHEN r.attempts > 1 THEN r.request END
              AS request
    """
)


@dataclass(frozen=True)
class Marked:
    """A run marked ``dispatching``: when it first began, how many times it has been marked,
    and, when marked before, the request its first call sent (what a recovery looks for)."""

    started_at: datetime
    attempts: int
    request: dict[str, Any] | None


def mark_dispatching(
    conn: Connection,
    worker_id: str,
    runs: Sequence[ClaimedRun],
    requests: Sequence[dict[str, Any] | None],
) -> dict[uuid.UUID, Marked]:
    """Mark runs as being sent, with the request each will send; returns the runs still ours,
    each with the instant it first began dispatching. A run missing from the result was lost
    to another worker: the caller must drop it."""
    if not runs:
        return {}
    rows = conn.execute(
        MARK_DISPATCHING,
        {
            "worker_id": worker_id,
            "ids": [r.id for r in runs],
            "tokens": [r.fencing_token for r in runs],
            "requests": [None if b is None else orjson.dumps(b).decode() for b in requests],
        },
    )
    return {row.id: Marked(row.started_at, row.attempts, row.request) for row in rows.all()}


@dataclass(frozen=True)
class OutcomeWritten:
    recorded: bool
    paused: bool = False
    pause_reason: str | None = None


# How a run's final status moves its schedule's failure count: a failure adds one and, at
# :max_failures, pauses the schedule with the reason (unless it is paused already: an
# operator's or a quarantine's reason is kept); a success resets it; "dispatched" (the
# outcome comes later, with the status sync) leaves it. Shared by the two statements below.
_FAILURE_ACCOUNTING = """
               consecutive_failures = CASE WHEN run.status = 'failed'
                                           THEN s.consecutive_failures + 1
                                           WHEN run.status = 'succeeded' THEN 0
                                           ELSE s.consecutive_failures END,
               last_error = CASE WHEN run.status = 'failed' THEN run.error_message
                                 ELSE s.last_error END,
               paused_at = CASE WHEN run.status = 'failed' AND s.paused_at IS NULL
                                     AND s.consecutive_failures + 1 >= :max_failures
                                THEN now() ELSE s.paused_at END,
               pause_reason = CASE WHEN run.status = 'failed' AND s.paused_at IS NULL
                                        AND s.consecutive_failures + 1 >= :max_failures
                                   THEN 'auto-paused after ' || (s.consecutive_failures + 1)
                                        || ' consecutive failures; last error: '
                                        || COALESCE(run.error_message, 'unknown')
                                   ELSE s.pause_reason END"""

# Whether the statement (its own transaction) paused the schedule: such a pause carries this
# transaction's now(); an earlier one (an operator's, or a previous auto-pause) another, and
# the accounting above leaves it alone.
_PAUSED_HERE = "s.paused_at IS NOT DISTINCT FROM now()"

# One statement records a batch: the runs (fenced by token), then, for scheduled runs, their
# schedules' failure counts, auto-pause and lock release (fenced by owner and token). Each
# schedule appears at most once per batch.
RECORD_OUTCOMES = _sql(
    f"""
    WITH outcome AS (
        -- A run that started an execution gets its lineage row; "dispatched" means AMC
        -- accepted it and the execution is pending.
        SELECT v.*,
               CASE WHEN v.amc_execution_id IS NOT NULL THEN gen_random_uuid() END
                   AS lineage_id,
               CASE WHEN v.status = 'dispatched' THEN 'pending' ELSE v.status END
                   AS execution_status
          FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[]),
                      CAST(:statuses AS text[]), CAST(:execution_ids AS text[]),
                      CAST(:errors AS text[]), CAST(:releases AS boolean[]))
               AS v(run_id, token, status, amc_execution_id, error_message, release)
    ), run AS (
        UPDATE schedule_runs AS r
           SET status = o.status,
               finished_at = CASE WHEN o.status IN ('succeeded', 'failed', 'unresolved')
                                  THEN now() END,
               call_started_at = NULL,
               -- an execution a recovery already attributed to the run stays its own
               amc_execution_id = COALESCE(o.amc_execution_id, r.amc_execution_id),
               error_message = o.error_message,
               execution_id = COALESCE(o.lineage_id, r.execution_id)
          FROM outcome o
         WHERE r.id = o.run_id AND r.id = ANY(CAST(:ids AS uuid[]))
           AND r.fencing_token = o.token AND r.worker_id = :worker_id
           AND {_run_status_is("dispatching")}
        RETURNING r.id, r.schedule_id, r.workflow_id, r.trigger, o.token, o.status,
                  o.error_message, o.release, r.request, o.lineage_id, o.amc_execution_id,
                  o.execution_status
    ), lineage AS (
        -- One workflow_executions row per execution started, linked both ways.
        INSERT INTO workflow_executions (id, workflow_id, amc_execution_id, status, trigger,
                                         schedule_run_id, request, submitted_at, finished_at)
        SELECT run.lineage_id, run.workflow_id, run.amc_execution_id, run.execution_status,
               run.trigger, run.id, run.request, now(),
               CASE WHEN run.execution_status IN ('succeeded', 'failed') THEN now() END
          FROM run WHERE run.lineage_id IS NOT NULL
        RETURNING id
    ), schedule AS (
        UPDATE workflow_schedules AS s
           SET {_FAILURE_ACCOUNTING},
               locked_by = CASE WHEN run.release THEN NULL ELSE s.locked_by END,
               locked_at = CASE WHEN run.release THEN NULL ELSE s.locked_at END,
               updated_at = now()
          FROM run
         WHERE run.trigger = 'scheduled' AND s.id = run.schedule_id
           AND {_LOCKED_BY_ME} AND s.fencing_token = run.token
        RETURNING s.id, {_PAUSED_HERE} AS paused, s.pause_reason
    )
    SELECT run.id AS run_id, run.trigger, schedule.id IS NOT NULL AS schedule_updated,
           COALESCE(schedule.paused, false) AS paused, schedule.pause_reason,
           (SELECT count(*) FROM lineage) AS executions_recorded
      FROM run LEFT JOIN schedule ON schedule.id = run.schedule_id
    """
)


def record_outcomes(
    conn: Connection, worker_id: str, outcomes: Sequence[Outcome], max_failures: int
) -> dict[uuid.UUID, OutcomeWritten]:
    """Record what the executor said for a batch of runs; a run whose claim was lost comes
    back with ``recorded=False``."""
    if not outcomes:
        return {}
    rows = conn.execute(
        RECORD_OUTCOMES,
        {
            "worker_id": worker_id,
            "max_failures": max_failures,
            "ids": [o.run.id for o in outcomes],
            "tokens": [o.run.fencing_token for o in outcomes],
            "statuses": [o.status for o in outcomes],
            "execution_ids": [o.amc_execution_id for o in outcomes],
            "errors": [o.error_message for o in outcomes],
            "releases": [o.release for o in outcomes],
        },
    )
    written = {
        row.run_id: OutcomeWritten(
            recorded=row.trigger != "scheduled" or row.schedule_updated,
            paused=row.paused,
            pause_reason=row.pause_reason,
        )
        for row in rows.all()
    }
    return {o.run.id: written.get(o.run.id, OutcomeWritten(recorded=False)) for o in outcomes}


# --- status sync of executions still running remotely ----------------------------------------

CLAIM_STATUS_POLLS = _sql(
    """
    UPDATE workflow_executions AS e
       SET next_poll_at = now() + make_interval(
               secs => :interval * LEAST(1 + e.poll_count / 5, 10)),
           poll_count = e.poll_count + 1
      FROM schedule_runs r, workflows w, amc_instances i, amc_accounts a
     WHERE e.id IN (
               SELECT id FROM workflow_executions
                WHERE status IN ('pending', 'running')
                  AND COALESCE(next_poll_at, submitted_at) <= now()
                ORDER BY COALESCE(next_poll_at, submitted_at)
                LIMIT :batch_size
                  FOR UPDATE SKIP LOCKED)
       AND r.id = e.schedule_run_id AND w.id = e.workflow_id
       AND i.id = w.instance_id AND a.id = i.account_id
    RETURNING e.id, e.amc_execution_id, e.schedule_run_id AS run_id,
              i.instance_id AS amc_instance_id, a.account_id AS amc_entity_id,
              a.marketplace_id,
              e.submitted_at < now() - make_interval(secs => :deadline) AS past_deadline
    """
)


@dataclass(frozen=True)
class StatusPoll:
    id: uuid.UUID
    amc_execution_id: str
    run_id: uuid.UUID
    amc_instance_id: str
    amc_entity_id: str
    marketplace_id: str | None
    past_deadline: bool


def claim_status_polls(
    conn: Connection, *, interval: float, deadline: float, batch_size: int
) -> list[StatusPoll]:
    """Executions due for a status check, each pushed to its next check (backing off)."""
    rows = conn.execute(
        CLAIM_STATUS_POLLS,
        {"interval": interval, "deadline": deadline, "batch_size": batch_size},
    )
    return _rows_as(StatusPoll, rows)


@dataclass(frozen=True)
class StatusSeen:
    execution: uuid.UUID
    status: str  # pending, running, succeeded, failed, cancelled, unknown
    raw_status: str | None
    reason: str | None


# Records what AMC said; a final status also finishes the run and, for scheduled runs,
# updates the schedule's failure count (auto-pause) as a dispatch outcome would.
RECORD_STATUSES = _sql(
    f"""
    WITH seen AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]),
                             CAST(:raw AS text[]), CAST(:reasons AS text[]))
                 AS v(id, status, raw_status, reason)
    ), execution AS (
        UPDATE workflow_executions AS e
           SET status = seen.status, raw_status = seen.raw_status,
               error_message = COALESCE(seen.reason, e.error_message),
               finished_at = CASE WHEN seen.status IN ('succeeded', 'failed', 'cancelled',
                                                        'unknown')
                                  THEN now() END,
               updated_at = now()
          FROM seen
         WHERE e.id = seen.id AND e.id = ANY(CAST(:ids AS uuid[]))
           AND {_status_is("e.status", ("pending", "running"), EXECUTION_STATUSES)}
        RETURNING e.id, e.schedule_run_id, e.status, e.error_message
    ), run AS (
        UPDATE schedule_runs AS r
           SET status = CASE WHEN execution.status = 'unknown' THEN 'failed'
                             ELSE execution.status END,
               finished_at = now(),
               error_message = execution.error_message
          FROM execution
         WHERE r.id = execution.schedule_run_id AND {_run_status_is("dispatched")}
           AND execution.status IN ('succeeded', 'failed', 'cancelled', 'unknown')
        RETURNING r.id, r.schedule_id, r.scheduled_for, r.correlation_id, r.trigger, r.status,
                  r.error_message
    ), schedule AS (
        UPDATE workflow_schedules AS s
           SET {_FAILURE_ACCOUNTING},
               updated_at = now()
          FROM run
         WHERE run.trigger = 'scheduled' AND s.id = run.schedule_id
           AND run.status IN ('succeeded', 'failed')
        -- The run whose status was applied, when a batch holds several of one schedule.
        RETURNING run.id AS run_id, s.pause_reason, {_PAUSED_HERE} AS paused
    )
    SELECT run.id AS run_id, run.schedule_id, run.scheduled_for, run.correlation_id,
           run.trigger, run.status, run.error_message,
           COALESCE(schedule.paused, false) AS paused,
           CASE WHEN schedule.paused THEN schedule.pause_reason END AS pause_reason
      FROM run LEFT JOIN schedule ON schedule.run_id = run.id
    """
)


@dataclass(frozen=True)
class StatusFinished:
    """A run a final status finished; ``paused``: its schedule reached the failure limit with
    this run and was auto-paused (it was not paused before), for ``pause_reason``."""

    run_id: uuid.UUID
    schedule_id: uuid.UUID
    scheduled_for: datetime
    correlation_id: uuid.UUID
    trigger: str
    status: str
    error_message: str | None
    paused: bool
    pause_reason: str | None

    @property
    def log_fields(self) -> dict[str, str]:
        return run_log_fields(
            self.run_id, self.schedule_id, self.scheduled_for, self.correlation_id, self.trigger
        )


def record_statuses(
    conn: Connection, seen: Sequence[StatusSeen], max_failures: int
) -> list[StatusFinished]:
    """Write what the status checks saw; returns the runs this finished, each saying whether
    it auto-paused its schedule."""
    if not seen:
        return []
    rows = conn.execute(
        RECORD_STATUSES,
        {
            "ids": [s.execution for s in seen],
            "statuses": [s.status for s in seen],
            "raw": [s.raw_status for s in seen],
            "reasons": [s.reason for s in seen],
            "max_failures": max_failures,
        },
    )
    return _rows_as(StatusFinished, rows)


# --- heartbeat -----------------------------------------------------------------------------

DATABASE_NOW = _sql("SELECT now()")

HEARTBEAT = _sql(
    """
    INSERT INTO scheduler_workers (worker_id, hostname, pid, version, clock_skew_seconds,
                                   session_pid)
    VALUES (:worker_id, :hostname, :pid, :version, :skew, :session_pid)
    ON CONFLICT (worker_id) DO UPDATE
       SET heartbeat_at = now(), clock_skew_seconds = EXCLUDED.clock_skew_seconds,
           session_pid = EXCLUDED.session_pid, stopped_at = NULL
    """
)

RENEW_LOCKS = _sql(
    f"""
    UPDATE workflow_schedules AS s SET locked_at = now()
     WHERE {_LOCKED_BY_ME} AND s.id = ANY(CAST(:ids AS uuid[]))
    """
)

RENEW_MANUAL_RUNS = _sql(
    f"""
    UPDATE schedule_runs AS r SET claimed_at = now()
     WHERE r.worker_id = :worker_id AND r.id = ANY(CAST(:ids AS uuid[]))
       AND {_run_status_is("claimed", "dispatching")}
    """
)


def database_now(conn: Connection) -> datetime:
    value: datetime = conn.execute(DATABASE_NOW).scalar_one()
    return value


def heartbeat(
    conn: Connection,
    worker_id: str,
    *,
    hostname: str,
    pid: int,
    version: str,
    skew: float,
    session_pid: int | None = None,
    held_schedules: Sequence[uuid.UUID] = (),
    held_manual_runs: Sequence[uuid.UUID] = (),
) -> None:
    """Mark this worker alive and extend the lease of the claims it is still working on.

    Only those: a claim this process gave up on (its outcome could not be written) is left to
    expire, so the reaper - ours or another worker's - hands it on."""
    conn.execute(
        HEARTBEAT,
        {
            "worker_id": worker_id,
            "hostname": hostname,
            "pid": pid,
            "version": version,
            "skew": skew,
            "session_pid": session_pid,
        },
    )
    if held_schedules:
        conn.execute(RENEW_LOCKS, {"worker_id": worker_id, "ids": list(held_schedules)})
    if held_manual_runs:
        conn.execute(RENEW_MANUAL_RUNS, {"worker_id": worker_id, "ids": list(held_manual_runs)})


MARK_STOPPED = _sql(
    """
    UPDATE scheduler_workers SET stopped_at = now(), heartbeat_at = now()
     WHERE worker_id = :worker_id
    """
)


def mark_stopped(conn: Connection, worker_id: str) -> None:
    conn.execute(MARK_STOPPED, {"worker_id": worker_id})


# --- reaper --------------------------------------------------------------------------------


def _abandoned(row: str, owner: str, since: str) -> str:
    """A claim on ``row`` that its owner gave up: under our own worker id but not among the
    claims this process holds (:held), older than the lease, or held by a worker that is
    unknown, stopped, silent for longer than :dead_after, or among :gone (its database session
    ended: ``select_sessions_gone``, judged by the caller). ``w`` is the owner's row."""
    return f"""(({row}.{owner} = :worker_id AND NOT {row}.id = ANY(CAST(:held AS uuid[])))
            OR {row}.{since} < now() - make_interval(secs => :lease)
            OR w.worker_id IS NULL OR w.stopped_at IS NOT NULL
            OR w.heartbeat_at < now() - make_interval(secs => :dead_after)
            OR w.worker_id = ANY(CAST(:gone AS text[])))"""


# Workers that registered a session lock, and whose lock is free now (pg_locks is read once);
# none while the server itself is new (after a restart every lock went at once).
SELECT_SESSIONS_GONE = _sql(
    """
    SELECT w.worker_id FROM scheduler_workers w
     WHERE w.session_pid IS NOT NULL AND w.stopped_at IS NULL AND w.worker_id <> :worker_id
       AND w.heartbeat_at >= now() - make_interval(secs => :dead_after)
       AND scheduler_worker_lock_key(w.worker_id) NOT IN (SELECT scheduler_held_advisory_keys())
       AND pg_postmaster_start_time() < now() - make_interval(secs => :settle)
    """
)


def select_sessions_gone(
    conn: Connection, worker_id: str, *, dead_after: float, settle: float
) -> list[str]:
    """Other workers, not yet dead by their heartbeat, whose session lock is free now."""
    params = {"worker_id": worker_id, "dead_after": dead_after, "settle": settle}
    return list(conn.execute(SELECT_SESSIONS_GONE, params).scalars())


SELECT_STALE_LOCKS = _sql(
    f"""
    SELECT s.id, s.locked_by, s.fencing_token
      FROM workflow_schedules s
      LEFT JOIN scheduler_workers w ON w.worker_id = s.locked_by
     WHERE s.locked_by IS NOT NULL
       AND {_abandoned("s", "locked_by", "locked_at")}
     LIMIT :batch_size
       FOR UPDATE OF s SKIP LOCKED
    """
)

TAKE_OVER_LOCKS = _sql(
    """
    UPDATE workflow_schedules AS s
       SET locked_by = :worker_id, locked_at = now(), fencing_token = s.fencing_token + 1
      FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[])) AS v(id, token)
     WHERE s.id = v.id AND s.id = ANY(CAST(:ids AS uuid[])) AND s.fencing_token = v.token
    RETURNING s.id, s.fencing_token
    """
)

TAKE_OVER_RUNS = _sql(
    f"""
    UPDATE schedule_runs AS r
       SET fencing_token = v.new_token, worker_id = :worker_id, call_started_at = NULL
      FROM unnest(CAST(:ids AS uuid[]), CAST(:old_tokens AS bigint[]),
                  CAST(:new_tokens AS bigint[])) AS v(schedule_id, old_token, new_token)
     WHERE r.schedule_id = v.schedule_id AND r.fencing_token = v.old_token
       AND r.trigger = 'scheduled' AND r.status IN ('claimed', 'dispatching')
    RETURNING {_R_RUN_COLUMNS}
    """
)


@dataclass(frozen=True)
class ReapedLock:
    schedule_id: uuid.UUID
    previous_owner: str
    token: int


def reap_stale_locks(
    conn: Connection,
    worker_id: str,
    *,
    lease: float,
    dead_after: float,
    batch_size: int,
    held: Sequence[uuid.UUID] = (),
    gone: Sequence[str] = (),
) -> tuple[list[ReapedLock], list[ClaimedRun]]:
    """Take over locks whose owner is dead or whose lease ran out, with a fresh fencing token;
    returns the locks taken and the unfinished runs they carried (now ours to finish).

    A lock under our own worker id that this process is not working on (``held``) is
    abandoned at once: a predecessor with the same id died holding it, or we gave it up."""
    stale = conn.execute(
        SELECT_STALE_LOCKS,
        {
            "worker_id": worker_id,
            "lease": lease,
            "dead_after": dead_after,
            "batch_size": batch_size,
            "held": list(held),
            "gone": list(gone),
        },
    ).all()
    if not stale:
        return [], []
    old_tokens = {row.id: row.fencing_token for row in stale}
    taken = conn.execute(
        TAKE_OVER_LOCKS,
        {"worker_id": worker_id, "ids": list(old_tokens), "tokens": list(old_tokens.values())},
    ).all()
    new_tokens = {row.id: row.fencing_token for row in taken}
    runs = _rows_as(
        ClaimedRun,
        conn.execute(
            TAKE_OVER_RUNS,
            {
                "worker_id": worker_id,
                "ids": list(new_tokens),
                "old_tokens": [old_tokens[i] for i in new_tokens],
                "new_tokens": list(new_tokens.values()),
            },
        ),
    )
    reaped = [
        ReapedLock(row.id, row.locked_by, new_tokens[row.id])
        for row in stale
        if row.id in new_tokens
    ]
    return reaped, runs


REAP_MANUAL_RUNS = _sql(
    f"""
    UPDATE schedule_runs AS r
       SET fencing_token = r.fencing_token + 1, worker_id = :worker_id, call_started_at = NULL
     WHERE r.id IN (
           SELECT r2.id FROM schedule_runs r2
             LEFT JOIN scheduler_workers w ON w.worker_id = r2.worker_id
            WHERE r2.trigger = 'manual' AND r2.status IN ('claimed', 'dispatching')
              AND {_abandoned("r2", "worker_id", "claimed_at")}
            LIMIT :batch_size
              FOR UPDATE OF r2 SKIP LOCKED)
    RETURNING {_RUN_COLUMNS}
    """
)


def reap_manual_runs(
    conn: Connection,
    worker_id: str,
    *,
    lease: float,
    dead_after: float,
    batch_size: int,
    held: Sequence[uuid.UUID] = (),
    gone: Sequence[str] = (),
) -> list[ClaimedRun]:
    """Take over manual runs whose owner is dead, whose lease ran out, or which carry our own
    worker id without this process working on them."""
    rows = conn.execute(
        REAP_MANUAL_RUNS,
        {
            "worker_id": worker_id,
            "lease": lease,
            "dead_after": dead_after,
            "batch_size": batch_size,
            "held": list(held),
            "gone": list(gone),
        },
    )
    return _rows_as(ClaimedRun, rows)


# --- invariant repair and quarantine -------------------------------------------------------

SELECT_NEEDING_NEXT_RUN = _sql(
    """
    SELECT s.id, s.cron_expression, s.interval_seconds, s.interval_anchor, s.timezone
      FROM workflow_schedules s
     WHERE s.enabled AND s.deleted_at IS NULL AND s.next_run_at IS NULL
     LIMIT :batch_size
       FOR UPDATE SKIP LOCKED
    """
)

SELECT_EXPIRED_PAUSES = _sql(
    """
    SELECT s.id, s.cron_expression, s.interval_seconds, s.interval_anchor, s.timezone
      FROM workflow_schedules s
     WHERE s.paused_until <= :now AND s.deleted_at IS NULL
     LIMIT :batch_size
       FOR UPDATE SKIP LOCKED
    """
)


@dataclass(frozen=True)
class SpecRow:
    id: uuid.UUID
    cron_expression: str | None
    interval_seconds: int | None
    interval_anchor: datetime | None
    timezone: str


def select_needing_next_run(conn: Connection, batch_size: int) -> list[SpecRow]:
    return _rows_as(SpecRow, conn.execute(SELECT_NEEDING_NEXT_RUN, {"batch_size": batch_size}))


def select_expired_pauses(conn: Connection, now: datetime, batch_size: int) -> list[SpecRow]:
    params = {"now": now, "batch_size": batch_size}
    return _rows_as(SpecRow, conn.execute(SELECT_EXPIRED_PAUSES, params))


SET_NEXT_RUNS = _sql(
    """
    UPDATE workflow_schedules AS s
       SET next_run_at = v.next_run_at, updated_at = now(),
           -- resuming also ends the pause and forgets the failures that caused it
           paused_at = CASE WHEN :resume THEN NULL ELSE s.paused_at END,
           paused_until = CASE WHEN :resume THEN NULL ELSE s.paused_until END,
           pause_reason = CASE WHEN :resume THEN NULL ELSE s.pause_reason END,
           consecutive_failures = CASE WHEN :resume THEN 0 ELSE s.consecutive_failures END
      FROM unnest(CAST(:ids AS uuid[]), CAST(:next AS timestamptz[])) AS v(id, next_run_at)
     WHERE s.id = v.id AND s.id = ANY(CAST(:ids AS uuid[]))
    """
)


def set_next_runs(
    conn: Connection, next_runs: Mapping[uuid.UUID, datetime], *, resume: bool = False
) -> None:
    """Give schedules their next slot in one statement; ``resume`` also lifts their pause."""
    if next_runs:
        conn.execute(
            SET_NEXT_RUNS,
            {"ids": list(next_runs), "next": list(next_runs.values()), "resume": resume},
        )


QUARANTINE = _sql(
    """
    UPDATE workflow_schedules
       SET enabled = false, paused_at = now(), paused_until = NULL,
           pause_reason = 'quarantined: ' || :reason, locked_by = NULL, locked_at = NULL,
           updated_at = now()
     WHERE id = :schedule_id AND enabled
    RETURNING workflow_id, next_run_at
    """
)

INSERT_QUARANTINED_RUN = _sql(
    """
    INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger, status,
                               skip_reason, error_message, worker_id, finished_at)
    VALUES (:schedule_id, :workflow_id, :slot, 'scheduled', 'skipped', 'quarantined', :reason,
            :worker_id, now())
    ON CONFLICT (schedule_id, scheduled_for) WHERE trigger = 'scheduled' DO NOTHING
    """
)


def quarantine(conn: Connection, worker_id: str, schedule_id: uuid.UUID, reason: str) -> bool:
    """Disable a schedule that cannot be scheduled, leaving a run row at the slot it would
    have had; returns False when it was already disabled (another worker got there first)."""
    row = conn.execute(QUARANTINE, {"schedule_id": schedule_id, "reason": reason}).first()
    if row is None:
        return False
    if row.next_run_at is not None:
        conn.execute(
            INSERT_QUARANTINED_RUN,
            {
                "schedule_id": schedule_id,
                "workflow_id": row.workflow_id,
                "slot": row.next_run_at,
                "reason": reason,
                "worker_id": worker_id,
            },
        )
    return True


# --- next wake-up --------------------------------------------------------------------------

NEXT_WAKEUP = _sql(
    f"""
    SELECT LEAST(
        (SELECT min(s.next_run_at) FROM workflow_schedules s WHERE {_DUE_PREDICATE}),
        (SELECT min(scheduled_for) FROM schedule_runs WHERE status = 'pending'),
        (SELECT min(paused_until) FROM workflow_schedules WHERE paused_until IS NOT NULL)
    ) AS wake_at,
    EXISTS (SELECT 1 FROM workflow_schedules
             WHERE locked_by IS NOT NULL AND locked_by <> :worker_id) AS others_hold_claims
    """
)


def next_wakeup(conn: Connection, worker_id: str) -> tuple[datetime | None, bool]:
    """The earliest slot time at which a schedule, manual run or pause becomes due; and
    whether other workers hold schedules' claims (should one die, they are ours to take)."""
    row = conn.execute(NEXT_WAKEUP, {"worker_id": worker_id}).one()
    return row.wake_at, row.others_hold_claims


COUNT_DUE_BACKLOG = _sql(
    f"""
    SELECT count(*) FROM (
        SELECT 1 FROM workflow_schedules s
         WHERE {_DUE_PREDICATE} AND s.next_run_at <= :now
         LIMIT :cap) AS due
    """
)


def count_due_backlog(conn: Connection, now: datetime, cap: int = 10_000) -> int:
    """Schedules due and unclaimed right now, counted up to ``cap``."""
    return int(conn.execute(COUNT_DUE_BACKLOG, {"now": now, "cap": cap}).scalar_one())


COUNT_PAUSED = _sql(
    "SELECT count(*) FROM workflow_schedules WHERE paused_at IS NOT NULL AND deleted_at IS NULL"
)


def count_paused(conn: Connection) -> int:
    return int(conn.execute(COUNT_PAUSED).scalar_one())


# --- run context for executors ---------------------------------------------------------------

SELECT_RUN_CONTEXT = _sql(
    f"""
    SELECT {_R_RUN_COLUMNS}, {_CONTEXT_COLUMNS}
      FROM schedule_runs r
      {_CONTEXT_JOINS}
     WHERE r.id = ANY(CAST(:run_ids AS uuid[]))
    """
)


def select_run_context(
    conn: Connection, run_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, RunContext]:
    if not run_ids:
        return {}
    _, contexts = _runs_with_contexts(conn.execute(SELECT_RUN_CONTEXT, {"run_ids": list(run_ids)}))
    return contexts
