"""Status checks of running executions against the fake AMC and a real PostgreSQL: each due
check made once (also by two daemons at once), within the instance's cap, at its cadence, on
many instances at once; final statuses finish their runs; a past deadline ends the asking."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, text

from scheduler_daemon.amc.fake.server import FakeAmcServer
from scheduler_daemon.amc.fake.state import Script
from scheduler_daemon.amc.fake.testing import fake_executor
from scheduler_daemon.clock import FakeClock
from scheduler_daemon.daemon.instance_gate import InstanceGate
from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.daemon.status_checks import CHECKS_PER_CLAIM, StatusChecker
from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.tables import schedule_runs, workflow_executions, workflows
from scheduler_daemon.executors.amc import AmcExecutor
from scheduler_daemon.metrics import Metrics
from tests.helpers import Rows, seeded_amc_instance

INTERVAL = 60.0
HOURS = 3600.0


@dataclass(frozen=True)
class Running:
    execution_id: uuid.UUID  # our workflow_executions row
    amc_execution_id: str
    run_id: uuid.UUID
    instance_id: str  # AMC's


@pytest.fixture
def amc() -> Iterator[FakeAmcServer]:
    with FakeAmcServer(latency=0.02, pending_seconds=0, max_running_per_instance=100) as fake:
        yield fake


@pytest.fixture
def executor(amc: FakeAmcServer) -> Iterator[AmcExecutor]:
    executor = fake_executor(amc)
    yield executor
    executor.close()


def running_executions(
    rows: Rows,
    amc: FakeAmcServer,
    counts: dict[str, int],
    *,
    instances: int = 1,
    due_in: float = -1.0,
    submitted_ago: float = 120.0,
) -> list[Running]:
    """Per instance, ``counts[workflow]`` executions of each (scripted) workflow running on
    the fake, each with its dispatched run here, its check due ``due_in`` seconds from now."""
    made = []
    for _ in range(instances):
        seeded = seeded_amc_instance(rows, amc, dict.fromkeys(counts, ()))
        for amc_workflow, count in counts.items():
            workflow = rows.workflow(seeded.id, amc_workflow_id=amc_workflow)
            made += [
                start_execution(
                    rows, amc, workflow, seeded.instance_id, due_in=due_in,
                    submitted_ago=submitted_ago,
                )
                for _ in range(count)
            ]  # fmt: skip
    return made


def start_execution(
    rows: Rows,
    amc: FakeAmcServer,
    workflow: uuid.UUID,
    amc_instance: str,
    *,
    due_in: float = -1.0,
    submitted_ago: float = 120.0,
) -> Running:
    """An execution of ``workflow`` running on the fake, with its dispatched run here."""
    amc_workflow = rows.get(workflows, workflow)["amc_workflow_id"]
    with amc.state.lock:
        created = amc.state.create_execution(amc_instance, {"workflowId": amc_workflow})
    amc_id = created["workflowExecutionId"]
    run_id = rows.run(
        rows.schedule(workflow),
        scheduled_for=text("now()"),
        status="dispatched",
        amc_execution_id=amc_id,
    )
    with rows.engine.begin() as conn:
        execution_id = conn.execute(
            insert(workflow_executions)
            .values(
                workflow_id=workflow,
                amc_execution_id=amc_id,
                status="running",
                trigger="scheduled",
                schedule_run_id=run_id,
                submitted_at=text(f"now() - interval '{submitted_ago} seconds'"),
                next_poll_at=text(f"now() + interval '{due_in} seconds'"),
            )
            .returning(workflow_executions.c.id)
        ).scalar_one()
        conn.execute(
            schedule_runs.update()
            .where(schedule_runs.c.id == run_id)
            .values(execution_id=execution_id)
        )
    return Running(execution_id, amc_id, run_id, amc_instance)


def checker(
    engine: Engine,
    executor: AmcExecutor,
    *,
    threads: int = 4,
    slots: int = 10,
    interval: float = INTERVAL,
) -> StatusChecker:
    return StatusChecker(
        engine,
        executor,
        threads=threads,
        interval=interval,
        deadline=6 * HOURS,
        max_failures=5,
        metrics=Metrics(),
        on_auto_pause=lambda reason, fields: None,
        gate=InstanceGate(engine, slots, wait=30),
    )


def check_until_idle(*checkers: StatusChecker) -> None:
    for one in checkers:
        one.start_checking()
    for one in checkers:
        assert one.wait_idle(60), "the status checks never ended"
        one.shutdown()


def asked(amc: FakeAmcServer) -> Counter[str]:
    """How many times each AMC execution's status was asked."""
    return Counter(r.path.rsplit("/", 1)[-1] for r in amc.requests(endpoint="get"))


