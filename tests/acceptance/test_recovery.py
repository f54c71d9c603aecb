"""Recovery of a run whose daemon died mid-submit, with real daemons, PostgreSQL and the fake
AMC over HTTP: every AMC execution belongs to at most one run, and every slot ends with an
execution of its own, created once.

AMC has no idempotency key, so a run that was ``dispatching`` when its daemon died may or may
not have started an execution, and the executions of other runs with the same request look
exactly like the one it may have started. These tests set up the executions that are easy to
mistake for the run's own (the previous slot's, a manual run's, a twin schedule's) and check
what AMC and the database hold afterwards, not how the daemon got there.

Set-up rows for runs that happened before the test (a previous slot, a manual run) are
written as the daemon writes a finished run, and their executions are put in the fake with the
creation time they would have had, so that the slots keep their real spacing (a minute, or
30 seconds) without the test waiting for it.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, RowMapping, text

from scheduler_daemon.amc.body import build_request_body
from scheduler_daemon.amc.fake.server import (
    FakeAmcServer,
)
from tests.acceptance.daemons import Daemon, db_now, fake_amc_env, wait_until
from tests.helpers import Rows, SeededInstance, seeded_amc_instance

pytestmark = pytest.mark.slow

WORKFLOW = "weekly-reach"
PARAMETERS = {"country": "US"}  # no time window: every slot sends the very same request
EVERY_MINUTE = "* * * * *"
# Long enough that a held request outlives the daemon that sent it (which is killed).
HELD = 120.0
STARTUP = 30.0  # a daemon starting, claiming and getting stuck
SETTLE = 45.0  # a recovering daemon taking over and finishing the runs
SENT = ("dispatched", "succeeded")


@pytest.fixture
def amc() -> Iterator[FakeAmcServer]:
    with FakeAmcServer(pending_seconds=0.2, running_seconds=0.3) as fake:
        yield fake


@pytest.fixture
def seeded(rows: Rows, amc: FakeAmcServer) -> SeededInstance:
    return seeded_amc_instance(rows, amc, {WORKFLOW: tuple(PARAMETERS)})


def amc_env(amc: FakeAmcServer, **extra: str) -> dict[str, str]:
    """The daemons' settings: the fake AMC, and a dead daemon's claims taken over in ~2 s."""
    return fake_amc_env(
        amc, SCHEDULER_HEARTBEAT_INTERVAL="1", SCHEDULER_WORKER_DEAD_AFTER="2", **extra
    )


# --- set-up --------------------------------------------------------------------------------


def current_slot(engine: Engine) -> datetime:
    """The every-minute slot that is due now: the start of the database's current minute
    (late by under a minute, well within the misfire grace, so it runs)."""
    return db_now(engine).replace(second=0, microsecond=0)


def request_body(slot: datetime) -> dict[str, Any]:
    """The create-execution request every run of these tests sends (the same for all)."""
    return build_request_body(WORKFLOW, PARAMETERS, slot, "UTC")


def request_key(request: Mapping[str, Any]) -> str:
    """What tells two requests apart in AMC: the workflow and its parameter values."""
    values = {str(k): str(v) for k, v in (request.get("parameterValues") or {}).items()}
    return json.dumps([request["workflowId"], values], sort_keys=True)


def due_schedules(
    rows: Rows, workflow_id: uuid.UUID, slot: datetime, count: int = 1
) -> list[uuid.UUID]:
    """``count`` enabled every-minute schedules of the workflow, due at ``slot``."""
    return rows.schedules(
        count,
        workflow_id,
        cron_expression=EVERY_MINUTE,
        enabled=True,
        next_run_at=slot,
        parameters=PARAMETERS,
    )


def execution_created_at(
    amc: FakeAmcServer, instance_id: str, body: Mapping[str, Any], created_at: datetime
) -> str:
    """An execution of ``body`` in the fake, created at ``created_at`` (long finished if that
    is in the past); returns its id."""
    with amc.state.lock:
        payload = amc.state.create_execution(instance_id, body)
        execution = amc.state.executions[payload["workflowExecutionId"]]
        execution.created_at = execution.updated_at = execution.eligible_at = created_at
    execution_id: str = payload["workflowExecutionId"]
    return execution_id


def earlier_run(
    engine: Engine,
    amc: FakeAmcServer,
    seeded: SeededInstance,
    schedule_id: uuid.UUID,
    *,
    trigger: str,
    scheduled_for: datetime,
    dispatched_at: datetime,
) -> str:
    """A run that went normally before the test: its execution in AMC, created when it was
    dispatched, and its rows as a daemon records a finished run. Returns the execution id."""
    body = request_body(scheduled_for)
    execution_id = execution_created_at(amc, seeded.instance_id, body, dispatched_at)
    with engine.begin() as conn:
        run_id = conn.execute(
            text(
                """
                INSERT INTO schedule_runs (schedule_id, workflow_id, scheduled_for, trigger,
                                           status, fencing_token, worker_id, claimed_at,
                                           started_at, finished_at, amc_execution_id, attempts,
                                           request)
                SELECT s.id, s.workflow_id, :scheduled_for, :trigger, 'succeeded', 1, 'earlier',
                       :at, :at, :at + interval '1 second', :execution_id, 1,
                       CAST(:request AS jsonb)
                  FROM workflow_schedules s WHERE s.id = :schedule_id
                RETURNING id
                """
            ),
            {
                "schedule_id": schedule_id,
                "scheduled_for": scheduled_for,
                "trigger": trigger,
                "at": dispatched_at,
                "execution_id": execution_id,
                "request": json.dumps(body),
            },
        ).scalar_one()
        conn.execute(
            text(
                """
                WITH lineage AS (
                    INSERT INTO workflow_executions (workflow_id, amc_execution_id, status,
                                                     trigger, schedule_run_id, request,
                                                     submitted_at, finished_at, raw_status)
                    SELECT r.workflow_id, r.amc_execution_id, 'succeeded', r.trigger, r.id,
                           r.request, r.started_at, r.finished_at, 'SUCCEEDED'
                      FROM schedule_runs r WHERE r.id = :run_id
                    RETURNING id
                )
                UPDATE schedule_runs SET execution_id = (SELECT id FROM lineage)
                 WHERE id = :run_id
                """
            ),
            {"run_id": run_id},
        )
        if trigger == "scheduled":
            conn.execute(
                text("UPDATE workflow_schedules SET last_run_at = :slot WHERE id = :id"),
                {"slot": scheduled_for, "id": schedule_id},
            )
    return execution_id


# --- what the database holds ---------------------------------------------------------------


def runs(engine: Engine) -> list[RowMapping]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    """
                    SELECT r.id, s.name AS schedule, r.trigger, r.scheduled_for, r.status,
                           r.amc_execution_id, r.error_message
                      FROM schedule_runs r JOIN workflow_schedules s ON s.id = r.schedule_id
                     ORDER BY r.scheduled_for, s.name
                    """
                )
            )
            .mappings()
            .all()
        )


def label(run: RowMapping) -> str:
    return f"{run['trigger']} run of {run['schedule']} for {run['scheduled_for']:%H:%M:%S}"


def statuses(engine: Engine) -> list[str]:
    return [f"{label(r)}: {r['status']} {r['amc_execution_id']}" for r in runs(engine)]


def count_runs(engine: Engine, status: str) -> int:
    return sum(1 for run in runs(engine) if run["status"] == status)


def wait_for_runs(engine: Engine, status: str, expected: int, what: str) -> None:
    wait_until(lambda: count_runs(engine, status) == expected, STARTUP, what)


def hold_next_slots(engine: Engine) -> None:
    """Keep the next every-minute slots out of the test: only the slots it set up run."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE workflow_schedules SET next_run_at = now() + interval '1 day'"))


