"""The ``scheduler-daemon`` command line: the composition root.

Errors that scheduler-daemon raises on purpose become one line on stderr and exit code 2; an
error about one field names it as the option that sets it (``cli.common.FIELD_OPTIONS``). So
does a database error that is the database's condition, whichever statement met it (read-only,
privileges, the connection lost mid-command: ``db.engine.database_condition``); any other
exception is a bug, and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
import psycopg
from sqlalchemy.exc import DBAPIError

from scheduler_daemon.cli.catalog import accounts_group, instances_group, workflows_group
from scheduler_daemon.cli.common import CliState, field_message, setting_options
from scheduler_daemon.cli.database import db_group, migrate_command
from scheduler_daemon.cli.demo import demo_command
from scheduler_daemon.cli.health import health_command
from scheduler_daemon.cli.info import version_command
from scheduler_daemon.cli.preview import preview_command
from scheduler_daemon.cli.run import run_command
from scheduler_daemon.cli.schedules import runs_group, schedules_group, workers_command
from scheduler_daemon.cli.serve import serve_command
from scheduler_daemon.cli.sync import sync_command
from scheduler_daemon.cli.tokens import tokens_group
from scheduler_daemon.db.engine import database_condition
from scheduler_daemon.errors import FieldError, SchedulerError

EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@setting_options("root")
@click.pass_context
def cli(ctx: click.Context, /, **options: str | None) -> None:
    """Run saved Amazon Marketing Cloud workflows on cron and interval schedules."""
    ctx.obj = CliState(options)


cli.add_command(version_command)
cli.add_command(migrate_command)
cli.add_command(db_group)
cli.add_command(run_command)
cli.add_command(preview_command)
cli.add_command(health_command)
cli.add_command(schedules_group)
cli.add_command(runs_group)
cli.add_command(workflows_group)
cli.add_command(instances_group)
cli.add_command(accounts_group)
cli.add_command(workers_command)
cli.add_command(sync_command)
cli.add_command(tokens_group)
cli.add_command(serve_command)
cli.add_command(demo_command)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="scheduler-daemon", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"scheduler-daemon: error: {exc.format_message()}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        click.echo(f"scheduler-daemon: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except FieldError as exc:
        click.echo(f"scheduler-daemon: error: {field_message(exc)}", err=True)
        sys.exit(EXIT_USAGE)
    except SchedulerError as exc:
        click.echo(f"scheduler-daemon: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except (DBAPIError, psycopg.Error) as exc:
        condition = database_condition(exc)
        if condition is None:
            raise
        message = f"the database did not run the command: {condition}"
        click.echo(f"scheduler-daemon: error: {message}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("scheduler-daemon: aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
