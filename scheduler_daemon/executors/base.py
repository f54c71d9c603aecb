"""The one small interface every executor implements."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from scheduler_daemon.errors import OutcomeUnknownError
from scheduler_daemon.recovery import FoundExecution

__all__ = ["ExecutionOutcome", "Executor", "FoundExecution", "OutcomeUnknownError", "RunRequest"]


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
    # Asked by a remote executor before each attempt of its call: False once this daemon can
    # no longer show that it owns the run (docs/semantics.md, "Recovery and fencing").
    may_send: Callable[[], bool] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ExecutionOutcome:
    """What came of a submission. ``dispatched`` means accepted and still running remotely."""

    status: Literal["succeeded", "failed", "dispatched"]
    execution_id: str | None = None
    error: str | None = None


class Executor(Protocol):
    """Turns a resolved run into an external execution.

    ``submit`` is called at most once per attempt and must not raise for an outcome it can
    describe: a refusal is ``ExecutionOutcome("failed", error=...)``; it raises
    OutcomeUnknownError when it cannot know whether it started anything. ``find_started`` is
    called for a run whose call was cut short (its daemon died, or the answer was lost): it
    lists every execution that a call with this request could have started since ``since``,
    and raises when it cannot find out (the run then waits for a later recovery). Which of
    them, if any, the run adopts is decided by the daemon (scheduler_daemon.recovery), which
    knows what other runs hold; an executor never picks one.

    ``in_process`` says whether a submit is Python work in this process (``noop``) rather
    than a wait on something remote: the dispatcher sends in-process calls in full chunks, and
    spreads remote ones over its threads (``scheduler_daemon.daemon.chunking``).
    """

    name: str

    @property
    def in_process(self) -> bool: ...

    def submit(self, request: RunRequest) -> ExecutionOutcome: ...

    def find_started(self, request: RunRequest, since: datetime) -> Sequence[FoundExecution]: ...
