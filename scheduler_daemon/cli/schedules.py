"""``schedules``, ``runs`` and ``workers``: manage and inspect schedules from the shell."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import click

from scheduler_daemon import management
from scheduler_daemon.cli.common import (
    CliState,
    open_current_database,
    parse_instant,
    transaction,
)
from scheduler_daemon.cli.output import F, echo_json, echo_record, echo_rows, json_option
from scheduler_daemon.domain import MisfirePolicy, OverlapPolicy, RunStatus, RunTrigger
from scheduler_daemon.errors import FieldError, InputError

# The columns of ``schedules list``'s table; why a schedule is paused (an operator's reason,
# auto-paused after failures, quarantined) last, as it is free text.
SCHEDULE_COLUMNS = (
    "schedule_id",
    "name",
    "workflow_name",
    "spec",
    "timezone",
    "state",
    "next_run_at",
    "last_run_at",
    "pause_reason",
)
RUN_COLUMNS = (
    "run_id",
    "schedule_name",
    "scheduled_for",
    "trigger",
    "status",
    "worker_id",
    "error",
)


def _values(kind: type[enum.StrEnum]) -> list[str]:
    """The values of an enum as choices: click would offer an enum's member names."""
    return [str(member) for member in kind]


def _id(raw: str, what: str = "schedule id") -> uuid.UUID:
    """``what`` names the value as the user wrote it: an argument or an option."""
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


@click.group("schedules")
def schedules_group() -> None:
    """List, create, change and trigger schedules."""


@schedules_group.command("list")
@click.option("--enabled/--disabled", default=None, help="Only enabled (or disabled) schedules.")
@click.option("--paused", is_flag=True, help="Only paused, quarantined or auto-paused ones.")
@click.option("--overdue", is_flag=True, help="Only due ones no daemon has claimed.")
@click.option("--workflow", help="Only this workflow (id or name).")
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
            conn, enabled=enabled, paused=paused, overdue=overdue, workflow=workflow
        )
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
            click.echo(f"{row['schedule_id']} {row['name']!r}: {row['problem']}")
    else:
        click.echo("all schedules valid")
    if invalid:
        raise click.exceptions.Exit(1)


@schedules_group.command("show")
@click.argument("schedule_id")
@json_option
@click.pass_obj
def show_command(state: CliState, /, schedule_id: str, as_json: bool) -> None:
    """A schedule: spec, zone, policies, next 5 fire times, last runs, success rate."""
    with transaction(state) as (conn, now):
        record = management.show_schedule(conn, _id(schedule_id), now)
    echo_record(record, as_json)


