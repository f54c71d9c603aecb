"""One daemon's tick (DESIGN §4): heartbeat, repair, reap, claim, dispatch; never sleeps.

``tick()`` reads the clock once and does one pass; it returns how long the loop may sleep.
Each step is its own short transaction; dispatching happens in the Dispatcher's threads.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Connection, Engine

from scheduler_daemon import __version__
from scheduler_daemon.clock import Clock
from scheduler_daemon.config import Settings
from scheduler_daemon.daemon.dispatcher import Dispatcher, DispatchJob
from scheduler_daemon.daemon.liveness import (
    SESSION_GRACE,
    SESSION_SETTLE,
    GoneSessions,
    SessionLiveness,
)
from scheduler_daemon.daemon.status_checks import StatusChecker
from scheduler_daemon.db import queries
from scheduler_daemon.db.queries import SpecRow
from scheduler_daemon.db.runs import prune_all
from scheduler_daemon.domain import (
    ClaimedRun,
    DueSchedule,
    NewRun,
    RunContext,
    RunStatus,
    RunTrigger,
    ScheduleDecision,
)
from scheduler_daemon.errors import SchedulerError
from scheduler_daemon.metrics import Metrics
from scheduler_daemon.policies import plan, spec_of

log = structlog.get_logger("scheduler_daemon.tick")

BACKLOG_PAUSE = 0.05
# The reaper looks at every locked schedule; during a burst the loop ticks many times a second
# and thousands are locked, so it runs at most this often: a crashed daemon's claims (its
# session gone) wait at most this long, and while other daemons hold claims the loop wakes
# this often to look.
REAP_EVERY = 1.0
PRUNE_EVERY = 3600.0
PRUNE_BATCH = 1000
PRUNE_MAX_BATCHES = 20


@dataclass
class TickResult:
    sleep_for: float
    claimed: int = 0
    skipped: int = 0
    reaped: int = 0
    quarantined: int = 0
    manual: int = 0


class Scheduler:
    """One daemon's tick over its parts, which the composition root (``cli/run.py``) builds:
    the dispatcher and its executor, the session liveness, and ``wake``, the event the loop
    sleeps on (set when a dispatch frees a schedule, whose next slot the last wake-up could
    not count while it was locked, or when the session lock is lost)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        dispatcher: Dispatcher,
        liveness: SessionLiveness,
        clock: Clock,
        *,
        wake: threading.Event,
        metrics: Metrics,
        status_checker: StatusChecker | None = None,
        hostname: str | None = None,
    ) -> None:
        self.engine = engine
        self._status_checker = status_checker
        self.metrics = metrics
        self.settings = settings
        self.clock = clock
        self.wake = wake
        self.worker_id = settings.worker_id
        self._dispatcher = dispatcher
        self._liveness = liveness
        self._gone = GoneSessions(clock.monotonic)
        self._hostname = hostname or socket.gethostname()
        self._last_heartbeat: float | None = None
        self._last_prune: float | None = None
        self._last_reap: float | None = None
        self._log = log.bind(worker_id=self.worker_id)

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._heartbeat()
        self._log.info(
            "worker.started",
            hostname=self._hostname,
            pid=os.getpid(),
            version=__version__,
            session_pid=self._liveness.pid,  # None: its liveness is judged by heartbeat alone
        )

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no dispatch or status check is in flight; False if ``timeout`` passed
        first."""
        deadline = None if timeout is None else time.monotonic() + timeout  # real waits
        if not self._dispatcher.wait_idle(timeout):
            return False
        if self._status_checker is None:
            return True
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._status_checker.wait_idle(left)

    @property
    def runs_queued(self) -> int:
        """Claimed runs this daemon has not finished with (queued or being sent)."""
        return self._dispatcher.runs_queued

    def stop(self, grace: float) -> bool:
        """Stop: let in-flight dispatches finish within ``grace`` seconds, then mark this
        worker stopped, which hands whatever is left to the other workers' reapers at once."""
        if self._status_checker is not None:  # its checks are made by the others
            self._status_checker.stop_claiming()
        finished = self.wait_idle(grace)
        self._dispatcher.shutdown()
        if self._status_checker is not None:
            self._status_checker.shutdown()
        try:
            with self.engine.begin() as conn:
                queries.mark_stopped(conn, self.worker_id)
        finally:
            self._liveness.close()
        self._log.info("worker.stopped", drained=finished)
        return finished

    # --- the tick --------------------------------------------------------------------------

    def tick(self) -> TickResult:
        started = self.clock.monotonic()
        now = self.clock.now()
        result = TickResult(sleep_for=self.settings.poll_interval)
        self._heartbeat_if_due()
        self._repair(now, result)
        self._reap_if_due(result)
        self._claim_manual(now, result)
        batch_full = self._claim_due(now, result)
        self._sync_statuses()
        if self._dispatch_room() <= 0:
            result.sleep_for = BACKLOG_PAUSE  # let the pool catch up before claiming more
        else:
            result.sleep_for = 0.0 if batch_full else self._sleep_for(now)
        self._prune_if_due()
        self.metrics.tick_duration.observe(self.clock.monotonic() - started)
        return result

    def _heartbeat_if_due(self) -> None:
        last = self._last_heartbeat
        # A little early rather than late: the loop wakes on the heartbeat interval. At once
        # when the session lock's connection was cut: the others may already count us dead.
        if (
            last is None
            or self.clock.monotonic() - last >= self.settings.heartbeat_interval * 0.9
            or self._liveness.lost()
        ):
            self._heartbeat()

    def _heartbeat(self) -> None:
        session_pid = self._liveness.check()
        with self.engine.begin() as conn:
            skew = self.clock.calibrate(queries.database_now(conn))
            queries.heartbeat(
                conn,
                self.worker_id,
                hostname=self._hostname,
                pid=os.getpid(),
                version=__version__,
                skew=skew,
                session_pid=session_pid,
                held_schedules=self._dispatcher.held_schedules(),
                held_manual_runs=self._dispatcher.held_manual_runs(),
            )
            self.metrics.paused.set(queries.count_paused(conn))
            # Here, not after a claim: a daemon whose pool is stuck stops claiming, and the
            # backlog must still be seen growing.
            self.metrics.due_backlog.set(queries.count_due_backlog(conn, self.clock.now()))
            if self._status_checker is not None:  # final statuses are being recorded late
                overdue = queries.count_overdue_status_checks(
                    conn, self.settings.status_poll_interval
                )
                self.metrics.status_checks_overdue.set(overdue)
        self._last_heartbeat = self.clock.monotonic()
        self._dispatcher.claims_renewed()

    def _sync_statuses(self) -> None:
        """Executions still running remotely are asked for their status, at most every
        ``status_poll_interval`` each (backing off), until final or past the deadline: in
        the status checker's threads, which go on while checks are due."""
        if self._status_checker is not None:
            self._status_checker.start_checking()

    def _prune_if_due(self) -> None:
        """Delete history older than the retention, a small batch per transaction, at most
        one pass an hour; 0 days keeps everything."""
        days = self.settings.history_retention_days
        last = self._last_prune
        if days <= 0 or (last is not None and self.clock.monotonic() - last < PRUNE_EVERY):
            return
        self._last_prune = self.clock.monotonic()
        deleted = prune_all(self.engine, days, PRUNE_BATCH, PRUNE_MAX_BATCHES)
        if deleted:
            self._log.info("history.pruned", deleted=deleted, older_than_days=days)

    def _repair(self, now: datetime, result: TickResult) -> None:
        """Schedules that are enabled but have no next slot get one; paused ones whose pause
        has ended resume from now; rows that cannot be scheduled are quarantined."""
        batch = self.settings.batch_size
        with self.engine.begin() as conn:
            repaired = self._next_runs(
                conn, queries.select_needing_next_run(conn, batch), now, result
            )
            queries.set_next_runs(conn, repaired)
            resumed = self._next_runs(
                conn, queries.select_expired_pauses(conn, now, batch), now, result
            )
            queries.set_next_runs(conn, resumed, resume=True)
        # A missing next slot is a broken invariant (warning); an ended pause is routine.
        for level, event, next_runs in (
            ("warning", "schedule.next_run_repaired", repaired),
            ("info", "schedule.resumed", resumed),
        ):
            for schedule_id, next_run_at in next_runs.items():
                getattr(self._log, level)(
                    event, schedule_id=str(schedule_id), next_run_at=next_run_at.isoformat()
                )

    def _next_runs(
        self, conn: Connection, rows: Sequence[SpecRow], now: datetime, result: TickResult
    ) -> dict[uuid.UUID, datetime]:
        """Each row's next slot after now; a row that has none is quarantined instead."""
        next_runs = {}
        for row in rows:
            try:
                spec = spec_of(
                    row.cron_expression, row.interval_seconds, row.interval_anchor, row.timezone
                )
                next_runs[row.id] = spec.next_after(now)
            except SchedulerError as exc:
                self._quarantine(conn, row.id, str(exc), result)
        return next_runs

    def _quarantine(
        self, conn: Connection, schedule_id: uuid.UUID, reason: str, result: TickResult
    ) -> None:
        if queries.quarantine(conn, self.worker_id, schedule_id, reason):
            result.quarantined += 1
            self.metrics.quarantined.inc()
            self.metrics.count_run("skipped_quarantined", "scheduled")
            self._log.error("schedule.quarantined", schedule_id=str(schedule_id), reason=reason)

    def _reap_if_due(self, result: TickResult) -> None:
        last = self._last_reap
        every = SESSION_GRACE if self._gone.pending else REAP_EVERY
        if last is not None and self.clock.monotonic() - last < every:
            return
        self._reap(result)
        self._last_reap = self.clock.monotonic()

    def _reap(self, result: TickResult) -> None:
        settings = self.settings
        with self.engine.begin() as conn:
            gone = self._sessions_gone(conn)
            reaped, runs = queries.reap_stale_locks(
                conn,
                self.worker_id,
                lease=settings.lease,
                dead_after=settings.dead_after,
                batch_size=settings.batch_size,
                held=self._dispatcher.held_schedules(),
                gone=gone,
            )
            manual = queries.reap_manual_runs(
                conn,
                self.worker_id,
                lease=settings.lease,
                dead_after=settings.dead_after,
                batch_size=settings.batch_size,
                held=self._dispatcher.held_manual_runs(),
                gone=gone,
            )
            with_runs = {run.schedule_id for run in runs}
            empty = {
                lock.schedule_id: lock.token for lock in reaped if lock.schedule_id not in with_runs
            }
            queries.release_locks(conn, self.worker_id, empty)
            contexts = queries.select_run_context(conn, [r.id for r in [*runs, *manual]])
        for lock in reaped:
            self._log.warning(
                "lock.reaped", schedule_id=str(lock.schedule_id), previous_owner=lock.previous_owner
            )
        result.reaped = len(reaped)
        self.metrics.locks_reaped.inc(len(reaped))
        self._dispatch([*runs, *manual], contexts)

    def _sessions_gone(self, conn: Connection) -> list[str]:
        """Workers dead by their session: their lock free for the whole grace. None while this
        daemon has just taken its own lock again (its session, and maybe everybody's, was
        lost: they may be coming back)."""
        if not (self._liveness.enabled and self._liveness.settled()):
            return []
        free = queries.select_sessions_gone(
            conn, self.worker_id, dead_after=self.settings.dead_after, settle=SESSION_SETTLE
        )
        return self._gone.dead(free)

    def _claim_manual(self, now: datetime, result: TickResult) -> None:
        with self.engine.begin() as conn:
            runs = queries.claim_pending_manual_runs(
                conn, self.worker_id, now, self.settings.batch_size
            )
            contexts = queries.select_run_context(conn, [r.id for r in runs])
        result.manual = len(runs)
        for run in runs:
            self._log.info("run.claimed", **run.log_fields)
        self._dispatch(runs, contexts)

    def _dispatch_room(self) -> int:
        return 2 * self.settings.batch_size - self._dispatcher.runs_queued

    def _claim_due(self, now: datetime, result: TickResult) -> bool:
        """Claim one batch of due schedules in one transaction; True if the batch was full.

        A daemon never claims more than it can soon send (two batches queued at most): slots
        it cannot get to stay unclaimed for the other daemons, and memory stays bounded."""
        room = self._dispatch_room()
        if room <= 0:
            return True
        limit = min(self.settings.batch_size, room)
        with self.engine.begin() as conn:
            due = queries.select_due(conn, now, limit)
            decisions, new_runs = self._plan(conn, due, now, result)
            tokens = queries.claim(conn, self.worker_id, decisions)
            runs, contexts = queries.insert_runs(
                conn, self.worker_id, [r for r in new_runs if r.schedule_id in tokens], tokens
            )
            claimed = [run for run in runs if run.status == RunStatus.CLAIMED]
            locked = {d.schedule_id for d in decisions if d.take_lock and d.schedule_id in tokens}
            orphaned = {sid: tokens[sid] for sid in locked - {run.schedule_id for run in claimed}}
            queries.release_locks(conn, self.worker_id, orphaned)
        for schedule_id in orphaned:
            self._log.warning("run.slot_taken", schedule_id=str(schedule_id))
        for run in runs:
            event = "run.claimed" if run.status == RunStatus.CLAIMED else "run.skipped"
            self._log.info(event, **run.log_fields)
        for new_run in new_runs:
            if new_run.status is RunStatus.SKIPPED and new_run.schedule_id in tokens:
                self.metrics.count_run(f"skipped_{new_run.skip_reason}", "scheduled")
        result.claimed += len(claimed)
        result.skipped += len(runs) - len(claimed)
        self._dispatch(claimed, contexts)
        return len(due) >= limit

    def _plan(
        self, conn: Connection, due: Sequence[DueSchedule], now: datetime, result: TickResult
    ) -> tuple[list[ScheduleDecision], list[NewRun]]:
        decisions: list[ScheduleDecision] = []
        new_runs: list[NewRun] = []
        for schedule in due:
            try:
                spec = spec_of(
                    schedule.cron_expression,
                    schedule.interval_seconds,
                    schedule.interval_anchor,
                    schedule.timezone,
                )
                planned = plan(schedule, spec, now, min_grace=2 * self.settings.poll_interval)
            except SchedulerError as exc:
                self._quarantine(conn, schedule.id, str(exc), result)
                continue
            decisions.append(planned.decision)
            new_runs.extend(planned.runs)
        return decisions, new_runs

    def _dispatch(self, runs: Sequence[ClaimedRun], contexts: dict[uuid.UUID, RunContext]) -> None:
        jobs: dict[tuple[uuid.UUID, str], list[ClaimedRun]] = defaultdict(list)
        for run in runs:
            key = (
                (run.schedule_id, "scheduled")
                if run.trigger == RunTrigger.SCHEDULED
                else (run.id, "manual")
            )
            jobs[key].append(run)
        for job_runs in jobs.values():
            job_runs.sort(key=lambda r: r.scheduled_for)
        self._dispatcher.submit([DispatchJob(job_runs, contexts) for job_runs in jobs.values()])

    def _sleep_for(self, now: datetime) -> float:
        with self.engine.connect() as conn:
            wake_at, others_busy = queries.next_wakeup(conn, self.worker_id)
        sleep = min(self.settings.poll_interval, self.settings.heartbeat_interval)
        if others_busy and self._liveness.enabled:
            # Their claims are ours to take over the moment their daemon dies (its session
            # ends): look again within a reap interval (sooner while a free lock waits out
            # its grace).
            sleep = min(sleep, SESSION_GRACE if self._gone.pending else REAP_EVERY)
        if wake_at is not None:
            sleep = min(sleep, max(0.0, (wake_at - now).total_seconds()))
        return sleep
