"""Commands that describe the program itself."""

from __future__ import annotations

import click

from scheduler_daemon import __version__


@click.command("version")
def version_command() -> None:
    """Print the version."""
    click.echo(f"scheduler-daemon {__version__}")
