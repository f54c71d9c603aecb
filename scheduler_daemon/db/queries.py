"""The claim protocol's statements (``claim.sql``, where each has its note), one function
each, taking and returning domain types.

Each function takes a Connection and never commits: the caller owns the transaction, one short
transaction per step of the tick.
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
from sqlalchemy import Connection, Result

from scheduler_daemon.db.statements import load_statements
from scheduler_daemon.domain import (
    ClaimedRun,
    DueSchedule,
    NewRun,
    Outcome,
    RunContext,
    RunTrigger,
    ScheduleDecision,
    run_log_fields,
)

_SQL = load_statements("claim.sql")

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

SELECT_DUE = _SQL["select_due"]


def select_due(conn: Connection, now: datetime, batch_size: int) -> list[DueSchedule]:
    """Lock up to ``batch_size`` due schedules, oldest slot first, skipping rows another
    daemon is claiming right now."""
    rows = conn.execute(SELECT_DUE, {"now": now, "batch_size": batch_size})
    return _rows_as(DueSchedule, rows)


# --- claim -------------------------------------------------------------------------------

CLAIM = _SQL["claim"]


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


INSERT_RUNS = _SQL["insert_runs"]


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


RELEASE_LOCKS = _SQL["release_locks"]


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

CLAIM_PENDING_MANUAL = _SQL["claim_pending_manual"]


def claim_pending_manual_runs(
    conn: Connection, worker_id: str, now: datetime, batch_size: int
) -> list[ClaimedRun]:
    """Manual runs are claimed on their own row: they never touch the schedule's slot state."""
    rows = conn.execute(
        CLAIM_PENDING_MANUAL, {"worker_id": worker_id, "now": now, "batch_size": batch_size}
    )
    return _rows_as(ClaimedRun, rows)


INSERT_MANUAL_RUN = _SQL["insert_manual_run"]


def insert_manual_run(
    conn: Connection, schedule_id: uuid.UUID, scheduled_for: datetime, overrides_json: str | None
) -> uuid.UUID | None:
    row = conn.execute(
        INSERT_MANUAL_RUN,
        {"schedule_id": schedule_id, "scheduled_for": scheduled_for, "overrides": overrides_json},
    ).first()
    return None if row is None else row.id


# --- dispatch and outcome ------------------------------------------------------------------

MARK_DISPATCHING = _SQL["mark_dispatching"]


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


RECORD_OUTCOMES = _SQL["record_outcomes"]


def record_outcomes(
    conn: Connection,
    worker_id: str,
    outcomes: Sequence[Outcome],
    max_failures: int,
    first_status_check: float = 0.0,
) -> dict[uuid.UUID, OutcomeWritten]:
    """Record what the executor said for a batch of runs; a run whose claim was lost comes
    back with ``recorded=False``. An execution started gets its first status check
    ``first_status_check`` seconds from now."""
    if not outcomes:
        return {}
    rows = conn.execute(
        RECORD_OUTCOMES,
        {
            "worker_id": worker_id,
            "max_failures": max_failures,
            "first_check": first_status_check,
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
            recorded=row.trigger != RunTrigger.SCHEDULED or row.schedule_updated,
            paused=row.paused,
            pause_reason=row.pause_reason,
        )
        for row in rows.all()
    }
    return {o.run.id: written.get(o.run.id, OutcomeWritten(recorded=False)) for o in outcomes}


# --- status sync of executions still running remotely ----------------------------------------

CLAIM_STATUS_CHECKS = _SQL["claim_status_checks"]


@dataclass(frozen=True)
class StatusCheck:
    """An execution whose status is due to be asked, with its status as last recorded."""

    id: uuid.UUID
    amc_execution_id: str
    status: str
    raw_status: str | None
    amc_instance_id: str
    amc_entity_id: str
    marketplace_id: str | None
    past_deadline: bool
    next_due_in: float | None  # the first check the claim left, the same for all its checks
    next_check_in: float  # this one's next check


def claim_status_checks(
    conn: Connection, *, interval: float, deadline: float, lookahead: float, batch_size: int
) -> list[StatusCheck]:
    """One instance's executions due for a status check (within ``lookahead`` seconds), each
    pushed to its next check (backing off)."""
    rows = conn.execute(
        CLAIM_STATUS_CHECKS,
        {
            "interval": interval,
            "deadline": deadline,
            "lookahead": lookahead,
            "batch_size": batch_size,
        },
    )
    return _rows_as(StatusCheck, rows)


