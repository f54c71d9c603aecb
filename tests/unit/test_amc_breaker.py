"""The per-instance circuit breaker, on a fake clock, and what it tells its observer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler_daemon.amc.breaker import CircuitBreaker, CircuitBreakers
from scheduler_daemon.amc.errors import CircuitOpenError
from scheduler_daemon.amc.observer import CircuitState, TokenRefreshOutcome
from scheduler_daemon.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, tzinfo=UTC))


def fail(breaker: CircuitBreaker, reason: str = "HTTP 500") -> None:
    with breaker.guard() as call:
        call.failure(reason)


def succeed(breaker: CircuitBreaker) -> None:
    with breaker.guard() as call:
        call.success()


def test_opens_after_n_consecutive_failures_and_fails_fast(clock: FakeClock) -> None:
    breaker = CircuitBreaker("amc1alal2aa", clock.monotonic, failure_threshold=3, cool_down=60)
    fail(breaker)
    fail(breaker)
    succeed(breaker)  # a success resets the count
    for _ in range(3):
        fail(breaker)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError) as caught:
        succeed(breaker)
    assert str(caught.value) == (
        "AMC instance amc1alal2aa: circuit open after 3 consecutive failures; "
        "next attempt in 60 s; last failure: HTTP 500"
    )


def test_half_open_lets_one_probe_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker("amc1alal2aa", clock.monotonic, failure_threshold=1, cool_down=30)
    fail(breaker)
    clock.advance(30)
    assert breaker.state == "half_open"
    with breaker.guard() as probe:
        with pytest.raises(CircuitOpenError, match="a probe call is in flight"):
            succeed(breaker)
        probe.failure("still down")
    assert str(breaker.state) == "open"  # a failed probe re-opens at once
    clock.advance(30)
    succeed(breaker)
    assert str(breaker.state) == "closed"


def test_a_neutral_probe_releases_without_deciding(clock: FakeClock) -> None:
    breaker = CircuitBreaker("amc1alal2aa", clock.monotonic, failure_threshold=1, cool_down=5)
    fail(breaker)
    clock.advance(5)
    with breaker.guard():
        pass  # e.g. no token: says nothing about the instance
    assert breaker.state == "half_open"
    succeed(breaker)
    assert str(breaker.state) == "closed"


class Transitions:
    """An AmcObserver that keeps the breakers' changes of state."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, CircuitState]] = []

    def response(self, status: str) -> None:
        raise AssertionError("the breaker sends no request")

    def token_refresh(self, outcome: TokenRefreshOutcome) -> None:
        raise AssertionError("the breaker fetches no token")

    def circuit(self, instance_id: str, state: CircuitState) -> None:
        self.seen.append((instance_id, state))


def test_every_change_of_state_is_told_to_the_observer(clock: FakeClock) -> None:
    observer = Transitions()
    breakers = CircuitBreakers(
        clock.monotonic, failure_threshold=2, cool_down=10, observer=observer
    )
    a, b = breakers("a"), breakers("b")
    fail(a)
    succeed(a)  # closed all along: nothing to tell
    fail(a)
    fail(a)
    fail(b)
    clock.advance(10)
    fail(a)  # the probe fails
    clock.advance(10)
    succeed(a)
    assert observer.seen == [
        ("a", "open"),
        ("a", "half_open"),
        ("a", "open"),
        ("a", "half_open"),
        ("a", "closed"),
    ]
