"""Schema commands: migrate, db status."""

from __future__ import annotations

import click

from scheduler_daemon.cli.common import CliState, open_database
from scheduler_daemon.cli.output import echo_json, json_option
from scheduler_daemon.config import mask_url
from scheduler_daemon.db.migrate import (
    current_revision,
    head_revision,
    require_head,
    upgrade_to_head,
)
from scheduler_daemon.errors import SchemaOutOfDateError

EXIT_BEHIND = 1


@click.command("migrate")
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if the database is behind.")
@click.pass_obj
def migrate_command(state: CliState, check: bool) -> None:
    """Migrate the database schema to the latest revision (safe to repeat)."""
    settings = state.settings()
    with open_database(settings) as engine:
        if check:
            try:
                with engine.connect() as conn:
                    head = require_head(conn)
            except SchemaOutOfDateError as exc:
                click.echo(f"database is at {exc.current or 'none'}, head is {exc.head}: behind")
                raise click.exceptions.Exit(EXIT_BEHIND) from None
            click.echo(f"database is at head ({head})")
            return
        before, after = upgrade_to_head(engine)
        if before == after:
            click.echo(f"database already at head ({after})")
        else:
            click.echo(f"migrated {before or 'empty database'} -> {after}")


@click.group("db")
def db_group() -> None:
    """Inspect the database."""


@db_group.command("status")
@json_option
@click.pass_obj
def db_status_command(state: CliState, as_json: bool) -> None:
    """Show the database URL (password masked) and its schema revision."""
    settings = state.settings()
    with open_database(settings, announce=False) as engine:
        with engine.connect() as conn:
            current = current_revision(conn)
        head = head_revision()
        status = {
            "url": mask_url(engine.url),
            "embedded": settings.database_url is None,
            "current_revision": current,
            "head_revision": head,
            "up_to_date": current == head,
        }
    if as_json:
        echo_json(status)
        return
    click.echo(f"url:      {status['url']}" + ("  (embedded)" if status["embedded"] else ""))
    click.echo(f"current:  {current or 'none'}")
    click.echo(f"head:     {head}")
    click.echo(
        "status:   "
        + ("up to date" if current == head else "behind: run 'scheduler-daemon migrate'")
    )