def settle(engine: Engine, expected_runs: int) -> None:
    """Wait until no run is left claimed or being sent; a run left mid-call is reported."""

    def settled() -> bool:
        current = runs(engine)
        return len(current) == expected_runs and all(
            r["status"] not in ("claimed", "dispatching") for r in current
        )

    try:
        wait_until(settled, SETTLE, "the runs to be recovered")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the runs: {statuses(engine)}") from None


def creates_per_request(amc: FakeAmcServer) -> Counter[str]:
    return Counter(request_key(e) for e in amc.executions())


def assert_each_run_owns_one_execution(engine: Engine, amc: FakeAmcServer, body_runs: int) -> None:
    """Every execution is attributed to at most one run; every run ended with an execution of
    its own that AMC holds; AMC holds no execution no run has (a second create of a slot): so
    AMC received exactly one create per run, ``body_runs`` of them for the one request."""
    all_runs = runs(engine)
    holders: dict[str, list[str]] = defaultdict(list)
    for run in all_runs:
        if run["amc_execution_id"] is not None:
            holders[run["amc_execution_id"]].append(label(run))
    shared = {execution: names for execution, names in holders.items() if len(names) > 1}
    assert not shared, f"AMC executions attributed to more than one run: {shared}"
    in_amc = {e["workflowExecutionId"] for e in amc.executions()}
    without = [
        f"{label(r)}: {r['status']}, execution {r['amc_execution_id']}, error {r['error_message']}"
        for r in all_runs
        if r["status"] not in SENT or r["amc_execution_id"] not in in_amc
    ]
    assert not without, f"runs that did not end with an execution of their own: {without}"
    stray = sorted(in_amc - set(holders))
    assert not stray, f"AMC executions that no run holds (a slot created twice): {stray}"
    key = request_key(request_body(db_now(engine)))  # no window: the same for every slot
    assert creates_per_request(amc) == {key: body_runs}, (
        f"AMC holds {creates_per_request(amc)[key]} executions of the request, for {body_runs} runs"
    )


