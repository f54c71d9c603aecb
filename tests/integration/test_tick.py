"""The tick against a real PostgreSQL, with time moved by a FakeClock."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text, update
from structlog.testing import capture_logs

from scheduler_daemon.clock import FakeClock
from scheduler_daemon.daemon import scheduler as scheduler_module
from scheduler_daemon.daemon.scheduler import PRUNE_EVERY, REAP_EVERY, Scheduler
from scheduler_daemon.db.tables import schedule_runs, workflow_schedules
from scheduler_daemon.executors import NoopExecutor
from scheduler_daemon.executors.base import (
    ExecutionOutcome,
    FoundExecution,
    OutcomeUnknownError,
    RunRequest,
)
from tests.acceptance.daemons import count, wait_until
from tests.helpers import Rows
from tests.integration.conftest import FailingExecutor, GatedExecutor

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def wait_idle(scheduler: Scheduler, timeout: float = 20) -> None:
    """Wait until the scheduler's dispatches have all finished."""
    assert scheduler.wait_idle(timeout), f"dispatches still running after {timeout}s"


def tick(scheduler: Scheduler) -> Any:
    result = scheduler.tick()
    wait_idle(scheduler)
    return result


def runs_of(engine: Engine, schedule_id: uuid.UUID) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(schedule_runs)
            .where(schedule_runs.c.schedule_id == schedule_id)
            .order_by(schedule_runs.c.scheduled_for, schedule_runs.c.created_at)
        ).mappings()
        return [dict(r) for r in rows]


def schedule_of(rows: Rows, schedule_id: uuid.UUID) -> dict[str, Any]:
    return rows.get(workflow_schedules, schedule_id)


