"""Alembic, driven from code: where the migrations are, what revision a database is at.

A database at a revision the migrations here do not know was migrated by a newer
scheduler-daemon: every function that reads the revision raises SchemaAheadError for it,
before alembic (which cannot place the revision) is asked to do anything with it.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from scheduler_daemon import __version__
from scheduler_daemon.errors import SchemaAheadError, SchemaOutOfDateError

# Serialises concurrent `migrate` runs (two CLIs started at once) on one database.
_MIGRATION_LOCK_KEY = 0x5C4ED01E


def migrations_dir() -> Path:
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "_migrations", package_dir.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"no migrations directory next to {package_dir}")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migrations directory has no head revision")
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision of the migrations directory (read once: it does not change under a
    running process)."""
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(revision.revision for revision in script.walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """The database's revision, None for a database never migrated; SchemaAheadError when it
    is one this code does not know."""
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None and current not in known_revisions():
        raise SchemaAheadError(current, head_revision(), __version__)
    return current


def require_head(connection: Connection) -> str:
    """The database's revision when it is the head; else SchemaOutOfDateError (or
    SchemaAheadError, for a revision newer than the code)."""
    current, head = current_revision(connection), head_revision()
    if current != head:
        raise SchemaOutOfDateError(current, head)
    return head


def upgrade_to_head(engine: Engine) -> tuple[str | None, str]:
    """Migrate to head; returns (revision before, revision after). A no-op at head;
    SchemaAheadError, changing nothing, for a database ahead of the code."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        before = current_revision(conn)
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        return before, current_revision(conn) or head_revision()


def downgrade_to(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
