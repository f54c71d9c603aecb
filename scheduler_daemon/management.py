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
from scheduler_daemon.errors import ConflictError, FieldError, InputError, NotFoundError
from scheduler_daemon.policies import spec_of
from scheduler_daemon.references import Kind, resolve
from scheduler_daemon.timing import (
    DEFAULT_MIN_INTERVAL_SECONDS,
    IntervalSpec,
    ScheduleSpec,
    TimingError,
    describe,
    parse_spec,
    preview,
    preview_as_dict,
    warnings,
)
from scheduler_daemon.timing.interval import check_anchor, format_every, is_interval_expression
from scheduler_daemon.timing.zones import load_zone

# What names a schedule, workflow or run: its name, its id or the start of its id.
Reference = str | uuid.UUID

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
    """A stored spec as an operator writes it: the cron expression, or '@every 15m'."""
    return row["cron_expression"] or format_every(row["interval_seconds"])


def preview_spec(
    expression: str,
    timezone: str,
    after: datetime,
    count: int,
    anchor: datetime | None = None,
    *,
    stored: bool = False,
) -> dict[str, Any]:
    """A spec's next ``count`` fire times after ``after``, each with what a daylight-saving
    change does to it, the spec in words and warnings (for forms: nothing is saved). A spec
    that is not valid raises FieldError as ``spec_columns`` does. ``stored``: the spec of a
    saved schedule, read as the daemon reads it (an interval shorter than a new schedule may
    have, such as the demo's, still runs)."""
    least = 1 if stored else DEFAULT_MIN_INTERVAL_SECONDS
    if not stored:
        spec_columns(expression, timezone, anchor)
    try:
        entries = preview(
            expression, timezone, after, count, anchor=anchor, min_interval_seconds=least
        )
        advice = warnings(expression, timezone, after=after, min_interval_seconds=least)
        description = describe(expression, timezone, min_interval_seconds=least)
    except TimingError as exc:
        raise FieldError("cron", expression, str(exc)) from None
    shown = preview_as_dict(entries, expression, timezone, advice)
    return shown | {"description": description}


def describe_spec(expression: str, timezone: str) -> str:
    """The spec in words; for a stored spec that cannot be scheduled, why not."""
    try:
        return describe(expression, timezone, min_interval_seconds=1)
    except TimingError as exc:
        return f"cannot be scheduled: {exc}"


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
    by_name: Mapping[str, uuid.UUID]  # names are unique (a constraint)


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
    return Workflows(frozenset(row.id for row in rows), {row.name: row.id for row in rows})


def resolve_workflow(workflows: Workflows, reference: str | uuid.UUID) -> uuid.UUID:
    """The id of the workflow ``reference`` (its id or its name)."""
    workflow_id = _as_uuid(reference)
    if workflow_id is None:
        named = workflows.by_name.get(str(reference))
        if named is None:
            raise FieldError("workflow", reference, f"no workflow is named {reference!r}")
        return named
    if workflow_id not in workflows.ids:
        raise FieldError("workflow", reference, f"no workflow has the id {workflow_id}")
    return workflow_id


