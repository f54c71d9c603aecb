"""The daemon's tick with the amc executor against the fake AMC and a real PostgreSQL:
workflow → instance → account resolve to AMC's ids, and AMC's execution id lands on the run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from structlog.testing import capture_logs

from scheduler_daemon import management
from scheduler_daemon.amc.fake.server import FakeAmcServer
from scheduler_daemon.amc.fake.state import Script
from scheduler_daemon.amc.fake.testing import fake_executor
from scheduler_daemon.clock import FakeClock
from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.db.tables import (
    schedule_runs,
    workflow_executions,
    workflow_schedules,
)
from scheduler_daemon.executors.amc import AmcExecutor
from tests.helpers import Rows, seeded_amc_instance

T0 = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)  # 09:00 in New York


@pytest.fixture
def amc() -> Iterator[FakeAmcServer]:
    with FakeAmcServer() as fake:
        yield fake


def runs_of(engine: Engine, schedule_id: uuid.UUID) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(schedule_runs).where(schedule_runs.c.schedule_id == schedule_id)
        ).mappings()
        return [dict(r) for r in rows]


def test_a_scheduled_run_starts_an_amc_execution(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    amc: FakeAmcServer,
    executor: AmcExecutor,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    seeded = seeded_amc_instance(rows, amc, {"daily-spend": ("country",)})
    instance = seeded.id
    workflow = rows.workflow(
        instance,
        amc_workflow_id="daily-spend",
        parameters={"time_window": {"kind": "previous_days", "days": 1}},
    )
    schedule_id = rows.schedule(
        workflow,
        cron_expression="0 9 * * *",
        timezone="America/New_York",
        parameters={"country": "US"},
        enabled=True,
        next_run_at=T0,
    )
    clock.set(T0)
    scheduler = make_scheduler(executor)
    scheduler.tick()
    assert scheduler.wait_idle(20)
    [run] = runs_of(engine, schedule_id)
    [execution] = amc.executions()
    assert (run["status"], run["amc_execution_id"]) == (
        "dispatched",
        execution["workflowExecutionId"],
    )
    # Lineage: the request as sent is on the run, and an execution row links both ways.
    assert run["request"] == amc.requests(endpoint="create")[0].body
    lineage = rows.get(workflow_executions, run["execution_id"])
    assert (lineage["amc_execution_id"], lineage["schedule_run_id"], lineage["status"]) == (
        execution["workflowExecutionId"],
        run["id"],
        "pending",
    )
    assert lineage["request"] == run["request"]
    [post] = amc.requests(endpoint="create")
    assert post.path == f"/amc/reporting/{seeded.instance_id}/workflowExecutions"
    assert post.headers["amazon-advertising-api-advertiserid"] == seeded.account_id
    assert post.body == {
        "workflowId": "daily-spend",
        "timeWindowType": "EXPLICIT",
        "timeWindowStart": "2026-03-08T00:00:00",
        "timeWindowEnd": "2026-03-09T00:00:00",
        "timeWindowTimeZone": "America/New_York",
        "parameterValues": {"country": "US"},
    }


def test_an_executions_first_status_check_is_one_interval_after_its_creation(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    amc: FakeAmcServer,
    executor: AmcExecutor,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    """AMC executions take minutes: asking at once would only take the instance's slots from
    the morning's creates."""
    instance = seeded_amc_instance(rows, amc, {"wf": ()}).id
    schedule_id = rows.schedule(
        rows.workflow(instance, amc_workflow_id="wf"),
        cron_expression="0 9 * * *",
        enabled=True,
        next_run_at=T0,
    )
    clock.set(T0)
    scheduler = make_scheduler(executor, status_poll_interval=30.0)
    scheduler.tick()
    assert scheduler.wait_idle(20)
    scheduler.tick()
    assert scheduler.wait_idle(20)

    assert amc.requests(endpoint="get") == []
    [run] = runs_of(engine, schedule_id)
    execution = rows.get(workflow_executions, run["execution_id"])
    assert execution["next_poll_at"] - execution["submitted_at"] == timedelta(seconds=30)


