"""Schedule management for operators and scripts: validate first, then one transaction.

Every function raises before it writes anything: a FieldError naming the field as the domain
names it (a schedule's attribute: ``name``, ``workflow``, ``cron``, ``timezone``, ``anchor``,
``misfire_policy``, ``overlap_policy``, ``misfire_grace_seconds``, ``max_catchup_runs``,
``parameters``, ``paused_until``; a run's ``amc_execution_id``, ``rerun``), which each face
spells its own way, or an InputError about the request as a whole. The statements are in
``scheduler_daemon.db``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from scheduler_daemon.db import catalog, queries
from scheduler_daemon.db import health as db_health
from scheduler_daemon.db import runs as db_runs
from scheduler_daemon.db import schedules as db_schedules
from scheduler_daemon.domain import MisfirePolicy, OverlapPolicy, RunStatus
from scheduler_daemon.errors import FieldError, InputError
from scheduler_daemon.policies import spec_of
from scheduler_daemon.timing import IntervalSpec, ScheduleSpec, TimingError, parse_spec
from scheduler_daemon.timing.interval import EVERY_PREFIX, check_anchor, is_interval_expression
from scheduler_daemon.timing.zones import load_zone

# A new schedule's definition where its input says nothing: the table's own defaults.
DEFINITION_DEFAULTS: Mapping[str, Any] = {
    "timezone": "UTC",
    "misfire_policy": MisfirePolicy.SKIP.value,
    "overlap_policy": OverlapPolicy.SKIP.value,
    "misfire_grace_seconds": 300,
    "max_catchup_runs": 10,
    "parameters": {},
}

_CHOICES: Mapping[str, tuple[str, ...]] = {
    "misfire_policy": tuple(MisfirePolicy),
    "overlap_policy": tuple(OverlapPolicy),
}
_MINIMUMS: Mapping[str, int] = {"misfire_grace_seconds": 0, "max_catchup_runs": 1}


@dataclass(frozen=True)
class SpecColumns:
    """How a spec is stored: a cron expression, or an interval and its anchor."""

    cron_expression: str | None
    interval_seconds: int | None
    interval_anchor: datetime | None


def spec_columns(expression: str, timezone: str, anchor: datetime | None = None) -> SpecColumns:
    """Validate ``expression`` in ``timezone``; raise FieldError naming what is wrong."""
    try:
        load_zone(timezone)
    except TimingError as exc:
        raise FieldError("timezone", timezone, str(exc)) from None
    if anchor is not None:
        try:
            check_anchor(anchor)
        except TimingError as exc:
            raise FieldError("anchor", anchor, str(exc)) from None
    try:
        spec = parse_spec(expression, timezone, anchor)
    except TimingError as exc:
        raise FieldError("cron", expression, str(exc)) from None
    if isinstance(spec, IntervalSpec):
        return SpecColumns(None, spec.seconds, anchor)
    if anchor is not None:
        raise FieldError(
            "anchor",
            anchor,
            f"an anchor ({anchor.isoformat()}) applies to '@every' intervals only, "
            f"not to the cron expression {expression!r}",
        )
    return SpecColumns(" ".join(expression.split()), None, None)


def spec_text(row: Mapping[str, Any]) -> str:
    """A stored spec as an operator writes it: the cron expression, or '@every <n>s'."""
    return row["cron_expression"] or f"{EVERY_PREFIX} {row['interval_seconds']}s"


def check_name(name: str) -> str:
    """The name, stripped; it must not be empty."""
    if not name.strip():
        raise FieldError("name", name, f"{name!r} is empty: a schedule needs a name")
    return name.strip()


def check_policies(values: Mapping[str, object]) -> None:
    """Check the policy fields in ``values`` (absent or None: not given)."""
    for field, allowed in _CHOICES.items():
        value = values.get(field)
        if value is not None and value not in allowed:
            raise FieldError(field, value, f"{value!r} is not one of {', '.join(allowed)}")
    for field, minimum in _MINIMUMS.items():
        value = values.get(field)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < minimum
        ):
            raise FieldError(field, value, f"{value!r} is not a whole number of at least {minimum}")


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
    rows = catalog.select_workflows(conn, ids, names)
    by_name: dict[str, tuple[uuid.UUID, ...]] = {}
    for row in rows:
        by_name[row.name] = (*by_name.get(row.name, ()), row.id)
    return Workflows(frozenset(row.id for row in rows), by_name)


def resolve_workflow(workflows: Workflows, reference: str | uuid.UUID) -> uuid.UUID:
    """The id of the workflow ``reference`` (an id, or a name that exactly one workflow has)."""
    workflow_id = _as_uuid(reference)
    if workflow_id is None:
        ids = workflows.by_name.get(str(reference), ())
        if not ids:
            raise FieldError("workflow", reference, f"no workflow is named {reference!r}")
        if len(ids) > 1:
            raise FieldError(
                "workflow",
                reference,
                f"{len(ids)} workflows are named {reference!r}; name it by its id",
            )
        return ids[0]
    if workflow_id not in workflows.ids:
        raise FieldError("workflow", reference, f"no workflow has the id {workflow_id}")
    return workflow_id


def _missing(schedule_id: uuid.UUID) -> InputError:
    return InputError(f"schedule {schedule_id} does not exist (or was deleted)")


def _schedule(conn: Connection, schedule_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any]:
    row = db_schedules.select_schedule(conn, schedule_id, lock=lock)
    if row is None:
        raise _missing(schedule_id)
    return row


def spec_of_row(row: Mapping[str, Any]) -> ScheduleSpec:
    return spec_of(
        row["cron_expression"], row["interval_seconds"], row["interval_anchor"], row["timezone"]
    )


def checked_policies(
    misfire_policy: str | None,
    overlap_policy: str | None,
    misfire_grace_seconds: int | None,
    max_catchup_runs: int | None,
) -> dict[str, Any]:
    """The policy columns as given (None: not given), after checking each."""
    policies = {
        "misfire_policy": misfire_policy,
        "overlap_policy": overlap_policy,
        "misfire_grace_seconds": misfire_grace_seconds,
        "max_catchup_runs": max_catchup_runs,
    }
    check_policies(policies)
    return policies


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
    stripped = check_name(name)
    columns = spec_columns(expression, timezone, anchor)
    policies = checked_policies(
        misfire_policy, overlap_policy, misfire_grace_seconds, max_catchup_runs
    )
    resolve_workflow(load_workflows(conn, [workflow_id]), workflow_id)
    values: dict[str, Any] = {
        **DEFINITION_DEFAULTS,
        **{k: v for k, v in policies.items() if v is not None},
        **columns.__dict__,
        "workflow_id": workflow_id,
        "name": stripped,
        "user_id": user_id,
        "timezone": timezone,
        "enabled": enabled,
        "parameters": dict(parameters or {}),
    }
    values["next_run_at"] = spec_of_row(values).next_after(now) if enabled else None
    return db_schedules.insert_schedule(conn, values)


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
    policies = checked_policies(
        misfire_policy, overlap_policy, misfire_grace_seconds, max_catchup_runs
    )
    given: dict[str, Any] = {k: v for k, v in policies.items() if v is not None}
    if name is not None:
        given["name"] = check_name(name)
    if parameters is not None:
        given["parameters"] = dict(parameters)
    respec = expression is not None or timezone is not None or anchor is not None
    if not given and not respec:
        raise InputError("nothing to update: no change given")
    definition = {column: row[column] for column in db_schedules.DEFINITION_COLUMNS} | given
    next_run_at = None
    if respec:
        zone = timezone or row["timezone"]
        # The stored anchor goes with the stored interval, not with a new cron expression.
        if anchor is None and (expression is None or is_interval_expression(expression)):
            anchor = row["interval_anchor"]
        columns = spec_columns(expression or spec_text(row), zone, anchor)
        definition |= columns.__dict__ | {"timezone": zone}
        if row["enabled"]:
            next_run_at = spec_of_row(definition).next_after(now)
    db_schedules.update_definition(
        conn,
        schedule_id,
        definition,
        restart=respec and row["enabled"],
        next_run_at=next_run_at,
    )


def set_enabled(conn: Connection, schedule_id: uuid.UUID, now: datetime, enabled: bool) -> None:
    """Enabling starts from the next slot after now (never replays the past) and lifts a
    quarantine once the spec is valid again; disabling keeps the history."""
    row = _schedule(conn, schedule_id, lock=True)
    if not enabled:
        db_schedules.disable(conn, [schedule_id])
        return
    try:
        next_run_at = spec_of_row(row).next_after(now)
    except TimingError as exc:
        raise InputError(f"schedule {schedule_id} cannot be enabled: {exc}") from None
    quarantined = (row["pause_reason"] or "").startswith("quarantined:")
    db_schedules.enable(conn, schedule_id, next_run_at, lift=quarantined)


def pause(
    conn: Connection,
    schedule_id: uuid.UUID,
    now: datetime,
    until: datetime | None,
    reason: str | None,
) -> None:
    _schedule(conn, schedule_id, lock=True)
    if until is not None and until <= now:
        raise FieldError("paused_until", until, f"{until.isoformat()} is not in the future")
    db_schedules.pause(conn, schedule_id, until, reason or "paused by an operator")


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
    if hard:
        db_schedules.hard_delete(conn, schedule_id)
    else:
        db_schedules.soft_delete(conn, schedule_id)


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


def prune_all(engine: Engine, older_than_days: float) -> int:
    """Delete finished runs older than the age, a batch per transaction; how many went."""
    return db_runs.prune_all(engine, older_than_days)


# --- reading ----------------------------------------------------------------------------------


def list_schedules(
    conn: Connection,
    *,
    enabled: bool | None = None,
    paused: bool = False,
    overdue: bool = False,
    workflow: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    return db_schedules.list_schedules(
        conn, enabled=enabled, paused=paused, overdue=overdue, workflow=workflow, limit=limit
    )


def show_schedule(conn: Connection, schedule_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    row = _schedule(conn, schedule_id)
    status = db_schedules.select_status(conn, schedule_id)
    stats = db_runs.run_stats(conn, schedule_id)
    recent = db_runs.recent_runs(conn, schedule_id)
    finished = stats["succeeded"] + stats["failed"]
    try:
        upcoming = spec_of_row(row).fires_after(now, 5)
    except TimingError:
        upcoming = []
    return {
        "id": row["id"],
        "name": row["name"],
        "workflow": status["workflow_name"],
        "workflow_id": row["workflow_id"],
        "state": status["state"],
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
        "success_rate": round(stats["succeeded"] / finished, 4) if finished else None,
        "mean_duration_seconds": float(stats["mean_seconds"])
        if stats["mean_seconds"] is not None
        else None,
        "next_fire_times": upcoming,
        "recent_runs": recent,
    }


def list_runs(
    conn: Connection,
    *,
    schedule_id: uuid.UUID | None = None,
    status: str | None = None,
    trigger: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    return db_runs.list_runs(
        conn, schedule_id=schedule_id, status=status, trigger=trigger, since=since, limit=limit
    )


def show_run(conn: Connection, run_id: uuid.UUID) -> dict[str, Any]:
    row = db_runs.select_run(conn, run_id)
    if row is None:
        raise InputError(f"run {run_id} does not exist")
    return row


def list_workers(conn: Connection) -> list[dict[str, Any]]:
    return db_health.list_workers(conn)


def invalid_schedules(conn: Connection) -> list[dict[str, Any]]:
    """Schedules (not deleted) whose stored spec cannot be scheduled, with the reason."""
    invalid = []
    for row in db_schedules.select_specs(conn):
        try:
            spec_of_row(row)
        except TimingError as exc:
            invalid.append({"schedule_id": row["id"], "name": row["name"], "problem": str(exc)})
    return invalid


def resolve_run(
    conn: Connection, run_id: uuid.UUID, execution_id: str | None, *, rerun: bool
) -> dict[str, Any]:
    """Settle an ``unresolved`` run: give it the AMC execution an operator found to be its
    own, or record that it has none (and, with ``rerun``, queue a manual run of its slot)."""
    row = db_runs.select_unresolved_run(conn, run_id)
    if row is None:
        raise InputError(f"run {run_id} does not exist")
    if row["status"] != RunStatus.UNRESOLVED:
        raise InputError(f"run {run_id} is {row['status']}, not unresolved: nothing to settle")
    if execution_id is not None and rerun:
        raise FieldError("rerun", rerun, "only a run settled without an execution can be rerun")
    result: dict[str, Any] = {"run_id": run_id}
    if execution_id is not None:
        holder = db_runs.execution_holder(conn, execution_id)
        if holder is not None:
            raise FieldError(
                "amc_execution_id",
                execution_id,
                f"{execution_id!r} is already the execution of run {holder}",
            )
        db_runs.attach_execution(conn, run_id, execution_id)
        result |= {"status": RunStatus.DISPATCHED, "amc_execution_id": execution_id}
        return result
    db_runs.settle_without_execution(conn, run_id)
    result["status"] = RunStatus.FAILED
    if rerun:
        overrides = row["parameters_override"]
        result["rerun_id"] = queries.insert_manual_run(
            conn,
            row["schedule_id"],
            row["scheduled_for"],
            None if overrides is None else json.dumps(overrides),
        )
    return result