def wait_for_a_check(amc: FakeAmcServer) -> None:
    deadline = time.monotonic() + 20
    while not asked(amc):
        assert time.monotonic() < deadline, "no status check was ever made"
        time.sleep(0.01)


def column(engine: Engine, table: str, name: str, ids: Sequence[uuid.UUID]) -> list[object]:
    with engine.connect() as conn:
        values: dict[uuid.UUID, object] = dict(
            conn.execute(
                text(f"SELECT id, {name} FROM {table} WHERE id = ANY(:ids)"), {"ids": list(ids)}
            ).all()
        )
    return [values[i] for i in ids]


def test_each_due_check_is_made_once_and_final_statuses_finish_their_runs(
    engine: Engine, rows: Rows, amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    amc.script("done", Script(final_status="SUCCEEDED", running_seconds=0))
    amc.script(
        "failing", Script(final_status="FAILED", reason="query timed out", running_seconds=0)
    )
    amc.script("busy", Script(stuck_in="RUNNING"))
    due = running_executions(rows, amc, {"done": 4, "failing": 2, "busy": 4}, instances=3)
    later = running_executions(rows, amc, {"busy": 2}, due_in=INTERVAL / 2)

    check_until_idle(checker(engine, executor))

    assert asked(amc) == Counter({e.amc_execution_id: 1 for e in due})
    assert not {e.amc_execution_id for e in later} & set(asked(amc))
    statuses = column(engine, "schedule_runs", "status", [e.run_id for e in due])
    expected = (["succeeded"] * 4 + ["failed"] * 2 + ["dispatched"] * 4) * 3
    assert statuses == expected
    errors = column(engine, "schedule_runs", "error_message", [e.run_id for e in due[4:6]])
    assert errors == ["query timed out"] * 2


def test_two_daemons_at_once_ask_once_about_each_execution_within_the_instances_cap(
    database_url: str, rows: Rows, amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    amc.in_flight_limit = 2
    amc.script("busy", Script(stuck_in="RUNNING"))
    due = running_executions(rows, amc, {"busy": 100})  # four batches
    engines = [make_engine(database_url) for _ in range(2)]
    try:
        check_until_idle(*(checker(e, executor, threads=4, slots=2) for e in engines))
    finally:
        for one in engines:
            one.dispose()

    assert asked(amc) == Counter({e.amc_execution_id: 1 for e in due})
    assert amc.throttled() == 0


def test_a_backlog_of_checks_on_several_instances_is_worked_off_by_several_threads(
    engine: Engine, rows: Rows, amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    """Thousands of checks due on 60 instances are not made one after the other: a thread
    that finds a full batch due starts another."""
    amc.script("busy", Script(stuck_in="RUNNING"))
    running_executions(rows, amc, {"busy": CHECKS_PER_CLAIM + 5}, instances=4)

    check_until_idle(checker(engine, executor, threads=4))

    gets = amc.requests(endpoint="get")
    assert len(gets) == 4 * (CHECKS_PER_CLAIM + 5)
    overlapping = max(
        len({o.instance_id for o in gets if o.started <= g.started < (o.finished or 0)})
        for g in gets
    )
    assert overlapping >= 2


def test_a_check_made_early_to_go_with_its_instances_keeps_the_executions_cadence(
    engine: Engine, rows: Rows, amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    """A check due a little later is made with the instance's due ones (one slot, one
    batch), and its next check is one interval after it was due: early checks add none."""
    amc.script("busy", Script(stuck_in="RUNNING"))
    [now_due] = running_executions(rows, amc, {"busy": 1})
    workflow = rows.get(workflow_executions, now_due.execution_id)["workflow_id"]
    soon, not_yet = (
        start_execution(rows, amc, workflow, now_due.instance_id, due_in=due_in)
        for due_in in (INTERVAL / 12, INTERVAL / 2)
    )
    [due_before] = column(engine, "workflow_executions", "next_poll_at", [soon.execution_id])

    check_until_idle(checker(engine, executor))

    assert set(asked(amc)) == {now_due.amc_execution_id, soon.amc_execution_id}
    [due_after] = column(engine, "workflow_executions", "next_poll_at", [soon.execution_id])
    assert isinstance(due_before, datetime)
    assert isinstance(due_after, datetime)
    assert due_after - due_before == timedelta(seconds=INTERVAL)
    assert not_yet.amc_execution_id not in asked(amc)


def test_a_check_that_falls_due_later_is_made_then_without_another_start(
    engine: Engine, rows: Rows, amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    amc.script("busy", Script(stuck_in="RUNNING"))
    [later] = running_executions(rows, amc, {"busy": 1}, due_in=2.0)
    checks = checker(engine, executor, interval=3.0)  # made at most half a second early
    try:
        checks.start_checking()
        assert checks.wait_idle(10)
        assert asked(amc) == Counter()

        wait_for_a_check(amc)  # the checker's own timer, nobody else, starts it again
        assert checks.wait_idle(10)
    finally:
        checks.shutdown()
    assert asked(amc) == Counter({later.amc_execution_id: 1})


def test_a_stopping_daemon_claims_no_more_checks_and_ends_its_batch_early(
    engine: Engine, rows: Rows, amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    """Its shutdown's grace is not spent on the backlog: the others make those checks."""
    amc.script("busy", Script(stuck_in="RUNNING"))
    running = running_executions(rows, amc, {"busy": 3 * CHECKS_PER_CLAIM})
    checks = checker(engine, executor, threads=1)
    try:
        checks.start_checking()
        wait_for_a_check(amc)
        checks.stop_claiming()
        assert checks.wait_idle(10)
    finally:
        checks.shutdown()
    claimed = column(engine, "workflow_executions", "poll_count", [e.execution_id for e in running])
    assert sum(1 for count in claimed if count) == CHECKS_PER_CLAIM  # the batch under way
    assert 0 < sum(asked(amc).values()) < CHECKS_PER_CLAIM


def test_the_overdue_gauge_counts_checks_an_interval_late_until_they_are_made(
    rows: Rows,
    amc: FakeAmcServer,
    executor: AmcExecutor,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    """The "status checks behind" alert reads it: final statuses would reach the database
    late."""
    amc.script("busy", Script(stuck_in="RUNNING"))
    running_executions(rows, amc, {"busy": 3}, due_in=-2 * INTERVAL)
    running_executions(rows, amc, {"busy": 2}, due_in=-INTERVAL / 2)  # late, not that late
    scheduler = make_scheduler(executor, status_poll_interval=INTERVAL)  # its first heartbeat
    overdue = scheduler.metrics.registry.get_sample_value("scheduler_status_checks_overdue")

    scheduler.tick()
    assert scheduler.wait_idle(20)
    clock.advance(scheduler.settings.heartbeat_interval)
    scheduler.tick()  # the next heartbeat
    assert scheduler.wait_idle(20)
    after = scheduler.metrics.registry.get_sample_value("scheduler_status_checks_overdue")
    assert (overdue, after) == (3, 0)


def test_a_batch_whose_session_ended_makes_no_more_calls_under_the_slot_that_went_with_it(
    engine: Engine, rows: Rows, amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    """After a database restart the instance's slot is free for another daemon: the batch's
    remaining checks wait for their next check instead of going over the cap."""
    amc.script("busy", Script(stuck_in="RUNNING"))
    amc.latency = 0.1  # a batch of 25 lasts 2.5 s
    running_executions(rows, amc, {"busy": CHECKS_PER_CLAIM})
    checks = checker(engine, executor, threads=1)
    try:
        checks.start_checking()
        wait_for_a_check(amc)
        with engine.connect() as conn:  # the server ends the slot holder's session
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND granted"
                )
            ).scalar_one()
        assert ended == 1
        assert checks.wait_idle(20)
    finally:
        checks.shutdown()
    assert sum(asked(amc).values()) <= 3


def test_past_the_status_deadline_an_execution_is_recorded_unknown_without_asking(
    engine: Engine, rows: Rows, amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    amc.script("busy", Script(stuck_in="RUNNING"))
    [stale] = running_executions(rows, amc, {"busy": 1}, submitted_ago=7 * HOURS)

    check_until_idle(checker(engine, executor))

    assert asked(amc) == Counter()
    assert column(engine, "workflow_executions", "status", [stale.execution_id]) == ["unknown"]
    assert column(engine, "schedule_runs", "status", [stale.run_id]) == ["failed"]