NEXT_STATUS_CHECK_IN = _SQL["next_status_check_in"]


def next_status_check_in(conn: Connection) -> float | None:
    """Seconds until the next status check falls due (negative: overdue); None: none."""
    seconds = conn.execute(NEXT_STATUS_CHECK_IN).scalar_one()
    return None if seconds is None else float(seconds)


@dataclass(frozen=True)
class StatusSeen:
    execution: uuid.UUID
    status: str  # pending, running, succeeded, failed, cancelled, unknown
    raw_status: str | None
    reason: str | None


RECORD_STATUSES = _SQL["record_statuses"]


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

DATABASE_NOW = _SQL["database_now"]

HEARTBEAT = _SQL["heartbeat"]

RENEW_LOCKS = _SQL["renew_locks"]

RENEW_MANUAL_RUNS = _SQL["renew_manual_runs"]


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


MARK_STOPPED = _SQL["mark_stopped"]


def mark_stopped(conn: Connection, worker_id: str) -> None:
    conn.execute(MARK_STOPPED, {"worker_id": worker_id})


# --- reaper --------------------------------------------------------------------------------


SELECT_SESSIONS_GONE = _SQL["select_sessions_gone"]


def select_sessions_gone(
    conn: Connection, worker_id: str, *, dead_after: float, settle: float
) -> list[str]:
    """Other workers, not yet dead by their heartbeat, whose session lock is free now."""
    params = {"worker_id": worker_id, "dead_after": dead_after, "settle": settle}
    return list(conn.execute(SELECT_SESSIONS_GONE, params).scalars())


SELECT_STALE_LOCKS = _SQL["select_stale_locks"]

TAKE_OVER_LOCKS = _SQL["take_over_locks"]

TAKE_OVER_RUNS = _SQL["take_over_runs"]


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


REAP_MANUAL_RUNS = _SQL["reap_manual_runs"]


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

SELECT_NEEDING_NEXT_RUN = _SQL["select_needing_next_run"]

SELECT_EXPIRED_PAUSES = _SQL["select_expired_pauses"]


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


SET_NEXT_RUNS = _SQL["set_next_runs"]


def set_next_runs(
    conn: Connection, next_runs: Mapping[uuid.UUID, datetime], *, resume: bool = False
) -> None:
    """Give schedules their next slot in one statement; ``resume`` also lifts their pause."""
    if next_runs:
        conn.execute(
            SET_NEXT_RUNS,
            {"ids": list(next_runs), "next": list(next_runs.values()), "resume": resume},
        )


QUARANTINE = _SQL["quarantine"]

INSERT_QUARANTINED_RUN = _SQL["insert_quarantined_run"]


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

NEXT_WAKEUP = _SQL["next_wakeup"]


def next_wakeup(conn: Connection, worker_id: str) -> tuple[datetime | None, bool]:
    """The earliest slot time at which a schedule, manual run or pause becomes due; and
    whether other workers hold schedules' claims (should one die, they are ours to take)."""
    row = conn.execute(NEXT_WAKEUP, {"worker_id": worker_id}).one()
    return row.wake_at, row.others_hold_claims


COUNT_DUE_BACKLOG = _SQL["count_due_backlog"]


def count_due_backlog(conn: Connection, now: datetime, cap: int = 10_000) -> int:
    """Schedules due and unclaimed right now, counted up to ``cap``."""
    return int(conn.execute(COUNT_DUE_BACKLOG, {"now": now, "cap": cap}).scalar_one())


COUNT_OVERDUE_STATUS_CHECKS = _SQL["count_overdue_status_checks"]


def count_overdue_status_checks(conn: Connection, seconds: float, cap: int = 10_000) -> int:
    """Unfinished executions whose status check is more than ``seconds`` overdue."""
    params = {"seconds": seconds, "cap": cap}
    return int(conn.execute(COUNT_OVERDUE_STATUS_CHECKS, params).scalar_one())


COUNT_PAUSED = _SQL["count_paused"]


def count_paused(conn: Connection) -> int:
    return int(conn.execute(COUNT_PAUSED).scalar_one())


# --- run context for executors ---------------------------------------------------------------

SELECT_RUN_CONTEXT = _SQL["select_run_context"]


def select_run_context(
    conn: Connection, run_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, RunContext]:
    if not run_ids:
        return {}
    _, contexts = _runs_with_contexts(conn.execute(SELECT_RUN_CONTEXT, {"run_ids": list(run_ids)}))
    return contexts
