"""A daemon's session lock: held for the life of its process, so that its death is seen at once.

A crashed process cannot keep its database session: PostgreSQL ends the backend when the
socket closes, and with it every session-level advisory lock. So each daemon takes one, keyed
by its worker id (``scheduler_worker_lock_key``), on a connection of its own, and records the
backend that holds it (``scheduler_workers.session_pid``). Another daemon's reaper treats a
worker whose lock is gone as dead within a second, instead of after ``worker_dead_after``
without a heartbeat. A worker that is alive but silent (hung, stopped, partitioned without
its connection closing) keeps its lock, and loses its claims only by the heartbeat and lease
rules, as before.

Behind a transaction-mode pooler a client's statements may run on different backends and a
server connection outlives its client, so the lock proves nothing: ``session_liveness`` off
(or a change of backend seen on the same connection) leaves the heartbeat as the only rule.
"""

from __future__ import annotations

import select

import psycopg
import structlog

log = structlog.get_logger("scheduler_daemon.liveness")

TAKE_LOCK = "SELECT pg_try_advisory_lock(scheduler_worker_lock_key(%s)), pg_backend_pid()"
BACKEND = "SELECT pg_backend_pid()"


class SessionLiveness:
    """The session lock of one worker. Not thread-safe: the loop's thread alone uses it."""

    def __init__(self, libpq_url: str, worker_id: str, *, enabled: bool) -> None:
        self._url = libpq_url
        self._worker_id = worker_id
        self._enabled = enabled
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._pid: int | None = None

    @property
    def pid(self) -> int | None:
        """The backend holding the lock, as last checked; None: liveness is by heartbeat only."""
        return self._pid

    def check(self) -> int | None:
        """Make sure the lock is still held, taking it again on a new connection if its session
        was lost; returns the backend pid that holds it, or None."""
        if not self._enabled:
            return None
        if self._conn is not None:
            try:
                pid = self._conn.execute(BACKEND).fetchone()
            except psycopg.Error as exc:
                log.warning("worker.session_lost", error=_first_line(exc))
                self._drop()
            else:
                if pid is not None and pid[0] == self._pid:
                    return self._pid
                # Another backend answered on the same connection: a transaction-mode pooler.
                log.warning(
                    "worker.session_liveness_off",
                    reason="a pooler moved this connection to another backend; "
                    "set SCHEDULER_SESSION_LIVENESS=off behind transaction-mode poolers",
                )
                self._enabled = False
                self._drop()
                return None
        return self._take()

    def lost(self) -> bool:
        """Whether the server has said something on the idle lock connection (it only does so
        to end the session): a cheap look, without a round trip, worth a ``check()``."""
        if self._conn is None:
            return False  # nothing held: the next heartbeat tries again
        try:
            readable, _, _ = select.select([self._conn.fileno()], [], [], 0)
        except (OSError, ValueError, psycopg.Error):
            return True
        return bool(readable)

    def close(self) -> None:
        self._drop()

    def _take(self) -> int | None:
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=5,
                application_name="scheduler-daemon session",
            )
        except psycopg.Error as exc:
            log.warning("worker.session_unavailable", error=_first_line(exc))
            return None
        row = conn.execute(TAKE_LOCK, (self._worker_id,)).fetchone()
        if row is None or not row[0]:
            # Another live session holds this worker id's lock: a second daemon with the same
            # worker id, or our predecessor's session not yet ended. Heartbeat only, for now.
            log.warning("worker.session_lock_busy", worker_id=self._worker_id)
            conn.close()
            return None
        self._conn, self._pid = conn, int(row[1])
        log.debug("worker.session_locked", backend_pid=self._pid)
        return self._pid

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._pid = None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
