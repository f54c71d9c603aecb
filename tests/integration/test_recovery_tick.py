"""Recovery inside one daemon, against the database: a run whose call was cut short adopts
an execution of its own or none, waits for a rival's call, or goes visibly unresolved.

The executor here lists what it is told to; the database and the tick are real. The same
properties with real processes and the fake AMC are in tests/acceptance/test_recovery.py.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from scheduler_daemon.clock import FakeClock
from scheduler_daemon.daemon import dispatcher
from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.db.tables import schedule_runs, workflow_schedules
from scheduler_daemon.executors.base import ExecutionOutcome, FoundExecution, RunRequest
from tests.acceptance.daemons import wait_until
from tests.helpers import Rows

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# When the interrupted calls began, on the database's clock (the rows say so).
STARTED = datetime(2026, 3, 1, 9, 0, 1, tzinfo=UTC)
REQUEST = {"workflowId": "daily", "parameterValues": {"country": "US"}}


class ListingExecutor:
    """Lists the executions it is told exist; each submit starts a new one."""

    name = "listing"
    in_process = False

    def __init__(self, existing: Sequence[FoundExecution] = ()) -> None:
        self.existing = list(existing)
        self.submitted: list[RunRequest] = []
        self.listings = 0

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        self.submitted.append(request)
        return ExecutionOutcome("dispatched", execution_id=f"new-{len(self.submitted)}")

    def find_started(self, request: RunRequest, since: datetime) -> Sequence[FoundExecution]:
        self.listings += 1
        return [e for e in self.existing if e.created_at is None or e.created_at >= since]


def execution(execution_id: str, seconds_after_start: float) -> FoundExecution:
    return FoundExecution(execution_id, STARTED + timedelta(seconds=seconds_after_start))


def interrupted_run(rows: Rows, workflow_id: uuid.UUID, owner: str = "gone") -> uuid.UUID:
    """A schedule of ``workflow_id`` whose T0 run was mid-call when its owner vanished."""
    _, run_id = rows.claim(
        owner,
        5,
        T0,
        workflow_id,
        status="dispatching",
        attempts=1,
        started_at=STARTED,
        call_started_at=STARTED,
        request=REQUEST,  # what the cut-short call sent
    )
    return run_id


def run(rows: Rows, run_id: uuid.UUID) -> dict[str, Any]:
    return rows.get(schedule_runs, run_id)


@pytest.fixture
def recover(
    clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> Callable[[ListingExecutor], Scheduler]:
    """One tick of a fresh daemon (its reaper takes the vanished owner's claims), waited for."""

    def tick(executor: ListingExecutor) -> Scheduler:
        clock.set(T0 + timedelta(minutes=1))
        scheduler = make_scheduler(executor)
        scheduler.tick()
        assert scheduler.wait_idle(30)
        return scheduler

    return tick


def test_the_previous_slots_identical_execution_is_not_adopted(
    rows: Rows, recover: Callable[[ListingExecutor], Scheduler]
) -> None:
    workflow_id = rows.workflow()
    run_id = interrupted_run(rows, workflow_id)
    previous = rows.run(
        rows.get(schedule_runs, run_id)["schedule_id"],
        scheduled_for=T0 - timedelta(minutes=1),
        status="dispatched",
        amc_execution_id="previous",
    )
    executor = ListingExecutor([execution("previous", -0.5)])
    recover(executor)
    assert (run(rows, run_id)["status"], run(rows, run_id)["amc_execution_id"]) == (
        "dispatched",
        "new-1",
    )
    assert run(rows, previous)["amc_execution_id"] == "previous"
    assert len(executor.submitted) == 1  # submitted again, once


def test_a_found_execution_no_run_holds_is_adopted_without_a_second_submit(
    rows: Rows, recover: Callable[[ListingExecutor], Scheduler]
) -> None:
    run_id = interrupted_run(rows, rows.workflow())
    executor = ListingExecutor([execution("mine", 0.2)])
    with capture_logs() as logs:
        recover(executor)
    assert (run(rows, run_id)["status"], run(rows, run_id)["amc_execution_id"]) == (
        "dispatched",
        "mine",
    )
    assert executor.submitted == []
    assert any(e["event"] == "run.execution_adopted" for e in logs)


def test_two_interrupted_runs_of_one_request_each_get_their_own_execution(
    rows: Rows, recover: Callable[[ListingExecutor], Scheduler]
) -> None:
    """Two schedules of one workflow, same parameters, same slot, both cut short after AMC
    accepted both creates: the two executions are shared out, one each."""
    workflow_id = rows.workflow()
    first, second = interrupted_run(rows, workflow_id), interrupted_run(rows, workflow_id)
    executor = ListingExecutor([execution("e1", 0.1), execution("e2", 0.2)])
    recover(executor)
    assert {run(rows, first)["amc_execution_id"], run(rows, second)["amc_execution_id"]} == {
        "e1",
        "e2",
    }
    assert executor.submitted == []


def test_unexplained_executions_leave_the_run_visibly_unresolved(
    rows: Rows, recover: Callable[[ListingExecutor], Scheduler]
) -> None:
    """Two executions match and only this run could have made one: which is its own cannot
    be told, so it takes neither, sends nothing, and says so everywhere an operator looks."""
    run_id = interrupted_run(rows, rows.workflow())
    executor = ListingExecutor([execution("a", 0.1), execution("b", 0.2)])
    with capture_logs() as logs:
        scheduler = recover(executor)
    row = run(rows, run_id)
    assert (row["status"], row["amc_execution_id"]) == ("unresolved", None)
    assert "a, b" in row["error_message"]
    assert row["finished_at"] is not None
    assert executor.submitted == []
    assert rows.get(workflow_schedules, row["schedule_id"])["locked_by"] is None
    [event] = [e for e in logs if e["event"] == "run.unresolved"]
    assert event["run_id"] == str(run_id)
    assert "a, b" in event["reason"]
    unresolved = scheduler.metrics.registry.get_sample_value(
        "scheduler_runs_total", {"outcome": "unresolved", "trigger": "scheduled"}
    )
    assert unresolved == 1


def test_a_rivals_call_under_way_is_waited_for_not_robbed(
    engine: Engine,
    rows: Rows,
    recover: Callable[[ListingExecutor], Scheduler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another daemon, alive, is mid-call for the same request: the execution found may be
    its. The recovering run waits until that call is recorded, then submits its own."""
    monkeypatch.setattr(dispatcher, "RIVAL_POLL_SECONDS", 0.05)
    workflow_id = rows.workflow()
    run_id = interrupted_run(rows, workflow_id)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler_workers (worker_id, hostname, pid, version) "
                "VALUES ('alive', 'h', 1, 'x')"
            )
        )
    rival = interrupted_run(rows, workflow_id, owner="alive")
    executor = ListingExecutor([execution("theirs", 0.3)])
    worker = threading.Thread(target=recover, args=(executor,))
    with capture_logs() as logs:
        worker.start()
        wait_until(
            lambda: any(e["event"] == "run.recovery_waiting" for e in list(logs)),
            20,
            "the recovery to wait for the rival",
        )
    assert run(rows, run_id)["amc_execution_id"] is None
    with engine.begin() as conn:  # the rival's daemon records its outcome
        conn.execute(
            text(
                "UPDATE schedule_runs SET status = 'dispatched', amc_execution_id = 'theirs', "
                "call_started_at = NULL WHERE id = :id"
            ),
            {"id": rival},
        )
    worker.join(30)
    assert (run(rows, run_id)["status"], run(rows, run_id)["amc_execution_id"]) == (
        "dispatched",
        "new-1",
    )
    assert executor.listings == 2  # it waited on the database, then looked at AMC once more
    assert run(rows, rival)["amc_execution_id"] == "theirs"
