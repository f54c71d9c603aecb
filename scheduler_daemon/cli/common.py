"""What every command shares: the settings and the database it talks to."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import click
from sqlalchemy import Connection, Engine

from scheduler_daemon.cli.output import F
from scheduler_daemon.config import (
    Configuration,
    Environment,
    Scope,
    Settings,
    load_configuration,
    read_environment,
    settings_of,
)
from scheduler_daemon.db.audit import set_actor
from scheduler_daemon.db.engine import check_connection, make_engine
from scheduler_daemon.db.migrate import require_head, upgrade_to_head
from scheduler_daemon.db.queries import database_now
from scheduler_daemon.embedded import embedded_database
from scheduler_daemon.errors import FieldError
from scheduler_daemon.history import os_actor

# How the command line spells each field the verbs name (scheduler_daemon.management); a
# sync file's keys are the field names themselves (scheduler_daemon.sync.SCHEDULE_KEYS).
FIELD_OPTIONS: Mapping[str, str] = {
    "name": "--name",
    "workflow": "--workflow",
    "cron": "--cron",
    "timezone": "--tz",
    "anchor": "--anchor",
    "misfire_policy": "--misfire-policy",
    "overlap_policy": "--overlap-policy",
    "misfire_grace_seconds": "--misfire-grace",
    "max_catchup_runs": "--max-catchup",
    "parameters": "--param",
    "enabled": "--enable",
    "paused_until": "--until",
    "amc_execution_id": "--execution",
    "rerun": "--rerun",
    # the catalog's (scheduler_daemon.catalog)
    "account_id": "--account-id",
    "marketplace_id": "--marketplace-id",
    "region": "--region",
    "instance_id": "--instance-id",
    "account": "--account",
    "instance": "--instance",
    "amc_workflow_id": "--amc-workflow-id",
    "sql_query": "--sql",
    # the tokens' (scheduler_daemon.tokens)
    "role": "--role",
}


def field_message(exc: FieldError) -> str:
    """The error as the command line says it: ``--option: problem``."""
    return f"{FIELD_OPTIONS.get(exc.field, exc.field)}: {exc.message}"


def setting_options(scope: Scope) -> Callable[[F], F]:
    """One option per setting of the table (``config.SETTINGS``) in ``scope``, in its order,
    each saying what it takes, its variable and its default. No click default: None means
    "not given", so the variable, the environment file or the default decides
    (``config.load_configuration``, which also names a bad value's option)."""

    def decorate(command: F) -> F:
        for setting in reversed(settings_of(scope)):
            command = click.option(
                setting.option, setting.name, metavar=setting.metavar, help=setting.option_help()
            )(command)
        return command

    return decorate


@dataclass
class CliState:
    """The root options, kept until a command adds its own and builds the settings.

    The environment (``environ``, else the process's, with the environment file it names or
    the default one: ``config.read_environment``) is read once, when a command first needs a
    setting, so that commands needing none (``version``, ``preview``) never read the file."""

    root_options: Mapping[str, object]
    environ: Mapping[str, str] | None = None
    _environment: Environment | None = field(default=None, init=False, repr=False)

    def environment(self) -> Environment:
        if self._environment is None:
            self._environment = read_environment(self.environ)
        return self._environment

    def configuration(self, **options: object) -> Configuration:
        """The settings and where each value came from (``db status`` says)."""
        return load_configuration({**self.root_options, **options}, self.environment())

    def settings(self, **options: object) -> Settings:
        return self.configuration(**options).settings


@contextlib.contextmanager
def open_database(
    settings: Settings,
    *,
    announce: bool = True,
    pool_size: int = 5,
    migrate_embedded: bool = True,
    custom_plans: bool = False,
) -> Iterator[Engine]:
    """An engine on the configured database, or on the embedded one when none is set. The
    embedded database is ours to keep current: it is brought to the schema's head on opening
    (unless ``migrate_embedded`` is false: ``migrate`` and ``db shell`` decide themselves);
    one whose schema is newer than the code raises SchemaAheadError."""
    with contextlib.ExitStack() as stack:
        url = settings.database_url
        if url is None:
            url = stack.enter_context(embedded_database(settings.data_dir))
            if announce:
                click.echo(f"embedded PostgreSQL: data in {settings.data_dir}", err=True)
        engine = make_engine(url, pool_size=pool_size, custom_plans=custom_plans)
        stack.callback(engine.dispose)
        check_connection(engine)
        if settings.database_url is None and migrate_embedded:
            upgrade_to_head(engine)
        yield engine


def ensure_schema(engine: Engine, settings: Settings) -> None:
    """A database of your own must already be at the migration head (SchemaOutOfDateError
    says which revision it is at); the embedded one is, since ``open_database`` opened it."""
    if settings.database_url is not None:
        with engine.connect() as conn:
            require_head(conn)


@contextlib.contextmanager
def open_current_database(settings: Settings) -> Iterator[Engine]:
    """``open_database``, for commands that read or write the tables: at the schema's head."""
    with open_database(settings, announce=False) as engine:
        ensure_schema(engine, settings)
        yield engine


@contextlib.contextmanager
def transaction(state: CliState, *, face: str = "cli") -> Iterator[tuple[Connection, datetime]]:
    """One transaction per command; the database's clock is "now". The audit trail names
    its changes' author ``face:user``, the user running the command (``cli:alice``)."""
    with open_current_database(state.settings()) as engine, engine.begin() as conn:
        set_actor(conn, os_actor(face))
        yield conn, database_now(conn)


def parse_instant(raw: str | None, option: str) -> datetime | None:
    """An ISO 8601 instant with its UTC offset (a bare local time would be ambiguous)."""
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise click.BadParameter(f"{raw!r} is not an ISO 8601 time", param_hint=option) from None
    if value.tzinfo is None:
        raise click.BadParameter(
            f"{raw!r} has no UTC offset; write e.g. {raw}+00:00 or {raw}Z", param_hint=option
        )
    return value
