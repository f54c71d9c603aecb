"""The amc executor end to end against the fake: lifecycle and status, finding what a call
started, the circuit breaker, no in-flight cap of its own (the daemons' gate is the cap),
identical requests for manual and scheduled runs, what it tells the metrics, and no secret
anywhere."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture, capture_logs

from scheduler_daemon.amc.errors import AmcError, AmcRejectedError
from scheduler_daemon.amc.fake.server import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_INSTANCE_ID,
    DEFAULT_MARKETPLACE_ID,
    DEFAULT_REFRESH_TOKEN,
    FakeAmcServer,
)
from scheduler_daemon.amc.fake.state import Script
from scheduler_daemon.amc.fake.testing import fake_executor, run_request
from scheduler_daemon.clock import FakeClock, SystemClock
from scheduler_daemon.domain import ClaimedRun, RunContext
from scheduler_daemon.executors.amc import AmcExecutor
from scheduler_daemon.executors.base import ExecutionOutcome
from scheduler_daemon.metrics import Metrics
from scheduler_daemon.resolve import resolve

NOW = SystemClock().now()
IDS = (DEFAULT_INSTANCE_ID, DEFAULT_ACCOUNT_ID, DEFAULT_MARKETPLACE_ID)
OTHER = ("amc0other01", "ENTITYOTHER", "A1PA6795UKMFR9")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def amc(clock: FakeClock) -> Iterator[FakeAmcServer]:
    with FakeAmcServer(clock=clock, pending_seconds=0.1, running_seconds=0.2) as fake:
        fake.seed(workflows={"wf": ("country",), "failing": (), "odd": ()})
        fake.seed(*OTHER, workflows={"wf": ("country",)})
        yield fake


def body(**values: Any) -> dict[str, Any]:
    return {"workflowId": "wf", "parameterValues": {"country": "US"}} | values


def test_status_follows_the_lifecycle(
    amc: FakeAmcServer, executor: AmcExecutor, clock: FakeClock
) -> None:
    outcome = executor.submit(run_request(NOW, body=body()))
    assert outcome.execution_id is not None
    seen = []
    for _ in range(3):
        seen.append(executor.get_status(*IDS, outcome.execution_id).status)
        clock.advance(0.15)
    assert seen == ["pending", "running", "succeeded"]


@pytest.mark.parametrize(
    ("script", "status", "raw", "reason"),
    [
        (Script("FAILED", "Object 'x' not found"), "failed", "FAILED", "Object 'x' not found"),
        (Script("REJECTED", "privacy"), "failed", "REJECTED", "privacy"),
        (Script("SOMETHING_NEW"), "running", "SOMETHING_NEW", None),
    ],
)
def test_final_statuses(
    amc: FakeAmcServer,
    executor: AmcExecutor,
    clock: FakeClock,
    script: Script,
    status: str,
    raw: str,
    reason: str | None,
) -> None:
    amc.script("odd", script)
    outcome = executor.submit(run_request(NOW, body={"workflowId": "odd"}))
    assert outcome.execution_id is not None
    clock.advance(1)
    found = executor.get_status(*IDS, outcome.execution_id)
    assert (found.status, found.raw_status, found.reason) == (status, raw, reason)


def test_unknown_execution(executor: AmcExecutor) -> None:
    with pytest.raises(AmcRejectedError, match=r"HTTP 404\): Workflow execution with ID"):
        executor.get_status(*IDS, str(uuid.uuid4()))


def test_the_fake_queues_beyond_ten_running_per_instance(
    amc: FakeAmcServer, executor: AmcExecutor, clock: FakeClock
) -> None:
    for _ in range(12):
        executor.submit(run_request(NOW, body=body()))
    clock.advance(0.1)
    statuses = [e["status"] for e in amc.executions(instance_id=DEFAULT_INSTANCE_ID)]
    assert (statuses.count("RUNNING"), statuses.count("PENDING")) == (10, 2)
    clock.advance(0.2)
    statuses = [e["status"] for e in amc.executions(instance_id=DEFAULT_INSTANCE_ID)]
    assert (statuses.count("SUCCEEDED"), statuses.count("RUNNING")) == (10, 2)


def test_find_started_lists_the_executions_of_the_same_request_since_a_moment(
    amc: FakeAmcServer, executor: AmcExecutor, clock: FakeClock
) -> None:
    window = {
        "timeWindowType": "EXPLICIT",
        "timeWindowStart": "2026-03-08T00:00:00",
        "timeWindowEnd": "2026-03-09T00:00:00",
        "timeWindowTimeZone": "America/New_York",
    }
    request = run_request(NOW, body=body(**window))
    since = clock.now() - timedelta(seconds=1)
    assert executor.find_started(request, since) == []  # nothing started yet
    first = executor.submit(request)
    clock.advance(1)
    second = executor.submit(request)
    found = executor.find_started(request, since)
    assert [f.execution_id for f in found] == [first.execution_id, second.execution_id]
    assert all(f.created_at is not None and f.created_at >= since for f in found)
    other_window = body(**window | {"timeWindowStart": "2026-03-07T00:00:00"})
    assert executor.find_started(run_request(NOW, body=other_window), since) == []
    other_values = body(**window, parameterValues={"country": "DE"})
    assert executor.find_started(run_request(NOW, body=other_values), since) == []
    later = clock.now() + timedelta(hours=1)
    assert executor.find_started(request, later) == []  # created before that instant


def test_find_started_raises_when_amc_cannot_be_asked(
    amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    amc.faults.server_error(500, endpoint="list", times=None)
    with pytest.raises(AmcError, match="gave up after 4 attempts"):
        executor.find_started(run_request(NOW, body=body()), NOW)


def test_circuit_breaker_isolates_a_failing_instance(amc: FakeAmcServer) -> None:
    breaker_clock = FakeClock(NOW)
    executor = fake_executor(amc, clock=breaker_clock, failure_threshold=2, cool_down=30)
    broken = amc.faults.server_error(
        500, endpoint="create", instance_id=DEFAULT_INSTANCE_ID, times=None
    )
    try:
        healthy = run_request(
            NOW, body=body(), instance_id=OTHER[0], entity_id=OTHER[1], marketplace_id=OTHER[2]
        )
        failing = run_request(NOW, body=body())
        for _ in range(2):
            assert "gave up after 4 attempts" in (executor.submit(failing).error or "")
            assert executor.submit(healthy).status == "dispatched"
        sent = len(amc.requests(instance_id=DEFAULT_INSTANCE_ID))
        outcome = executor.submit(failing)
        assert outcome.error is not None
        assert outcome.error.startswith(
            f"AMC instance {DEFAULT_INSTANCE_ID}: circuit open after 2 consecutive failures; "
            "next attempt in 30 s; last failure: AMC create execution of 'wf' on "
            f"{DEFAULT_INSTANCE_ID}: gave up after 4 attempts; last: HTTP 500"
        )
        assert len(amc.requests(instance_id=DEFAULT_INSTANCE_ID)) == sent  # failed fast
        assert executor.submit(healthy).status == "dispatched"
        amc.faults.remove(broken)
        breaker_clock.advance(30)  # half-open: the next call probes, succeeds, closes
        assert executor.submit(failing).status == "dispatched"
        assert executor.submit(failing).status == "dispatched"
    finally:
        executor.close()


def test_the_executor_alone_has_no_in_flight_cap(amc: FakeAmcServer) -> None:
    """``max_in_flight`` is the daemons' gate's cap (tests/integration/test_instance_gate.py);
    the client never waits for a slot of its own."""
    amc.latency = 0.5  # long enough for all the requests to overlap
    executor = fake_executor(amc, max_in_flight=2)
    executor.submit(run_request(NOW, body=body()))  # the token, fetched once beforehand
    barrier = threading.Barrier(12)

    def submit(_: int) -> ExecutionOutcome:
        barrier.wait(5)
        return executor.submit(run_request(NOW, body=body()))

    try:
        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(submit, range(12)))
    finally:
        executor.close()
    assert [o.status for o in outcomes] == ["dispatched"] * 12
    assert amc.max_in_flight(DEFAULT_INSTANCE_ID) > 2
    assert len(amc.executions(instance_id=DEFAULT_INSTANCE_ID)) == 13


def test_metrics_are_told_directly_not_through_the_log(amc: FakeAmcServer) -> None:
    """With the log at warning there is no debug or info event that could feed a metric (a
    2xx answer, a token refresh, a breaker half-open or closed): the metrics still move."""
    metrics = Metrics()
    breaker_clock = FakeClock(NOW)
    executor = fake_executor(
        amc, clock=breaker_clock, observer=metrics, failure_threshold=1, cool_down=30
    )
    logged = LogCapture()
    # The daemon's level filter, without configure_logging's logger cache, which would keep
    # the AMC modules' loggers writing here after the test.
    structlog.configure(
        processors=[logged],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=False,
    )
    try:
        first = executor.submit(run_request(NOW, body=body()))  # a token, then a 200
        assert first.execution_id is not None
        amc.faults.drop(endpoint="get")  # no answer, then a 200
        executor.get_status(*IDS, first.execution_id)
        throttled = amc.faults.throttle(retry_after=0, endpoint="create", times=None)
        assert "gave up after 4 attempts" in (executor.submit(run_request(NOW)).error or "")
        assert sample(metrics, "scheduler_amc_circuit_state", instance_id=IDS[0]) == 2
        amc.faults.remove(throttled)
        breaker_clock.advance(30)  # half-open: the next call probes, succeeds, closes
        assert executor.submit(run_request(NOW, body=body())).status == "dispatched"
        assert sample(metrics, "scheduler_amc_circuit_state", instance_id=IDS[0]) == 0
        amc.revoke_refresh_token()
        amc.faults.expired_token()  # a 401; the refresh it asks for is refused
        assert "refused the refresh token" in (executor.submit(run_request(NOW)).error or "")
    finally:
        executor.close()
        structlog.reset_defaults()
    responses = {
        status: sample(metrics, "scheduler_amc_http_responses_total", status=status)
        for status in ("200", "429", "401", "error")
    }
    assert responses == {"200": 3, "429": 4, "401": 1, "error": 1}
    assert sample(metrics, "scheduler_amc_token_refreshes_total", outcome="refreshed") == 1
    assert sample(metrics, "scheduler_amc_token_refreshes_total", outcome="failed") == 1
    events = [entry["event"] for entry in logged.entries]
    assert "amc.token_refreshed" not in events
    assert "amc.circuit_closed" not in events
    assert events.count("amc.request") == 4 + 1 + 1  # only the failed ones, at warning


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_manual_and_scheduled_runs_of_one_slot_send_identical_requests(
    amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    slot = datetime(2026, 3, 9, 13, tzinfo=UTC)
    workflow_id = uuid.uuid4()
    context = RunContext(
        workflow_id=workflow_id,
        workflow_name="spend",
        amc_workflow_id="wf",
        workflow_parameters={"time_window": {"kind": "previous_days", "days": 1}},
        schedule_parameters={"country": "US"},
        timezone="America/New_York",
        amc_instance_id=DEFAULT_INSTANCE_ID,
        amc_entity_id=DEFAULT_ACCOUNT_ID,
        marketplace_id=DEFAULT_MARKETPLACE_ID,
        region=None,
    )
    for trigger in ("scheduled", "manual"):
        run = ClaimedRun(
            id=uuid.uuid4(),
            schedule_id=uuid.uuid4(),
            workflow_id=workflow_id,
            scheduled_for=slot,
            trigger=trigger,
            status="claimed",
            fencing_token=1,
            correlation_id=uuid.uuid4(),
        )
        assert executor.submit(resolve(run, context)).status == "dispatched"
    scheduled, manual = amc.requests(endpoint="create")
    assert scheduled.body == manual.body
    assert scheduled.body["timeWindowStart"] == "2026-03-08T00:00:00"


def test_no_secret_appears_in_logs_errors_or_outcomes(
    amc: FakeAmcServer, executor: AmcExecutor, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = [repr(executor), repr(executor.client), repr(amc.credentials)]
    with capture_logs() as logs:
        assert executor.submit(run_request(NOW, body=body())).status == "dispatched"
        # AMC echoes the Authorization header back in an error...
        amc.faults.add(
            "status",
            endpoint="create",
            status=400,
            body={"code": "400", "details": "bad {authorization}"},
        )
        texts.append(str(executor.submit(run_request(NOW, body=body())).error))
        # ...a 401 makes the client refresh, and Login with Amazon echoes the credentials.
        amc.faults.expired_token(401, endpoint="create")
        amc.faults.add(
            "status",
            endpoint="token",
            status=400,
            body={
                "error": "invalid_grant",
                "error_description": "{refresh_token} / {client_secret}",
            },
        )
        texts.append(str(executor.submit(run_request(NOW, body=body())).error))
        amc.faults.server_error(500, endpoint="list", times=None)
        try:
            executor.find_started(run_request(NOW, body=body()), NOW)
        except AmcError as exc:
            texts.append(str(exc))
    assert texts[3].endswith("(HTTP 400): bad Bearer ***")
    assert "invalid_grant: *** / ***" in texts[4]
    texts += [repr(entry) for entry in logs] + [caplog.text]
    texts += [repr(r) for r in amc.requests()]
    secrets = [DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, *amc.state.issued_tokens]
    assert len(secrets) >= 3
    for text in texts:
        for secret in secrets:
            assert secret not in text
        assert "Atza|" not in text
        assert "Atzr|" not in text
