"""A real PostgreSQL for the tests: one server per session, one fresh database per test.

The server is SCHEDULER_TEST_DATABASE_URL when set; else a testcontainers PostgreSQL when a
Docker engine answers; else an embedded PostgreSQL (the path CI takes). A migrated template
database is cloned for every test, so tests are isolated and need no cleanup. The harness
itself is in scheduler_daemon/db/provision.py, which the benchmarks share.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from scheduler_daemon.daemon.liveness import SESSION_SETTLE
from scheduler_daemon.db.engine import make_engine
from tests.acceptance.daemons import count, wait_until
from tests.helpers import Rows
from tests.postgres import (
    clone_database,
    create_database,
    create_template,
    drop_database,
    session_server,
)


@pytest.fixture(autouse=True)
def _no_scheduler_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own SCHEDULER_* variables must not leak into the tests (the harness's
    own, SCHEDULER_TEST_*, stay)."""
    for name in list(os.environ):
        if name.startswith("SCHEDULER_") and not name.startswith("SCHEDULER_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SCHEDULER_ENV_FILE", os.devnull)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """An admin URL of a PostgreSQL server the tests may create databases on."""
    with session_server() as url:
        yield url


@pytest.fixture(scope="session")
def template_database(pg_server: str) -> str:
    """A database migrated to head, the template every test database is cloned from."""
    name = f"sd_template_{uuid.uuid4().hex[:8]}"
    create_template(pg_server, name)
    return name


@pytest.fixture
def database_url(pg_server: str, template_database: str) -> Iterator[str]:
    """The URL of a fresh, migrated database of this test's own."""
    name = f"sd_test_{uuid.uuid4().hex[:12]}"
    yield clone_database(pg_server, template_database, name)
    drop_database(pg_server, name)


@pytest.fixture
def empty_database_url(pg_server: str) -> Iterator[str]:
    """The URL of a fresh database with no schema at all."""
    name = f"sd_empty_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server, name)
    drop_database(pg_server, name)


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


@pytest.fixture
def settled_server(engine: Engine) -> None:
    """A server started long enough ago for free session locks to mean dead daemons: right
    after it starts everybody's lock went at once, and daemons leave that rule aside."""
    age = "SELECT floor(extract(epoch FROM now() - pg_postmaster_start_time()))::int"
    wait_until(
        lambda: count(engine, age) >= SESSION_SETTLE, SESSION_SETTLE + 5, "the server to settle"
    )
