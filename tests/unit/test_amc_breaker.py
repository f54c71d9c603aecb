"""The per-instance circuit breaker and the in-flight cap, on a fake clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from scheduler_daemon.amc.breaker import CircuitBreaker
from scheduler_daemon.amc.errors import CircuitOpenError, InstanceBusyError
from scheduler_daemon.amc.slots import InstanceSlots
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


def test_slots_cap_and_bounded_wait() -> None:
    slots = InstanceSlots(limit=2, wait=0.05)
    with slots.hold("a"), slots.hold("a"):
        with (
            pytest.raises(
                InstanceBusyError,
                match=r"AMC instance a: 2 requests already in flight and none finished within 0\.05 s",
            ),
            slots.hold("a"),
        ):
            pass  # pragma: no cover
        with slots.hold("b"):  # another instance is not affected
            pass
    with slots.hold("a"):
        pass


def test_slots_wait_for_a_free_one() -> None:
    slots = InstanceSlots(limit=1, wait=5)
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with slots.hold("a"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(5)
    threading.Timer(0.05, release.set).start()
    with slots.hold("a"):
        pass
    thread.join(5)