def test_a_resolution_error_fails_the_run_before_any_http_call(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    amc: FakeAmcServer,
    executor: AmcExecutor,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    account = rows.account(marketplace_id=None)
    workflow = rows.workflow(rows.instance(account), name="no market")
    schedule_id = rows.schedule(workflow, enabled=True, next_run_at=T0)
    clock.set(T0)
    scheduler = make_scheduler(executor)
    scheduler.tick()
    assert scheduler.wait_idle(20)
    [run] = runs_of(engine, schedule_id)
    assert run["status"] == "failed"
    assert run["error_message"].startswith(
        f"workflow 'no market' ({workflow}): the marketplace of AMC account"
    )
    assert amc.requests() == []


@pytest.mark.parametrize(
    ("script", "run_status", "execution_status", "error"),
    [
        (Script(), "succeeded", "succeeded", None),
        (Script("FAILED", "Object 'x' not found"), "failed", "failed", "Object 'x' not found"),
    ],
)
def test_status_sync_finishes_the_run_and_frees_the_overlap(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    amc: FakeAmcServer,
    executor: AmcExecutor,
    make_scheduler: Callable[..., Scheduler],
    script: Script,
    run_status: str,
    execution_status: str,
    error: str | None,
) -> None:
    instance = seeded_amc_instance(rows, amc, {"wf": ()}).id
    amc.script("wf", script)
    schedule_id = rows.schedule(
        rows.workflow(instance, amc_workflow_id="wf"),
        cron_expression="0 * * * *",
        enabled=True,
        next_run_at=T0,
    )
    clock.set(T0)
    scheduler = make_scheduler(executor)
    scheduler.tick()
    assert scheduler.wait_idle(20)
    [run] = runs_of(engine, schedule_id)
    assert run["status"] == "dispatched"

    finish_by_status_sync(engine, scheduler, schedule_id)
    [run] = runs_of(engine, schedule_id)
    execution = rows.get(workflow_executions, run["execution_id"])
    assert (run["status"], run["error_message"]) == (run_status, error)
    assert (execution["status"], execution["finished_at"] is not None) == (execution_status, True)
    # The next slot is not skipped for overlap: the previous run is over.
    clock.set(T0 + timedelta(hours=1))
    scheduler.tick()
    assert scheduler.wait_idle(20)
    latest = max(runs_of(engine, schedule_id), key=lambda r: r["scheduled_for"])
    assert (latest["scheduled_for"], latest["status"]) == (T0 + timedelta(hours=1), "dispatched")
    expected_failures = 1 if run_status == "failed" else 0
    with engine.connect() as conn:
        failures = conn.execute(
            text("SELECT consecutive_failures FROM workflow_schedules WHERE id = :id"),
            {"id": schedule_id},
        ).scalar_one()
    assert failures == expected_failures


def test_a_failing_instance_opens_its_circuit_while_healthy_instances_fire_on_time(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    amc: FakeAmcServer,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    seeded = [seeded_amc_instance(rows, amc, {"wf": ("n",)}) for _ in range(2)]
    sick, healthy = (s.id for s in seeded)
    ids = {s.id: s.instance_id for s in seeded}
    amc.faults.server_error(500, endpoint="create", instance_id=ids[sick], times=None)
    schedules = {
        instance: [
            rows.schedule(
                rows.workflow(instance, amc_workflow_id="wf"),
                enabled=True,
                next_run_at=T0,
                parameters={"n": n},
            )
            for n in range(12)
        ]
        for instance in (sick, healthy)
    }
    executor = fake_executor(amc, failure_threshold=3, cool_down=60.0)
    try:
        clock.set(T0)
        scheduler = make_scheduler(executor)
        started = time.monotonic()
        scheduler.tick()
        assert scheduler.wait_idle(60)
        took = time.monotonic() - started
    finally:
        executor.close()
    statuses = {
        instance: [runs_of(engine, s)[0] for s in schedules[instance]] for instance in schedules
    }
    assert [r["status"] for r in statuses[healthy]] == ["dispatched"] * 12
    sick_errors = [r["error_message"] for r in statuses[sick]]
    assert all(r["status"] == "failed" for r in statuses[sick])
    assert any("circuit" in (e or "").lower() for e in sick_errors), sick_errors
    # Fail-fast: the sick instance saw only the requests before its circuit opened (and
    # their retries), not one per run.
    sick_creates = len(amc.requests(endpoint="create", instance_id=ids[sick]))
    assert sick_creates < 12 * 3
    assert took < 30


def finish_by_status_sync(engine: Engine, scheduler: Scheduler, schedule_id: uuid.UUID) -> None:
    """Tick (the clock standing still) until the status sync has finished the schedule's
    dispatched runs."""
    deadline = time.monotonic() + 20
    while any(r["status"] == "dispatched" for r in runs_of(engine, schedule_id)):
        assert time.monotonic() < deadline, "the status sync never finished the run"
        with engine.begin() as conn:  # make the next check due now instead of in a minute
            conn.execute(text("UPDATE workflow_executions SET next_poll_at = now()"))
        scheduler.tick()
        assert scheduler.wait_idle(20)
        time.sleep(0.05)


def assert_auto_paused_once(
    rows: Rows,
    scheduler: Scheduler,
    schedule_id: uuid.UUID,
    logs: Sequence[Mapping[str, Any]],
    failed: Sequence[Mapping[str, Any]],
) -> None:
    """The schedule is paused after its failed runs, with the reason; one ``schedule.paused``
    warning says so, and the alert's counter counted it once."""
    reason = (
        f"auto-paused after {len(failed)} consecutive failures; "
        f"last error: {failed[-1]['error_message']}"
    )
    schedule = rows.get(workflow_schedules, schedule_id)
    assert (schedule["paused_at"] is not None, schedule["pause_reason"]) == (True, reason)
    paused = [e for e in logs if e["event"] == "schedule.paused"]
    assert [(e["log_level"], e["schedule_id"], e["run_id"], e["reason"]) for e in paused] == [
        ("warning", str(schedule_id), str(failed[-1]["id"]), reason)
    ]
    registry = scheduler.metrics.registry
    assert registry.get_sample_value("scheduler_schedules_auto_paused_total") == 1


def test_failures_at_dispatch_auto_pause_the_schedule_visibly(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    amc: FakeAmcServer,
    executor: AmcExecutor,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    instance = seeded_amc_instance(rows, amc, {"wf": ()})
    amc.faults.add(
        "status",
        status=400,
        body={"code": "400", "details": "Invalid workflow definition"},
        endpoint="create",
        times=None,
    )
    schedule_id = rows.schedule(
        rows.workflow(instance.id, amc_workflow_id="wf"),
        cron_expression="0 * * * *",
        enabled=True,
        next_run_at=T0,
    )
    scheduler = make_scheduler(executor, max_consecutive_failures=3)
    with capture_logs() as logs:
        for hour in range(4):  # the fourth slot does not fire: the schedule is paused
            clock.set(T0 + timedelta(hours=hour))
            scheduler.tick()
            assert scheduler.wait_idle(20)
    failed = sorted(runs_of(engine, schedule_id), key=lambda r: r["scheduled_for"])
    assert [r["status"] for r in failed] == ["failed"] * 3
    assert_auto_paused_once(rows, scheduler, schedule_id, logs, failed)


def test_executions_amc_reports_failed_auto_pause_the_schedule_visibly(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    amc: FakeAmcServer,
    executor: AmcExecutor,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    """AMC accepts every execution and later reports it FAILED: the failures reach the
    schedule through the status sync, and the pause they cause is as visible as one at
    dispatch."""
    instance = seeded_amc_instance(rows, amc, {"wf": ()}).id
    amc.script("wf", Script("FAILED", "Object 'x' not found"))
    schedule_id = rows.schedule(
        rows.workflow(instance, amc_workflow_id="wf"),
        cron_expression="0 * * * *",
        enabled=True,
        next_run_at=T0,
    )
    scheduler = make_scheduler(executor, max_consecutive_failures=3)
    with capture_logs() as logs:
        for hour in range(4):  # the fourth slot does not fire: the schedule is paused
            clock.set(T0 + timedelta(hours=hour))
            scheduler.tick()
            assert scheduler.wait_idle(20)
            finish_by_status_sync(engine, scheduler, schedule_id)
    failed = sorted(runs_of(engine, schedule_id), key=lambda r: r["scheduled_for"])
    assert [(r["status"], r["error_message"]) for r in failed] == [
        ("failed", "Object 'x' not found")
    ] * 3
    assert all(r["amc_execution_id"] for r in failed)  # AMC accepted each one
    assert_auto_paused_once(rows, scheduler, schedule_id, logs, failed)


def test_an_operators_pause_during_an_execution_is_not_reported_as_an_auto_pause(
    engine: Engine,
    rows: Rows,
    clock: FakeClock,
    amc: FakeAmcServer,
    executor: AmcExecutor,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    instance = seeded_amc_instance(rows, amc, {"wf": ()}).id
    schedule_id = rows.schedule(
        rows.workflow(instance, amc_workflow_id="wf"), enabled=True, next_run_at=T0
    )
    scheduler = make_scheduler(executor, max_consecutive_failures=3)
    clock.set(T0)
    scheduler.tick()
    assert scheduler.wait_idle(20)
    with engine.begin() as conn:
        management.pause(conn, schedule_id, T0, None, "quarterly close")
    with capture_logs() as logs:
        finish_by_status_sync(engine, scheduler, schedule_id)
    assert [r["status"] for r in runs_of(engine, schedule_id)] == ["succeeded"]
    assert rows.get(workflow_schedules, schedule_id)["pause_reason"] == "quarterly close"
    assert "schedule.paused" not in [e["event"] for e in logs]
    registry = scheduler.metrics.registry
    assert registry.get_sample_value("scheduler_schedules_auto_paused_total") == 0
