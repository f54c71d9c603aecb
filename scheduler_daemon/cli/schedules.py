"""``schedules``, ``runs`` and ``workers``: manage and inspect schedules from the shell."""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable, Sequence
from typing import Any

import click

from scheduler_daemon import history, management
from scheduler_daemon.cli.common import (
    CliState,
    open_current_database,
    parse_instant,
    transaction,
)
from scheduler_daemon.cli.output import (
    F,
    echo_history,
    echo_json,
    echo_record,
    echo_rows,
    json_option,
)
from scheduler_daemon.domain import MisfirePolicy, OverlapPolicy, RunStatus, RunTrigger
from scheduler_daemon.errors import FieldError
from scheduler_daemon.references import Kind
from scheduler_daemon.timing import TimingError, fixed_offset_warning

# The columns of ``schedules list``'s table (``--json`` prints every field: docs/json.md);
# why a schedule is paused (an operator's reason, auto-paused after failures, quarantined)
# last, as it is free text. Times are in the schedule's own zone, with their offset.
SCHEDULE_COLUMNS = (
    "id",
    "name",
    "workflow",
    "spec",
    "timezone",
    "state",
    "next_run_local",
    "last_run_status",
    "pause_reason",
)
# The changes ``schedules show`` lists, newest first.
SHOWN_HISTORY = 10
RUN_COLUMNS = (
    "id",
    "schedule",
    "scheduled_for_local",
    "trigger",
    "status",
    "amc_execution_id",
    "error",
)


def _values(kind: type[enum.StrEnum]) -> list[str]:
    """The values of an enum as choices: click would offer an enum's member names."""
    return [str(member) for member in kind]


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs; a value that is valid JSON (number, list, object) is taken as JSON."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise FieldError("parameters", pair, f"{pair!r} is not KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        params[key.strip()] = value
    return params


def _policy_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--tz", "timezone", help="IANA time zone the cron fields are read in."),
            click.option(
                "--anchor", help="First slot of an '@every' spec (ISO 8601; default: the epoch)."
            ),
            click.option("--misfire-policy", type=click.Choice(_values(MisfirePolicy))),
            click.option("--overlap-policy", type=click.Choice(_values(OverlapPolicy))),
            click.option("--misfire-grace", type=int, help="Seconds a late slot still runs."),
            click.option("--max-catchup", type=int, help="run_all: most missed slots to run."),
            click.option(
                "--param",
                "params",
                multiple=True,
                metavar="KEY=VALUE",
                help="Default parameter (repeatable).",
            ),
        ]
    ):
        func = option(func)
    return func


REFERENCE = "name, id or the start of its id (8+ hex digits)"


@click.group("schedules")
def schedules_group() -> None:
    """List, create, change and trigger schedules (by name, id or id prefix)."""


@schedules_group.command("list")
@click.option("--enabled/--disabled", default=None, help="Only enabled (or disabled) schedules.")
@click.option("--paused", is_flag=True, help="Only paused, quarantined or auto-paused ones.")
@click.option("--overdue", is_flag=True, help="Only due ones no daemon has claimed.")
@click.option("--workflow", help=f"Only this workflow's: its {REFERENCE}.")
@json_option
@click.pass_obj
def list_command(
    state: CliState,
    /,
    enabled: bool | None,
    paused: bool,
    overdue: bool,
    workflow: str | None,
    as_json: bool,
) -> None:
    """List schedules, soonest first."""
    with transaction(state) as (conn, _):
        rows = management.list_schedules(
            conn, enabled=enabled, paused=paused or None, overdue=overdue, workflow=workflow
        )
    if not as_json:  # a disabled schedule has no next run (--json keeps the stored value)
        rows = [row | {"next_run_local": None} if not row["enabled"] else row for row in rows]
    echo_rows(rows, SCHEDULE_COLUMNS, as_json)


