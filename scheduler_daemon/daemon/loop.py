"""The thin loop around the tick: sleep on an Event, wake on notifications and signals,
survive database outages, shut down gracefully."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import structlog
from sqlalchemy.exc import DBAPIError

from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.db.engine import describe_error, is_transient
from scheduler_daemon.systemd import SystemdNotifier

log = structlog.get_logger("scheduler_daemon.loop")

_MAX_BACKOFF = 5.0


class DatabaseState:
    """Logs one line per change of the database's availability, not one per retry."""

    def __init__(self, on_change: Callable[[bool], None] | None = None) -> None:
        self._on_change = on_change
        self.available = True
        self._backoff = 0.5

    def failed(self, exc: BaseException) -> float:
        if self.available:
            self.available = False
            log.error("db.unavailable", error=describe_error(exc))
            if self._on_change:
                self._on_change(False)
        delay = self._backoff
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
        return delay

    def succeeded(self) -> None:
        if not self.available:
            self.available = True
            log.info("db.recovered")
            if self._on_change:
                self._on_change(True)
        self._backoff = 0.5


def install_signal_handlers(stop: threading.Event, wake: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT only set the stop event; returns a function restoring the old handlers."""

    def handle(signum: int, _: FrameType | None) -> None:
        log.info("worker.stopping", signal=signal.Signals(signum).name)
        stop.set()
        wake.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def run_loop(
    scheduler: Scheduler,
    stop: threading.Event,
    wake: threading.Event,
    *,
    grace: float,
    notifier: SystemdNotifier | None = None,
) -> None:
    """Tick until ``stop`` is set; then stop the scheduler within ``grace`` seconds.

    Under systemd: READY=1 after the first tick, WATCHDOG=1 from the loop itself (a hung tick
    stops the pings, and systemd restarts the daemon), STOPPING=1 when the drain begins."""
    notifier = notifier or SystemdNotifier.from_environment({})
    database = DatabaseState(lambda up: scheduler.metrics.database_available.set(1 if up else 0))
    started = ready = False
    try:
        while not stop.is_set():
            try:
                if not started:
                    scheduler.start()
                    started = True
                result = scheduler.tick()
                database.succeeded()
                timeout = result.sleep_for
                if not ready:
                    notifier.ready(f"scheduling as {scheduler.worker_id}")
                    ready = True
            except DBAPIError as exc:
                if not is_transient(exc):
                    raise
                timeout = database.failed(exc)
            # Also while the database is away: the loop is alive, only a hung tick is not.
            notifier.maybe_watchdog(scheduler.clock.monotonic())
            if notifier.watchdog_interval is not None:
                timeout = min(timeout, notifier.watchdog_interval / 2)
            if timeout > 0:
                wake.wait(timeout)
            wake.clear()
    finally:
        notifier.stopping("draining in-flight dispatches")
        if started:
            try:
                scheduler.stop(grace)
            except DBAPIError as exc:
                log.error("worker.stop_failed", error=describe_error(exc))
