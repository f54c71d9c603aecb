"""``scheduler-daemon preview``: the next fire times of a spec, before you save it."""

from __future__ import annotations

from datetime import datetime

import click

from scheduler_daemon.cli.common import parse_instant
from scheduler_daemon.cli.output import echo_json, json_option
from scheduler_daemon.clock import SystemClock
from scheduler_daemon.timing import preview, preview_as_dict, render_preview_text, warnings

MAX_COUNT = 1000


def _parse_after(raw: str | None) -> datetime:
    return parse_instant(raw, "--after") or SystemClock().now()


@click.command("preview")
@click.argument("expression")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone.")
@click.option(
    "--count", type=click.IntRange(1, MAX_COUNT), default=10, show_default=True, help="How many."
)
@click.option("--after", metavar="ISO8601", help="Start after this instant (default: now).")
@json_option
def preview_command(
    expression: str, timezone: str, count: int, after: str | None, as_json: bool
) -> None:
    """Show the next fire times of EXPRESSION (cron, @daily, @every 15m) in its zone and UTC.

    Times that a daylight-saving change moves or skips are marked. Needs no database.
    """
    start = _parse_after(after)
    entries = preview(expression, timezone, start, count)
    advice = warnings(expression, timezone, after=start)
    if as_json:
        echo_json(preview_as_dict(entries, expression, timezone, advice))
    else:
        click.echo(render_preview_text(entries, expression, timezone, advice))
