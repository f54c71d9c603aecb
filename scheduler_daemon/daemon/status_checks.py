"""Status checks of executions still running on AMC, on threads of their own.

A check is an HTTP call of a few hundred milliseconds that takes one of the instance's slots
(``InstanceGate``), like a create. Thousands of executions may be running at once, each due
for a check every ``status_poll_interval``, so the checks go in batches:

- a thread claims one instance's due checks in one statement (the instance of the check due
  first, with its checks due within a quarter of the interval, at most ``CHECKS_PER_CLAIM``),
  takes one of the instance's slots, makes them one after the other on the same database
  connection, and writes what changed in one statement; a final status is written at once;
- then it claims again while anything is due. A claim says when the first check it left
  falls due: already, and the thread starts another (up to ``threads``), so the threads grow
  with a backlog; later, and the thread ends after its batch, with a timer set for then. The
  tick also starts one (the first checks after a quiet spell, or after the database was
  away).

A daemon that dies with checks claimed only delays them: each was pushed to its next check by
its claim, so another daemon makes it one interval later.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import PendingRollbackError

from scheduler_daemon.daemon.instance_gate import InstanceBusyError, InstanceGate, still_held
from scheduler_daemon.db import queries
from scheduler_daemon.db.engine import describe_error, is_transient
from scheduler_daemon.metrics import Metrics

log = structlog.get_logger("scheduler_daemon.status")

# One claim's checks of one instance, made one after the other under one slot (about 5 s of
# calls at 200 ms each): claim, slot, release and write cost 4 statements for up to 25 checks.
CHECKS_PER_CLAIM = 25
# How early a check may be made so that an instance's checks go together. Its next check is
# counted from when it was due, so checking early adds no checks.
LOOKAHEAD_SHARE = 1 / 4
# The shortest wait for the next check, should one be due that no claim could take (another
# daemon's claim held it for that instant).
MIN_WAIT = 1.0
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "unknown"})


@runtime_checkable
class StatusSource(Protocol):
    """An executor that can tell how a submitted execution is doing (the amc executor)."""

    def get_status(
        self, instance_id: str, entity_id: str, marketplace_id: str, execution_id: str
    ) -> Any: ...


class StatusChecker:
    """``engine``: the checker's own (one connection per thread, each holding its slot)."""

    def __init__(
        self,
        engine: Engine,
        source: StatusSource,
        *,
        threads: int,
        interval: float,
        deadline: float,
        max_failures: int,
        metrics: Metrics,
        on_auto_pause: Callable[[str | None, dict[str, str]], None],
        gate: InstanceGate | None = None,
    ) -> None:
        """``deadline``: seconds after its submission when an execution is no longer asked
        about (it is recorded "unknown")."""
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._source = source
        self._threads = threads
        self._interval = interval
        self._deadline = deadline
        self._max_failures = max_failures
        self._metrics = metrics
        self._on_auto_pause = on_auto_pause
        self._gate = gate
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="status")
        self._running = 0
        self._state = threading.Condition()
        self._stopping = False
        self._timer: threading.Timer | None = None
        self._timer_at = 0.0  # monotonic

    def start_checking(self) -> None:
        """Start a thread of checks, unless all ``threads`` run."""
        with self._state:
            if self._stopping or self._running >= self._threads:
                return
            self._running += 1
        try:
            self._pool.submit(self._check_while_due)
        except RuntimeError:  # shut down meanwhile
            self._thread_ended()

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no thread is checking; False if ``timeout`` passed first."""
        with self._state:
            return self._state.wait_for(lambda: self._running == 0, timeout=timeout)

    def stop_claiming(self) -> None:
        """Claim no more checks and start no more threads; a batch under way ends after its
        current call (its checks not made are made by another daemon at their next check)."""
        with self._state:
            self._stopping = True
            if self._timer is not None:
                self._timer.cancel()

    def shutdown(self) -> None:
        self.stop_claiming()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start_when_due(self, seconds: float | None) -> None:
        """Start checking again in ``seconds``, when the next check falls due, unless a timer
        goes off sooner; None: no execution is running (the tick starts checking after the
        next ones begin)."""
        if seconds is None:
            return
        delay = seconds if seconds > 0 else MIN_WAIT
        with self._state:
            at = time.monotonic() + delay
            pending = self._timer is not None and self._timer.is_alive()
            if self._stopping or (pending and self._timer_at <= at):
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = threading.Timer(delay, self.start_checking), at
            self._timer.daemon = True
            self._timer.start()

    def _thread_ended(self) -> None:
        with self._state:
            self._running -= 1
            self._state.notify_all()

    def _check_while_due(self) -> None:
        try:
            while not self._stopping:
                with self._engine.connect() as conn:
                    checks = queries.claim_status_checks(
                        conn,
                        interval=self._interval,
                        deadline=self._deadline,
                        lookahead=self._interval * LOOKAHEAD_SHARE,
                        batch_size=CHECKS_PER_CLAIM,
                    )
                    if not checks:
                        self._start_when_due(queries.next_status_check_in(conn))
                        return
                    claimed_at = time.monotonic()
                    others_in = checks[0].next_due_in
                    if others_in is not None and others_in <= 0:
                        self.start_checking()  # more are due: another thread takes them
                    self._check(conn, checks)
                # The first check due next: another one, or one of this batch's own.
                next_due_in = min(c.next_check_in for c in checks)
                if others_in is not None:
                    next_due_in = min(next_due_in, others_in)
                wait = next_due_in - (time.monotonic() - claimed_at)
                if wait > 0:  # nothing due now: wake when something is
                    self._start_when_due(wait)
                    return
        except Exception as exc:  # the next tick starts a thread again
            # PendingRollbackError: a statement after the gate's release found the connection
            # cut (the release lets that pass: the slot went with the session).
            if is_transient(exc) or isinstance(exc, PendingRollbackError):
                log.warning("execution.status_checks_interrupted", error=describe_error(exc))
            else:
                log.exception("execution.status_checks_failed")
        finally:
            self._thread_ended()

    def _check(self, conn: Connection, checks: Sequence[queries.StatusCheck]) -> None:
        """Ask about one instance's executions under one of its slots; write what changed."""
        changed = [
            queries.StatusSeen(c.id, "unknown", None, "no final status from AMC before the "
                               "status deadline")
            for c in checks
            if c.past_deadline
        ]  # fmt: skip
        ask = [c for c in checks if not c.past_deadline]
        if ask:
            try:
                with self._slot(conn, ask[0].amc_instance_id):
                    for index, check in enumerate(ask):
                        if self._stopping:
                            break
                        if index and self._gate is not None and not still_held(conn):
                            log.warning(  # the rest wait for their next check
                                "execution.status_checks_slot_lost",
                                instance_id=check.amc_instance_id,
                                checks_left=len(ask) - index,
                            )
                            break
                        seen = self._ask(check)
                        if seen is None or (seen.status, seen.raw_status) == (
                            check.status,
                            check.raw_status,
                        ):
                            continue
                        if seen.status in FINAL_STATUSES:  # its run is over: say so now
                            self._record(conn, [seen])
                        else:
                            changed.append(seen)
            except InstanceBusyError as exc:  # asked again at their next checks
                log.warning(
                    "execution.status_checks_deferred",
                    instance_id=ask[0].amc_instance_id,
                    checks=len(ask),
                    error=str(exc),
                )
        self._record(conn, changed)

    def _slot(self, conn: Connection, instance_id: str) -> contextlib.AbstractContextManager[None]:
        # Waiting longer than the lookahead would let the checks fall due again meanwhile,
        # and another daemon make them too; busy, they wait for their next check instead.
        if self._gate is None:
            return contextlib.nullcontext()
        return self._gate.slot_on(conn, instance_id, wait=self._interval * LOOKAHEAD_SHARE)

    def _ask(self, check: queries.StatusCheck) -> queries.StatusSeen | None:
        try:
            status = self._source.get_status(
                check.amc_instance_id,
                check.amc_entity_id,
                check.marketplace_id or "",
                check.amc_execution_id,
            )
        except Exception as exc:  # the next check asks again
            log.warning(
                "execution.status_unavailable",
                execution_id=check.amc_execution_id,
                error=str(exc),
            )
            return None
        return queries.StatusSeen(check.id, status.status, status.raw_status, status.reason)

    def _record(self, conn: Connection, seen: Sequence[queries.StatusSeen]) -> None:
        for row in queries.record_statuses(conn, seen, self._max_failures):
            log.info(
                "run.finished",
                status=row.status,
                error=row.error_message,
                via="status_sync",
                **row.log_fields,
            )
            self._metrics.count_run(row.status, "status_sync")
            if row.paused:
                self._on_auto_pause(row.pause_reason, row.log_fields)
