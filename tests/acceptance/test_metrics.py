"""A scrape of a running daemon's metrics shows the counters moving by the right amounts,
the AMC executor's included."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from scheduler_daemon.amc.fake.server import (
    FakeAmcServer,
)
from tests.acceptance.daemons import (
    Daemon,
    count,
    fake_amc_env,
    free_port,
    insert_due_schedules,
    wait_until,
)
from tests.helpers import Rows, seeded_amc_instance


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_counters_move_by_the_right_amounts(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    daemon = Daemon(
        database_url, tmp_path / "d.log", "--worker-id", "m", "--metrics-port", str(port)
    )
    try:
        wait_until(
            lambda: count(engine, "SELECT count(*) FROM live_workers") == 1, 60, "a live worker"
        )
        before = scrape(port)
        workflow_id = rows.workflow()
        insert_due_schedules(engine, workflow_id, 7, seconds_ahead=0)
        overlapping = rows.schedule(workflow_id, enabled=True, next_run_at=text("now()"))
        rows.run(overlapping, scheduled_for=text("now() - interval '1 hour'"), status="dispatched")
        wait_until(
            lambda: (
                count(
                    engine,
                    "SELECT count(*) FROM schedule_runs WHERE status IN ('succeeded', 'skipped')",
                )
                == 8
            ),
            30,
            "8 decisions",
        )
        wait_until(
            lambda: (
                scrape(port).get(
                    ("scheduler_runs_total", (("outcome", "succeeded"), ("trigger", "scheduled"))),
                    0,
                )
                == 7
            ),
            10,
            "the counter",
        )
        after = scrape(port)
    finally:
        assert daemon.terminate() == 0
    succeeded = ("scheduler_runs_total", (("outcome", "succeeded"), ("trigger", "scheduled")))
    overlap = ("scheduler_runs_total", (("outcome", "skipped_overlap"), ("trigger", "scheduled")))
    assert after[succeeded] - before.get(succeeded, 0) == 7
    assert after[overlap] - before.get(overlap, 0) == 1
    assert after[("scheduler_run_lateness_seconds_count", ())] == 7
    assert (
        after[("scheduler_tick_duration_seconds_count", ())]
        > before[("scheduler_tick_duration_seconds_count", ())]
    )
    assert (
        after[
            (
                "scheduler_executor_call_seconds_count",
                (("executor", "noop"), ("outcome", "succeeded")),
            )
        ]
        == 7
    )
    assert after[("scheduler_claims_lost_total", ())] == 0
    assert after[("scheduler_database_available", ())] == 1


@pytest.mark.slow
def test_amc_metrics_move_with_the_log_at_warning(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    """The executor tells the metrics itself: at log level warning no event is even made for
    a 2xx answer or a token refresh, and those counters still move."""
    port = free_port()
    with FakeAmcServer(pending_seconds=0.2, running_seconds=0.3) as amc:
        healthy = seeded_amc_instance(rows, amc, {"wf": ()})
        broken = seeded_amc_instance(rows, amc, {"wf": ()})
        amc.faults.throttle(
            retry_after=0, endpoint="create", instance_id=broken.instance_id, times=None
        )
        env = fake_amc_env(amc, SCHEDULER_AMC_CIRCUIT_FAILURES="1")
        args = ("--worker-id", "m", "--metrics-port", str(port), "--log-level", "warning")
        daemon = Daemon(database_url, tmp_path / "d.log", *args, env=env)
        try:
            wait_until(
                lambda: count(engine, "SELECT count(*) FROM live_workers") == 1, 60, "a live worker"
            )
            for instance, schedules in ((healthy.id, 3), (broken.id, 1)):
                workflow_id = rows.workflow(instance, amc_workflow_id="wf")
                insert_due_schedules(engine, workflow_id, schedules, seconds_ahead=0)
            wait_until(
                lambda: (
                    count(
                        engine,
                        "SELECT count(*) FROM schedule_runs "
                        "WHERE status NOT IN ('claimed', 'dispatching')",
                    )
                    == 4
                ),
                60,
                "4 runs sent",
            )
            after = scrape(port)
        finally:
            assert daemon.terminate() == 0
    responses = {
        labels[0][1]: value
        for (name, labels), value in after.items()
        if name == "scheduler_amc_http_responses_total"
    }
    assert responses["429"] == 5  # every attempt of the broken instance's create
    assert responses["200"] >= 3  # the healthy creates, then status polls
    refreshes = ("scheduler_amc_token_refreshes_total", (("outcome", "refreshed"),))
    assert after[refreshes] == 1  # one token, shared by every call
    circuit = ("scheduler_amc_circuit_state", (("instance_id", broken.instance_id),))
    assert after[circuit] == 2
    events = {event["event"] for event in daemon.events()}
    assert "amc.request" in events  # the 429s, logged at warning
    assert not events & {"amc.token_refreshed", "amc.execution_created", "run.finished"}
