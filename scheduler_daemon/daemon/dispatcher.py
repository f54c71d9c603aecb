"""Dispatch claimed runs through a bounded worker pool, outside any database transaction.

Each job is the runs of one claim (several only for a ``run_all`` catch-up), sent oldest first;
the schedule's lock is released with the outcome of the last one. Every write quotes the
claim's fencing token: a write that touches nothing means the claim was lost, and the job is
dropped (``claim.lost``) instead of acting on a slot that another worker now owns.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from scheduler_daemon.db import queries
from scheduler_daemon.db.queries import ClaimedRun
from scheduler_daemon.executors.base import ExecutionOutcome, Executor
from scheduler_daemon.resolve import ResolutionError, resolve

log = structlog.get_logger("scheduler_daemon.dispatch")

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """A database error worth retrying: the connection, not the statement, failed
    (server gone, restarting, shutting down, network cut)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


@dataclass(frozen=True)
class DispatchJob:
    runs: Sequence[ClaimedRun]
    contexts: dict[uuid.UUID, dict[str, Any]]


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        worker_id: str,
        *,
        concurrency: int,
        max_failures: int,
        write_retry_seconds: float,
    ) -> None:
        self._engine = engine
        self._executor = executor
        self._worker_id = worker_id
        self._log = log.bind(worker_id=worker_id)
        self._max_failures = max_failures
        self._write_retry_seconds = write_retry_seconds
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dispatch")
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def in_flight(self) -> int:
        with self._idle:
            return self._in_flight

    def submit(self, job: DispatchJob) -> Future[None]:
        with self._idle:
            self._in_flight += 1
        future = self._pool.submit(self._run_job, job)
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _: Future[None]) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until nothing is in flight; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _write(self, action: Callable[[Connection], T]) -> T:
        """One short transaction, retried while the database is unreachable."""
        for attempt in Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential(multiplier=0.2, max=5) + wait_random(0, 0.2),
            stop=stop_after_delay(self._write_retry_seconds),
            reraise=True,
        ):
            with attempt, self._engine.begin() as conn:
                return action(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_job(self, job: DispatchJob) -> None:
        for index, run in enumerate(job.runs):
            release = index == len(job.runs) - 1
            with structlog.contextvars.bound_contextvars(
                run_id=str(run.id),
                schedule_id=str(run.schedule_id),
                scheduled_for=run.scheduled_for.isoformat(),
                correlation_id=str(run.correlation_id),
                trigger=run.trigger,
            ):
                try:
                    if not self._dispatch_one(run, job.contexts.get(run.id), release=release):
                        return
                except Exception:
                    # The run stays claimed under our token; the reaper hands it on.
                    self._log.exception("run.dispatch_error")
                    return

    def _dispatch_one(
        self, run: ClaimedRun, context: dict[str, Any] | None, *, release: bool
    ) -> bool:
        """Send one run and record its outcome; False when the claim was lost."""
        recovering = run.status == "dispatching"
        if not self._write(
            lambda c: queries.mark_dispatching(c, self._worker_id, run.id, run.fencing_token)
        ):
            self._log.warning("claim.lost", step="dispatching")
            return False
        try:
            request = resolve(run, context)
        except ResolutionError as exc:
            outcome = ExecutionOutcome("failed", error=str(exc))
        else:
            reconciled = self._executor.reconcile(request) if recovering else None
            if reconciled is not None:
                self._log.info("run.reconciled", execution_id=reconciled.execution_id)
                outcome = reconciled
            else:
                self._log.info("run.dispatched", executor=self._executor.name, recovered=recovering)
                outcome = self._executor.submit(request)
        written = self._write(
            lambda c: queries.record_outcome(
                c,
                self._worker_id,
                run,
                status=outcome.status,
                amc_execution_id=outcome.execution_id,
                error_message=outcome.error,
                release=release,
                max_failures=self._max_failures,
            )
        )
        if not written.recorded:
            self._log.warning("claim.lost", step="outcome", status=outcome.status)
            return False
        self._log.info(
            "run.finished",
            status=outcome.status,
            execution_id=outcome.execution_id,
            error=outcome.error,
        )
        if written.paused:
            self._log.warning("schedule.paused", reason=written.pause_reason)
        return True