def test_a_schedule_fires_at_its_slot_and_advances(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    schedule_id = rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    scheduler = make_scheduler()
    clock.set(T0 - timedelta(seconds=1))
    assert tick(scheduler).claimed == 0
    assert runs_of(engine, schedule_id) == []

    clock.set(T0)
    assert tick(scheduler).claimed == 1
    [run] = runs_of(engine, schedule_id)
    assert (run["scheduled_for"], run["status"], run["trigger"]) == (T0, "succeeded", "scheduled")
    assert (run["amc_execution_id"], run["execution_id"]) == (None, None)
    schedule = schedule_of(rows, schedule_id)
    assert schedule["next_run_at"] == T0 + timedelta(days=1)
    assert schedule["last_run_at"] == T0
    assert schedule["locked_by"] is None
    assert tick(scheduler).claimed == 0


def test_sleep_until_the_next_slot(
    rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    clock.set(T0 - timedelta(seconds=3))
    assert tick(make_scheduler()).sleep_for == pytest.approx(3)


def test_fall_back_night_does_not_fire_twice(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, before the clocks go back
    schedule_id = rows.schedule(
        cron_expression="30 1 * * *", timezone="America/New_York", enabled=True, next_run_at=first
    )
    scheduler = make_scheduler()
    clock.set(first)
    tick(scheduler)
    clock.set(first + timedelta(hours=1))  # 01:30 EST, the repeated hour
    assert tick(scheduler).claimed == 0
    assert schedule_of(rows, schedule_id)["next_run_at"] == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    assert [r["scheduled_for"] for r in runs_of(engine, schedule_id)] == [first]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", [("2026-03-01T06:00", "skipped", "misfire", 3)]),
        (
            "run_once",
            [
                ("2026-03-01T06:00", "skipped", "misfire", 2),
                ("2026-03-01T08:00", "succeeded", None, None),
            ],
        ),
        (
            "run_all",
            [
                ("2026-03-01T06:00", "skipped", "misfire", 1),
                ("2026-03-01T07:00", "succeeded", None, None),
                ("2026-03-01T08:00", "succeeded", None, None),
            ],
        ),
    ],
)
def test_misfire_policies(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    policy: str,
    expected: list[tuple[str, str, str | None, int | None]],
) -> None:
    # Down from 06:00 to 09:02: 06:00, 07:00 and 08:00 are older than the 5-minute grace;
    # 09:00 is only late, so it runs normally.
    schedule_id = rows.schedule(
        cron_expression="0 * * * *",
        enabled=True,
        next_run_at=datetime(2026, 3, 1, 6, tzinfo=UTC),
        misfire_policy=policy,
        max_catchup_runs=2,
    )
    scheduler = make_scheduler()
    clock.set(datetime(2026, 3, 1, 9, 2, tzinfo=UTC))
    tick(scheduler)
    tick(scheduler)
    got = [
        (
            r["scheduled_for"].strftime("%Y-%m-%dT%H:%M"),
            r["status"],
            r["skip_reason"],
            r["missed_slots"],
        )
        for r in runs_of(engine, schedule_id)
    ]
    assert got == [*expected, ("2026-03-01T09:00", "succeeded", None, None)]
    assert schedule_of(rows, schedule_id)["next_run_at"] == datetime(2026, 3, 1, 10, tzinfo=UTC)


def test_a_late_burst_is_late_not_missed(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    ids = rows.schedules(30, cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    scheduler = make_scheduler(batch_size=7)
    clock.set(T0 + timedelta(seconds=200))
    while tick(scheduler).sleep_for == 0:
        pass
    statuses = [run["status"] for sid in ids for run in runs_of(engine, sid)]
    assert statuses == ["succeeded"] * 30


@pytest.mark.parametrize(("policy", "status"), [("skip", "skipped"), ("allow", "succeeded")])
def test_overlap_policies(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    policy: str,
    status: str,
) -> None:
    schedule_id = rows.schedule(
        cron_expression="0 * * * *", enabled=True, next_run_at=T0, overlap_policy=policy
    )
    rows.run(schedule_id, scheduled_for=T0 - timedelta(hours=1), status="dispatched")
    clock.set(T0)
    tick(make_scheduler())
    run = runs_of(engine, schedule_id)[-1]
    assert (run["scheduled_for"], run["status"]) == (T0, status)
    if policy == "skip":
        assert run["skip_reason"] == "overlap"
        assert "still in progress" in run["error_message"]
    assert schedule_of(rows, schedule_id)["next_run_at"] == T0 + timedelta(hours=1)


def test_manual_runs_never_move_next_run_at(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    later = T0 + timedelta(days=3)
    schedule_id = rows.schedule(cron_expression="0 9 * * 1", enabled=True, next_run_at=later)
    run_id = rows.run(
        schedule_id,
        scheduled_for=T0,
        trigger="manual",
        status="pending",
        parameters_override={"k": "v"},
    )
    clock.set(T0)
    assert tick(make_scheduler()).manual == 1
    run = rows.get(schedule_runs, run_id)
    assert run["status"] == "succeeded"
    schedule = schedule_of(rows, schedule_id)
    assert (schedule["next_run_at"], schedule["last_run_at"], schedule["locked_by"]) == (
        later,
        None,
        None,
    )


def test_a_manual_run_for_a_later_time_waits_for_it(
    rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    schedule_id = rows.schedule(enabled=False)
    run_id = rows.run(
        schedule_id, scheduled_for=T0 + timedelta(minutes=5), trigger="manual", status="pending"
    )
    clock.set(T0)
    scheduler = make_scheduler()
    assert tick(scheduler).sleep_for == pytest.approx(10)  # the heartbeat comes first
    assert rows.get(schedule_runs, run_id)["status"] == "pending"
    clock.set(T0 + timedelta(minutes=5))
    tick(scheduler)
    assert rows.get(schedule_runs, run_id)["status"] == "succeeded"


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("cron_expression", "61 * * * *", "minute"),
        ("timezone", "Mars/Olympus_Mons", "Mars/Olympus_Mons"),
        ("cron_expression", "0 0 31 2 *", "never"),
    ],
)
def test_corrupt_rows_are_quarantined_and_the_rest_still_fire(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    column: str,
    value: str,
    reason: str,
) -> None:
    bad = rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    good = rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    with engine.begin() as conn:  # written by hand in SQL, behind the CLI's validation
        conn.execute(
            update(workflow_schedules).where(workflow_schedules.c.id == bad).values({column: value})
        )
    clock.set(T0)
    scheduler = make_scheduler()
    with capture_logs() as logs:
        result = tick(scheduler)
        tick(scheduler)
    assert result.quarantined == 1
    quarantined = schedule_of(rows, bad)
    assert quarantined["enabled"] is False
    assert quarantined["pause_reason"].startswith("quarantined: ")
    assert reason.lower() in quarantined["pause_reason"].lower()
    [row] = runs_of(engine, bad)
    assert (row["status"], row["skip_reason"], row["scheduled_for"]) == (
        "skipped",
        "quarantined",
        T0,
    )
    assert [e["event"] for e in logs].count("schedule.quarantined") == 1
    assert [r["status"] for r in runs_of(engine, good)] == ["succeeded"]


def test_enabled_without_next_run_is_repaired_or_quarantined(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    fixable = rows.schedule(cron_expression="0 9 * * *", enabled=True)
    broken = rows.schedule(cron_expression="0 9 * * *", enabled=True)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE workflow_schedules SET cron_expression = 'every day' WHERE id = :id"),
            {"id": broken},
        )
    clock.set(T0 - timedelta(hours=1))
    with capture_logs() as logs:
        tick(make_scheduler())
    assert schedule_of(rows, fixable)["next_run_at"] == T0
    assert schedule_of(rows, broken)["enabled"] is False
    events = [e["event"] for e in logs]
    assert "schedule.next_run_repaired" in events
    assert "schedule.quarantined" in events


def test_consecutive_failures_pause_the_schedule(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    schedule_id = rows.schedule(cron_expression="* * * * *", enabled=True, next_run_at=T0)
    scheduler = make_scheduler(FailingExecutor(), max_consecutive_failures=3)
    with capture_logs() as logs:
        for minute in range(5):
            clock.set(T0 + timedelta(minutes=minute))
            tick(scheduler)
    assert [r["status"] for r in runs_of(engine, schedule_id)] == ["failed"] * 3
    schedule = schedule_of(rows, schedule_id)
    assert schedule["paused_at"] is not None
    assert schedule["consecutive_failures"] == 3
    assert (
        schedule["pause_reason"]
        == "auto-paused after 3 consecutive failures; last error: AMC said no"
    )
    assert [e["event"] for e in logs].count("schedule.paused") == 1


class _GatedFailure(GatedExecutor):
    """Fails, once the test opens the gate."""

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        super().submit(request)
        return ExecutionOutcome("failed", error="AMC said no")


def test_an_operators_pause_made_while_a_run_is_sent_is_kept_and_not_an_auto_pause(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    """The failure that reaches the limit lands on a schedule an operator paused meanwhile:
    the operator's pause and reason stay, and no auto-pause is logged or counted."""
    schedule_id = rows.schedule(
        cron_expression="* * * * *", enabled=True, next_run_at=T0, consecutive_failures=2
    )
    executor = _GatedFailure()
    scheduler = make_scheduler(executor, max_consecutive_failures=3)
    clock.set(T0)
    with capture_logs() as logs:
        scheduler.tick()
        assert executor.entered.wait(20)
        with engine.begin() as conn:
            conn.execute(
                update(workflow_schedules)
                .where(workflow_schedules.c.id == schedule_id)
                .values(paused_at=text("now()"), pause_reason="maintenance")
            )
        executor.gate.set()
        wait_idle(scheduler)
    schedule = schedule_of(rows, schedule_id)
    assert (schedule["pause_reason"], schedule["consecutive_failures"]) == ("maintenance", 3)
    assert "schedule.paused" not in [e["event"] for e in logs]
    paused = scheduler.metrics.registry.get_sample_value("scheduler_schedules_auto_paused_total")
    assert paused == 0


def test_a_success_resets_the_failure_count(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    schedule_id = rows.schedule(
        cron_expression="* * * * *", enabled=True, next_run_at=T0, consecutive_failures=4
    )
    clock.set(T0)
    tick(make_scheduler())
    assert schedule_of(rows, schedule_id)["consecutive_failures"] == 0


def test_a_paused_schedule_resumes_by_itself_when_its_pause_ends(
    rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    schedule_id = rows.schedule(
        cron_expression="0 * * * *",
        enabled=True,
        next_run_at=T0 - timedelta(hours=5),
        paused_at=T0 - timedelta(hours=6),
        paused_until=T0 + timedelta(minutes=30),
        pause_reason="maintenance",
    )
    scheduler = make_scheduler()
    clock.set(T0)
    tick(scheduler)
    assert schedule_of(rows, schedule_id)["paused_at"] is not None
    clock.set(T0 + timedelta(minutes=30))
    tick(scheduler)
    schedule = schedule_of(rows, schedule_id)
    assert (schedule["paused_at"], schedule["pause_reason"]) == (None, None)
    assert schedule["next_run_at"] == T0 + timedelta(hours=1)


def test_a_lost_claim_cannot_write_and_the_slot_runs_once(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    """w1 stalls mid-dispatch past its death; w2 reaps and finishes the slot; w1's late
    writes touch nothing (fencing) and it logs claim.lost."""
    schedule_id = rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    clock.set(T0)
    stalled = GatedExecutor()
    w1 = make_scheduler(stalled, worker_id="w1")
    w1.tick()
    assert stalled.entered.wait(10)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE scheduler_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'w1'"
            )
        )
    w2 = make_scheduler(worker_id="w2")
    with capture_logs() as w2_logs:
        result = tick(w2)
    assert result.reaped == 1
    assert [e["event"] for e in w2_logs].count("lock.reaped") == 1
    [run] = runs_of(engine, schedule_id)
    assert (run["status"], run["worker_id"], run["attempts"]) == ("succeeded", "w2", 2)

    with capture_logs() as w1_logs:
        stalled.gate.set()
        wait_idle(w1, 10)
    assert "claim.lost" in [e["event"] for e in w1_logs]
    [after] = runs_of(engine, schedule_id)
    assert (after["status"], after["worker_id"]) == ("succeeded", "w2")
    assert schedule_of(rows, schedule_id)["locked_by"] is None


def test_a_call_held_through_a_heartbeat_lapse_is_not_sent_even_after_the_thaw(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    """A daemon frozen while a call waited (to be retried after a 429, say) may have lost the
    run to another daemon, which sent it. Thawed, its heartbeat can come before the call's
    turn; the call must still not go out, while runs it marks afterwards go out as usual."""
    rows.schedule(cron_expression="* * * * *", enabled=True, next_run_at=T0)
    clock.set(T0)
    waiting = GatedExecutor()
    scheduler = make_scheduler(waiting)
    scheduler.tick()
    assert waiting.entered.wait(10)
    [held] = waiting.calls
    assert held.may_send is not None
    assert held.may_send()

    clock.advance(scheduler.settings.dead_after)  # frozen: no heartbeat all this time
    assert not held.may_send()
    scheduler.tick()  # thawed: the heartbeat is written first
    assert not held.may_send()
    waiting.gate.set()
    wait_idle(scheduler)

    waiting.calls.clear()
    while clock.now() < T0 + timedelta(minutes=1):  # heartbeats on time again
        clock.advance(scheduler.settings.heartbeat_interval)
        tick(scheduler)  # the next slot is marked after the thaw
    [later] = waiting.calls
    assert later.may_send is not None
    assert later.may_send()


def test_one_slot_many_claimers_exactly_one_wins(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    ids = rows.schedules(50, cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    clock.set(T0)
    schedulers = [make_scheduler(worker_id=f"w{i}") for i in range(4)]
    barrier = threading.Barrier(len(schedulers))

    def claim(s: Scheduler) -> None:
        barrier.wait()
        s.tick()

    threads = [threading.Thread(target=claim, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in schedulers:
        wait_idle(s)
    counts = [len(runs_of(engine, sid)) for sid in ids]
    assert counts == [1] * 50


def test_graceful_stop_leaves_no_lock_and_marks_the_worker_stopped(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    rows.schedules(20, cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    clock.set(T0)
    scheduler = make_scheduler()
    scheduler.tick()
    assert scheduler.stop(grace=20)
    with engine.connect() as conn:
        locks = conn.execute(
            text("SELECT count(*) FROM workflow_schedules WHERE locked_by IS NOT NULL")
        ).scalar_one()
        stopped = conn.execute(
            text("SELECT stopped_at IS NOT NULL FROM scheduler_workers WHERE worker_id = 'w1'")
        ).scalar_one()
        finished = conn.execute(
            text("SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'")
        ).scalar_one()
    assert (locks, stopped, finished) == (0, True, 20)


def test_a_change_notifies_listeners(engine: Engine, rows: Rows, database_url: str) -> None:
    import psycopg

    from scheduler_daemon.daemon.listener import CHANNEL

    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
        assert len(list(listener.notifies(timeout=5, stop_after=1))) == 1
        rows.schedule(cron_expression="0 9 * * *", enabled=False, next_run_at=T0)
        assert list(listener.notifies(timeout=0.5)) == []


def test_history_past_the_retention_is_pruned_a_bounded_batch_at_a_time_hourly(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finished runs older than the retention go, unfinished and recent ones stay; a pass
    deletes at most its batches (here one of 2 runs), the rest waits for the next pass, an
    hour later."""
    monkeypatch.setattr(scheduler_module, "PRUNE_BATCH", 2)
    monkeypatch.setattr(scheduler_module, "PRUNE_MAX_BATCHES", 1)
    schedule_id = rows.schedule()
    for n in range(3):
        rows.run(
            schedule_id,
            scheduled_for=T0 - timedelta(days=200, minutes=n),
            status="succeeded",
            finished_at=text("now() - interval '100 days'"),
        )
    unfinished_old = rows.run(
        schedule_id, scheduled_for=T0 - timedelta(days=300), status="dispatched"
    )
    recent = rows.run(
        schedule_id,
        scheduled_for=T0,
        status="failed",
        finished_at=text("now() - interval '10 days'"),
    )
    scheduler = make_scheduler()
    clock.set(T0)

    def pruned(logs: Sequence[Mapping[str, Any]]) -> list[tuple[int, float]]:
        return [
            (e["deleted"], e["older_than_days"]) for e in logs if e["event"] == "history.pruned"
        ]

    with capture_logs() as first:
        tick(scheduler)
        clock.advance(PRUNE_EVERY / 2)
        tick(scheduler)
    assert pruned(first) == [(2, 90.0)]
    assert len(runs_of(engine, schedule_id)) == 3
    clock.advance(PRUNE_EVERY / 2)
    with capture_logs() as second:
        tick(scheduler)
    assert pruned(second) == [(1, 90.0)]
    assert [r["id"] for r in runs_of(engine, schedule_id)] == [unfinished_old, recent]


def _claim_left_at_t0(
    rows: Rows, owner: str, token: int, **run: Any
) -> tuple[uuid.UUID, uuid.UUID]:
    """A schedule locked ten minutes ago by ``owner`` with the run of its T0 slot unfinished."""
    return rows.claim(owner, token, T0, locked_at=text("now() - interval '10 minutes'"), **run)


def test_a_claim_this_worker_abandoned_expires_and_is_finished(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    """Its outcome write gave up (say the database was away past the lease): the lock must not
    be renewed forever by the living worker, but expire and be handed on, even to itself."""
    schedule_id, run_id = _claim_left_at_t0(rows, "w1", 7, status="dispatching", attempts=1)
    clock.set(T0 + timedelta(minutes=1))
    scheduler = make_scheduler(worker_id="w1")  # start() heartbeats: untracked locks stay old
    with engine.connect() as conn:
        age = conn.execute(
            text("SELECT now() - locked_at FROM workflow_schedules WHERE id = :id"),
            {"id": schedule_id},
        ).scalar_one()
    assert age > timedelta(minutes=9)
    with capture_logs() as logs:
        result = tick(scheduler)
    assert result.reaped == 1
    run = rows.get(schedule_runs, run_id)
    assert (run["status"], run["attempts"], run["fencing_token"]) == ("succeeded", 2, 8)
    assert schedule_of(rows, schedule_id)["locked_by"] is None
    assert [e["event"] for e in logs].count("run.dispatched") == 1


def test_the_reaper_looks_at_most_once_a_reap_interval(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    """In a burst the loop ticks many times a second; the reaper, which reads every locked
    schedule, does not: a claim abandoned between two ticks waits for the next reap."""
    clock.set(T0 + timedelta(minutes=1))
    scheduler = make_scheduler(worker_id="w1")
    assert tick(scheduler).reaped == 0
    schedule_id, _ = _claim_left_at_t0(rows, "gone", 3, status="claimed")
    assert tick(scheduler).reaped == 0
    clock.advance(REAP_EVERY / 2)
    assert tick(scheduler).reaped == 0
    clock.advance(REAP_EVERY / 2)
    assert tick(scheduler).reaped == 1
    assert [r["status"] for r in runs_of(engine, schedule_id)] == ["succeeded"]


def test_claims_in_flight_keep_their_lease(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    schedule_id = rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    clock.set(T0)
    slow = GatedExecutor()
    scheduler = make_scheduler(slow, lease=1, heartbeat_interval=0.5, worker_dead_after=60)
    scheduler.tick()
    assert slow.entered.wait(10)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE workflow_schedules SET locked_at = now() - interval '1 hour' WHERE id = :id"
            ),
            {"id": schedule_id},
        )
    clock.advance(1)
    result = scheduler.tick()  # heartbeat renews the in-flight claim before the reaper looks
    assert result.reaped == 0
    slow.gate.set()
    wait_idle(scheduler, 10)
    assert [r["status"] for r in runs_of(engine, schedule_id)] == ["succeeded"]


def test_a_restart_under_the_same_worker_id_takes_back_its_predecessors_claims_at_once(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    schedule_id = rows.schedule(
        cron_expression="0 9 * * *",
        enabled=True,
        next_run_at=T0 + timedelta(days=1),
        last_run_at=T0,
        locked_by="fixed-id",
        locked_at=text("now()"),
        fencing_token=3,
    )
    run_id = rows.run(
        schedule_id, scheduled_for=T0, status="claimed", worker_id="fixed-id", fencing_token=3
    )
    manual_id = rows.run(
        schedule_id,
        scheduled_for=T0,
        trigger="manual",
        status="claimed",
        worker_id="fixed-id",
        fencing_token=1,
        claimed_at=text("now()"),
    )
    clock.set(T0 + timedelta(minutes=1))
    result = tick(make_scheduler(worker_id="fixed-id"))
    assert result.reaped == 1
    assert rows.get(schedule_runs, run_id)["status"] == "succeeded"
    assert rows.get(schedule_runs, manual_id)["status"] == "succeeded"
    assert schedule_of(rows, schedule_id)["locked_by"] is None


class _UnknownThenFound:
    """submit cannot tell whether AMC started an execution; the recovery later finds it."""

    name = "flaky-amc"
    in_process = False

    def __init__(self) -> None:
        self.submits = 0
        self.listings = 0

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        self.submits += 1
        raise OutcomeUnknownError("connection reset after sending; AMC unreachable to ask")

    def find_started(self, request: RunRequest, since: datetime) -> Sequence[FoundExecution]:
        self.listings += 1
        return [FoundExecution("amc-exec-1", since)]


def test_an_unknown_outcome_is_left_to_recovery_never_resubmitted_blindly(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    schedule_id = rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    executor = _UnknownThenFound()
    scheduler = make_scheduler(executor)
    clock.set(T0)
    tick(scheduler)
    [run] = runs_of(engine, schedule_id)
    assert run["status"] == "dispatching"
    clock.advance(REAP_EVERY)  # the reaper's next pass
    tick(scheduler)
    [run] = runs_of(engine, schedule_id)
    assert (run["status"], run["amc_execution_id"]) == ("dispatched", "amc-exec-1")
    assert (executor.submits, executor.listings) == (1, 1)
    assert schedule_of(rows, schedule_id)["locked_by"] is None


def test_a_daemon_claims_no_more_than_it_can_soon_send(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    """With a slow executor the rest of the burst stays unclaimed, for other daemons; the
    loop looks again soon, neither spinning nor waiting for its poll interval."""
    rows.schedules(30, cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    clock.set(T0)
    slow = GatedExecutor()
    scheduler = make_scheduler(slow, batch_size=5)
    results = [scheduler.tick() for _ in range(4)]
    assert [r.claimed for r in results] == [5, 5, 0, 0]
    assert 0 < results[-1].sleep_for < scheduler.settings.poll_interval
    with engine.connect() as conn:
        unclaimed = conn.execute(
            text("SELECT count(*) FROM workflow_schedules WHERE locked_by IS NULL")
        ).scalar_one()
    assert unclaimed == 20
    slow.gate.set()
    wait_idle(scheduler)
    while scheduler.tick().claimed:
        wait_idle(scheduler)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'")
            ).scalar_one()
            == 30
        )


def test_the_backlog_gauge_sees_due_work_pile_up_behind_a_stuck_pool(
    rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    """The "alive but not claiming" alert reads this gauge: it must keep counting while a
    stuck executor keeps the daemon from claiming more."""
    rows.schedules(30, cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    clock.set(T0)
    stuck = GatedExecutor()
    scheduler = make_scheduler(stuck, batch_size=5)
    try:
        claimed = [scheduler.tick().claimed for _ in range(3)]
        clock.advance(scheduler.settings.heartbeat_interval)
        scheduler.tick()
        backlog = scheduler.metrics.registry.get_sample_value("scheduler_due_backlog")
    finally:
        stuck.gate.set()
    wait_idle(scheduler)
    assert claimed == [5, 5, 0]
    assert backlog == 20


# --- a burst: what the dispatch of many runs at once must keep, however it is cut up --------


class HeldExecutor:
    """Succeeds with an execution id naming the run. Holds every call inside ``submit`` until
    the test opens ``gate``, and keeps count: calls per run, calls inside at once (now and the
    most ever). Each call takes ``seconds`` on the fake clock, which is how the dispatcher
    times it."""

    name = "held"
    in_process = False

    def __init__(self, clock: FakeClock, seconds: float = 0.0) -> None:
        self.clock = clock
        self.seconds = seconds
        self.gate = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self.calls: Counter[uuid.UUID] = Counter()
        self.changed = threading.Condition()

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        with self.changed:
            self.calls[request.run_id] += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.changed.notify_all()
        try:
            assert self.gate.wait(30), "the test never opened the gate"
            self.clock.advance(self.seconds)
        finally:
            with self.changed:
                self.inside -= 1
                self.changed.notify_all()
        return ExecutionOutcome("succeeded", execution_id=f"held-{request.run_id}")

    def find_started(self, request: RunRequest, since: datetime) -> Sequence[FoundExecution]:
        return ()

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Whether ``condition`` (read under the counters' lock) held within ``timeout``."""
        with self.changed:
            return self.changed.wait_for(condition, timeout)


class InProcessHeldExecutor(HeldExecutor):
    """Says, as noop does, that its calls are work in this process."""

    in_process = True


# How the dispatcher may see an executor, each of which it may cut into chunks and spread over
# threads differently: none may change what the tests below check. Each kind is its class, the
# seconds each call takes, and whether a run went before the test (a daemon with history).
EXECUTOR_KINDS: dict[str, tuple[type[HeldExecutor], float, bool]] = {
    "in-process": (InProcessHeldExecutor, 0.0, False),
    "remote, quick": (HeldExecutor, 0.0, False),
    "remote, slow": (HeldExecutor, 1.0, True),
}


def held_scheduler(
    kind: str,
    rows: Rows,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    **settings: Any,
) -> tuple[Scheduler, HeldExecutor]:
    """A scheduler on an executor of ``kind`` (after one run at T0 when the kind says so),
    its gate closed, the clock at T0 + 1 h."""
    cls, seconds, warm_up = EXECUTOR_KINDS[kind]
    executor = cls(clock, seconds)
    scheduler = make_scheduler(executor, **settings)
    if warm_up:
        rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
        clock.set(T0)
        executor.gate.set()
        assert tick(scheduler).claimed == 1
        executor.gate.clear()
        executor.calls.clear()
        executor.most_inside = 0
    clock.set(T0 + timedelta(hours=1))
    return scheduler, executor


def burst(rows: Rows, size: int) -> list[uuid.UUID]:
    """``size`` daily schedules whose slot is T0 + 1 h."""
    return rows.schedules(
        size, cron_expression="0 10 * * *", enabled=True, next_run_at=T0 + timedelta(hours=1)
    )


def tick_until_done(scheduler: Scheduler, limit: int = 50) -> int:
    """Tick, waiting for each tick's dispatches, until a tick claims nothing; the runs claimed."""
    claimed = 0
    for _ in range(limit):
        result = tick(scheduler)
        if result.claimed == 0 and result.sleep_for > 0:
            return claimed
        claimed += result.claimed
    raise AssertionError(f"still claiming after {limit} ticks")


@contextmanager
def statements_sent() -> Iterator[list[str]]:
    """Every statement any engine sends meanwhile (the dispatcher's threads write through
    connections of their own), seen by SQLAlchemy's ``before_cursor_execute`` event."""
    sent: list[str] = []
    lock = threading.Lock()

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        with lock:
            sent.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


@pytest.mark.parametrize("kind", list(EXECUTOR_KINDS))
def test_every_claimed_slot_is_sent_once_recorded_and_left_unclaimed(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    kind: str,
) -> None:
    """A burst larger than a batch: each slot gets one call and one run, recorded with that
    call's outcome; afterwards nothing is locked, claimed or mid-call."""
    scheduler, executor = held_scheduler(
        kind, rows, clock, make_scheduler, batch_size=40, concurrency=3
    )
    executor.gate.set()
    ids = burst(rows, 100)
    assert tick_until_done(scheduler) == 100
    runs = {sid: runs_of(engine, sid) for sid in ids}
    assert all(len(r) == 1 for r in runs.values())
    assert sorted(executor.calls.values()) == [1] * 100
    assert set(executor.calls) == {r[0]["id"] for r in runs.values()}
    for [run] in runs.values():
        assert (run["status"], run["scheduled_for"], run["amc_execution_id"]) == (
            "succeeded",
            T0 + timedelta(hours=1),
            f"held-{run['id']}",
        )
        assert run["finished_at"] is not None
    assert count(engine, "SELECT count(*) FROM workflow_schedules WHERE locked_by IS NOT NULL") == 0
    unfinished = "SELECT count(*) FROM schedule_runs WHERE status IN ('claimed', 'dispatching')"
    assert count(engine, unfinished) == 0
    next_runs = {schedule_of(rows, sid)["next_run_at"] for sid in ids}
    assert next_runs == {T0 + timedelta(days=1, hours=1)}


@pytest.mark.parametrize("kind", list(EXECUTOR_KINDS))
def test_calls_in_flight_never_exceed_the_concurrency(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    kind: str,
) -> None:
    """400 runs at once, concurrency 3: never more than 3 calls inside the executor, however
    the burst is cut; calls to a remote API get all 3."""
    concurrency = 3
    _, _, timed_first = EXECUTOR_KINDS[kind]
    scheduler, executor = held_scheduler(
        kind, rows, clock, make_scheduler, batch_size=400, concurrency=concurrency
    )
    burst(rows, 400)
    try:
        assert scheduler.tick().claimed == 400
        assert executor.wait_for(lambda: executor.inside >= 1, 10)
        if kind.startswith("remote"):
            assert executor.wait_for(lambda: executor.inside == concurrency, 10), executor.inside
        # Calls still queued must wait for a thread: none may join those inside.
        joined = executor.wait_for(lambda: executor.inside > concurrency, 0.5)
    finally:
        executor.gate.set()
    wait_idle(scheduler)
    assert not joined
    assert 1 <= executor.most_inside <= concurrency
    assert sorted(executor.calls.values()) == [1] * 400
    succeeded = "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'"
    assert count(engine, succeeded) == 400 + (1 if timed_first else 0)


class OneHungCall(HeldExecutor):
    """The first call hangs until the gate opens (an API retrying a throttled call, say);
    every other call returns at once."""

    def __init__(self, clock: FakeClock, seconds: float = 0.0) -> None:
        super().__init__(clock, seconds)
        self.hung: uuid.UUID | None = None

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        with self.changed:
            first = self.hung is None
            if first:
                self.hung = request.run_id
        if first:
            return super().submit(request)
        with self.changed:
            self.calls[request.run_id] += 1
        self.clock.advance(self.seconds)
        return ExecutionOutcome("succeeded", execution_id=f"held-{request.run_id}")


@pytest.mark.parametrize("kind", ["remote, quick", "remote, slow"])
def test_one_hung_call_does_not_hold_up_the_rest_of_the_burst(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    kind: str,
) -> None:
    """While one call of a 200-run burst hangs, most of the others are sent and recorded."""
    _, seconds, _ = EXECUTOR_KINDS[kind]
    executor = OneHungCall(clock, seconds)
    scheduler = make_scheduler(executor, batch_size=200, concurrency=4)
    rows.schedule(cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    clock.set(T0)
    executor.hung = uuid.uuid4()  # the first run goes through
    assert tick(scheduler).claimed == 1
    executor.hung = None
    clock.set(T0 + timedelta(hours=1))
    burst(rows, 200)
    done = "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'"
    try:
        assert scheduler.tick().claimed == 200
        assert executor.wait_for(lambda: executor.inside == 1, 10)
        # Half the burst's other runs, with a margin for however it is cut up; 1 is the run
        # before the burst.
        wait_until(lambda: count(engine, done) >= 1 + 100, 20, "the others, past the hung call")
        still_hung = executor.inside == 1
    finally:
        executor.gate.set()
    wait_idle(scheduler)
    assert still_hung
    assert count(engine, done) == 1 + 200


def test_a_bursts_database_work_is_bounded_and_does_not_depend_on_its_size(
    rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    """The runs of a burst share their statements: 300 runs cost well under one statement
    each, all told (ticks, claims, dispatch writes); and a large burst sends no statement a
    small one did not (batches travel as arrays, not as statements of their own size, so each
    statement is parsed and planned once)."""
    scheduler = make_scheduler(NoopExecutor(), batch_size=100, concurrency=4)
    rows.schedules(3, cron_expression="0 9 * * *", enabled=True, next_run_at=T0)
    clock.set(T0)
    with statements_sent() as small:
        assert tick_until_done(scheduler) == 3
    clock.set(T0 + timedelta(hours=1))
    burst(rows, 300)
    with statements_sent() as large:
        assert tick_until_done(scheduler) == 300
    assert len(large) < 300 / 2, [(s[:60], n) for s, n in Counter(large).most_common(3)]
    assert set(large) <= set(small), set(large) - set(small)
