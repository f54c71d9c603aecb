"""A crashed daemon's claims are taken over in about a second; a silent one's only by the
heartbeat and lease rules. Real processes, real PostgreSQL, kill -9 and SIGSTOP."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.acceptance.daemons import Daemon, count, insert_due_schedules, wait_until
from tests.helpers import Rows

pytestmark = pytest.mark.slow

UNFINISHED = "SELECT count(*) FROM schedule_runs WHERE status IN ('claimed', 'dispatching')"


def db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        moment: datetime = conn.execute(text("SELECT now()")).scalar_one()
    return moment


def finished_events(daemons: list[Daemon]) -> Counter[str]:
    """How many times each run's outcome was recorded, across the daemons' logs."""
    return Counter(e["run_id"] for d in daemons for e in d.events() if e["event"] == "run.finished")


def test_kill_9_in_a_burst_the_dead_daemons_runs_are_final_within_3_seconds(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    """Default heartbeat settings (a worker silent for 30 s is dead): the crash is seen by its
    session ending, not by its heartbeat going stale."""
    daemons = [
        Daemon(
            database_url,
            tmp_path / f"d{i}.log",
            "--worker-id",
            f"d{i}",
            "--noop-delay",
            "0.01",
        )
        for i in range(4)
    ]
    victim = daemons[0]
    try:
        wait_until(
            lambda: count(engine, "SELECT count(*) FROM live_workers") == 4, 60, "4 live workers"
        )
        insert_due_schedules(engine, rows.workflow(), 2000, seconds_ahead=1)
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM workflow_schedules WHERE locked_by = 'd0'") > 0
            ),
            30,
            "the victim holding claims",
        )
        victim.kill()
        killed_at = db_now(engine)
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs") == 2000
                and count(engine, UNFINISHED) == 0
            ),
            60,
            "every run final",
        )
    finally:
        for daemon in daemons[1:]:
            assert daemon.terminate() == 0
    with engine.connect() as conn:
        last = conn.execute(text("SELECT max(finished_at) FROM schedule_runs")).scalar_one()
        taken_over = conn.execute(
            text("SELECT count(*) FROM schedule_runs WHERE attempts = 2 OR worker_id <> 'd0'")
        ).scalar_one()
    took = (last - killed_at).total_seconds()
    assert took <= 3.0, f"the last run was final {took:.1f} s after the kill"
    assert count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'") == 2000
    assert count(engine, "SELECT count(DISTINCT schedule_id) FROM schedule_runs") == 2000
    assert taken_over > 0
    reaped_from = {
        e["previous_owner"] for d in daemons[1:] for e in d.events() if e["event"] == "lock.reaped"
    }
    assert reaped_from == {"d0"}


def test_a_frozen_daemon_keeps_its_claims_until_its_heartbeat_is_stale_then_is_fenced(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    """SIGSTOP: its session lives on, so it is not dead at once; its claims go only by the
    heartbeat rule, and once thawed its late writes touch nothing."""
    timing = ("--heartbeat-interval", "1")
    frozen = Daemon(
        database_url,
        tmp_path / "frozen.log",
        "--worker-id",
        "frozen",
        "--noop-delay",
        "2",
        *timing,
        env={"SCHEDULER_WORKER_DEAD_AFTER": "4"},
    )
    survivor: Daemon | None = None
    try:
        insert_due_schedules(engine, rows.workflow(), 5, seconds_ahead=0)
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'dispatching'")
                == 5
            ),
            30,
            "5 runs mid-call",
        )
        frozen.freeze()
        frozen_at = time.monotonic()
        survivor = Daemon(
            database_url,
            tmp_path / "survivor.log",
            "--worker-id",
            "survivor",
            *timing,
            env={"SCHEDULER_WORKER_DEAD_AFTER": "4"},
        )
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'") == 5
            ),
            30,
            "the survivor to finish the frozen daemon's runs",
        )
        took = time.monotonic() - frozen_at
        frozen.thaw()
        wait_until(
            lambda: any(e["event"] == "claim.lost" for e in frozen.events()),
            30,
            "the thawed daemon to find its claims lost",
        )
    finally:
        frozen.thaw()
        assert frozen.terminate() == 0
        if survivor is not None:
            assert survivor.terminate() == 0
    assert took >= 4  # not before its heartbeat was stale: its session was alive all along
    with engine.connect() as conn:
        owners = conn.execute(text("SELECT worker_id, status FROM schedule_runs")).all()
    assert sorted(owners) == [("survivor", "succeeded")] * 5
    assert finished_events([frozen, survivor]) == Counter({str(r): 1 for r in _run_ids(engine)})
    assert not any(e["event"] == "run.finished" for e in frozen.events())


def test_a_daemon_cut_from_the_database_reconnects_and_no_slot_is_recorded_twice(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    """Its session is ended from the server (pg_terminate_backend) while its process lives:
    the others take its claims at once, fenced; it takes its session lock again, registers,
    and goes on scheduling."""
    cut = Daemon(database_url, tmp_path / "cut.log", "--worker-id", "cut", "--noop-delay", "2")
    survivor: Daemon | None = None
    try:
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM scheduler_workers WHERE session_pid > 0") == 1
            ),
            30,
            "the daemon's session lock",
        )
        insert_due_schedules(engine, rows.workflow(), 5, seconds_ahead=0)
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'dispatching'")
                == 5
            ),
            30,
            "5 runs mid-call",
        )
        survivor = Daemon(database_url, tmp_path / "survivor.log", "--worker-id", "survivor")
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM live_workers WHERE worker_id = 'survivor'") == 1
            ),
            30,
            "the survivor",
        )
        with engine.begin() as conn:
            old_pid = conn.execute(
                text("SELECT session_pid FROM scheduler_workers WHERE worker_id = 'cut'; ")
            ).scalar_one()
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": old_pid})
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'") == 5
            ),
            30,
            "the runs finished",
        )
        wait_until(
            lambda: (
                count(
                    engine,
                    "SELECT count(*) FROM worker_status WHERE worker_id = 'cut' AND state = 'live' "
                    f"AND session_pid IS NOT NULL AND session_pid <> {int(old_pid)}",
                )
                == 1
            ),
            30,
            "the cut daemon registered again with a new session",
        )
        insert_due_schedules(engine, rows.workflow(), 20, seconds_ahead=1)
        wait_until(
            lambda: (
                count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'") == 25
            ),
            30,
            "the next slots",
        )
    finally:
        assert cut.terminate() == 0
        if survivor is not None:
            assert survivor.terminate() == 0
    assert count(engine, "SELECT count(DISTINCT schedule_id) FROM schedule_runs") == 25
    assert finished_events([cut, survivor]) == Counter({str(r): 1 for r in _run_ids(engine)})
    assert any(e["event"] == "worker.session_lost" for e in cut.events())


def _run_ids(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM schedule_runs")).scalars())
