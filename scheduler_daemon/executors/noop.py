"""An executor that records only: for demos, tests and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from scheduler_daemon.executors.base import ExecutionOutcome, FoundExecution, RunRequest


class NoopExecutor:
    """``delay`` stands in for an API's latency in demos, benchmarks and crash tests."""

    name = "noop"

    def __init__(self, delay: float = 0.0) -> None:
        self._delay = delay

    @property
    def in_process(self) -> bool:
        # With a delay it stands in for a remote API, and is spread over the threads as one.
        return not self._delay

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        if self._delay:
            time.sleep(self._delay)
        # Nothing was started anywhere: no execution id, so no execution (lineage) row.
        return ExecutionOutcome("succeeded")

    def find_started(self, request: RunRequest, since: datetime) -> Sequence[FoundExecution]:
        # Nothing leaves the process, so a call cut short started nothing: submit again.
        return ()
