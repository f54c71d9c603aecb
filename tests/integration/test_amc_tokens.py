"""Login-with-Amazon tokens against the fake: refresh before expiry, one refresh shared by
concurrent callers, and a revoked grant that fails clearly without hammering the endpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from scheduler_daemon.amc.credentials import AmcCredentials
from scheduler_daemon.amc.fake.server import DEFAULT_CLIENT_ID, FakeAmcServer
from scheduler_daemon.amc.fake.testing import fake_executor, fast_settings, run_request
from scheduler_daemon.amc.observer import NoObserver, TokenRefreshOutcome
from scheduler_daemon.amc.secret import Secret
from scheduler_daemon.clock import FakeClock, SystemClock
from scheduler_daemon.executors.amc import AmcExecutor, make_amc_executor
from scheduler_daemon.executors.base import ExecutionOutcome

NOW = SystemClock().now()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def amc(clock: FakeClock) -> Iterator[FakeAmcServer]:
    # One clock for both sides: tokens expire for the fake exactly when the client thinks so.
    with FakeAmcServer(clock=clock) as fake:
        fake.seed()
        yield fake


@pytest.fixture
def executor(amc: FakeAmcServer, clock: FakeClock) -> Iterator[AmcExecutor]:
    executor = fake_executor(amc, clock=clock)
    yield executor
    executor.close()


def submit_concurrently(executor: AmcExecutor, count: int) -> list[ExecutionOutcome]:
    barrier = threading.Barrier(count)

    def submit(_: int) -> ExecutionOutcome:
        barrier.wait(5)
        return executor.submit(run_request(NOW))

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(submit, range(count)))


def amc_statuses(amc: FakeAmcServer) -> list[int | None]:
    return [r.status for r in amc.requests() if r.endpoint != "token"]


def test_a_token_is_fetched_once_and_reused(amc: FakeAmcServer, executor: AmcExecutor) -> None:
    for _ in range(3):
        assert executor.submit(run_request(NOW)).status == "dispatched"
    assert len(amc.requests(endpoint="token")) == 1


def test_expiry_before_a_call_refreshes_once(
    amc: FakeAmcServer, executor: AmcExecutor, clock: FakeClock
) -> None:
    executor.submit(run_request(NOW))
    clock.advance(3600 - 30)  # inside the 60 s margin: refresh before AMC would refuse it
    for _ in range(3):
        assert executor.submit(run_request(NOW)).status == "dispatched"
    assert len(amc.requests(endpoint="token")) == 2
    assert set(amc_statuses(amc)) == {200}  # AMC never saw an expired token


def test_an_early_refresh_that_fails_keeps_the_token_until_it_expires(
    amc: FakeAmcServer, executor: AmcExecutor, clock: FakeClock
) -> None:
    executor.submit(run_request(NOW))
    clock.advance(3600 - 30)
    amc.faults.server_error(503, endpoint="token", times=None)
    assert executor.submit(run_request(NOW)).status == "dispatched"
    assert len(amc.requests(endpoint="token")) == 4  # the first, then 3 tries
    clock.advance(30)  # now it has expired: no token, no call
    outcome = executor.submit(run_request(NOW))
    assert outcome.error is not None
    assert outcome.error.startswith("Login with Amazon is unavailable: HTTP 503")


def test_concurrent_submits_share_one_refresh(
    amc: FakeAmcServer, executor: AmcExecutor, clock: FakeClock
) -> None:
    amc.faults.slow(0.2, endpoint="token")  # the others arrive while it is under way
    outcomes = submit_concurrently(executor, 8)
    assert [o.status for o in outcomes] == ["dispatched"] * 8
    assert len(amc.requests(endpoint="token")) == 1
    clock.advance(3600)
    amc.faults.slow(0.2, endpoint="token")
    outcomes = submit_concurrently(executor, 8)
    assert [o.status for o in outcomes] == ["dispatched"] * 8
    assert len(amc.requests(endpoint="token")) == 2
    assert len(amc.executions()) == 16


def test_concurrent_401s_share_one_refresh(amc: FakeAmcServer, executor: AmcExecutor) -> None:
    executor.submit(run_request(NOW))
    amc.state.expire_access_tokens()  # AMC now refuses the token every caller holds
    outcomes = submit_concurrently(executor, 8)
    assert [o.status for o in outcomes] == ["dispatched"] * 8
    assert len(amc.requests(endpoint="token")) == 2


def test_revoked_refresh_token_fails_clearly_and_is_not_hammered(
    amc: FakeAmcServer, executor: AmcExecutor, clock: FakeClock
) -> None:
    amc.revoke_refresh_token()
    outcomes = [executor.submit(run_request(NOW)) for _ in range(5)]
    outcomes += submit_concurrently(executor, 8)
    assert {o.status for o in outcomes} == {"failed"}
    first = outcomes[0].error
    assert first is not None
    assert first.startswith(
        "Login with Amazon refused the refresh token (invalid_grant: The request has an "
        "invalid grant parameter : refresh_token): it was revoked or is not valid; authorize "
        "the application again and update SCHEDULER_AMC_REFRESH_TOKEN"
    )
    assert all("(not retried for another" in (o.error or "") for o in outcomes[1:])
    assert len(amc.requests(endpoint="token")) == 1
    assert amc_statuses(amc) == []  # nothing reached AMC without a token
    clock.advance(300)  # the back-off is over: one more try, still refused
    assert executor.submit(run_request(NOW)).status == "failed"
    assert len(amc.requests(endpoint="token")) == 2


def test_wrong_client_credentials(amc: FakeAmcServer, clock: FakeClock) -> None:
    credentials = AmcCredentials(DEFAULT_CLIENT_ID, Secret("wrong"), amc.credentials.refresh_token)
    executor = make_amc_executor(credentials, fast_settings(amc), clock=clock)
    try:
        outcome = executor.submit(run_request(NOW))
    finally:
        executor.close()
    assert outcome.error == (
        "Login with Amazon refused the client credentials (invalid_client: Client "
        "authentication failed); check SCHEDULER_AMC_CLIENT_ID and SCHEDULER_AMC_CLIENT_SECRET"
    )


def test_token_endpoint_outage_is_retried_then_remembered_briefly(
    amc: FakeAmcServer, executor: AmcExecutor, clock: FakeClock
) -> None:
    amc.faults.server_error(503, endpoint="token", times=None)
    outcome = executor.submit(run_request(NOW))
    assert outcome.error == (
        "Login with Amazon is unavailable: HTTP 503: Http/1.1 Service Unavailable"
    )
    assert len(amc.requests(endpoint="token")) == 3
    assert executor.submit(run_request(NOW)).status == "failed"
    assert len(amc.requests(endpoint="token")) == 3  # within the 5 s back-off
    amc.faults.clear()
    clock.advance(5)
    assert executor.submit(run_request(NOW)).status == "dispatched"


def test_a_transient_token_error_is_retried(amc: FakeAmcServer, executor: AmcExecutor) -> None:
    amc.faults.server_error(500, endpoint="token")
    assert executor.submit(run_request(NOW)).status == "dispatched"
    assert [r.status for r in amc.requests(endpoint="token")] == [500, 200]


def test_each_request_for_a_token_is_told_to_the_observer(
    amc: FakeAmcServer, clock: FakeClock
) -> None:
    told: list[TokenRefreshOutcome] = []

    class Refreshes(NoObserver):
        def token_refresh(self, outcome: TokenRefreshOutcome) -> None:
            told.append(outcome)

    executor = fake_executor(amc, clock=clock, observer=Refreshes())
    try:
        for _ in range(2):  # one token for both
            assert executor.submit(run_request(NOW)).status == "dispatched"
        amc.revoke_refresh_token()
        clock.advance(3600)  # expired: refreshed, and refused
        assert executor.submit(run_request(NOW)).status == "failed"
        assert executor.submit(run_request(NOW)).status == "failed"  # refused from memory
    finally:
        executor.close()
    assert told == ["refreshed", "failed"]
    assert len(amc.requests(endpoint="token")) == 2