def _schedule(conn: Connection, schedule: Reference, *, lock: bool = False) -> dict[str, Any]:
    """The schedule's row (``lock``: for update); FieldError if the reference names none."""
    schedule_id = resolve(conn, Kind.SCHEDULE, schedule)
    row = db_schedules.select_schedule(conn, schedule_id, lock=lock)
    if row is None:  # deleted since it was resolved
        raise NotFoundError("schedule", schedule, f"schedule {schedule_id} was just deleted")
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
    workflow: Reference,
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
    workflow_id = resolve(conn, Kind.WORKFLOW, workflow)
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
    schedule: Reference,
    now: datetime,
    *,
    name: str | None = None,
    workflow: Reference | None = None,
    expression: str | None = None,
    timezone: str | None = None,
    anchor: datetime | None = None,
    misfire_policy: str | None = None,
    overlap_policy: str | None = None,
    misfire_grace_seconds: int | None = None,
    max_catchup_runs: int | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """Change what is given; a new spec or zone recomputes the next slot from now."""
    row = _schedule(conn, schedule, lock=True)
    policies = checked_policies(
        misfire_policy, overlap_policy, misfire_grace_seconds, max_catchup_runs
    )
    given: dict[str, Any] = {k: v for k, v in policies.items() if v is not None}
    if name is not None:
        given["name"] = check_name(name)
    if workflow is not None:
        given["workflow_id"] = resolve(conn, Kind.WORKFLOW, workflow)
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
    schedule_id: uuid.UUID = row["id"]
    db_schedules.update_definition(
        conn,
        schedule_id,
        definition,
        restart=respec and row["enabled"],
        next_run_at=next_run_at,
    )
    return schedule_id


def set_enabled(conn: Connection, schedule: Reference, now: datetime, enabled: bool) -> uuid.UUID:
    """Enabling starts from the next slot after now (never replays the past) and lifts a
    quarantine once the spec is valid again; disabling keeps the history."""
    row = _schedule(conn, schedule, lock=True)
    schedule_id: uuid.UUID = row["id"]
    if not enabled:
        db_schedules.disable(conn, [schedule_id])
        return schedule_id
    try:
        next_run_at = spec_of_row(row).next_after(now)
    except TimingError as exc:
        raise ConflictError(f"schedule {row['name']!r} cannot be enabled: {exc}") from None
    quarantined = (row["pause_reason"] or "").startswith("quarantined:")
    db_schedules.enable(conn, schedule_id, next_run_at, lift=quarantined)
    return schedule_id


def pause(
    conn: Connection,
    schedule: Reference,
    now: datetime,
    until: datetime | None,
    reason: str | None,
) -> uuid.UUID:
    """Pause (again: the new reason and end replace the old)."""
    row = _schedule(conn, schedule, lock=True)
    if until is not None and until <= now:
        raise FieldError("paused_until", until, f"{until.isoformat()} is not in the future")
    schedule_id: uuid.UUID = row["id"]
    db_schedules.pause(conn, schedule_id, until, reason or "paused by an operator")
    return schedule_id


def resume(conn: Connection, schedule: Reference, now: datetime) -> uuid.UUID:
    """Resume from the next slot after now; the slots of the pause are not replayed. A
    schedule that is not paused is left as it is, as enabling an enabled one is."""
    row = _schedule(conn, schedule, lock=True)
    schedule_id: uuid.UUID = row["id"]
    if row["paused_at"] is None:
        return schedule_id
    try:
        next_run_at = spec_of_row(row).next_after(now)
    except TimingError as exc:
        raise ConflictError(f"schedule {row['name']!r} cannot resume: {exc}") from None
    queries.set_next_runs(conn, {schedule_id: next_run_at}, resume=True)
    return schedule_id


def delete(conn: Connection, schedule: Reference, *, hard: bool) -> uuid.UUID:
    schedule_id: uuid.UUID = _schedule(conn, schedule, lock=True)["id"]
    if hard:
        db_schedules.hard_delete(conn, schedule_id)
    else:
        db_schedules.soft_delete(conn, schedule_id)
    return schedule_id


def trigger(
    conn: Connection,
    schedule: Reference,
    now: datetime,
    at: datetime | None,
    params: Mapping[str, Any],
) -> uuid.UUID:
    """Queue a manual run, for now or a chosen time; it never moves next_run_at."""
    schedule_id = resolve(conn, Kind.SCHEDULE, schedule)
    overrides = json.dumps(dict(params)) if params else None
    run_id = queries.insert_manual_run(conn, schedule_id, at or now, overrides)
    if run_id is None:  # the insert selects the schedule only while it is not deleted
        raise NotFoundError("schedule", schedule, f"schedule {schedule_id} was just deleted")
    return run_id


