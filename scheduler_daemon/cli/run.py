"""``scheduler-daemon run``: the daemon itself, and the composition root that wires its parts
(``open_scheduler``, also used by ``demo``, the tests and the benchmarks)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import click
import structlog
from sqlalchemy import Engine

from scheduler_daemon.cli.common import CliState, ensure_schema, open_database, setting_options
from scheduler_daemon.clock import Clock, SystemClock
from scheduler_daemon.config import ExecutorName, Settings
from scheduler_daemon.daemon.chunking import Chunking
from scheduler_daemon.daemon.dispatcher import Dispatcher
from scheduler_daemon.daemon.instance_gate import InstanceGate
from scheduler_daemon.daemon.listener import WakeupListener
from scheduler_daemon.daemon.liveness import SessionLiveness
from scheduler_daemon.daemon.loop import install_signal_handlers, run_loop
from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.daemon.status_checks import StatusChecker, StatusSource
from scheduler_daemon.db.engine import libpq_url, make_engine
from scheduler_daemon.executors import build_executor
from scheduler_daemon.executors.base import Executor
from scheduler_daemon.log import configure_logging
from scheduler_daemon.metrics import Metrics
from scheduler_daemon.systemd import SystemdNotifier


@click.command("run")
@setting_options("run")
@click.option("--once", is_flag=True, help="Run one tick, wait for its dispatches, exit 0.")
@click.pass_obj
def run_command(state: CliState, /, once: bool, **options: str | None) -> None:
    """Run the scheduler daemon (SIGTERM or Ctrl-C stops it gracefully)."""
    settings = state.settings(**options)
    metrics = Metrics()
    configure_logging(settings.log_format, settings.log_level)
    # Besides the tick's own: one per AMC call in flight, for its instance-cap lock (the
    # dispatch threads' writes have connections of their own).
    with open_database(settings, pool_size=settings.concurrency + 2) as engine:
        ensure_schema(engine, settings)
        if settings.metrics_port is not None:
            metrics.serve(settings.metrics_port, settings.metrics_address)
        executor = build_executor(settings, observer=metrics)
        with open_scheduler(
            engine, settings, executor, SystemClock(), metrics=metrics
        ) as scheduler:
            if once:
                _run_once(scheduler, settings)
            else:
                _run_forever(scheduler, settings, engine)


@contextlib.contextmanager
def open_scheduler(
    engine: Engine,
    settings: Settings,
    executor: Executor,
    clock: Clock,
    *,
    metrics: Metrics | None = None,
    hostname: str | None = None,
) -> Iterator[Scheduler]:
    """A daemon's scheduler with its parts: the dispatcher on an engine of its own, the
    per-instance AMC gate (amc executor only) on the tick's engine, the status checker (an
    executor that can tell statuses only) on an engine of its own, the session liveness, and
    the event the loop sleeps on. The caller starts and stops it; the engines it made are
    closed on the way out."""
    metrics = metrics or Metrics()
    wake = threading.Event()
    chunking = Chunking(settings.concurrency, in_process=executor.in_process)
    dispatch_engine = make_engine(
        engine.url, pool_size=chunking.threads, max_overflow=0, generic_plans=True
    )
    # Status checks (amc) on threads of their own, half as many as dispatches: each makes a
    # batch of one instance's checks at a time, on one connection that also holds its slot.
    status_threads = max(1, settings.concurrency // 2)
    status_engine = make_engine(
        engine.url, pool_size=status_threads, max_overflow=0, generic_plans=True
    )
    try:
        gate = (
            InstanceGate(engine, settings.amc.max_in_flight, wait=settings.lease / 2)
            if settings.executor is ExecutorName.AMC
            else None
        )
        dispatcher = Dispatcher(
            dispatch_engine,
            executor,
            settings.worker_id,
            chunking=chunking,
            max_failures=settings.max_consecutive_failures,
            write_retry_seconds=settings.lease,
            clock=clock,
            metrics=metrics,
            gate=gate,
            on_release=wake.set,
            # Half the time after which the others count this daemon dead and take its
            # claims: a retry is not sent when the heartbeat is older than that.
            send_window=settings.dead_after / 2,
            first_status_check=settings.status_poll_interval,
        )
        status_checker = (
            StatusChecker(
                status_engine,
                executor,
                threads=status_threads,
                interval=settings.status_poll_interval,
                deadline=settings.status_deadline_hours * 3600,
                max_failures=settings.max_consecutive_failures,
                metrics=metrics,
                on_auto_pause=dispatcher.auto_paused,
                gate=gate,
            )
            if isinstance(executor, StatusSource)
            else None
        )
        liveness = SessionLiveness(
            libpq_url(engine),
            settings.worker_id,
            enabled=settings.session_liveness,
            monotonic=clock.monotonic,
            on_lost=wake.set,
        )
        yield Scheduler(
            engine,
            settings,
            dispatcher,
            liveness,
            clock,
            wake=wake,
            metrics=metrics,
            status_checker=status_checker,
            hostname=hostname,
        )
    finally:
        dispatch_engine.dispose()
        status_engine.dispose()


def _run_once(scheduler: Scheduler, settings: Settings) -> None:
    scheduler.start()
    try:
        result = scheduler.tick()
        structlog.get_logger("scheduler_daemon").info(
            "tick.done",
            claimed=result.claimed,
            skipped=result.skipped,
            manual=result.manual,
            reaped=result.reaped,
        )
    finally:
        scheduler.stop(settings.shutdown_grace)


def _run_forever(scheduler: Scheduler, settings: Settings, engine: Engine) -> None:
    stop, wake = threading.Event(), scheduler.wake
    restore = install_signal_handlers(stop, wake)
    listener = WakeupListener(libpq_url(engine), wake, stop)
    listener.start()
    try:
        notifier = SystemdNotifier.from_environment(os.environ)
        run_loop(scheduler, stop, wake, grace=settings.shutdown_grace, notifier=notifier)
    finally:
        stop.set()
        restore()
