"""A crashed daemon's claims are taken over in about a second; a silent one's only by the
heartbeat and lease rules. Real processes, real PostgreSQL, kill -9 and SIGSTOP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.acceptance.daemons import (
    Daemon,
    count,
    db_now,
    insert_due_schedules,
    wait_for_count,
    wait_until,
)
from tests.helpers import Rows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("settled_server")]

UNFINISHED = "SELECT count(*) FROM schedule_runs WHERE status IN ('claimed', 'dispatching')"


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
        wait_for_count(engine, "SELECT count(*) FROM live_workers", 4, "4 live workers", 60)
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
    took = (last - killed_at).total_seconds()
    assert took <= 3.0, f"the last run was final {took:.1f} s after the kill"
    assert count(engine, "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'") == 2000
    assert count(engine, "SELECT count(DISTINCT schedule_id) FROM schedule_runs") == 2000
    reaped_from = {
        e["previous_owner"] for d in daemons[1:] for e in d.events() if e["event"] == "lock.reaped"
    }
    assert reaped_from == {"d0"}


def test_a_frozen_daemon_keeps_its_claims_until_its_lease_runs_out_then_is_fenced(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    """SIGSTOP past its lease: its session lives on, so it is not dead at once; its claims go
    only by the lease rule, and once thawed its late writes touch nothing."""
    # Its heartbeat would take a minute to go stale: the 4 s lease is what frees its claims.
    timing = ("--heartbeat-interval", "1", "--lease", "4")
    frozen = Daemon(
        database_url,
        tmp_path / "frozen.log",
        "--worker-id",
        "frozen",
        "--noop-delay",
        "2",
        *timing,
        env={"SCHEDULER_WORKER_DEAD_AFTER": "60"},
    )
    survivor: Daemon | None = None
    try:
        insert_due_schedules(engine, rows.workflow(), 5, seconds_ahead=0)
        wait_for_count(
            engine,
            "SELECT count(*) FROM schedule_runs WHERE status = 'dispatching'",
            5,
            "5 runs mid-call",
            30,
        )
        frozen.freeze()
        survivor = Daemon(
            database_url,
            tmp_path / "survivor.log",
            "--worker-id",
            "survivor",
            *timing,
            env={"SCHEDULER_WORKER_DEAD_AFTER": "60"},
        )
        wait_for_count(
            engine,
            "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'",
            5,
            "the survivor to finish the frozen daemon's runs",
            30,
        )
        with engine.connect() as conn:
            # Read before the thaw: its last heartbeat, and when its runs were taken over.
            quiet_for = conn.execute(
                text(
                    """
                    SELECT extract(epoch FROM min(r.finished_at) - w.heartbeat_at)
                      FROM schedule_runs r, scheduler_workers w
                     WHERE w.worker_id = 'frozen'
                     GROUP BY w.heartbeat_at
                    """
                )
            ).scalar_one()
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
    # Not before its lease ran out (4 s after its last renewal): its session was alive all
    # along, so it was not taken for dead.
    assert float(quiet_for) >= 4
    with engine.connect() as conn:
        owners = conn.execute(text("SELECT worker_id, status FROM schedule_runs")).all()
    assert sorted(owners) == [("survivor", "succeeded")] * 5
    assert finished_events([frozen, survivor]) == once_each(engine)
    assert not any(e["event"] == "run.finished" for e in frozen.events())


def test_a_daemon_cut_from_the_database_takes_its_session_again_and_runs_nothing_twice(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    """Its session is ended from the server (pg_terminate_backend) while its process lives and
    its calls are under way: it takes its session lock again at once, within the grace the
    others give a free lock, so they take nothing over and nothing is sent twice."""
    cut = Daemon(database_url, tmp_path / "cut.log", "--worker-id", "cut", "--noop-delay", "2")
    survivor: Daemon | None = None
    try:
        insert_due_schedules(engine, rows.workflow(), 5, seconds_ahead=0)
        wait_for_count(
            engine,
            "SELECT count(*) FROM schedule_runs WHERE status = 'dispatching'",
            5,
            "5 runs mid-call",
            30,
        )
        survivor = Daemon(database_url, tmp_path / "survivor.log", "--worker-id", "survivor")
        wait_for_count(
            engine,
            "SELECT count(*) FROM live_workers WHERE worker_id = 'survivor'",
            1,
            "the survivor",
            30,
        )
        with engine.begin() as conn:
            old_pid = conn.execute(
                text("SELECT session_pid FROM scheduler_workers WHERE worker_id = 'cut'")
            ).scalar_one()
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": old_pid})
        wait_for_count(
            engine,
            "SELECT count(*) FROM worker_status WHERE worker_id = 'cut' AND state = 'live' "
            f"AND session_pid IS NOT NULL AND session_pid <> {int(old_pid)}",
            1,
            "the cut daemon registered again with a new session",
            30,
        )
        wait_for_count(
            engine,
            "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'",
            5,
            "the runs finished",
            30,
        )
    finally:
        assert cut.terminate() == 0
        if survivor is not None:
            assert survivor.terminate() == 0
    assert not [e for e in survivor.events() if e["event"] == "lock.reaped"]
    dispatched = Counter(
        e["run_id"] for d in (cut, survivor) for e in d.events() if e["event"] == "run.dispatched"
    )
    assert dispatched == once_each(engine)  # each sent once
    assert finished_events([cut, survivor]) == once_each(engine)


def once_each(engine: Engine) -> Counter[str]:
    """Every run of the database, once."""
    with engine.connect() as conn:
        return Counter(str(r) for r in conn.execute(text("SELECT id FROM schedule_runs")).scalars())