def prune_all(engine: Engine, older_than_days: float) -> int:
    """Delete finished runs older than the age, a batch per transaction; how many went."""
    return db_runs.prune_all(engine, older_than_days)


# --- reading ----------------------------------------------------------------------------------


def local_time(instant: datetime | None, timezone: str) -> str | None:
    """``instant`` as the schedule's wall clock reads it (ISO 8601 with its offset)."""
    if instant is None:
        return None
    try:
        return load_zone(timezone).localize_datetime(instant).isoformat()
    except TimingError:
        return None


# Shown as ``spec``, not as they are stored.
_SPEC_COLUMNS = frozenset({"cron_expression", "interval_seconds"})


def schedule_object(row: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule as every command and face shows it (docs/json.md): its definition with the
    spec as an operator writes it, its state, and its times in UTC and in its own zone."""
    zone = row["timezone"]
    shown = {
        "id": row["id"],
        "name": row["name"],
        "workflow": row["workflow"],
        "workflow_id": row["workflow_id"],
        "spec": spec_text(row),
        "timezone": zone,
        "state": row["state"],
        "next_run_at": row["next_run_at"],
        "next_run_local": local_time(row["next_run_at"], zone),
        "last_run_at": row["last_run_at"],
        "last_run_local": local_time(row["last_run_at"], zone),
    }
    rest = {k: v for k, v in row.items() if k not in shown and k not in _SPEC_COLUMNS}
    return shown | rest


def run_object(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run as every command and face shows it (docs/json.md); its slot also in the
    schedule's zone."""
    shown = {key: value for key, value in row.items() if key != "timezone"}
    return shown | {"scheduled_for_local": local_time(row["scheduled_for"], row["timezone"])}


def list_schedules(
    conn: Connection,
    *,
    enabled: bool | None = None,
    paused: bool | None = None,
    failing: bool | None = None,
    overdue: bool = False,
    workflow: Reference | None = None,
    name_contains: str | None = None,
    order: str = "next_run_at",
    descending: bool = False,
    after: tuple[str, uuid.UUID] | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """The schedules in ``order`` (db.schedules.SCHEDULE_ORDERS), from after the row whose
    (``schedule_sort_key``, id) is ``after``; a filter given as None is not applied."""
    workflow_id = None if workflow is None else resolve(conn, Kind.WORKFLOW, workflow)
    rows = db_schedules.list_schedules(
        conn,
        enabled=enabled,
        paused=paused,
        failing=failing,
        overdue=overdue,
        workflow=workflow_id,
        name_contains=name_contains,
        order=order,
        descending=descending,
        after=after,
        limit=limit,
    )
    return [schedule_object(row) for row in rows]


schedule_sort_key = db_schedules.sort_key


def _listed(conn: Connection, schedule: Reference, *, lock: bool = False) -> dict[str, Any]:
    if lock:
        schedule_id = _schedule(conn, schedule, lock=True)["id"]
    else:
        schedule_id = resolve(conn, Kind.SCHEDULE, schedule)
    rows = db_schedules.list_schedules(conn, ids=[schedule_id], limit=1)
    if not rows:
        raise NotFoundError("schedule", schedule, f"schedule {schedule_id} was just deleted")
    return rows[0]


def get_schedule(conn: Connection, schedule: Reference, *, lock: bool = False) -> dict[str, Any]:
    """One schedule, as ``list_schedules`` shows each; ``lock``: locked until the transaction
    ends, so that a change decided from it (a face's version check) is not raced."""
    return schedule_object(_listed(conn, schedule, lock=lock))


def show_schedule(
    conn: Connection, schedule: Reference, now: datetime, *, upcoming: int = 10
) -> dict[str, Any]:
    """The schedule with its statistics, next fire times and last runs."""
    row = _listed(conn, schedule)
    shown = schedule_object(row)
    stats = db_runs.run_stats(conn, row["id"])
    finished = stats["succeeded"] + stats["failed"]
    try:
        fires = spec_of_row(row).fires_after(now, upcoming)
    except TimingError:
        fires = []
    mean = stats["mean_seconds"]
    recent = stats["last_30_days"]
    recent_finished = recent.get("succeeded", 0) + recent.get("failed", 0)
    return shown | {
        "statistics": {
            "succeeded": stats["succeeded"],
            "failed": stats["failed"],
            "success_rate": round(stats["succeeded"] / finished, 4) if finished else None,
            "mean_duration_seconds": None if mean is None else float(mean),
            "last_7_days": stats["last_7_days"],
            "last_30_days": recent,
            "success_rate_30_days": (
                round(recent.get("succeeded", 0) / recent_finished, 4) if recent_finished else None
            ),
            "lateness_seconds": _percentiles(stats["lateness"]),
            "duration_seconds": _percentiles(stats["duration"]),
            "consecutive_failures": row["consecutive_failures"],
        },
        "next_fire_times": [
            {"utc": fire, "local": local_time(fire, shown["timezone"])} for fire in fires
        ],
        "recent_runs": [
            run_object(run) for run in db_runs.list_runs(conn, schedule_id=row["id"], limit=10)
        ],
    }


def _percentiles(values: list[float] | None) -> dict[str, float | None]:
    p50, p95 = values or (None, None)
    return {"p50": p50, "p95": p95}


def list_runs(
    conn: Connection,
    *,
    schedule: Reference | None = None,
    status: str | None = None,
    trigger: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, datetime, uuid.UUID] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Runs, newest slot first, from after the run whose (scheduled_for, created_at, id) is
    ``after``; slots in [since, until)."""
    schedule_id = None if schedule is None else resolve(conn, Kind.SCHEDULE, schedule)
    rows = db_runs.list_runs(
        conn,
        schedule_id=schedule_id,
        status=status,
        trigger=trigger,
        since=since,
        until=until,
        after=after,
        limit=limit,
    )
    return [run_object(row) for row in rows]


def last_runs(conn: Connection, schedule_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The run of each schedule's newest slot (status, slot, start, end, why skipped, error),
    by schedule id; a schedule that never ran has none."""
    return db_runs.last_runs(conn, schedule_ids)


def show_run(conn: Connection, run: Reference) -> dict[str, Any]:
    run_id = resolve(conn, Kind.RUN, run)
    return run_object(db_runs.list_runs(conn, run_id=run_id, limit=1)[0])


def list_workers(conn: Connection) -> list[dict[str, Any]]:
    return db_health.list_workers(conn)


def overview(conn: Connection) -> dict[str, Any]:
    """Schedules by state, the last 24 hours' runs by status, live daemons, slots past and
    not claimed, and runs an operator must settle."""
    return db_health.overview(conn)


def invalid_schedules(conn: Connection) -> list[dict[str, Any]]:
    """Schedules (not deleted) whose stored spec cannot be scheduled, with the reason."""
    invalid = []
    for row in db_schedules.select_specs(conn):
        try:
            spec_of_row(row)
        except TimingError as exc:
            invalid.append({"id": row["id"], "name": row["name"], "problem": str(exc)})
    return invalid


def resolve_run(
    conn: Connection, run: Reference, execution_id: str | None, *, rerun: bool
) -> dict[str, Any]:
    """Settle an ``unresolved`` run: give it the AMC execution an operator found to be its
    own, or record that it has none (and, with ``rerun``, queue a manual run of its slot)."""
    run_id = resolve(conn, Kind.RUN, run)
    row = db_runs.select_unresolved_run(conn, run_id)
    if row is None:
        raise NotFoundError("run", run, f"run {run_id} was just deleted")
    if row["status"] != RunStatus.UNRESOLVED:
        raise ConflictError(f"run {run_id} is {row['status']}, not unresolved: nothing to settle")
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
