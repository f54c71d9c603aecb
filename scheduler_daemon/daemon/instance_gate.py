"""At most N calls in flight per AMC instance across every daemon, not per process.

Each call holds one of N PostgreSQL advisory locks (session level, on a connection of its own,
no transaction) named after the instance, for as long as the call lasts. A daemon that dies
mid-call loses its session and so its slot: the gate can only err toward fewer calls.

It is the only cap (``AmcSettings.max_in_flight``): the AMC client has none of its own, so a
call waits here, before it takes a pooled HTTP connection, and nowhere else.

A slot whose session ended during the call (the database restarted, the connection was cut)
was freed with it: its release does not fail the call, whose answer is still to be recorded.
"""

from __future__ import annotations

import contextlib
import random
import select
import time
import zlib
from collections.abc import Iterator

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from scheduler_daemon.amc.errors import InstanceBusyError
from scheduler_daemon.db.locks import release_slot, try_slot

__all__ = ["InstanceBusyError", "InstanceGate"]

log = structlog.get_logger("scheduler_daemon.gate")


def _namespace(instance_id: str) -> int:
    """A stable signed 32-bit key for the instance (advisory locks take two int4 keys)."""
    value = zlib.crc32(f"scheduler-daemon:amc:{instance_id}".encode())
    return value - (1 << 32) if value >= (1 << 31) else value


class InstanceGate:
    def __init__(self, engine: Engine, slots: int, wait: float) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._slots = slots
        self._wait = wait

    @contextlib.contextmanager
    def slot(self, instance_id: str) -> Iterator[None]:
        """Hold a slot of ``instance_id`` for the body; InstanceBusyError after the wait."""
        with self._engine.connect() as conn, self.slot_on(conn, instance_id):
            yield

    @contextlib.contextmanager
    def slot_on(
        self, conn: Connection, instance_id: str, *, wait: float | None = None
    ) -> Iterator[None]:
        """``slot`` on the caller's connection (in autocommit), which it may use meanwhile:
        the slot is the connection's session's until the body ends. ``wait``: instead of
        the gate's."""
        namespace = _namespace(instance_id)
        slot = self._acquire(conn, namespace, self._wait if wait is None else wait)
        try:
            yield
        finally:
            _release(conn, namespace, slot, instance_id)

    def _acquire(self, conn: Connection, namespace: int, wait: float) -> int:
        deadline = time.monotonic() + wait
        order = list(range(self._slots))
        while True:
            random.shuffle(order)  # spread the daemons over the slots
            for slot in order:
                if try_slot(conn, namespace, slot):
                    return slot
            if time.monotonic() >= deadline:
                raise InstanceBusyError(f"all {self._slots} slots stayed busy for {wait:g}s")
            time.sleep(0.02 + random.random() * 0.03)  # noqa: S311 - jitter, not a secret


def still_held(conn: Connection) -> bool:
    """Whether the slots held on ``conn`` are still its session's, asked without a round
    trip: an idle connection has nothing to read unless the server ended the session (its
    termination notice, or the end of the stream). For a caller making several calls under
    one slot: after a restart of the database the slot is free for others."""
    raw = conn.connection.dbapi_connection
    if raw is None or raw.closed:
        return False
    readable, _, _ = select.select([raw.fileno()], [], [], 0)
    return not readable


def _release(conn: Connection, namespace: int, slot: int, instance_id: str) -> None:
    try:
        release_slot(conn, namespace, slot)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The session is gone, and the server released its advisory locks as it ended.
        log.info("amc.gate_session_lost", instance_id=instance_id, slot=slot)
