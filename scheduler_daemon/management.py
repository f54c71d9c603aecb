"""Schedule management for operators and scripts: validate first, then one transaction.

Every function raises InputError (one line, naming the value) before it writes anything.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, text, update

from scheduler_daemon.db import queries
from scheduler_daemon.db import recovery as db_recovery
from scheduler_daemon.db.tables import MISFIRE_POLICIES, OVERLAP_POLICIES, workflow_schedules
from scheduler_daemon.errors import SchedulerError
from scheduler_daemon.policies import spec_of
from scheduler_daemon.timing import IntervalSpec, ScheduleSpec, TimingError, parse_spec
from scheduler_daemon.timing.interval import EVERY_PREFIX

# How the CLI spells each policy column, for its error messages; a file spells it as the column.
_POLICY_OPTIONS = {
    "misfire_policy": "--misfire-policy",
    "overlap_policy": "--overlap-policy",
    "misfire_grace_seconds": "--misfire-grace",
    "max_catchup_runs": "--max-catchup",
}


class InputError(SchedulerError):
    """Bad input from an operator; nothing was changed."""


@dataclass(frozen=True)
class SpecColumns:
    """How a spec is stored: a cron expression, or an interval and its anchor."""

    cron_expression: str | None
    interval_seconds: int | None
    interval_anchor: datetime | None


def spec_columns(expression: str, timezone: str, anchor: datetime | None = None) -> SpecColumns:
    """Validate ``expression`` in ``timezone``; raise InputError naming what is wrong."""
    try:
        spec = parse_spec(expression, timezone, anchor)
    except TimingError as exc:
        raise InputError(str(exc)) from None
    if isinstance(spec, IntervalSpec):
        return SpecColumns(None, spec.seconds, anchor)
    if anchor is not None:
        raise InputError(f"--anchor {anchor.isoformat()}: an anchor applies to '@every' specs only")
    return SpecColumns(" ".join(expression.split()), None, None)


def spec_text(row: Mapping[str, Any]) -> str:
    """A stored spec as an operator writes it: the cron expression, or '@every <n>s'."""
    return row["cron_expression"] or f"{EVERY_PREFIX} {row['interval_seconds']}s"


def parse_uuid(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InputError(f"{what} {raw!r} is not a UUID") from None


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs; a value that is valid JSON (number, list, object) is taken as JSON."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param {pair!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        params[key.strip()] = value
    return params


def check_choice(value: object, allowed: tuple[str, ...], what: str) -> None:
    """``what`` names the value as the user wrote it: an option or a file key."""
    if value is not None and value not in allowed:
        raise InputError(f"{what} {value!r}: must be one of {', '.join(allowed)}")


def check_at_least(value: object, minimum: int, what: str) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < minimum
    ):
        raise InputError(f"{what} {value!r}: must be a whole number of at least {minimum}")


def check_policies(values: Mapping[str, object], names: Mapping[str, str] | None = None) -> None:
    """Check the policy columns in ``values`` (absent or None: not given); ``names`` says how
    the user spelled each column (default: the column name itself, as a file does)."""
    spelled = names or {}
    for column, allowed in (
        ("misfire_policy", MISFIRE_POLICIES),
        ("overlap_policy", OVERLAP_POLICIES),
    ):
        check_choice(values.get(column), allowed, spelled.get(column, column))
    for column, minimum in (("misfire_grace_seconds", 0), ("max_catchup_runs", 1)):
        check_at_least(values.get(column), minimum, spelled.get(column, column))


def _option_policies(
    misfire_policy: str | None,
    overlap_policy: str | None,
    misfire_grace_seconds: int | None,
    max_catchup_runs: int | None,
) -> dict[str, Any]:
    """The policy options, checked, by column (None: not given)."""
    policies = {
        "misfire_policy": misfire_policy,
        "overlap_policy": overlap_policy,
        "misfire_grace_seconds": misfire_grace_seconds,
        "max_catchup_runs": max_catchup_runs,
    }
    check_policies(policies, _POLICY_OPTIONS)
    return policies


@dataclass(frozen=True)
class Workflows:
    """The workflows some references name, read in one query, to resolve them against."""

    ids: frozenset[uuid.UUID]
    by_name: Mapping[str, tuple[uuid.UUID, ...]]


def _as_uuid(reference: str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(reference, uuid.UUID):
        return reference
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None


def load_workflows(conn: Connection, references: Iterable[str | uuid.UUID]) -> Workflows:
    """A reference that reads as a UUID is a workflow id, any other a workflow name."""
    ids: list[uuid.UUID] = []
    names: list[str] = []
    for reference in references:
        as_id = _as_uuid(reference)
        if as_id is None:
            names.append(str(reference))
        else:
            ids.append(as_id)
    rows = conn.execute(
        text(
            "SELECT id, name FROM workflows "
            "WHERE id = ANY(CAST(:ids AS uuid[])) OR name = ANY(CAST(:names AS text[]))"
        ),
        {"ids": ids, "names": names},
    ).all()
    by_name: dict[str, tuple[uuid.UUID, ...]] = {}
    for row in rows:
        by_name[row.name] = (*by_name.get(row.name, ()), row.id)
    return Workflows(frozenset(row.id for row in rows), by_name)


def resolve_workflow(
    workflows: Workflows, reference: str | uuid.UUID, what: str = "workflow"
) -> uuid.UUID:
    """The id of the workflow ``reference`` (an id, or a name that exactly one workflow has);
    ``what`` names the reference in the error, as the user wrote it."""
    workflow_id = _as_uuid(reference)
    shown = reference if isinstance(reference, uuid.UUID) else repr(reference)
    if workflow_id is None:
        ids = workflows.by_name.get(str(reference), ())
        if len(ids) != 1:
            found = "no workflow" if not ids else f"{len(ids)} workflows"
            raise InputError(f"{what} {shown}: {found} has that name")
        return ids[0]
    if workflow_id not in workflows.ids:
        raise InputError(f"{what} {shown}: no such workflow")
    return workflow_id


def insert_schedule(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    row_id: uuid.UUID = conn.execute(
        insert(workflow_schedules).values(**values).returning(workflow_schedules.c.id)
    ).scalar_one()
    return row_id


def update_schedule_row(
    conn: Connection, schedule_id: uuid.UUID, values: Mapping[str, Any]
) -> None:
    conn.execute(
        update(workflow_schedules)
        .where(workflow_schedules.c.id == schedule_id)
        .values(**values, updated_at=func.now())
    )


def disable_schedules(conn: Connection, schedule_ids: Sequence[uuid.UUID]) -> None:
    conn.execute(
        text(
            "UPDATE workflow_schedules SET enabled = false, updated_at = now() "
            "WHERE id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": list(schedule_ids)},
    )


def _missing(schedule_id: uuid.UUID) -> InputError:
    return InputError(f"schedule {schedule_id} does not exist (or was deleted)")


def _schedule(conn: Connection, schedule_id: uuid.UUID, *, lock: bool = False) -> Mapping[str, Any]:
    suffix = " FOR UPDATE" if lock else ""
    row = (
        conn.execute(
            text(f"SELECT * FROM workflow_schedules WHERE id = :id AND deleted_at IS NULL{suffix}"),
            {"id": schedule_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise _missing(schedule_id)
    return dict(row)


def spec_of_row(row: Mapping[str, Any]) -> ScheduleSpec:
    return spec_of(
        row["cron_expression"], row["interval_seconds"], row["interval_anchor"], row["timezone"]
    )


def create_schedule(
    conn: Connection,
    now: datetime,
    *,
    workflow_id: uuid.UUID,
    name: str,
    expression: str,
    timezone: str = "UTC",
    anchor: datetime | None = None,
    enabled: bool = False,
    misfire_policy: str | None = None,
    overlap_policy: str | None = None,
    misfire_grace_seconds: int | None = None,
    max_catchup_runs: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    user_id: str | None = None,
) -> uuid.UUID:
    if not name.strip():
        raise InputError("--name '': a schedule needs a name")
    columns = spec_columns(expression, timezone, anchor)
    policies = _option_policies(
        misfire_policy, overlap_policy, misfire_grace_seconds, max_catchup_runs
    )
    resolve_workflow(load_workflows(conn, [workflow_id]), workflow_id, "--workflow")
    values: dict[str, Any] = {
        "workflow_id": workflow_id,
        "name": name.strip(),
        "user_id": user_id,
        "cron_expression": columns.cron_expression,
        "interval_seconds": columns.interval_seconds,
        "interval_anchor": columns.interval_anchor,
        "timezone": timezone,
        "enabled": enabled,
        "parameters": dict(parameters or {}),
        "next_run_at": spec_of_row({**columns.__dict__, "timezone": timezone}).next_after(now)
        if enabled
        else None,
    }
    values |= {k: v for k, v in policies.items() if v is not None}
    return insert_schedule(conn, values)


def update_schedule(
    conn: Connection,
    schedule_id: uuid.UUID,
    now: datetime,
    *,
    name: str | None = None,
    expression: str | None = None,
    timezone: str | None = None,
    anchor: datetime | None = None,
    misfire_policy: str | None = None,
    overlap_policy: str | None = None,
    misfire_grace_seconds: int | None = None,
    max_catchup_runs: int | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> None:
    """Change what is given; a new spec or zone recomputes the next slot from now."""
    row = _schedule(conn, schedule_id, lock=True)
    policies = _option_policies(
        misfire_policy, overlap_policy, misfire_grace_seconds, max_catchup_runs
    )
    if name is not None and not name.strip():
        raise InputError("--name '': a schedule needs a name")
    values: dict[str, Any] = {}
    if expression is not None or timezone is not None or anchor is not None:
        zone = timezone or row["timezone"]
        columns = spec_columns(expression or spec_text(row), zone, anchor or row["interval_anchor"])
        values |= columns.__dict__ | {"timezone": zone}
        if row["enabled"]:
            values["next_run_at"] = spec_of_row(values).next_after(now)
    optional = policies | {
        "name": name.strip() if name else None,
        "parameters": dict(parameters) if parameters is not None else None,
    }
    values |= {k: v for k, v in optional.items() if v is not None}
    if not values:
        raise InputError("nothing to update: give at least one option")
    update_schedule_row(conn, schedule_id, values)


def set_enabled(conn: Connection, schedule_id: uuid.UUID, now: datetime, enabled: bool) -> None:
    """Enabling starts from the next slot after now (never replays the past) and lifts a
    quarantine once the spec is valid again; disabling keeps the history."""
    row = _schedule(conn, schedule_id, lock=True)
    if not enabled:
        disable_schedules(conn, [schedule_id])
        return
    try:
        next_run_at = spec_of_row(row).next_after(now)
    except TimingError as exc:
        raise InputError(f"schedule {schedule_id} cannot be enabled: {exc}") from None
    quarantined = (row["pause_reason"] or "").startswith("quarantined:")
    conn.execute(
        text(
            """
            UPDATE workflow_schedules
               SET enabled = true, next_run_at = :next_run_at, updated_at = now(),
                   paused_at = CASE WHEN :lift THEN NULL ELSE paused_at END,
                   pause_reason = CASE WHEN :lift THEN NULL ELSE pause_reason END
             WHERE id = :id
            """
        ),
        {"id": schedule_id, "next_run_at": next_run_at, "lift": quarantined},
    )


def pause(
    conn: Connection,
    schedule_id: uuid.UUID,
    now: datetime,
    until: datetime | None,
    reason: str | None,
) -> None:
    _schedule(conn, schedule_id, lock=True)
    if until is not None and until <= now:
        raise InputError(f"--until {until.isoformat()}: must be in the future")
    conn.execute(
        text(
            """
            UPDATE workflow_schedules
               SET paused_at = now(), paused_until = :until, pause_reason = :reason,
                   updated_at = now()
             WHERE id = :id
            """
        ),
        {"id": schedule_id, "until": until, "reason": reason or "paused by an operator"},
    )


def resume(conn: Connection, schedule_id: uuid.UUID, now: datetime) -> datetime:
    """Resume from the next slot after now; the slots of the pause are not replayed."""
    row = _schedule(conn, schedule_id, lock=True)
    if row["paused_at"] is None:
        raise InputError(f"schedule {schedule_id} is not paused")
    try:
        next_run_at = spec_of_row(row).next_after(now)
    except TimingError as exc:
        raise InputError(f"schedule {schedule_id} cannot resume: {exc}") from None
    queries.set_next_runs(conn, {schedule_id: next_run_at}, resume=True)
    return next_run_at


def delete(conn: Connection, schedule_id: uuid.UUID, *, hard: bool) -> None:
    _schedule(conn, schedule_id, lock=True)
    if not hard:
        conn.execute(
            text(
                "UPDATE workflow_schedules SET deleted_at = now(), enabled = false, "
                "updated_at = now() WHERE id = :id"
            ),
            {"id": schedule_id},
        )
        return
    conn.execute(text("DELETE FROM schedule_runs WHERE schedule_id = :id"), {"id": schedule_id})
    conn.execute(text("DELETE FROM workflow_schedules WHERE id = :id"), {"id": schedule_id})


def trigger(
    conn: Connection,
    schedule_id: uuid.UUID,
    now: datetime,
    at: datetime | None,
    params: Mapping[str, Any],
) -> uuid.UUID:
    """Queue a manual run, for now or a chosen time; it never moves next_run_at."""
    overrides = json.dumps(dict(params)) if params else None
    run_id = queries.insert_manual_run(conn, schedule_id, at or now, overrides)
    if run_id is None:  # the insert selects the schedule only while it is not deleted
        raise _missing(schedule_id)
    return run_id


def prune_history(conn: Connection, older_than_days: float, batch_size: int = 1000) -> int:
    """Delete one batch of finished runs older than the age; returns how many went."""
    deleted = conn.execute(
        text(
            """
            DELETE FROM schedule_runs
             WHERE id IN (
                   SELECT id FROM schedule_runs
                    WHERE finished_at < now() - make_interval(secs => :days * 86400)
                      AND status IN ('succeeded', 'failed', 'skipped', 'cancelled')
                    LIMIT :batch
                      FOR UPDATE SKIP LOCKED)
            """
        ),
        {"days": older_than_days, "batch": batch_size},
    )
    return deleted.rowcount


def prune_all(
    engine: Engine, older_than_days: float, batch_size: int = 1000, max_batches: int | None = None
) -> int:
    """Delete finished runs older than the age, a batch per transaction, until a batch comes
    back short (or after ``max_batches``); returns how many went."""
    deleted = 0
    batches = itertools.count() if max_batches is None else range(max_batches)
    for _ in batches:
        with engine.begin() as conn:
            batch = prune_history(conn, older_than_days, batch_size)
        deleted += batch
        if batch < batch_size:
            break
    return deleted


# --- reading ----------------------------------------------------------------------------------

# The columns of ``schedules list``'s table; why a schedule is paused (an operator's reason,
# auto-paused after failures, quarantined) last, as it is free text.
SCHEDULE_COLUMNS = (
    "schedule_id, name, workflow_name, spec, timezone, state, next_run_at, last_run_at, "
    "pause_reason"
)


def list_schedules(
    conn: Connection,
    *,
    enabled: bool | None = None,
    paused: bool = False,
    overdue: bool = False,
    workflow: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    filters = ["state <> 'deleted'"]
    params: dict[str, Any] = {"limit": limit}
    if enabled is not None:
        filters.append("enabled = :enabled")
        params["enabled"] = enabled
    if paused:
        filters.append("paused_at IS NOT NULL")
    if overdue:
        filters.append("schedule_id IN (SELECT schedule_id FROM overdue_schedules)")
    if workflow is not None:
        filters.append("(workflow_id::text = :workflow OR workflow_name = :workflow)")
        params["workflow"] = workflow
    rows = conn.execute(
        text(
            f"SELECT {SCHEDULE_COLUMNS}, enabled, paused_until, consecutive_failures "
            f"FROM schedule_status WHERE {' AND '.join(filters)} "
            "ORDER BY next_run_at NULLS LAST, name LIMIT :limit"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def show_schedule(conn: Connection, schedule_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    row = _schedule(conn, schedule_id)
    status = conn.execute(
        text("SELECT workflow_name, state FROM schedule_status WHERE schedule_id = :id"),
        {"id": schedule_id},
    ).one()
    stats = conn.execute(
        text(
            """
            SELECT count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   avg(extract(epoch FROM finished_at - started_at))
                       FILTER (WHERE status IN ('succeeded', 'failed')) AS mean_seconds
              FROM schedule_runs WHERE schedule_id = :id
            """
        ),
        {"id": schedule_id},
    ).one()
    recent = conn.execute(
        text(
            """
            SELECT id AS run_id, scheduled_for, trigger, status, skip_reason, error_message
              FROM schedule_runs WHERE schedule_id = :id
             ORDER BY scheduled_for DESC, created_at DESC LIMIT 10
            """
        ),
        {"id": schedule_id},
    ).mappings()
    finished = stats.succeeded + stats.failed
    try:
        upcoming = spec_of_row(row).fires_after(now, 5)
    except TimingError:
        upcoming = []
    return {
        "id": row["id"],
        "name": row["name"],
        "workflow": status.workflow_name,
        "workflow_id": row["workflow_id"],
        "state": status.state,
        "spec": spec_text(row),
        "timezone": row["timezone"],
        "interval_anchor": row["interval_anchor"],
        "enabled": row["enabled"],
        "misfire_policy": row["misfire_policy"],
        "misfire_grace_seconds": row["misfire_grace_seconds"],
        "max_catchup_runs": row["max_catchup_runs"],
        "overlap_policy": row["overlap_policy"],
        "parameters": row["parameters"],
        "next_run_at": row["next_run_at"],
        "last_run_at": row["last_run_at"],
        "locked_by": row["locked_by"],
        "paused_at": row["paused_at"],
        "paused_until": row["paused_until"],
        "pause_reason": row["pause_reason"],
        "consecutive_failures": row["consecutive_failures"],
        "last_error": row["last_error"],
        "success_rate": round(stats.succeeded / finished, 4) if finished else None,
        "mean_duration_seconds": float(stats.mean_seconds)
        if stats.mean_seconds is not None
        else None,
        "next_fire_times": upcoming,
        "recent_runs": [dict(r) for r in recent],
    }


RUN_COLUMNS = "run_id, schedule_name, scheduled_for, trigger, status, worker_id, error"


def list_runs(
    conn: Connection,
    *,
    schedule_id: uuid.UUID | None = None,
    status: str | None = None,
    trigger: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    filters = ["true"]
    params: dict[str, Any] = {"limit": limit}
    for column, value in (
        ("r.schedule_id", schedule_id),
        ("r.status", status),
        ("r.trigger", trigger),
    ):
        if value is not None:
            key = column.split(".")[1]
            filters.append(f"{column} = :{key}")
            params[key] = value
    if since is not None:
        filters.append("r.scheduled_for >= :since")
        params["since"] = since
    rows = conn.execute(
        text(
            f"""
            SELECT r.id AS run_id, s.name AS schedule_name, r.schedule_id, r.scheduled_for,
                   r.trigger, r.status, r.skip_reason, r.worker_id, r.amc_execution_id,
                   r.started_at, r.finished_at, COALESCE(r.error_message, '') AS error
              FROM schedule_runs r JOIN workflow_schedules s ON s.id = r.schedule_id
             WHERE {" AND ".join(filters)}
             ORDER BY r.scheduled_for DESC, r.created_at DESC
             LIMIT :limit
            """
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def show_run(conn: Connection, run_id: uuid.UUID) -> dict[str, Any]:
    row = (
        conn.execute(
            text(
                """
                SELECT r.*, s.name AS schedule_name, e.status AS execution_status,
                       e.amc_execution_id AS execution_amc_id
                  FROM schedule_runs r
                  JOIN workflow_schedules s ON s.id = r.schedule_id
                  LEFT JOIN workflow_executions e ON e.id = r.execution_id
                 WHERE r.id = :id
                """
            ),
            {"id": run_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise InputError(f"run {run_id} does not exist")
    return dict(row)


def list_workers(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            """
            SELECT worker_id, hostname, pid, version, state, dead_because, heartbeat_at,
                   heartbeat_age, clock_skew_seconds, locks_held, started_at, stopped_at,
                   session_pid
              FROM worker_status
             ORDER BY state = 'live' DESC, heartbeat_at DESC
            """
        )
    ).mappings()
    return [dict(r) for r in rows]


def invalid_schedules(conn: Connection) -> list[dict[str, Any]]:
    """Schedules (not deleted) whose stored spec cannot be scheduled, with the reason."""
    rows = conn.execute(
        text(
            """
            SELECT id, name, cron_expression, interval_seconds, interval_anchor, timezone
              FROM workflow_schedules WHERE deleted_at IS NULL ORDER BY name
            """
        )
    ).mappings()
    invalid = []
    for row in rows:
        try:
            spec_of_row(dict(row))
        except TimingError as exc:
            invalid.append({"schedule_id": row["id"], "name": row["name"], "problem": str(exc)})
    return invalid


def resolve_run(
    conn: Connection, run_id: uuid.UUID, execution_id: str | None, *, rerun: bool
) -> dict[str, Any]:
    """Settle an ``unresolved`` run: give it the AMC execution an operator found to be its
    own, or record that it has none (and, with ``rerun``, queue a manual run of its slot)."""
    row = conn.execute(db_recovery.SELECT_UNRESOLVED_RUN, {"run_id": run_id}).mappings().first()
    if row is None:
        raise InputError(f"run {run_id} does not exist")
    if row["status"] != "unresolved":
        raise InputError(f"run {run_id} is {row['status']}, not unresolved: nothing to settle")
    if execution_id is not None and rerun:
        raise InputError("--rerun goes with --no-execution: a run with an execution has run")
    result: dict[str, Any] = {"run_id": run_id}
    if execution_id is not None:
        holder = conn.execute(db_recovery.SELECT_HOLDER, {"execution_id": execution_id}).first()
        if holder is not None:
            raise InputError(
                f"--execution {execution_id}: already the execution of run {holder.id}"
            )
        params = {"run_id": run_id, "execution_id": execution_id}
        conn.execute(db_recovery.ATTACH_EXECUTION, params)
        result |= {"status": "dispatched", "amc_execution_id": execution_id}
        return result
    conn.execute(db_recovery.SETTLE_WITHOUT_EXECUTION, {"run_id": run_id})
    result["status"] = "failed"
    if rerun:
        overrides = row["parameters_override"]
        result["rerun_id"] = queries.insert_manual_run(
            conn,
            row["schedule_id"],
            row["scheduled_for"],
            None if overrides is None else json.dumps(overrides),
        )
    return result
