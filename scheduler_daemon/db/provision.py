"""Throwaway PostgreSQL servers and databases, for the test suite and the benchmarks.

``session_server`` picks the server: SCHEDULER_TEST_DATABASE_URL when set; else a
testcontainers PostgreSQL when a Docker engine answers (and the ``test`` extra is installed);
else an ``EmbeddedServer`` (the path CI takes). ``create_template`` migrates a database to
head, and ``clone_database`` copies it, one copy per test; the benchmarks start an
``EmbeddedServer`` of their own and do the same. Nothing here is used by the daemon itself.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scheduler_daemon.db.databases import create_database
from scheduler_daemon.db.engine import libpq_url, make_engine
from scheduler_daemon.db.migrate import upgrade_to_head
from scheduler_daemon.embedded import embedded_postgres_server

TEST_URL_VARIABLE = "SCHEDULER_TEST_DATABASE_URL"
MAX_CONNECTIONS = 300


def docker_answers() -> bool:
    if importlib.util.find_spec("testcontainers") is None:
        return False
    try:
        import docker  # type: ignore[import-untyped]  # noqa: PLC0415 (the test extra)

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


class EmbeddedServer:
    """An embedded PostgreSQL in ``data_dir``, tuned for throwaway use; ``close`` deletes it."""

    def __init__(
        self,
        data_dir: Path,
        *,
        max_connections: int = MAX_CONNECTIONS,
        preload: Sequence[str] = (),
    ) -> None:
        """``preload`` names libraries for shared_preload_libraries (pg_stat_statements)."""
        self._server: Any = embedded_postgres_server().get_server(data_dir, cleanup_mode="delete")
        self.admin_url: str = self._server.get_uri("postgres")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            # A throwaway server: durability buys nothing here and costs seconds per test run.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
            # Several daemon processes at once, each with a dispatch pool and a listener.
            conn.execute(
                sql.SQL("ALTER SYSTEM SET max_connections = {}").format(
                    sql.Literal(max_connections)
                )
            )
            if preload:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET shared_preload_libraries = {}").format(
                        sql.Literal(",".join(preload))
                    )
                )
        self.restart()

    def restart(self, mode: str = "fast") -> None:
        """max_connections and preloaded libraries only change on a restart, which the wheel's
        handle does not offer. ``mode`` is pg_ctl's shutdown mode: fast, or immediate (a crash,
        as far as the server's clients can tell; it recovers from its WAL as it starts)."""
        from embedded_postgres._commands import (  # type: ignore[attr-defined]  # noqa: PLC0415
            pg_ctl,
        )
        from embedded_postgres.utils import PostmasterInfo  # noqa: PLC0415

        server = self._server
        pg_ctl(
            ["-w", "-m", mode, "-l", str(server.log), "restart"],
            pgdata=server.pgdata,
            user=server.system_user,
            timeout=60,
        )
        # The handle caches the postmaster's pid; it must see the new one to stop it at the end.
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)

    @property
    def pid(self) -> int | None:
        """The postmaster's process id, None when it is not running."""
        pid: int | None = self._server.get_pid()
        return pid

    def close(self) -> None:
        """Stop the server and delete its data directory."""
        self._server.cleanup()


@contextmanager
def embedded_server(
    *, max_connections: int = MAX_CONNECTIONS, preload: Sequence[str] = ()
) -> Iterator[EmbeddedServer]:
    """An ``EmbeddedServer`` in a temporary directory, removed afterwards."""
    # Not under pytest's basetemp: pytest deletes old basetemps when later sessions start, and
    # would pull the data directory from under a long session's server.
    root = Path(tempfile.mkdtemp(prefix="scheduler-daemon-test-pg-"))
    try:
        server = EmbeddedServer(root / "data", max_connections=max_connections, preload=preload)
        try:
            yield server
        finally:
            server.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def session_server() -> Iterator[str]:
    """An admin URL of the PostgreSQL server to create throwaway databases on."""
    given = os.environ.get(TEST_URL_VARIABLE)
    if given:
        yield libpq_url(given)
        return
    if docker_answers():
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415 (the test extra)

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    with embedded_server() as server:
        yield server.admin_url


def create_template(admin_url: str, name: str) -> str:
    """A new database migrated to head, to clone others from; returns its URL."""
    url = create_database(admin_url, name)
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    return url


def clone_database(admin_url: str, template: str, name: str) -> str:
    """A new database copied from ``template``; returns its URL."""
    return create_database(admin_url, name, template=template)