@schedules_group.command("validate")
@json_option
@click.pass_obj
def validate_command(state: CliState, /, as_json: bool) -> None:
    """Check every stored schedule can be scheduled; exit 1 listing those that cannot."""
    with transaction(state) as (conn, _):
        invalid = management.invalid_schedules(conn)
    if as_json:
        echo_json({"valid": not invalid, "invalid": invalid})
    elif invalid:
        for row in invalid:
            click.echo(f"{row['id']} {row['name']!r}: {row['problem']}")
    else:
        click.echo("all schedules valid")
    if invalid:
        raise click.exceptions.Exit(1)


@schedules_group.command("show")
@click.argument("schedule")
@json_option
@click.pass_obj
def show_command(state: CliState, /, schedule: str, as_json: bool) -> None:
    """A schedule: spec, zone, policies, next 10 fire times, last runs, success rate, and
    who changed it lately."""
    with transaction(state) as (conn, now):
        record = management.show_schedule(conn, schedule, now)
        changes = history.history(conn, Kind.SCHEDULE, record["id"], limit=SHOWN_HISTORY)
    if as_json:
        echo_json(record | {"history": changes})
        return
    runs = record["recent_runs"]  # a line per run: the table's columns
    columns = [column for column in RUN_COLUMNS if column != "schedule"]
    record["recent_runs"] = [{key: run[key] for key in columns} for run in runs]
    echo_record(record, as_json)
    echo_history(changes)


@schedules_group.command("create")
@click.option("--workflow", required=True, help=f"The workflow: its {REFERENCE}.")
@click.option("--name", required=True, help="A name no other schedule has.")
@click.option("--cron", "expression", required=True, help="Cron expression, alias or '@every 15m'.")
@_policy_options
@click.option("--enable", is_flag=True, help="Enable at once (schedules start disabled).")
@json_option
@click.pass_obj
def create_command(
    state: CliState,
    /,
    workflow: str,
    name: str,
    expression: str,
    timezone: str | None,
    anchor: str | None,
    misfire_policy: str | None,
    overlap_policy: str | None,
    misfire_grace: int | None,
    max_catchup: int | None,
    params: tuple[str, ...],
    enable: bool,
    as_json: bool,
) -> None:
    """Create a schedule (disabled unless --enable)."""
    parameters = parse_params(params)
    with transaction(state) as (conn, now):
        new_id = management.create_schedule(
            conn,
            now,
            workflow=workflow,
            name=name,
            expression=expression,
            timezone=timezone or "UTC",
            anchor=parse_instant(anchor, "--anchor"),
            enabled=enable,
            misfire_policy=misfire_policy,
            overlap_policy=overlap_policy,
            misfire_grace_seconds=misfire_grace,
            max_catchup_runs=max_catchup,
            parameters=parameters,
        )
        created = management.get_schedule(conn, new_id)
    hint = "" if enable else " (disabled; enable it with 'schedules enable')"
    _done(as_json, created, f"created schedule {_named(created)}{hint}")
    warn_about_zone(created["timezone"])


@schedules_group.command("update")
@click.argument("schedule")
@click.option("--name")
@click.option("--cron", "expression", help="New cron expression, alias or '@every' spec.")
@_policy_options
@json_option
@click.pass_obj
def update_command(
    state: CliState,
    /,
    schedule: str,
    name: str | None,
    expression: str | None,
    timezone: str | None,
    anchor: str | None,
    misfire_policy: str | None,
    overlap_policy: str | None,
    misfire_grace: int | None,
    max_catchup: int | None,
    params: tuple[str, ...],
    as_json: bool,
) -> None:
    """Change a schedule; a new spec or zone recomputes its next slot from now."""
    parameters = parse_params(params) if params else None
    with transaction(state) as (conn, now):
        target = management.update_schedule(
            conn,
            schedule,
            now,
            name=name,
            expression=expression,
            timezone=timezone,
            anchor=parse_instant(anchor, "--anchor"),
            misfire_policy=misfire_policy,
            overlap_policy=overlap_policy,
            misfire_grace_seconds=misfire_grace,
            max_catchup_runs=max_catchup,
            parameters=parameters,
        )
        updated = management.get_schedule(conn, target)
    _done(as_json, updated, f"updated schedule {_named(updated)}")
    if timezone is not None:
        warn_about_zone(timezone)


