"""``scheduler-daemon health``: one line per problem; exit 0 healthy, 1 not (Nagios: 0-3)."""

from __future__ import annotations

import click

from scheduler_daemon.cli.common import CliState, open_database
from scheduler_daemon.cli.output import echo_json, json_option
from scheduler_daemon.errors import DatabaseUnavailableError
from scheduler_daemon.health import Problem, Report, Severity, Thresholds, check

_DEFAULTS = Thresholds()


@click.command("health")
@click.option(
    "--worker-threshold",
    type=click.FloatRange(min=1),
    default=_DEFAULTS.worker_heartbeat,
    show_default=True,
    help="Seconds since a live worker's heartbeat.",
)
@click.option(
    "--overdue-threshold",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.overdue,
    show_default=True,
    help="Seconds a due schedule may stay unclaimed.",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=1),
    help="Seconds after which a lock is stale [default: the daemons' lease, SCHEDULER_LEASE].",
)
@click.option(
    "--failure-rate",
    type=click.FloatRange(0, 1),
    default=_DEFAULTS.failure_rate,
    show_default=True,
    help="Highest healthy share of failed runs.",
)
@click.option(
    "--failure-window",
    type=click.FloatRange(min=60),
    default=_DEFAULTS.failure_window,
    show_default=True,
    help="Seconds of history the failure rate looks at.",
)
@click.option(
    "--allow-paused", is_flag=True, help="Quarantined or auto-paused schedules are not a problem."
)
@click.option("--nagios", is_flag=True, help="Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
@json_option
@click.pass_obj
def health_command(
    state: CliState,
    /,
    worker_threshold: float,
    overdue_threshold: float,
    lease: float | None,
    failure_rate: float,
    failure_window: float,
    allow_paused: bool,
    nagios: bool,
    as_json: bool,
) -> None:
    """Check that the daemons are alive and actually scheduling (for cron and monitoring)."""
    settings = state.settings()
    thresholds = Thresholds(
        worker_heartbeat=worker_threshold,
        overdue=overdue_threshold,
        lease=settings.lease if lease is None else lease,
        failure_rate=failure_rate,
        failure_window=failure_window,
        allow_paused=allow_paused,
    )
    try:
        with open_database(settings, announce=False) as engine:
            report = check(engine, thresholds)
    except DatabaseUnavailableError as exc:
        report = Report([Problem("database", Severity.CRITICAL, str(exc))])
    if as_json:
        echo_json(report.as_dict())
    elif report.healthy:
        line = f"OK: {report.facts.get('live_workers', 0)} live worker(s), nothing overdue"
        dead = report.facts.get("dead_workers") or []
        if isinstance(dead, list) and dead:
            named = ", ".join(f"{d['worker_id']}: {d['dead_because']}" for d in dead[:3])
            line += f"; {len(dead)} dead in the last hour ({named})"
        click.echo(line)
    else:
        for problem in report.problems:
            click.echo(f"{problem.severity.name}: {problem.message}")
    code = int(report.severity) if nagios else (0 if report.healthy else 1)
    raise click.exceptions.Exit(code)
