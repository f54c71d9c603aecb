"""Dispatch claimed runs through a bounded worker pool, outside any database transaction.

Each job is the runs of one claim (several only for a ``run_all`` catch-up), sent oldest first;
the schedule's lock is released with the outcome of the last one. A burst is cut into chunks
(``chunking``), and each chunk costs two statements however many runs it holds: mark them all
``dispatching``, call the executor for each, record every outcome. Every write quotes the
claim's fencing token: a run the write does not touch was lost to another worker and is
dropped (``claim.lost``) instead of being acted on.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from scheduler_daemon.clock import Clock
from scheduler_daemon.daemon.chunking import Chunking
from scheduler_daemon.daemon.instance_gate import InstanceBusyError, InstanceGate
from scheduler_daemon.db import queries
from scheduler_daemon.db import recovery as db_recovery
from scheduler_daemon.db.engine import is_transient
from scheduler_daemon.domain import ClaimedRun, Outcome, RunContext, RunStatus, RunTrigger
from scheduler_daemon.executors.base import (
    ExecutionOutcome,
    Executor,
    FoundExecution,
    OutcomeUnknownError,
    RunRequest,
)
from scheduler_daemon.metrics import Metrics
from scheduler_daemon.recovery import Adopt, Relist, Resubmit, Unresolved, listing_start
from scheduler_daemon.resolve import ResolutionError, resolve

log = structlog.get_logger("scheduler_daemon.dispatch")

T = TypeVar("T")


@dataclass(frozen=True)
class DispatchJob:
    runs: Sequence[ClaimedRun]
    contexts: dict[uuid.UUID, RunContext]


@dataclass(frozen=True)
class _Item:
    run: ClaimedRun
    context: RunContext | None
    release: bool


# A recovery that finds another run with the same request still mid-call waits for that call
# to end (its execution is then attributed), asking the database this often, at most this
# long before leaving the run to a later recovery.
RIVAL_POLL_SECONDS = 1.0
RIVAL_WAIT_LIMIT = 600.0
# A run marked more times than this (each recovery marks it again) without a known outcome is
# not sent again: it becomes unresolved, for an operator.
MAX_DISPATCH_ATTEMPTS = 10


class Dispatcher:
    """``engine`` is the dispatcher's own: one connection per thread, whose statements are
    prepared and planned once (they are all keyed by primary key; see ``make_engine``'s
    ``generic_plans``). Each write is one statement, in autocommit: no BEGIN and COMMIT round
    trips."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        worker_id: str,
        *,
        chunking: Chunking,
        max_failures: int,
        write_retry_seconds: float,
        clock: Clock,
        metrics: Metrics,
        gate: InstanceGate | None = None,
        on_release: Callable[[], None] = lambda: None,
        send_window: float | None = None,
        first_status_check: float = 0.0,
    ) -> None:
        """``send_window``: how long after this daemon last renewed its claims (its
        heartbeat) a call may still be sent; None: no limit. ``first_status_check``: how
        long after its creation an execution's status is first asked."""
        self._first_status_check = first_status_check
        self._gate = gate
        self._send_window = send_window
        self._renewed_at: float | None = None
        self._lapsed_at: float | None = None  # when a heartbeat came after too long a gap
        self._on_release = on_release
        self._transactions = engine
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._executor = executor
        self._worker_id = worker_id
        self._chunking = chunking
        self._max_failures = max_failures
        self._write_retry_seconds = write_retry_seconds
        self._clock = clock
        self._metrics = metrics
        self._log = log.bind(worker_id=worker_id)
        self._pool = ThreadPoolExecutor(max_workers=chunking.threads, thread_name_prefix="dispatch")
        self._in_flight = 0
        self._idle = threading.Condition()
        # The claims this process is still working on: only their leases are renewed.
        self._held_schedules: Counter[uuid.UUID] = Counter()
        self._held_manual_runs: set[uuid.UUID] = set()

    @property
    def runs_queued(self) -> int:
        """Claimed runs this process has not finished with (queued or being sent)."""
        with self._idle:
            return sum(self._held_schedules.values()) + len(self._held_manual_runs)

    def submit(self, jobs: Sequence[DispatchJob]) -> None:
        """Queue jobs: single-run jobs in chunks spread over the pool, catch-ups and recoveries
        one by one (a recovery may wait for another run's call, so it shares no chunk)."""
        singles: list[_Item] = []
        recoveries: list[_Item] = []
        for job in jobs:
            if len(job.runs) == 1:
                item = _Item(job.runs[0], job.contexts.get(job.runs[0].id), True)
                (recoveries if item.run.status == RunStatus.DISPATCHING else singles).append(item)
        for item in recoveries:
            self._queue(self._run_chunk, [item], [item.run])
        for chunk in self._chunking.split(singles):
            self._queue(self._run_chunk, chunk, [item.run for item in chunk])
        for job in jobs:
            if len(job.runs) > 1:
                self._queue(self._run_catch_up, job, job.runs)

    def held_schedules(self) -> list[uuid.UUID]:
        with self._idle:
            return list(self._held_schedules)

    def held_manual_runs(self) -> list[uuid.UUID]:
        with self._idle:
            return list(self._held_manual_runs)

    def _queue(
        self, work: Callable[[Any], object], argument: Any, runs: Sequence[ClaimedRun]
    ) -> None:
        with self._idle:
            self._in_flight += 1
            self._hold(runs, +1)
        future = self._pool.submit(work, argument)
        future.add_done_callback(lambda _: self._job_done(runs))

    def _hold(self, runs: Sequence[ClaimedRun], change: int) -> None:
        for run in runs:
            if run.trigger == RunTrigger.SCHEDULED:
                self._held_schedules[run.schedule_id] += change
                if self._held_schedules[run.schedule_id] <= 0:
                    del self._held_schedules[run.schedule_id]
            elif change > 0:
                self._held_manual_runs.add(run.id)
            else:
                self._held_manual_runs.discard(run.id)

    def _job_done(self, runs: Sequence[ClaimedRun]) -> None:
        with self._idle:
            self._in_flight -= 1
            self._hold(runs, -1)
            self._idle.notify_all()

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until nothing is in flight; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def shutdown(self) -> None:
        """Stop taking work; queued chunks are dropped (their claims expire to the reaper)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _write(self, action: Callable[[Connection], T], *, transaction: bool = False) -> T:
        """One statement (or, with ``transaction``, one transaction), retried while the
        database is unreachable."""
        for attempt in Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential(multiplier=0.2, max=5) + wait_random(0, 0.2),
            stop=stop_after_delay(self._write_retry_seconds),
            reraise=True,
        ):
            connect = self._transactions.begin if transaction else self._engine.connect
            with attempt, connect() as conn:
                return action(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_catch_up(self, job: DispatchJob) -> None:
        """Runs of one schedule, oldest first, one after the other; stops at a lost claim."""
        for index, run in enumerate(job.runs):
            item = _Item(run, job.contexts.get(run.id), index == len(job.runs) - 1)
            if not self._run_chunk([item]):
                return

    def _run_chunk(self, items: Sequence[_Item]) -> bool:
        """Send a chunk of runs; False if any claim in it was lost or the chunk failed."""
        try:
            resolved = [self._resolve(item) for item in items]
            # The claims were ours when marked: a call may go out only if this daemon has
            # not lapsed since (its retries included).
            marked_at = self._clock.monotonic()
            ours = self._write(
                lambda c: queries.mark_dispatching(
                    c,
                    self._worker_id,
                    [i.run for i in items],
                    [r.body or None if isinstance(r, RunRequest) else None for r in resolved],
                )
            )
            for item in items:
                if item.run.id not in ours:
                    self._lost(item.run, "dispatching")
            called = [
                self._call(item, request, ours[item.run.id], marked_at)
                for item, request in zip(items, resolved, strict=True)
                if item.run.id in ours
            ]
            outcomes = [outcome for outcome in called if outcome is not None]
            written = self._write(
                lambda c: queries.record_outcomes(
                    c, self._worker_id, outcomes, self._max_failures, self._first_status_check
                )
            )
        except Exception:
            # Runs stay claimed under our token; after the lease the reaper hands them on.
            self._log.exception("run.dispatch_error", runs=[str(i.run.id) for i in items])
            return False
        all_recorded = len(ours) == len(items) and len(outcomes) == len(called)
        released = False
        for outcome in outcomes:
            result = written[outcome.run.id]
            if not result.recorded:
                self._lost(outcome.run, "outcome")
                all_recorded = False
                continue
            released = released or (outcome.release and outcome.run.trigger == RunTrigger.SCHEDULED)
            self._finished(outcome, result)
        if released:
            # The schedules' next slots may be sooner than the loop's next wake-up, which was
            # computed while they were locked.
            self._on_release()
        return all_recorded

    def _gated(self, instance_id: str) -> contextlib.AbstractContextManager[None]:
        """A slot of the instance's cap across all daemons, when the executor has one."""
        return self._gate.slot(instance_id) if self._gate else contextlib.nullcontext()

    def _lost(self, run: ClaimedRun, step: str) -> None:
        self._log.warning("claim.lost", step=step, **run.log_fields)
        self._metrics.claims_lost.inc()

    def _finished(self, outcome: Outcome, result: queries.OutcomeWritten) -> None:
        fields = outcome.run.log_fields
        self._log.info(
            "run.finished",
            status=outcome.status,
            execution_id=outcome.amc_execution_id,
            error=outcome.error_message,
            **fields,
        )
        self._metrics.count_run(outcome.status, outcome.run.trigger)
        if outcome.status is RunStatus.UNRESOLVED:  # an operator must look (docs/runbook.md)
            self._log.error("run.unresolved", reason=outcome.error_message, **fields)
        if result.paused:
            self.auto_paused(result.pause_reason, fields)

    def auto_paused(self, reason: str | None, fields: dict[str, str]) -> None:
        """A run's failure paused its schedule, whether the dispatch said so or, later, AMC's
        status: one event and one count either way (the alert on auto-pauses reads both)."""
        self._log.warning("schedule.paused", reason=reason, **fields)
        self._metrics.auto_paused.inc()

    @staticmethod
    def _resolve(item: _Item) -> RunRequest | ResolutionError:
        try:
            return resolve(item.run, item.context)
        except ResolutionError as exc:
            return exc

    def _call(
        self,
        item: _Item,
        request: RunRequest | ResolutionError,
        marked: queries.Marked,
        marked_at: float,
    ) -> Outcome | None:
        """Send one run, or recover one whose earlier call was cut short. None means nobody
        can tell yet whether a call started an execution: the run stays ``dispatching`` and,
        once this chunk lets go of it, the reaper hands it to a recovery."""
        run = item.run
        recovering = run.status == RunStatus.DISPATCHING
        if isinstance(request, ResolutionError):
            if recovering:  # what its first call sent cannot be looked for any more
                reason = f"its cut-short call was not checked: {request}"
                return Outcome(run, RunStatus.UNRESOLVED, None, reason, item.release)
            return Outcome(run, RunStatus.FAILED, None, str(request), item.release)
        request = replace(request, may_send=self.may_send(marked_at))
        try:
            if recovering:
                if marked.request:  # look for what the first call sent, not today's request
                    request = replace(request, body=marked.request)
                outcome = self._recover(run, request, marked)
            else:
                with self._gated(request.amc_instance_id):
                    outcome = self._submit(request, recovering=False, fields=run.log_fields)
        except OutcomeUnknownError as exc:
            self._log.warning("run.outcome_unknown", error=str(exc), **run.log_fields)
            return None
        except InstanceBusyError as exc:
            if recovering:  # nothing was asked: the reaper tries again
                return None
            error = f"AMC instance {request.amc_instance_id} busy: {exc}"
            outcome = ExecutionOutcome("failed", error=error)
        if outcome is None:
            return None
        if isinstance(outcome, Unresolved):
            return Outcome(run, RunStatus.UNRESOLVED, None, outcome.reason, item.release)
        return Outcome(
            run, RunStatus(outcome.status), outcome.execution_id, outcome.error, item.release
        )

    def _recover(
        self, run: ClaimedRun, request: RunRequest, marked: queries.Marked
    ) -> ExecutionOutcome | Unresolved | None:
        """Adopt the execution the cut-short call started, or submit again, or say that it
        cannot be told (docs/semantics.md, "Recovery"). None: try again at a later recovery."""
        fields = run.log_fields
        if marked.attempts > MAX_DISPATCH_ATTEMPTS:
            return Unresolved(
                f"sent {marked.attempts - 1} times without a known outcome; "
                "not sent again, to avoid duplicates"
            )
        fence = db_recovery.Fence(self._worker_id, run.id, run.fencing_token)
        since = listing_start(marked.started_at, [])  # the run's own window, to begin with
        give_up_at = time.monotonic() + RIVAL_WAIT_LIMIT
        while True:
            found = self._find_started(run, request, since)
            if found is None:
                return None
            # Nothing there: nothing of its call reached AMC, whatever the other runs did.
            # Sent again without the decision's lock (a burst's recoveries would queue on it).
            if not found and self._write(functools.partial(db_recovery.start_call, fence=fence)):
                with self._gated(request.amc_instance_id):
                    return self._submit(request, recovering=True, fields=fields)
            decide = functools.partial(
                db_recovery.decide_recovery, fence=fence, found=found, listed_since=since
            )
            try:
                decision = self._write(decide, transaction=True)
            except IntegrityError:  # another run recorded that execution meanwhile: look again
                continue
            if decision is None:
                self._lost(run, "recovery")
                return None
            if isinstance(decision, Adopt):
                self._log.warning(
                    "run.execution_adopted", execution_id=decision.execution_id, **fields
                )
                return ExecutionOutcome("dispatched", execution_id=decision.execution_id)
            if isinstance(decision, Resubmit):
                with self._gated(request.amc_instance_id):
                    return self._submit(request, recovering=True, fields=fields)
            if isinstance(decision, Unresolved):
                return decision
            if isinstance(decision, Relist):
                since = decision.since
                continue
            self._log.info("run.recovery_waiting", reason=decision.reason, **fields)
            if not self._wait_for_rivals(run, give_up_at):
                # Still under way after all this time: a later recovery looks again.
                self._log.warning("run.recovery_deferred", error=decision.reason, **fields)
                return None

    def _find_started(
        self, run: ClaimedRun, request: RunRequest, since: datetime
    ) -> Sequence[FoundExecution] | None:
        """What the executor finds that the run's call could have started; None when it cannot
        be asked now (a later recovery asks again)."""
        try:
            with self._gated(request.amc_instance_id):
                return self._executor.find_started(request, since)
        except InstanceBusyError:
            raise
        except Exception as exc:
            self._log.warning("run.recovery_deferred", error=str(exc), **run.log_fields)
            return None

    def _wait_for_rivals(self, run: ClaimedRun, give_up_at: float) -> bool:
        """Wait (asking the database, not AMC) until no other run with the same request has
        a call under way; False if that did not happen by ``give_up_at``."""
        while time.monotonic() < give_up_at:
            time.sleep(RIVAL_POLL_SECONDS)
            rivals = self._write(functools.partial(db_recovery.claimants, run_id=run.id))
            if not any(rival.calling for rival in rivals):
                return True
        return False

    def claims_renewed(self) -> None:
        """This daemon's heartbeat, which renews its claims, was just written."""
        now = self._clock.monotonic()
        window = self._send_window
        if window is not None and self._renewed_at is not None and now - self._renewed_at >= window:
            self._lapsed_at = now
        self._renewed_at = now

    def may_send(self, since: float) -> Callable[[], bool]:
        """Whether a call for runs this daemon held at ``since`` (monotonic) may still be
        sent: its heartbeat never lapsed for ``send_window`` since then, the other daemons'
        cue to take its claims over (a freeze, a cut-off from the database). A retry that
        waited through one must not reach AMC after the run's new owner sent it."""

        def allowed() -> bool:
            if self._send_window is None:
                return True
            renewed, lapsed = self._renewed_at, self._lapsed_at
            # A lapse that had ended (by a heartbeat) when the runs were marked did not hold
            # their call: the mark, a write fenced by each claim, showed them still this
            # daemon's then.
            return (
                renewed is not None
                and self._clock.monotonic() - renewed < self._send_window
                and (lapsed is None or lapsed <= since)
            )

        return allowed

    def _submit(
        self, request: RunRequest, *, recovering: bool, fields: dict[str, str]
    ) -> ExecutionOutcome:
        if request.trigger == RunTrigger.SCHEDULED:
            lateness = (self._clock.now() - request.scheduled_for).total_seconds()
            self._metrics.lateness.observe(max(0.0, lateness))
        self._log.info(
            "run.dispatched", executor=self._executor.name, recovered=recovering, **fields
        )
        started = self._clock.monotonic()
        try:
            outcome = self._executor.submit(request)
        except OutcomeUnknownError:
            raise
        except Exception as exc:
            # An executor must describe failures, not raise them; record it rather than
            # leave the run (and the schedule's lock) hanging.
            self._log.exception("executor.raised", **fields)
            outcome = ExecutionOutcome(
                "failed", error=f"executor {self._executor.name} raised {type(exc).__name__}"
            )
        took = self._clock.monotonic() - started
        self._metrics.observe_executor_call(self._executor.name, outcome.status, took)
        return outcome
