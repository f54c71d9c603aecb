"""An executor that records only: for demos, tests and benchmarks."""

from __future__ import annotations

from scheduler_daemon.executors.base import ExecutionOutcome, RunRequest


class NoopExecutor:
    name = "noop"

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        return ExecutionOutcome("succeeded", execution_id=f"noop-{request.run_id}")

    def reconcile(self, request: RunRequest) -> ExecutionOutcome | None:
        # Nothing leaves the process, so a call cut short started nothing: submit again.
        return None
