"""``scheduler-daemon sync FILE``: apply a TOML file of schedules kept in version control."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from scheduler_daemon import sync
from scheduler_daemon.cli.common import CliState, transaction
from scheduler_daemon.cli.output import echo_json, json_option, plain
from scheduler_daemon.errors import InputError
from scheduler_daemon.management import spec_text


@click.command("sync")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option(
    "--prune", is_flag=True, help="Disable file-managed schedules the file no longer lists."
)
@json_option
@click.pass_obj
def sync_command(state: CliState, /, file: Path, dry_run: bool, prune: bool, as_json: bool) -> None:
    """Create and update schedules from FILE (see docs/config.md); validated as a whole first."""
    try:
        source = file.read_text()
    except OSError as exc:
        raise InputError(f"{file}: cannot read it ({exc.strerror})") from None
    with transaction(state) as (conn, now):
        entries = sync.parse(source, conn, str(file))
        planned = sync.plan(conn, entries, prune=prune)
        if not dry_run:
            sync.apply(conn, planned, now)
    if as_json:
        echo_json(planned.as_dict() | {"applied": not dry_run})
        return
    for line in _lines(planned):
        click.echo(line)
    if dry_run and not planned.empty:
        click.echo("(dry run: nothing changed)")


def _lines(planned: sync.Plan) -> list[str]:
    out = [f"+ create {e.key}: {_describe(e.definition)}" for e in planned.create]
    for entry, _, changes in planned.update:
        diff = "; ".join(f"{k} {_show(old)} -> {_show(new)}" for k, (old, new) in changes.items())
        out.append(f"~ update {entry.key}: {diff}")
    out += [f"- disable {key} (no longer in the file)" for key, _ in planned.disable]
    out.append(f"= {planned.unchanged} unchanged")
    return out


def _show(value: Any) -> str:
    return json.dumps(plain(value), sort_keys=True)


def _describe(definition: Mapping[str, Any]) -> str:
    return f"{spec_text(definition)!r} in {definition['timezone']} ({definition['name']!r})"
