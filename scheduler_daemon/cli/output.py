"""Tables for people, JSON for scripts: the same rows either way."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    """The ``--json`` flag every command that prints something has, as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def plain(value: Any) -> Any:
    """A JSON-ready form of a database value."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def echo_json(data: Any) -> None:
    click.echo(json.dumps(plain(data), sort_keys=True))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, uuid.UUID):
        # Every command takes the start of an id (8+ hex digits); --json has them whole.
        return value.hex[:8]
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(value, timedelta):
        return str(value).split(".")[0]
    return str(value)


def echo_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def echo_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        echo_json([dict(row) for row in rows])
    else:
        echo_table(rows, columns)


def echo_record(record: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(dict(record))
        return
    width = max(len(k) for k in record)
    for key, value in record.items():
        if isinstance(value, list):
            click.echo(f"{key}:")
            for item in value:
                click.echo(
                    f"  - {_cell(item) if not isinstance(item, Mapping) else _summary(item)}"
                )
        elif isinstance(value, Mapping):
            click.echo(f"{key.ljust(width)}  {json.dumps(plain(value), sort_keys=True)}")
        else:
            shown = str(value) if isinstance(value, uuid.UUID) else _cell(value)
            click.echo(f"{key.ljust(width)}  {shown}")


def _summary(item: Mapping[str, Any]) -> str:
    return "  ".join(f"{k}={_cell(v)}" for k, v in item.items())


def echo_history(entries: Sequence[Mapping[str, Any]]) -> None:
    """History entries (``scheduler_daemon.history``), a line each: when, who, what, and each
    field that changed, before -> after."""
    click.echo("history:")
    if not entries:
        click.echo("  (none)")
    for entry in entries:
        changes: Mapping[str, Mapping[str, Any]] = entry["changes"]
        if entry["action"] == "create":
            detail = ""  # every field: the schedule as shown above, or as it was then
        elif entry["action"] == "trigger":
            detail = "; ".join(f"{field}={_json(c['after'])}" for field, c in changes.items())
        else:
            detail = "; ".join(
                f"{field} {_json(c['before'])} -> {_json(c['after'])}"
                for field, c in changes.items()
            )
        line = f"{_cell(entry['at'])}  {entry['actor']}  {entry['action']}"
        click.echo(f"  - {line}  {detail}".rstrip())


def _json(value: Any) -> str:
    return json.dumps(plain(value), sort_keys=True)
