"""A daemon's session lock: held for the life of its process, so that its death is seen at once.

A crashed process cannot keep its database session: PostgreSQL ends the backend when the
socket closes, and with it every session-level advisory lock. So each daemon takes one, keyed
by its worker id (``scheduler_worker_lock_key``), on a connection of its own, and records the
backend that holds it (``scheduler_workers.session_pid``). Another daemon's reaper treats a
worker whose lock has stayed free for ``SESSION_GRACE`` as dead, instead of waiting
``worker_dead_after`` without a heartbeat. A worker that is alive but silent (hung, stopped,
partitioned without its connection closing) keeps its lock, and loses its claims only by the
heartbeat and lease rules, as before.

A daemon whose lock connection is cut while it lives (a reset, ``pg_terminate_backend``) is
woken by a watcher on that connection and takes the lock again within the grace, so it is
not taken for dead. After its own session was lost and taken again, and after the database
server itself started (a restart or failover: everybody's locks went at once), a daemon
applies the rule to nobody for ``SESSION_SETTLE`` seconds, giving the others time to come
back.

Behind a transaction-mode pooler a client's statements may run on different backends and a
server connection outlives its client, so the lock proves nothing: ``session_liveness`` off
(or a change of backend seen on the same connection) leaves the heartbeat as the only rule.
"""

from __future__ import annotations

import selectors
import threading
import time
from collections.abc import Callable, Iterable

import psycopg
import structlog

from scheduler_daemon.db.locks import BACKEND_PID, TAKE_WORKER_LOCK

log = structlog.get_logger("scheduler_daemon.liveness")

# How long a worker's lock must stay free before it counts as dead: a live daemon whose lock
# connection was cut takes its lock again well within it.
SESSION_GRACE = 0.5
# How long after taking its lock again (or after the server started) a daemon leaves the rule
# aside: longer than a daemon takes to come back after an outage (its retries back off to 5 s).
SESSION_SETTLE = 10.0


class SessionLiveness:
    """The session lock of one worker. ``check`` and ``close`` belong to the loop's thread; a
    watcher thread only looks at the connection's socket and calls ``on_lost``."""

    def __init__(
        self,
        libpq_url: str,
        worker_id: str,
        *,
        enabled: bool,
        monotonic: Callable[[], float] = time.monotonic,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self._monotonic = monotonic
        self._url = libpq_url
        self._worker_id = worker_id
        self._enabled = enabled
        self._on_lost = on_lost
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._pid: int | None = None
        self._retaken_at: float | None = None
        self._ever_held = False
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The backend holding the lock, as last checked; None: liveness is by heartbeat only."""
        return self._pid

    @property
    def enabled(self) -> bool:
        return self._enabled

    def settled(self) -> bool:
        """Whether this daemon holds its lock, and has not had to take it again lately: if its
        own session was lost, the others' may have gone the same way and be coming back."""
        if self._conn is None:
            return False
        retaken = self._retaken_at
        return retaken is None or self._monotonic() - retaken >= SESSION_SETTLE

    def lost(self) -> bool:
        """Whether the lock's connection said something since the last check (the server
        only does so to end the session): worth a ``check()`` now."""
        return self._lost.is_set()

    def check(self) -> int | None:
        """Make sure the lock is still held, taking it again on a new connection if its session
        was lost; returns the backend pid that holds it, or None."""
        if not self._enabled:
            return None
        self._lost.clear()
        if self._conn is not None:
            try:
                pid = self._conn.execute(BACKEND_PID).fetchone()
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

    def close(self) -> None:
        self._stop.set()
        self._drop()

    def _take(self) -> int | None:
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=5,
                application_name="scheduler-daemon session",
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            log.warning("worker.session_unavailable", error=_first_line(exc))
            return None
        try:
            row = conn.execute(TAKE_WORKER_LOCK, (self._worker_id,)).fetchone()
        except psycopg.Error as exc:
            log.warning("worker.session_unavailable", error=_first_line(exc))
            conn.close()
            return None
        if row is None or not row[0]:
            # Another live session holds this worker id's lock: a second daemon with the same
            # worker id, or our predecessor's session not yet ended. Heartbeat only, for now.
            log.warning("worker.session_lock_busy", worker_id=self._worker_id)
            conn.close()
            return None
        self._conn, self._pid = conn, int(row[1])
        if self._ever_held:
            self._retaken_at = self._monotonic()
        self._ever_held = True
        log.debug("worker.session_locked", backend_pid=self._pid)
        self._watch()
        return self._pid

    def _watch(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(
                target=self._watch_socket, name="session-watcher", daemon=True
            )
            self._watcher.start()

    def _watch_socket(self) -> None:
        """Wake the loop as soon as the server writes on the idle lock connection."""
        while not self._stop.is_set():
            if not self._enabled:  # a pooler was found: nothing to watch, ever
                return
            conn = self._conn
            if conn is None or self._lost.is_set():
                self._stop.wait(0.05)
                continue
            try:
                with selectors.DefaultSelector() as selector:
                    selector.register(conn.fileno(), selectors.EVENT_READ)
                    readable = selector.select(timeout=1.0)
            except (OSError, ValueError, psycopg.Error):
                readable = [None]  # type: ignore[list-item]
            if readable and conn is self._conn and not self._stop.is_set():
                self._lost.set()
                self._on_lost()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._pid = None


class GoneSessions:
    """What one reaper has seen of the other workers' locks: a worker whose lock it has seen
    free for ``SESSION_GRACE`` is dead."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._free_since: dict[str, float] = {}
        self.pending = False  # some lock was free at the last look, but not yet for the grace

    def dead(self, free_now: Iterable[str]) -> list[str]:
        """Given the workers whose lock is free now, those free for the whole grace."""
        now = self._monotonic()
        self._free_since = {w: self._free_since.get(w, now) for w in set(free_now)}
        dead = sorted(w for w, t in self._free_since.items() if now - t >= SESSION_GRACE)
        self.pending = len(dead) < len(self._free_since)
        return dead


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
