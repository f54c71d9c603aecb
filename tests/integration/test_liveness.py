"""Who is dead: a worker whose session lock is free is dead at once; one that holds it is
alive however long its heartbeat has been quiet (short of the heartbeat rule); one without
session liveness (behind a pooler) is judged by its heartbeat alone."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import Engine, text

from scheduler_daemon.clock import FakeClock
from scheduler_daemon.daemon.liveness import SESSION_GRACE
from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.db.engine import libpq_url
from scheduler_daemon.db.tables import scheduler_workers, workflow_schedules
from tests.helpers import Rows

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("settled_server")


@pytest.fixture
def session_of(engine: Engine) -> Iterator[Callable[[str], int]]:
    """Hold a worker's session lock on a connection of the test's own; returns its pid."""
    held: list[psycopg.Connection[tuple[object, ...]]] = []

    def hold(worker_id: str) -> int:
        conn = psycopg.connect(libpq_url(engine), autocommit=True)
        held.append(conn)
        row = conn.execute(
            "SELECT pg_advisory_lock(scheduler_worker_lock_key(%s)), pg_backend_pid()",
            (worker_id,),
        ).fetchone()
        assert row is not None
        return int(row[1])

    yield hold
    for conn in held:
        conn.close()


def worker(engine: Engine, worker_id: str, session_pid: int | None) -> None:
    """A worker with a fresh heartbeat."""
    with engine.begin() as conn:
        conn.execute(
            scheduler_workers.insert().values(
                worker_id=worker_id, hostname="h", pid=1, version="v", session_pid=session_pid
            )
        )


def locked_by(rows: Rows, owner: str) -> uuid.UUID:
    schedule_id, _ = rows.claim(owner, 3, T0)
    return schedule_id


def test_a_worker_whose_session_is_gone_loses_its_claims_at_once(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    session_of: Callable[[str], int],
) -> None:
    worker(engine, "crashed", session_pid=4242)  # its session lock is free: its process died
    worker(engine, "alive", session_pid=session_of("alive"))
    worker(engine, "d0", session_pid=session_of("d0"))  # its lock key is negative
    worker(engine, "pooled", session_pid=None)  # heartbeat only
    crashed, alive, pooled, negative = (
        locked_by(rows, w) for w in ("crashed", "alive", "pooled", "d0")
    )
    clock.set(T0 + timedelta(minutes=1))
    scheduler = make_scheduler(worker_id="survivor")
    assert scheduler.tick().reaped == 0  # its lock is free: seen, not yet trusted
    clock.advance(SESSION_GRACE)
    assert scheduler.tick().reaped == 1  # still free after the grace: dead
    assert scheduler.wait_idle(20)
    assert rows.get(workflow_schedules, crashed)["locked_by"] is None  # taken over and released
    assert rows.get(workflow_schedules, alive)["locked_by"] == "alive"
    assert rows.get(workflow_schedules, pooled)["locked_by"] == "pooled"
    assert rows.get(workflow_schedules, negative)["locked_by"] == "d0"
    with engine.connect() as conn:
        states: dict[str, str] = dict(
            conn.execute(
                text("SELECT worker_id, coalesce(dead_because, state) FROM worker_status")
            ).all()
        )
    assert states == {
        "crashed": "session gone",
        "alive": "live",
        "pooled": "live",
        "d0": "live",
        "survivor": "live",
    }


def test_a_daemon_registers_the_backend_holding_its_session_lock(
    engine: Engine, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    make_scheduler(worker_id="w1")
    make_scheduler(worker_id="w2", session_liveness=False)
    with engine.connect() as conn:
        alive: dict[str, bool] = dict(
            conn.execute(
                text(
                    "SELECT worker_id, scheduler_worker_session_alive(worker_id) "
                    "FROM scheduler_workers"
                )
            ).all()
        )
        pids: dict[str, int | None] = dict(
            conn.execute(text("SELECT worker_id, session_pid FROM scheduler_workers")).all()
        )
    assert alive == {"w1": True, "w2": False}
    assert pids["w1"] is not None
    assert pids["w2"] is None


def test_a_heartbeat_stale_worker_is_dead_by_the_heartbeat_rule(
    engine: Engine, session_of: Callable[[str], int]
) -> None:
    worker(engine, "hung", session_pid=session_of("hung"))
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE scheduler_workers SET heartbeat_at = now() - interval '1 hour' "
                "WHERE worker_id = 'hung'"
            )
        )
        state = conn.execute(
            text("SELECT state, dead_because FROM worker_status WHERE worker_id = 'hung'")
        ).one()
    assert tuple(state) == ("dead", "heartbeat stale")