@schedules_group.command("delete")
@click.argument("schedule")
@click.option("--hard", is_flag=True, help="Delete the row and its run history for good.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation of --hard.")
@json_option
@click.pass_obj
def delete_command(state: CliState, /, schedule: str, hard: bool, yes: bool, as_json: bool) -> None:
    """Delete a schedule (soft: history is kept; --hard removes it and its history)."""
    if hard and not yes:
        click.confirm(f"Delete schedule {schedule!r} and all its run history for good?", abort=True)
    with transaction(state) as (conn, _):
        gone = management.get_schedule(conn, schedule)
        management.delete(conn, gone["id"], hard=hard)
    _done(
        as_json,
        {"id": gone["id"], "name": gone["name"], "deleted": True, "hard": hard},
        f"deleted schedule {_named(gone)}" + (" and its history" if hard else ""),
    )


def _toggle(enabled: bool) -> Callable[..., None]:
    @click.argument("schedule")
    @json_option
    @click.pass_obj
    def command(state: CliState, /, schedule: str, as_json: bool) -> None:
        with transaction(state) as (conn, now):
            target = management.set_enabled(conn, schedule, now, enabled)
            changed = management.get_schedule(conn, target)
        word = "enabled" if enabled else "disabled"
        _done(as_json, changed, f"{word} schedule {_named(changed)}{_next(changed)}")

    return command


schedules_group.command("enable", help="Enable a schedule from its next slot after now.")(
    _toggle(True)
)
schedules_group.command("disable", help="Disable a schedule (history is kept).")(_toggle(False))


@schedules_group.command("pause")
@click.argument("schedule")
@click.option("--until", help="Resume by itself at this time (ISO 8601).")
@click.option("--reason", help="Why, for the next operator.")
@json_option
@click.pass_obj
def pause_command(
    state: CliState, /, schedule: str, until: str | None, reason: str | None, as_json: bool
) -> None:
    """Pause a schedule, for good or until a time."""
    until_at = parse_instant(until, "--until")
    with transaction(state) as (conn, now):
        target = management.pause(conn, schedule, now, until_at, reason)
        paused = management.get_schedule(conn, target)
    until_text = f" until {until_at.isoformat()}" if until_at else ""
    _done(as_json, paused, f"paused schedule {_named(paused)}{until_text}")


@schedules_group.command("resume")
@click.argument("schedule")
@json_option
@click.pass_obj
def resume_command(state: CliState, /, schedule: str, as_json: bool) -> None:
    """Resume a paused schedule from its next slot after now (not paused: nothing to do)."""
    with transaction(state) as (conn, now):
        target = management.resume(conn, schedule, now)
        resumed = management.get_schedule(conn, target)
    _done(as_json, resumed, f"resumed schedule {_named(resumed)}{_next(resumed)}")


@schedules_group.command("trigger")
@click.argument("schedule")
@click.option("--at", help="Run at this time instead of now (ISO 8601): a one-off.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override for this run (repeatable).",
)
@json_option
@click.pass_obj
def trigger_command(
    state: CliState, /, schedule: str, at: str | None, params: tuple[str, ...], as_json: bool
) -> None:
    """Queue a manual run; a daemon runs it like a scheduled one. next_run_at does not move."""
    overrides = parse_params(params)
    at_time = parse_instant(at, "--at")
    with transaction(state) as (conn, now):
        run_id = management.trigger(conn, schedule, now, at_time, overrides)
        run = management.show_run(conn, run_id)
    _done(as_json, run, f"queued manual run {run_id} of schedule {run['schedule']!r}")


def warn_about_zone(timezone: str) -> None:
    """A zone that is valid but rarely meant (EST: a fixed offset, no DST): say so on stderr."""
    with contextlib.suppress(TimingError):
        warning = fixed_offset_warning(timezone)
        if warning:
            click.echo(f"scheduler-daemon: warning: {warning}", err=True)


