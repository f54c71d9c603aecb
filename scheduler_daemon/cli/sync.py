"""``scheduler-daemon sync FILE``: apply a TOML file of schedules kept in version control."""

from __future__ import annotations

from pathlib import Path

import click

from scheduler_daemon import sync
from scheduler_daemon.cli.common import CliState, open_database
from scheduler_daemon.cli.output import echo_json
from scheduler_daemon.management import InputError


@click.command("sync")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option(
    "--prune", is_flag=True, help="Disable file-managed schedules the file no longer lists."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def sync_command(state: CliState, /, file: Path, dry_run: bool, prune: bool, as_json: bool) -> None:
    """Create and update schedules from FILE (see docs/config.md); validated as a whole first."""
    try:
        source = file.read_text()
    except OSError as exc:
        raise InputError(f"{file}: cannot read it ({exc.strerror})") from None
    with open_database(state.settings(), announce=False) as engine, engine.begin() as conn:
        now = conn.exec_driver_sql("SELECT now()").scalar_one()
        entries = sync.parse(source, conn, str(file))
        planned = sync.plan(conn, entries, prune=prune)
        if not dry_run:
            sync.apply(conn, planned, now)
    if as_json:
        echo_json(planned.as_dict() | {"applied": not dry_run})
        return
    for line in planned.lines():
        click.echo(line)
    if dry_run and not planned.empty:
        click.echo("(dry run: nothing changed)")
