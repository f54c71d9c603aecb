"""The AMC executor against the fake AMC over real HTTP: every fault of AMC_API.md §11.4
ends in the right outcome — retried and succeeded, failed with AMC's message, or left to the
run's recovery without a duplicate execution (the client never adopts one itself)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scheduler_daemon.amc.errors import AmcOutcomeUnknownError
from scheduler_daemon.amc.fake.server import DEFAULT_INSTANCE_ID, FakeAmcServer
from scheduler_daemon.amc.fake.state import Script
from scheduler_daemon.amc.fake.testing import fake_executor, run_request
from scheduler_daemon.executors.amc import AmcExecutor
from scheduler_daemon.executors.base import OutcomeUnknownError, RunRequest

SLOT = datetime(2026, 3, 9, 13, tzinfo=UTC)
BODY = {
    "workflowId": "daily-spend",
    "timeWindowType": "EXPLICIT",
    "timeWindowStart": "2026-03-08T00:00:00",
    "timeWindowEnd": "2026-03-09T00:00:00",
    "timeWindowTimeZone": "America/New_York",
    "parameterValues": {"country": "US"},
}
HEADERS = (
    "authorization",
    "amazon-advertising-api-clientid",
    "amazon-advertising-api-advertiserid",
    "amazon-advertising-api-marketplaceid",
)


@pytest.fixture
def amc() -> Iterator[FakeAmcServer]:
    with FakeAmcServer(pending_seconds=0.1, running_seconds=0.1) as fake:
        fake.seed(workflows={"daily-spend": ("country",)})
        yield fake


@pytest.fixture
def request_() -> RunRequest:
    return run_request(SLOT, body=dict(BODY), workflow_id="daily-spend")


def test_submit_sends_the_headers_and_the_body(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    outcome = executor.submit(request_)
    assert outcome.status == "dispatched"
    [execution] = amc.executions()
    assert outcome.execution_id == execution["workflowExecutionId"]
    [post] = amc.requests(endpoint="create")
    assert post.body == BODY
    assert post.path == f"/amc/reporting/{DEFAULT_INSTANCE_ID}/workflowExecutions"
    assert post.headers["authorization"] == "Bearer ***"
    assert post.headers["amazon-advertising-api-advertiserid"] == "ENTITY1AA1AA11AAA1"
    assert post.headers["amazon-advertising-api-marketplaceid"] == "ATVPDKIKX0DER"
    assert post.headers["content-type"] == "application/json"
    for logged in amc.requests():
        if logged.endpoint != "token":
            assert all(logged.headers.get(name) for name in HEADERS)


@pytest.mark.parametrize("retry_after", [0.2, None])
def test_429_is_retried_honouring_retry_after(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest, retry_after: float | None
) -> None:
    amc.faults.throttle(retry_after=retry_after, endpoint="create")
    outcome = executor.submit(request_)
    assert outcome.status == "dispatched"
    first, second = amc.requests(endpoint="create")
    assert (first.status, second.status) == (429, 200)
    if retry_after is not None:
        assert first.finished is not None
        assert second.started - first.finished >= retry_after
    assert len(amc.executions()) == 1
    assert amc.requests(endpoint="list") == []  # a 429 created nothing: no look-up needed


@pytest.mark.parametrize("fault", ["429", "500", "401"])
def test_a_retry_is_not_sent_once_the_daemon_may_have_lost_the_run(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest, fault: str
) -> None:
    """The daemon was frozen (or cut off from the database) while its call waited to retry:
    another daemon may own the run and have sent it. The retry is not sent; the run's
    recovery decides (AMC has no idempotency key: a late retry would be a 2nd execution)."""
    if fault == "429":
        amc.faults.throttle(retry_after=0.2, endpoint="create")
    elif fault == "401":  # the token refresh's one retry is an attempt too
        amc.faults.expired_token(endpoint="create")
    else:
        amc.faults.server_error(500, endpoint="create")
    answers = iter([True, False])
    with pytest.raises(OutcomeUnknownError, match="not sent: this daemon has not renewed"):
        executor.submit(replace(request_, may_send=lambda: next(answers)))
    assert len(amc.requests(endpoint="create")) == 1
    assert amc.executions() == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_create_looks_before_sending_again(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest, status: int
) -> None:
    amc.faults.server_error(status, endpoint="create")
    outcome = executor.submit(request_)
    assert outcome.status == "dispatched"
    assert [r.status for r in amc.requests(endpoint="create")] == [status, 200]
    assert len(amc.requests(endpoint="list")) == 1
    assert len(amc.executions()) == 1


def test_dropped_connection_before_work_is_sent_again_after_a_look(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    amc.faults.drop(endpoint="create")
    outcome = executor.submit(request_)
    assert outcome.status == "dispatched"
    assert len(amc.requests(endpoint="create")) == 2
    assert len(amc.requests(endpoint="list")) == 1
    assert len(amc.executions()) == 1


def test_post_accepted_but_response_lost_is_left_to_recovery_not_duplicated(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    amc.faults.lose_response(endpoint="create")
    with pytest.raises(OutcomeUnknownError, match="lists 1 execution"):
        executor.submit(request_)
    [execution] = amc.executions()
    assert len(amc.requests(endpoint="create")) == 1
    # What the run's recovery is given to decide from.
    found = executor.find_started(request_, SLOT - timedelta(minutes=1))
    assert [f.execution_id for f in found] == [execution["workflowExecutionId"]]


def test_slow_response_past_the_timeout_is_left_to_recovery(
    amc: FakeAmcServer, request_: RunRequest
) -> None:
    executor = fake_executor(amc, request_timeout=0.3)
    try:
        amc.faults.slow(1.0, endpoint="create")
        with pytest.raises(OutcomeUnknownError):
            executor.submit(request_)
    finally:
        executor.close()
    assert len(amc.executions()) == 1
    assert len(amc.requests(endpoint="create")) == 1


def test_an_older_identical_execution_is_never_adopted_by_the_client(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    """Another run's execution of the same request, a moment older, is no answer to a lost
    response: the call ends unknown and recovery, which knows who holds what, decides."""
    older = executor.submit(request_)
    amc.faults.lose_response(endpoint="create")
    with pytest.raises(OutcomeUnknownError, match="lists 2 execution"):
        executor.submit(request_)
    assert len(amc.requests(endpoint="create")) == 2
    assert older.execution_id in {e["workflowExecutionId"] for e in amc.executions()}


def test_a_lost_response_with_amc_unreachable_is_not_sent_again(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    amc.faults.lose_response(endpoint="create")
    amc.faults.server_error(500, endpoint="list", times=None)
    with pytest.raises(
        AmcOutcomeUnknownError, match="not sent again, to avoid a duplicate"
    ) as caught:
        executor.submit(request_)
    assert isinstance(
        caught.value, OutcomeUnknownError
    )  # the dispatcher's signal to recover the run
    assert len(amc.requests(endpoint="create")) == 1
    assert len(amc.executions()) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_get_is_retried(amc: FakeAmcServer, executor: AmcExecutor, status: int) -> None:
    outcome = executor.submit(run_request(SLOT, body=dict(BODY)))
    assert outcome.execution_id is not None
    amc.faults.server_error(status, endpoint="get", times=2)
    status_now = executor.get_status(
        DEFAULT_INSTANCE_ID, "ENTITY1AA1AA11AAA1", "ATVPDKIKX0DER", outcome.execution_id
    )
    assert status_now.status in ("pending", "running", "succeeded")
    assert [r.status for r in amc.requests(endpoint="get")] == [status, status, 200]


def test_persistent_5xx_gives_up_with_the_last_reason(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    amc.faults.server_error(503, endpoint="create", times=None)
    outcome = executor.submit(request_)
    assert outcome.status == "failed"
    assert outcome.error == (
        f"AMC create execution of 'daily-spend' on {DEFAULT_INSTANCE_ID}: gave up after 4 "
        "attempts; last: HTTP 503: Http/1.1 Service Unavailable"
    )
    assert len(amc.requests(endpoint="create")) == 4
    assert len(amc.requests(endpoint="list")) == 4  # every ambiguous POST was looked for
    assert amc.executions() == []


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (BODY | {"parameterValues": {"region": "EU"}}, "Was unable to compile workflow daily-spend because it was found to be invalid: Filter operation filter_operation referenced an undeclared parameter region."),
        (BODY | {"workflowId": "nope"}, "Workflow with ID nope does not exist"),
        (BODY | {"timeWindowStart": "2026-03-08T00:00:00Z"}, "Invalid timeWindowStart '2026-03-08T00:00:00Z': expected format yyyy-MM-dd'T'HH:mm:ss"),
    ],
)  # fmt: skip
def test_400_fails_with_amcs_details_and_no_retry(
    amc: FakeAmcServer, executor: AmcExecutor, body: dict[str, object], details: str
) -> None:
    outcome = executor.submit(run_request(SLOT, body=body))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.endswith(f"AMC refused the request (HTTP 400): {details}")
    assert len(amc.requests(endpoint="create")) == 1


def test_expired_token_401_refreshes_once_and_retries(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    executor.submit(run_request(SLOT, body=dict(BODY)))  # a first token
    amc.faults.expired_token(401, endpoint="create")
    outcome = executor.submit(request_)
    assert outcome.status == "dispatched"
    assert len(amc.requests(endpoint="token")) == 2
    assert [r.status for r in amc.requests(endpoint="create")][-2:] == [401, 200]


@pytest.mark.parametrize("status", [401, 403])
def test_a_second_refusal_fails_instead_of_looping(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest, status: int
) -> None:
    amc.faults.expired_token(status, endpoint="create", times=None)
    outcome = executor.submit(request_)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert f"AMC refused the request (HTTP {status})" in outcome.error
    assert "after one token refresh" in outcome.error
    assert [r.status for r in amc.requests(endpoint="create")] == [status, status]
    assert len(amc.requests(endpoint="token")) == 2


def test_a_403_on_a_token_fresh_from_a_refusal_is_not_refreshed_again(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    amc.faults.expired_token(403, endpoint="create", times=None)
    for _ in range(3):
        assert executor.submit(request_).status == "failed"
    # One refresh for the first 403; the token it gave cannot be too old for the next ones.
    assert len(amc.requests(endpoint="token")) == 2
    assert len(amc.requests(endpoint="create")) == 4


def test_retry_after_beyond_the_limit_fails_at_once(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    amc.faults.throttle(retry_after=3600, endpoint="create")
    outcome = executor.submit(request_)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "AMC asks to wait 3600 s (Retry-After), longer than the 5 s limit" in outcome.error
    assert len(amc.requests(endpoint="create")) == 1


def test_wrapped_responses_are_understood(amc: FakeAmcServer, executor: AmcExecutor) -> None:
    amc.state.settings.wrap_responses = True
    outcome = executor.submit(run_request(SLOT, body=dict(BODY)))
    assert outcome.status == "dispatched"
    assert outcome.execution_id is not None
    status = executor.get_status(
        DEFAULT_INSTANCE_ID, "ENTITY1AA1AA11AAA1", "ATVPDKIKX0DER", outcome.execution_id
    )
    assert status.execution_id == outcome.execution_id


def test_a_response_without_an_execution_id_fails_clearly(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    amc.faults.add("status", endpoint="create", status=200, body={"status": "PENDING"})
    outcome = executor.submit(request_)
    assert outcome.status == "failed"
    assert outcome.error == (
        f"AMC create execution of 'daily-spend' on {DEFAULT_INSTANCE_ID}: AMC's response has "
        "no workflowExecutionId (got ['status'])"
    )


def test_a_non_json_success_fails_clearly(
    amc: FakeAmcServer, executor: AmcExecutor, request_: RunRequest
) -> None:
    amc.faults.add("status", endpoint="create", status=200, body="<html>ok</html>")
    outcome = executor.submit(request_)
    assert outcome.error is not None
    assert outcome.error.endswith("AMC answered HTTP 200 with a body that is not JSON")


def test_amc_unreachable_fails_after_the_retries(request_: RunRequest) -> None:
    with FakeAmcServer() as amc:
        pass  # stopped: its port now refuses connections
    executor = fake_executor_for_stopped(amc)
    try:
        outcome = executor.submit(request_)
    finally:
        executor.close()
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "Login with Amazon is unavailable: ConnectError" in outcome.error


def fake_executor_for_stopped(amc: FakeAmcServer) -> AmcExecutor:
    from scheduler_daemon.amc.fake.testing import FAST_RETRY
    from scheduler_daemon.amc.settings import AmcSettings
    from scheduler_daemon.executors.amc import make_amc_executor

    return make_amc_executor(
        amc.credentials,
        AmcSettings(
            api_url="http://127.0.0.1:9",
            token_url="http://127.0.0.1:9/auth/o2/token",
            retry=FAST_RETRY,
            token_retry_wait=0.01,
        ),
    )


def test_a_request_without_a_body_sends_its_workflow_id(
    amc: FakeAmcServer, executor: AmcExecutor
) -> None:
    request = run_request(SLOT, workflow_id="daily-spend")
    object.__setattr__(request, "body", {})
    assert executor.submit(request).status == "dispatched"
    assert amc.requests(endpoint="create")[0].body == {"workflowId": "daily-spend"}


def test_cancel(amc: FakeAmcServer, executor: AmcExecutor) -> None:
    amc.script("daily-spend", Script(stuck_in="RUNNING"))
    outcome = executor.submit(run_request(SLOT, body=dict(BODY)))
    assert outcome.execution_id is not None
    ids = (DEFAULT_INSTANCE_ID, "ENTITY1AA1AA11AAA1", "ATVPDKIKX0DER", outcome.execution_id)
    assert executor.cancel(*ids) is True
    assert executor.get_status(*ids).status == "cancelled"
    assert executor.cancel(*ids) is False  # already finished: AMC's 400 is not an error
