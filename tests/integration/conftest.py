from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from scheduler_daemon.amc.fake.server import FakeAmcServer
from scheduler_daemon.amc.fake.testing import fake_executor
from scheduler_daemon.cli.run import open_scheduler
from scheduler_daemon.clock import FakeClock
from scheduler_daemon.config import Settings
from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.executors import ExecutionOutcome, Executor, NoopExecutor, RunRequest
from scheduler_daemon.executors.amc import AmcExecutor
from scheduler_daemon.executors.base import FoundExecution


class FailingExecutor:
    name = "failing"
    in_process = False

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        return ExecutionOutcome("failed", error="AMC said no")

    def find_started(self, request: RunRequest, since: datetime) -> Sequence[FoundExecution]:
        return ()


class GatedExecutor:
    """Blocks inside submit until the test opens the gate; counts the calls."""

    name = "gated"
    in_process = False

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[RunRequest] = []

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        self.calls.append(request)
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return ExecutionOutcome("succeeded", execution_id=f"gated-{request.run_id}")

    def find_started(self, request: RunRequest, since: datetime) -> Sequence[FoundExecution]:
        return ()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))


@pytest.fixture
def make_scheduler(engine: Engine, clock: FakeClock) -> Iterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []
    with contextlib.ExitStack() as stack:

        def make(
            executor: Executor | None = None, worker_id: str = "w1", **settings: Any
        ) -> Scheduler:
            scheduler = stack.enter_context(
                open_scheduler(
                    engine,
                    Settings(**{"worker_id": worker_id, "concurrency": 4, **settings}),
                    executor or NoopExecutor(),
                    clock,
                    hostname="test-host",
                )
            )
            scheduler.start()
            made.append(scheduler)
            return scheduler

        yield make
        for scheduler in made:
            scheduler.stop(grace=0)  # also lets go of its session lock's connection


@pytest.fixture
def executor(amc: FakeAmcServer) -> Iterator[AmcExecutor]:
    """The amc executor on the requesting module's own ``amc`` fake, with fast retries."""
    executor = fake_executor(amc)
    yield executor
    executor.close()
