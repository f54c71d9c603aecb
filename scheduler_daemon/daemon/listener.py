"""LISTEN for the schedule-change notifications and wake the loop at once."""

from __future__ import annotations

import threading

import psycopg
import structlog

log = structlog.get_logger("scheduler_daemon.listener")

CHANNEL = "scheduler_daemon_wakeup"


class WakeupListener(threading.Thread):
    """Sets ``wake`` on every notification; reconnects quietly when the database goes away
    (the loop's safety-net tick covers the gap)."""

    def __init__(self, libpq_url: str, wake: threading.Event, stop: threading.Event) -> None:
        super().__init__(name="wakeup-listener", daemon=True)
        self._url = libpq_url
        self._wake = wake
        self._stop = stop

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Anything that changed while we were not listening: look now.
                    self._wake.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._wake.set()
            except psycopg.Error as exc:
                log.debug(
                    "listener.reconnecting", error=str(exc).splitlines()[0] if str(exc) else ""
                )
                self._stop.wait(2.0)