def recovered_by(
    engine: Engine,
    database_url: str,
    tmp_path: Path,
    worker_id: str,
    env: dict[str, str],
    expected_runs: int,
) -> int:
    """A daemon started after the victim died (a survivor, or the victim restarted with its
    own worker id) runs until the runs settle; its exit code on SIGTERM."""
    daemon = Daemon(
        database_url, tmp_path / f"recovery-{worker_id}.log", "--worker-id", worker_id, env=env
    )
    try:
        settle(engine, expected_runs)
    finally:
        code = daemon.terminate()
    return code


def stuck_before_amc(amc: FakeAmcServer) -> bool:
    """The daemon asked for a token (held back) and nothing of the run reached AMC."""
    return len(amc.requests(endpoint="token")) == 1 and not [
        r for r in amc.requests() if r.endpoint != "token"
    ]


def killed_before_reaching_amc(
    engine: Engine, amc: FakeAmcServer, database_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """A daemon that claimed the slot and marked its run dispatching, then was killed while
    waiting for its token (held back): nothing of the run reached AMC."""
    amc.faults.slow(HELD, endpoint="token")
    victim = Daemon(database_url, tmp_path / "victim.log", "--worker-id", "victim", env=env)
    try:
        wait_for_runs(engine, "dispatching", 1, "the slot to be dispatching")
        wait_until(lambda: stuck_before_amc(amc), STARTUP, "the victim to wait for its token")
        hold_next_slots(engine)
    finally:
        victim.kill()
    assert amc.requests(endpoint="create") == []


# --- the tests -----------------------------------------------------------------------------


def test_every_minute_slot_killed_before_reaching_amc_gets_a_new_execution_not_the_previous_slots(
    engine: Engine,
    rows: Rows,
    database_url: str,
    amc: FakeAmcServer,
    seeded: SeededInstance,
    tmp_path: Path,
) -> None:
    """Slot N-1's identical execution (a minute old, recorded on slot N-1's run) is within
    the look-up window of slot N, whose daemon died before anything reached AMC."""
    slot = current_slot(engine)
    previous = slot - timedelta(minutes=1)
    (schedule,) = due_schedules(rows, rows.workflow(seeded.id, amc_workflow_id=WORKFLOW), slot)
    earlier_run(
        engine,
        amc,
        seeded,
        schedule,
        trigger="scheduled",
        scheduled_for=previous,
        dispatched_at=previous + timedelta(seconds=2),
    )
    env = amc_env(amc)
    killed_before_reaching_amc(engine, amc, database_url, tmp_path, env)
    code = recovered_by(engine, database_url, tmp_path, "rescuer", env, expected_runs=2)
    assert_each_run_owns_one_execution(engine, amc, body_runs=2)
    assert len(amc.requests(endpoint="create")) == 1  # slot N's, sent once by the rescuer
    assert code == 0


def test_create_accepted_but_not_recorded_is_adopted_without_a_second_create(
    engine: Engine,
    rows: Rows,
    database_url: str,
    amc: FakeAmcServer,
    seeded: SeededInstance,
    tmp_path: Path,
) -> None:
    slot = current_slot(engine)
    due_schedules(rows, rows.workflow(seeded.id, amc_workflow_id=WORKFLOW), slot)
    amc.faults.slow(HELD, endpoint="create")  # AMC starts the execution, the answer is held
    env = amc_env(amc)
    victim = Daemon(database_url, tmp_path / "victim.log", "--worker-id", "victim", env=env)
    try:
        wait_for_runs(engine, "dispatching", 1, "the slot to be dispatching")
        wait_until(lambda: len(amc.executions()) == 1, STARTUP, "AMC to accept the create")
        hold_next_slots(engine)
    finally:
        victim.kill()
    (accepted,) = amc.executions()
    assert count_runs(engine, "dispatching") == 1  # died before recording it
    # The same worker id: the restarted daemon takes its predecessor's claims at once.
    code = recovered_by(engine, database_url, tmp_path, "victim", env, expected_runs=1)
    assert_each_run_owns_one_execution(engine, amc, body_runs=1)
    (run,) = runs(engine)
    assert run["amc_execution_id"] == accepted["workflowExecutionId"]
    assert len(amc.requests(endpoint="create")) == 1
    assert code == 0


@pytest.mark.parametrize("accepted", [2, 1], ids=["both-creates-accepted", "one-create-accepted"])
def test_two_schedules_with_the_same_request_due_together_each_get_their_own_execution(
    accepted: int,
    engine: Engine,
    rows: Rows,
    database_url: str,
    amc: FakeAmcServer,
    seeded: SeededInstance,
    tmp_path: Path,
) -> None:
    """Two schedules of one workflow with the same parameters, due at the same instant; the
    daemon dies with both runs mid-submit: both creates accepted (answers held back), or one
    accepted and the other waiting for the instance's only slot (nothing of it sent)."""
    slot = current_slot(engine)
    due_schedules(rows, rows.workflow(seeded.id, amc_workflow_id=WORKFLOW), slot, count=2)
    amc.faults.slow(HELD, endpoint="create", times=accepted)
    cap = {} if accepted == 2 else {"SCHEDULER_AMC_MAX_IN_FLIGHT": "1"}
    victim = Daemon(
        database_url, tmp_path / "victim.log", "--worker-id", "victim", env=amc_env(amc, **cap)
    )
    try:
        wait_for_runs(engine, "dispatching", 2, "both runs to be dispatching")
        wait_until(
            lambda: len(amc.executions()) == accepted, STARTUP, f"AMC to accept {accepted} creates"
        )
        assert len(amc.requests(endpoint="create")) == accepted
        hold_next_slots(engine)
    finally:
        victim.kill()
    assert count_runs(engine, "dispatching") == 2
    code = recovered_by(engine, database_url, tmp_path, "rescuer", amc_env(amc), expected_runs=2)
    assert_each_run_owns_one_execution(engine, amc, body_runs=2)
    assert len(amc.requests(endpoint="create")) == 2  # the one not accepted was sent once
    assert code == 0


def test_slot_killed_mid_submit_30s_after_a_manual_run_does_not_take_the_manual_runs_execution(
    engine: Engine,
    rows: Rows,
    database_url: str,
    amc: FakeAmcServer,
    seeded: SeededInstance,
    tmp_path: Path,
) -> None:
    """A manual run of the schedule 30 s before its slot went normally; the slot's daemon
    dies before anything of the slot reached AMC."""
    slot = current_slot(engine)
    (schedule,) = due_schedules(rows, rows.workflow(seeded.id, amc_workflow_id=WORKFLOW), slot)
    manual_at = slot - timedelta(seconds=30)
    earlier_run(
        engine,
        amc,
        seeded,
        schedule,
        trigger="manual",
        scheduled_for=manual_at,
        dispatched_at=manual_at + timedelta(seconds=1),
    )
    env = amc_env(amc)
    killed_before_reaching_amc(engine, amc, database_url, tmp_path, env)
    code = recovered_by(engine, database_url, tmp_path, "victim", env, expected_runs=2)
    assert_each_run_owns_one_execution(engine, amc, body_runs=2)
    assert len(amc.requests(endpoint="create")) == 1  # the slot's, sent once after the restart
    assert code == 0


def test_lost_create_response_is_not_answered_with_an_older_identical_execution_of_another_run(
    engine: Engine,
    rows: Rows,
    database_url: str,
    amc: FakeAmcServer,
    seeded: SeededInstance,
    tmp_path: Path,
) -> None:
    """The slot's create is accepted but its response lost, 20 s after a manual run of the
    same request started an execution (still inside the client's 60 s look-back)."""
    slot = current_slot(engine)
    (schedule,) = due_schedules(rows, rows.workflow(seeded.id, amc_workflow_id=WORKFLOW), slot)
    manual_at = db_now(engine) - timedelta(seconds=20)
    older = earlier_run(
        engine,
        amc,
        seeded,
        schedule,
        trigger="manual",
        scheduled_for=manual_at,
        dispatched_at=manual_at,
    )
    amc.faults.lose_response(endpoint="create")
    daemon = Daemon(database_url, tmp_path / "d.log", "--worker-id", "d", env=amc_env(amc))
    try:
        wait_until(lambda: len(runs(engine)) == 2, STARTUP, "the slot to be claimed")
        hold_next_slots(engine)
        wait_until(lambda: len(amc.executions()) == 2, STARTUP, "AMC to accept the slot's create")
        (lost,) = (e for e in amc.executions() if e["workflowExecutionId"] != older)
        settle(engine, expected_runs=2)
    finally:
        code = daemon.terminate()
    assert_each_run_owns_one_execution(engine, amc, body_runs=2)
    (slot_run,) = (r for r in runs(engine) if r["trigger"] == "scheduled")
    assert slot_run["amc_execution_id"] == lost["workflowExecutionId"]
    assert len(amc.requests(endpoint="create")) == 1
    assert code == 0
