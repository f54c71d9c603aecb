"""The ``amc`` executor: starts AMC workflow executions and finds them again.

``submit`` answers ``dispatched`` with AMC's workflowExecutionId once AMC accepted the
request (the execution runs on; its status is synced separately through ``get_status``), or
``failed`` with a one-line reason. It raises only AmcOutcomeUnknownError: the request may have
started an execution (no answer, or a 5xx), so the run must stay ``dispatching`` for the
daemon's recovery, which lists the candidates through ``find_started`` and decides (never both
a guess and a resend).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from scheduler_daemon.amc.client import AmcClient, AmcTarget
from scheduler_daemon.amc.credentials import AmcCredentials
from scheduler_daemon.amc.errors import AmcError, AmcOutcomeUnknownError
from scheduler_daemon.amc.observer import NO_OBSERVER, AmcObserver
from scheduler_daemon.amc.responses import NormalizedStatus
from scheduler_daemon.amc.settings import AmcSettings
from scheduler_daemon.amc.tokens import TokenProvider
from scheduler_daemon.clock import Clock, SystemClock
from scheduler_daemon.executors.base import ExecutionOutcome, FoundExecution, RunRequest


@dataclass(frozen=True)
class ExecutionStatus:
    """An execution's state for the status sync: ``status`` in our five words, AMC's own
    word in ``raw_status`` (unknown words count as running), and AMC's reason if any."""

    execution_id: str
    status: NormalizedStatus
    raw_status: str | None
    reason: str | None


def _target(request: RunRequest) -> AmcTarget:
    if not request.marketplace_id:
        raise AmcError(f"run {request.run_id}: no marketplace id; resolve() should have refused it")
    return AmcTarget(request.amc_instance_id, request.amc_entity_id, request.marketplace_id)


def _body(request: RunRequest) -> dict[str, Any]:
    return request.body or {"workflowId": request.amc_workflow_id}


class AmcExecutor:
    name = "amc"
    in_process = False

    def __init__(self, client: AmcClient, *, on_close: Callable[[], None] | None = None) -> None:
        self.client = client
        self._on_close = on_close

    def __repr__(self) -> str:
        return f"AmcExecutor({self.client!r})"

    def submit(self, request: RunRequest) -> ExecutionOutcome:
        try:
            execution = self.client.create_execution(
                _target(request), _body(request), may_send=request.may_send
            )
        except AmcOutcomeUnknownError:
            raise
        except AmcError as exc:
            return ExecutionOutcome("failed", error=str(exc))
        return ExecutionOutcome("dispatched", execution_id=execution.execution_id)

    def find_started(self, request: RunRequest, since: datetime) -> Sequence[FoundExecution]:
        """The executions of this request's workflow created since ``since`` whose window and
        parameters match it, oldest first; raises AmcError when AMC cannot be asked (the run
        then stays for a later recovery)."""
        found = self.client.find_executions(_target(request), _body(request), since)
        return [FoundExecution(e.execution_id, e.created_at) for e in found]

    def get_status(
        self, instance_id: str, entity_id: str, marketplace_id: str, execution_id: str
    ) -> ExecutionStatus:
        """AMC's current view of one execution; raises AmcError when it cannot be had."""
        execution = self.client.get_execution(
            AmcTarget(instance_id, entity_id, marketplace_id), execution_id
        )
        return ExecutionStatus(
            execution.execution_id, execution.status, execution.raw_status, execution.reason
        )

    def cancel(
        self, instance_id: str, entity_id: str, marketplace_id: str, execution_id: str
    ) -> bool:
        """Cancel a pending or running execution; False if it had already finished."""
        return self.client.cancel_execution(
            AmcTarget(instance_id, entity_id, marketplace_id), execution_id
        )

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


def make_amc_executor(
    credentials: AmcCredentials,
    settings: AmcSettings,
    *,
    clock: Clock | None = None,
    observer: AmcObserver = NO_OBSERVER,
) -> AmcExecutor:
    """An executor with its own HTTP connection pool, token provider and client, reporting
    to ``observer``. It has no cap on calls in flight: ``settings.max_in_flight`` is for the
    daemon's instance gate, which wraps every call the daemon makes."""
    clock = clock or SystemClock()
    http = httpx.Client(
        timeout=httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout),
        follow_redirects=False,
    )
    tokens = TokenProvider(
        credentials,
        http=http,
        token_url=settings.token_url,
        clock=clock,
        refresh_margin=settings.token_refresh_margin,
        failure_backoff=settings.token_failure_backoff,
        attempts=settings.token_attempts,
        retry_wait=settings.token_retry_wait,
        observer=observer,
    )
    client = AmcClient(
        tokens,
        http=http,
        base_url=settings.api_url,
        retry=settings.retry,
        failure_threshold=settings.failure_threshold,
        cool_down=settings.cool_down,
        clock=clock,
        observer=observer,
    )
    return AmcExecutor(client, on_close=http.close)