@schedules_group.command("create")
@click.option("--workflow", "workflow_id", required=True, help="Workflow id.")
@click.option("--name", required=True)
@click.option("--cron", "expression", required=True, help="Cron expression, alias or '@every 15m'.")
@_policy_options
@click.option("--enable", is_flag=True, help="Enable at once (schedules start disabled).")
@json_option
@click.pass_obj
def create_command(
    state: CliState,
    /,
    workflow_id: str,
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
            workflow_id=_id(workflow_id, "--workflow"),
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
    _done(
        as_json,
        {"id": new_id, "enabled": enable},
        f"created schedule {new_id}"
        + ("" if enable else " (disabled; enable it with 'schedules enable')"),
    )


@schedules_group.command("update")
@click.argument("schedule_id")
@click.option("--name")
@click.option("--cron", "expression", help="New cron expression, alias or '@every' spec.")
@_policy_options
@json_option
@click.pass_obj
def update_command(
    state: CliState,
    /,
    schedule_id: str,
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
    target = _id(schedule_id)
    parameters = parse_params(params) if params else None
    with transaction(state) as (conn, now):
        management.update_schedule(
            conn,
            target,
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
    _done(as_json, {"id": target}, f"updated schedule {target}")


@schedules_group.command("delete")
@click.argument("schedule_id")
@click.option("--hard", is_flag=True, help="Delete the row and its run history for good.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation of --hard.")
@json_option
@click.pass_obj
def delete_command(
    state: CliState, /, schedule_id: str, hard: bool, yes: bool, as_json: bool
) -> None:
    """Delete a schedule (soft: history is kept; --hard removes it and its history)."""
    target = _id(schedule_id)
    if hard and not yes:
        click.confirm(f"Delete schedule {target} and all its run history for good?", abort=True)
    with transaction(state) as (conn, _):
        management.delete(conn, target, hard=hard)
    _done(
        as_json,
        {"id": target, "hard": hard},
        f"deleted schedule {target}" + (" and its history" if hard else ""),
    )


def _toggle(enabled: bool) -> Callable[..., None]:
    @click.argument("schedule_id")
    @json_option
    @click.pass_obj
    def command(state: CliState, /, schedule_id: str, as_json: bool) -> None:
        target = _id(schedule_id)
        with transaction(state) as (conn, now):
            management.set_enabled(conn, target, now, enabled)
        word = "enabled" if enabled else "disabled"
        _done(as_json, {"id": target, "enabled": enabled}, f"{word} schedule {target}")

    return command


schedules_group.command("enable", help="Enable a schedule from its next slot after now.")(
    _toggle(True)
)
schedules_group.command("disable", help="Disable a schedule (history is kept).")(_toggle(False))


@schedules_group.command("pause")
@click.argument("schedule_id")
@click.option("--until", help="Resume by itself at this time (ISO 8601).")
@click.option("--reason", help="Why, for the next operator.")
@json_option
@click.pass_obj
def pause_command(
    state: CliState, /, schedule_id: str, until: str | None, reason: str | None, as_json: bool
) -> None:
    """Pause a schedule, for good or until a time."""
    target = _id(schedule_id)
    until_at = parse_instant(until, "--until")
    with transaction(state) as (conn, now):
        management.pause(conn, target, now, until_at, reason)
    _done(
        as_json,
        {"id": target, "paused_until": until_at},
        f"paused schedule {target}" + (f" until {until_at.isoformat()}" if until_at else ""),
    )


@schedules_group.command("resume")
@click.argument("schedule_id")
@json_option
@click.pass_obj
def resume_command(state: CliState, /, schedule_id: str, as_json: bool) -> None:
    """Resume a paused schedule from its next slot after now."""
    target = _id(schedule_id)
    with transaction(state) as (conn, now):
        next_run_at = management.resume(conn, target, now)
    _done(
        as_json,
        {"id": target, "next_run_at": next_run_at},
        f"resumed schedule {target}; next run {next_run_at.isoformat()}",
    )


@schedules_group.command("trigger")
@click.argument("schedule_id")
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
    state: CliState, /, schedule_id: str, at: str | None, params: tuple[str, ...], as_json: bool
) -> None:
    """Queue a manual run; a daemon runs it like a scheduled one. next_run_at does not move."""
    target = _id(schedule_id)
    overrides = parse_params(params)
    at_time = parse_instant(at, "--at")
    with transaction(state) as (conn, now):
        run_id = management.trigger(conn, target, now, at_time, overrides)
    _done(as_json, {"run_id": run_id, "schedule_id": target}, f"queued manual run {run_id}")


def _done(as_json: bool, data: dict[str, Any], message: str) -> None:
    if as_json:
        echo_json(data)
    else:
        click.echo(message)


@click.group("runs")
def runs_group() -> None:
    """Inspect, settle and prune run history."""


@runs_group.command("list")
@click.option("--schedule", "schedule_id", help="Only this schedule's runs.")
@click.option("--status", type=click.Choice(_values(RunStatus)))
@click.option("--trigger", type=click.Choice(_values(RunTrigger)))
@click.option("--since", help="Slots at or after this time (ISO 8601).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
@click.pass_obj
def runs_list_command(
    state: CliState,
    /,
    schedule_id: str | None,
    status: str | None,
    trigger: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Runs, newest slot first."""
    target = _id(schedule_id, "--schedule") if schedule_id else None
    since_at = parse_instant(since, "--since")
    with transaction(state) as (conn, _):
        rows = management.list_runs(
            conn, schedule_id=target, status=status, trigger=trigger, since=since_at, limit=limit
        )
    echo_rows(rows, RUN_COLUMNS, as_json)


@runs_group.command("show")
@click.argument("run_id")
@json_option
@click.pass_obj
def runs_show_command(state: CliState, /, run_id: str, as_json: bool) -> None:
    """A run: its slot, the resolved request, execution id, status and error."""
    with transaction(state) as (conn, _):
        record = management.show_run(conn, _id(run_id, "run id"))
    echo_record(record, as_json)


@runs_group.command("resolve")
@click.argument("run_id")
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
    run_id: str,
    execution_id: str | None,
    no_execution: bool,
    rerun: bool,
    as_json: bool,
) -> None:
    """Settle an unresolved run (recovery could not tell which AMC execution is its own)."""
    target = _id(run_id, "run id")
    if (execution_id is None) == (not no_execution):
        raise click.UsageError("give exactly one of --execution ID and --no-execution")
    with transaction(state) as (conn, _):
        result = management.resolve_run(conn, target, execution_id, rerun=rerun)
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
