"""The one small interface every executor implements."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from scheduler_daemon.errors import OutcomeUnknownError

__all__ = ["ExecutionOutcome", "Executor", "OutcomeUnknownError", "RunRequest"]


@dataclass(frozen=True)
class RunRequest:
    """A run, resolved to everything an executor needs to start it."""

    run_id: uuid.UUID
    schedule_id: uuid.UUID
    workflow_id: uuid.UUID
    scheduled_for: datetime
    trigger: str
    correlation_id: uuid.UUID
    amc_workflow_id: str
    amc_instance_id: str
    amc_entity_id: str
    marketplace_id: str | None
    parameters: dict[str, Any] = field(default_factory=dict)
    # The AMC create-execution body, JSON-ready; store it on the run row as sent.
    body: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    workflow_name: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class ExecutionOutcome:
    """What came of a submission. ``dispatched`` means accepted and still running remotely."""

    status: Literal["succeeded", "failed", "dispatched"]
    execution_id: str | None = None
    error: str | None = None
    # True when the execution was found rather than started by this call (a lost response
    # or a recovered run): worth a line in the run's history.
    adopted: bool = False


class Executor(Protocol):
    """Turns a resolved run into an external execution.

    ``submit`` is called at most once per attempt and must not raise for an outcome it can
    describe: a refusal is ``ExecutionOutcome("failed", error=...)``; it raises
    OutcomeUnknownError when it cannot know whether it started anything. ``reconcile`` is called
    for a run a dead worker left mid-call: it returns the outcome of an execution that call
    did start, or None when it started nothing (the run is then submitted again); it raises
    when it cannot find out (the run then waits for a later recovery).

    An executor may also say how long a submit usually takes, ``expected_call_seconds``: the
    dispatcher packs quick calls into few threads and spreads slow ones over the pool, and
    without it treats calls as slow until it has timed some.
    """

    name: str

    def submit(self, request: RunRequest) -> ExecutionOutcome: ...

    def reconcile(self, request: RunRequest) -> ExecutionOutcome | None: ...