def _named(schedule: dict[str, Any]) -> str:
    return f"{schedule['name']!r} ({str(schedule['id'])[:8]})"


def _next(schedule: dict[str, Any]) -> str:
    nxt = schedule["next_run_local"]
    return f"; next run {nxt}" if nxt and schedule["state"] not in ("disabled", "paused") else ""


def _done(as_json: bool, data: dict[str, Any], message: str) -> None:
    if as_json:
        echo_json(data)
    else:
        click.echo(message)


@click.group("runs")
def runs_group() -> None:
    """Inspect, settle and prune run history."""


@runs_group.command("list")
@click.option("--schedule", help=f"Only this schedule's runs: its {REFERENCE}.")
@click.option("--status", type=click.Choice(_values(RunStatus)))
@click.option("--trigger", type=click.Choice(_values(RunTrigger)))
@click.option("--since", help="Slots at or after this time (ISO 8601).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
@click.pass_obj
def runs_list_command(
    state: CliState,
    /,
    schedule: str | None,
    status: str | None,
    trigger: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Runs, newest slot first."""
    since_at = parse_instant(since, "--since")
    with transaction(state) as (conn, _):
        rows = management.list_runs(
            conn, schedule=schedule, status=status, trigger=trigger, since=since_at, limit=limit
        )
    echo_rows(rows, RUN_COLUMNS, as_json)


@runs_group.command("show")
@click.argument("run")
@json_option
@click.pass_obj
def runs_show_command(state: CliState, /, run: str, as_json: bool) -> None:
    """A run (its id or the start of it): slot, request, execution id, status and error."""
    with transaction(state) as (conn, _):
        record = management.show_run(conn, run)
    echo_record(record, as_json)


@runs_group.command("resolve")
@click.argument("run")
@click.option(
    "--execution",
    "execution_id",
    metavar="AMC_EXECUTION_ID",
    help="The AMC execution you found to be this run's: the run takes it.",
)
@click.option(
    "--no-execution", is_flag=True, help="AMC has no execution of this run: it failed to start."
)
@click.option("--rerun", is_flag=True, help="With --no-execution: queue a manual run of its slot.")
@json_option
@click.pass_obj
def runs_resolve_command(
    state: CliState,
    /,
    run: str,
    execution_id: str | None,
    no_execution: bool,
    rerun: bool,
    as_json: bool,
) -> None:
    """Settle an unresolved run (recovery could not tell which AMC execution is its own)."""
    if (execution_id is None) == (not no_execution):
        raise click.UsageError("give exactly one of --execution ID and --no-execution")
    with transaction(state) as (conn, _):
        result = management.resolve_run(conn, run, execution_id, rerun=rerun)
    target = result["run_id"]
    if execution_id is not None:
        message = f"run {target} now holds AMC execution {execution_id}"
    else:
        message = f"run {target} recorded as failed: no AMC execution"
        if "rerun_id" in result:
            message += f"; queued manual run {result['rerun_id']} of its slot"
    _done(as_json, result, message)


@runs_group.command("prune")
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=1),
    required=True,
    help="Days of history to keep.",
)
@json_option
@click.pass_obj
def runs_prune_command(state: CliState, /, days: float, as_json: bool) -> None:
    """Delete finished runs older than the given number of days, in small batches."""
    with open_current_database(state.settings()) as engine:
        deleted = management.prune_all(engine, days)
    _done(as_json, {"deleted": deleted}, f"deleted {deleted} run(s) older than {days:g} days")


@click.command("workers")
@json_option
@click.pass_obj
def workers_command(state: CliState, /, as_json: bool) -> None:
    """Daemons: live, dead (session gone or heartbeat stale) or stopped, heartbeat, skew, locks."""
    with transaction(state) as (conn, _):
        rows = management.list_workers(conn)
    columns = [
        "worker_id",
        "state",
        "dead_because",
        "heartbeat_age",
        "clock_skew_seconds",
        "locks_held",
        "version",
    ]
    echo_rows(rows, columns, as_json)
