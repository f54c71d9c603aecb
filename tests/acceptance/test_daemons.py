"""Several real daemon processes against one PostgreSQL: exactly once, through crashes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.acceptance.daemons import (
    Daemon,
    count,
    free_port,
    insert_due_schedules,
    metric,
    wait_for_count,
    wait_until,
)
from tests.helpers import Rows

pytestmark = pytest.mark.slow


def test_four_daemons_2000_schedules_one_slot_each_exactly_once(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    daemons = [
        Daemon(database_url, tmp_path / f"d{i}.log", "--worker-id", f"d{i}") for i in range(4)
    ]
    try:
        wait_until(
            lambda: count(engine, "SELECT count(*) FROM live_workers") == 4, 60, "4 live workers"
        )
        insert_due_schedules(engine, rows.workflow(), 2000, seconds_ahead=2)
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'")
                == 2000
            ),
            120,
            "2000 succeeded runs",
        )
    finally:
        codes = [d.terminate() for d in daemons]
    assert codes == [0, 0, 0, 0]
    assert count(engine, "SELECT count(*) FROM schedule_runs") == 2000
    assert count(engine, "SELECT count(DISTINCT schedule_id) FROM schedule_runs") == 2000
    dispatched = Counter(
        e["run_id"] for d in daemons for e in d.events() if e["event"] == "run.dispatched"
    )
    assert len(dispatched) == 2000
    assert set(dispatched.values()) == {1}
    for event in (e for d in daemons for e in d.events() if e["event"] == "run.dispatched"):
        assert {
            "worker_id",
            "schedule_id",
            "scheduled_for",
            "run_id",
            "correlation_id",
        } <= event.keys()
    assert count(engine, "SELECT count(*) FROM workflow_schedules WHERE locked_by IS NOT NULL") == 0
    assert count(engine, "SELECT count(*) FROM scheduler_workers WHERE stopped_at IS NULL") == 0


def test_kill_9_of_a_daemon_holding_claims_another_finishes_them_once_within_45s(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    # The victim's executor takes an hour, so it is killed holding every claim, mid-call.
    victim = Daemon(
        database_url,
        tmp_path / "victim.log",
        "--worker-id",
        "victim",
        "--noop-delay",
        "3600",
        "--concurrency",
        "32",
    )
    survivor: Daemon | None = None
    try:
        insert_due_schedules(engine, rows.workflow(), 20, seconds_ahead=0)
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'dispatching'")
                == 20
            ),
            60,
            "the victim to hold 20 runs mid-call",
        )
        survivor = Daemon(database_url, tmp_path / "survivor.log", "--worker-id", "survivor")
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM live_workers WHERE worker_id = 'survivor'") == 1
            ),
            60,
            "survivor",
        )
        victim.kill()
        took = wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'") == 20
            ),
            60,
            "the survivor to finish the victim's runs",
        )
    finally:
        if victim.process.poll() is None:
            victim.kill()
        survivor_code = survivor.terminate() if survivor is not None else None
    assert survivor is not None
    assert survivor_code == 0
    assert took <= 45
    assert count(engine, "SELECT count(*) FROM schedule_runs") == 20
    assert (
        count(
            engine,
            "SELECT count(*) FROM schedule_runs WHERE worker_id = 'survivor' AND attempts = 2",
        )
        == 20
    )
    survivor_dispatches = Counter(
        e["run_id"] for e in survivor.events() if e["event"] == "run.dispatched"
    )
    assert len(survivor_dispatches) == 20
    assert set(survivor_dispatches.values()) == {1}
    assert sum(1 for e in survivor.events() if e["event"] == "lock.reaped") == 20


def test_sigterm_finishes_in_flight_work_and_releases_every_lock(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    daemon = Daemon(database_url, tmp_path / "d.log", "--worker-id", "d", "--noop-delay", "2")
    try:
        insert_due_schedules(engine, rows.workflow(), 10, seconds_ahead=0)
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'dispatching'")
                == 10
            ),
            60,
            "10 runs in flight",
        )
    finally:
        code = daemon.terminate()
    assert code == 0
    assert count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'") == 10
    assert count(engine, "SELECT count(*) FROM workflow_schedules WHERE locked_by IS NOT NULL") == 0
    assert count(engine, "SELECT count(*) FROM scheduler_workers WHERE stopped_at IS NOT NULL") == 1
    events = [e["event"] for e in daemon.events()]
    assert events[-1] == "worker.stopped"


def test_a_schedule_created_for_now_fires_now_not_at_the_next_poll(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    """The daemon polls and heartbeats only hourly: a schedule created while it sleeps can
    only fire within the wait because its creation woke the daemon (LISTEN/NOTIFY)."""
    port = free_port()
    daemon = Daemon(
        database_url,
        tmp_path / "d.log",
        "--worker-id",
        "d",
        "--poll-interval",
        "3600",
        "--heartbeat-interval",
        "3600",
        "--metrics-port",
        str(port),
    )
    ticks = "scheduler_tick_duration_seconds_count"
    try:
        # Its first tick, then the one its listener asks for once listening: nothing else
        # wakes an idle daemon before the hour is up, so after these two it sleeps, listening.
        wait_until(lambda: (metric(port, ticks) or 0) >= 2, 60, "the daemon asleep, listening")
        insert_due_schedules(engine, rows.workflow(), 1, seconds_ahead=0)
        wait_for_count(
            engine,
            "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'",
            1,
            "the run, long before the next poll",
        )
    finally:
        code = daemon.terminate()
    assert code == 0


def test_overlapping_restart_old_and_new_daemon_never_duplicate(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    """PM2 and systemd restarts can briefly run the old and the new process side by side."""
    workflow_id = rows.workflow()
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO workflow_schedules (workflow_id, name, interval_seconds, enabled, next_run_at)
                SELECT :workflow_id, 'every second ' || n || ' ' || gen_random_uuid(), 1, true, date_trunc('second', now()) + interval '1 second'
                  FROM generate_series(1, 50) AS n
                """
            ),
            {"workflow_id": workflow_id},
        )
    old = Daemon(database_url, tmp_path / "old.log", "--worker-id", "old", "--poll-interval", "1")
    new: Daemon | None = None
    try:
        wait_until(
            lambda: count(engine, "SELECT count(*) FROM schedule_runs") >= 100,
            60,
            "the old daemon at work",
        )
        new = Daemon(
            database_url, tmp_path / "new.log", "--worker-id", "new", "--poll-interval", "1"
        )
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE worker_id = 'new'") >= 50
            ),
            60,
            "both at work",
        )
        assert old.terminate() == 0
        settled = count(engine, "SELECT count(*) FROM schedule_runs") + 200
        wait_until(
            lambda: count(engine, "SELECT count(*) FROM schedule_runs") >= settled,
            60,
            "the new daemon alone",
        )
    finally:
        if old.process.poll() is None:
            old.terminate()
        new_code = new.terminate() if new is not None else None
    assert new is not None
    assert new_code == 0
    dispatched = Counter(
        e["run_id"] for d in (old, new) for e in d.events() if e["event"] == "run.dispatched"
    )
    assert set(dispatched.values()) == {1}
    assert count(engine, "SELECT count(*) FROM schedule_runs WHERE status <> 'succeeded'") == 0
    assert len(dispatched) == count(engine, "SELECT count(*) FROM schedule_runs")
    # Each schedule's slots are consecutive seconds: none skipped, none twice.
    gaps = count(
        engine,
        """
        SELECT count(*) FROM (
            SELECT scheduled_for - lag(scheduled_for) OVER (PARTITION BY schedule_id ORDER BY scheduled_for) AS step
              FROM schedule_runs) steps
         WHERE step IS NOT NULL AND step <> interval '1 second'
        """,
    )
    assert gaps == 0
