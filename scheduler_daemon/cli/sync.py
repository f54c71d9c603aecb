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
from scheduler_daemon.cli.schedules import warn_about_zone
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
    """Create and update the catalog and schedules FILE declares (see docs/config.md); all
    of it or nothing."""
    try:
        source = file.read_text()
    except OSError as exc:
        raise InputError(f"{file}: cannot read it ({exc.strerror})") from None
    with transaction(state, face="sync") as (conn, now):
        planned = sync.sync(conn, source, now, path=str(file), prune=prune, dry_run=dry_run)
    if as_json:
        echo_json(planned.as_dict() | {"applied": not dry_run})
        return
    for line in _lines(planned):
        click.echo(line)
    for zone in sorted(
        {entry.definition["timezone"] for entry in planned.create}
        | {entry.definition["timezone"] for entry, _, _ in planned.update}
    ):
        warn_about_zone(zone)
    if dry_run and not planned.empty:
        click.echo("(dry run: nothing changed)")


_MARKS = {"create": "+", "update": "~"}


def _lines(planned: sync.Plan) -> list[str]:
    out = []
    for kind, name, action, changes in planned.catalog:
        if action in _MARKS:
            diff = "; ".join(f"{k} {_show(o)} -> {_show(n)}" for k, (o, n) in changes.items())
            out.append(f"{_MARKS[action]} {action} {kind} {name!r}" + (f": {diff}" if diff else ""))
    out += [f"+ create {e.key}: {_describe(e.definition)}" for e in planned.create]
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
