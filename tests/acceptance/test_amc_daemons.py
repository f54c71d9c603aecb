"""Four daemon processes against the fake AMC over real HTTP, with AMC misbehaving."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from scheduler_daemon.amc.fake.server import (
    FakeAmcServer,
)
from tests.acceptance.daemons import Daemon, count, fake_amc_env, wait_until
from tests.helpers import Rows, seeded_amc_instance

pytestmark = pytest.mark.slow

INSTANCES = 5
PER_INSTANCE = 100
CAP = 3


@pytest.fixture
def amc() -> Iterator[FakeAmcServer]:
    with FakeAmcServer(pending_seconds=0.2, running_seconds=0.3) as fake:
        yield fake


def test_four_daemons_500_slots_with_throttling_and_errors_one_execution_each(
    engine: Engine, rows: Rows, database_url: str, amc: FakeAmcServer, tmp_path: Path
) -> None:
    seeded = [seeded_amc_instance(rows, amc, {"wf": ("n",)}) for _ in range(INSTANCES)]
    instances = [(s.id, s.instance_id) for s in seeded]
    # AMC misbehaving on about one create in ten, in a shuffled but repeatable order:
    # throttling with and without Retry-After, 5xx of each kind, and accepted creates whose
    # response is lost. "ok" is a fault that does nothing, to space the others out.
    faults = ["429", "429-bare", "500", "502", "503", "504", "lost"] * 8 + ["ok"] * 504
    random.Random(7).shuffle(faults)  # noqa: S311 - an order, not a secret
    for fault in faults:
        if fault == "ok":
            amc.faults.slow(0.0, endpoint="create")
        elif fault == "429":
            amc.faults.throttle(retry_after=0.2, endpoint="create")
        elif fault == "429-bare":
            amc.faults.throttle(retry_after=None, endpoint="create")
        elif fault == "lost":
            amc.faults.lose_response(endpoint="create")
        else:
            amc.faults.server_error(int(fault), endpoint="create")
    env = fake_amc_env(amc, SCHEDULER_AMC_MAX_IN_FLIGHT=str(CAP), SCHEDULER_BATCH_SIZE="50")
    daemons = [
        Daemon(database_url, tmp_path / f"d{i}.log", "--worker-id", f"d{i}", env=env)
        for i in range(4)
    ]
    try:
        wait_until(
            lambda: count(engine, "SELECT count(*) FROM live_workers") == 4, 60, "4 live workers"
        )
        with engine.begin() as conn:
            for instance, _ in instances:
                workflow = rows.workflow(instance, amc_workflow_id="wf")
                conn.execute(
                    text(
                        """
                        INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled,
                                                        next_run_at, parameters)
                        SELECT :workflow, 'bulk ' || n || ' ' || gen_random_uuid(), '0 9 * * *', true,
                               date_trunc('second', now()) + interval '2 seconds',
                               -- AMC has no idempotency key: an execution whose create
                               -- response was lost is found again by its request.
                               jsonb_build_object('n', n)
                          FROM generate_series(1, :n) AS n
                        """
                    ),
                    {"workflow": workflow, "n": PER_INSTANCE},
                )
        total = INSTANCES * PER_INSTANCE
        wait_until(
            lambda: (
                count(
                    engine,
                    "SELECT count(*) FROM schedule_runs WHERE status NOT IN ('claimed', 'dispatching')",
                )
                == total
            ),
            180,
            f"{total} runs sent",
        )
    finally:
        codes = [d.terminate() for d in daemons]
    assert codes == [0, 0, 0, 0]
    with engine.connect() as conn:
        statuses = Counter(conn.execute(text("SELECT status FROM schedule_runs")).scalars().all())
    assert set(statuses) <= {"dispatched", "succeeded"}, statuses
    executions = amc.executions()
    assert len(executions) == total
    with engine.connect() as conn:
        run_executions = (
            conn.execute(text("SELECT amc_execution_id FROM schedule_runs")).scalars().all()
        )
    assert Counter(run_executions) == Counter(e["workflowExecutionId"] for e in executions)
    # The cap holds per instance across all four daemons, not per daemon.
    for _, instance_id in instances:
        assert amc.max_in_flight(instance_id) <= CAP
    # A lost response leaves the run to its recovery, which adopts what the request started.
    adopted = sum(1 for d in daemons for e in d.events() if e["event"] == "run.execution_adopted")
    lost = faults.count("lost")
    assert 0 < adopted <= lost
    dispatched_by = Counter(
        e["worker_id"] for d in daemons for e in d.events() if e["event"] == "run.dispatched"
    )
    assert sum(dispatched_by.values()) == total
    assert len(dispatched_by) > 1  # the burst was shared
