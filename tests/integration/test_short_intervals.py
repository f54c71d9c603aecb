"""Short intervals keep time: a schedule every 5 s fires every 5 s, not later each time.

The daemon's loop is played here with the injected clock: tick, let the dispatches end, and
either tick again at once (the loop was woken) or move the clock on by the sleep the tick
asked for. The executor holds each call until the tick has computed that sleep, as a call
in flight over the network does, so the schedule is still locked when the wake-up is chosen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from scheduler_daemon.clock import FakeClock
from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.executors.base import ExecutionOutcome, FoundExecution, RunRequest
from tests.helpers import Rows

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SLOTS = 20


class HeldExecutor:
    """Records each slot's lateness on the injected clock; a call returns only once the
    test lets it (after the tick that dispatched it has returned)."""

    name = "held"
    in_process = False

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.lateness: dict[str, list[float]] = {}
        self.release = threading.Semaphore(0)
        self.calls = 0

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        late = (self.clock.now() - request.scheduled_for).total_seconds()
        self.lateness.setdefault(str(request.schedule_id), []).append(late)
        assert self.release.acquire(timeout=20), "the test never let the call end"
        return ExecutionOutcome("succeeded")

    def find_started(self, request: RunRequest, since: datetime) -> list[FoundExecution]:
        return []


def play_loop(
    scheduler: Scheduler, executor: HeldExecutor, clock: FakeClock, until: datetime
) -> None:
    while clock.now() < until:
        result = scheduler.tick()
        for _ in range(result.claimed):
            executor.release.release()
        assert scheduler.wait_idle(20)
        if scheduler.wake.is_set():  # a notification or a freed schedule: tick again now
            scheduler.wake.clear()
            continue
        clock.advance(max(result.sleep_for, 0.001))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


@pytest.mark.parametrize("schedules", [1, 10])
def test_every_5_seconds_each_slot_is_claimed_on_time(
    rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler], schedules: int
) -> None:
    """Written by hand in SQL (the CLI refuses intervals under a minute), and run as written."""
    workflow_id = rows.workflow()
    for n in range(schedules):
        anchor = T0 + timedelta(seconds=n * 0.5)  # ten phases within the 5 s
        rows.schedule(
            workflow_id,
            interval_seconds=5,
            interval_anchor=anchor,
            enabled=True,
            next_run_at=anchor + timedelta(seconds=5),
        )
    clock.set(T0)
    executor = HeldExecutor(clock)
    scheduler = make_scheduler(executor)
    play_loop(scheduler, executor, clock, T0 + timedelta(seconds=5 * SLOTS + 4.9))
    assert len(executor.lateness) == schedules
    for lateness in executor.lateness.values():
        assert len(lateness) == SLOTS  # consecutive: none missed
    every = [late for lateness in executor.lateness.values() for late in lateness]
    assert p99(every) <= 1.0, sorted(every)[-5:]
