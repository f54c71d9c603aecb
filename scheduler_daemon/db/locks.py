"""Session-level advisory locks: a daemon's own (its liveness) and the slots of an AMC
instance's gate. Both are held by a session, not a transaction, so that they end with it."""

from __future__ import annotations

from sqlalchemy import Connection, text

# Taken on a raw psycopg connection of the daemon's own (daemon/liveness.py), with the worker
# id as its one parameter; returns whether it was taken and the backend that holds it.
TAKE_WORKER_LOCK = "SELECT pg_try_advisory_lock(scheduler_worker_lock_key(%s)), pg_backend_pid()"
BACKEND_PID = "SELECT pg_backend_pid()"

TRY_SLOT = text("SELECT pg_try_advisory_lock(:namespace, :slot)")
RELEASE_SLOT = text("SELECT pg_advisory_unlock(:namespace, :slot)")


def try_slot(conn: Connection, namespace: int, slot: int) -> bool:
    """Take one slot of an instance's gate for this session, if it is free."""
    return bool(conn.execute(TRY_SLOT, {"namespace": namespace, "slot": slot}).scalar_one())


def release_slot(conn: Connection, namespace: int, slot: int) -> None:
    conn.execute(RELEASE_SLOT, {"namespace": namespace, "slot": slot})
