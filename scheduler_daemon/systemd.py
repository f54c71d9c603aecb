"""A tiny sd_notify(3) client: tell systemd we are ready, alive, or stopping.

No dependency: the protocol is one datagram of newline-separated ``KEY=value`` assignments
sent to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or an abstract-namespace
name written with a leading ``@``). good_job vendors the same few lines
(``lib/good_job/sd_notify.rb``) instead of taking a dependency, and so do we.

Outside systemd (no ``NOTIFY_SOCKET``: a terminal, cron, PM2, the tests) every method is a
no-op. Socket errors never escape: a daemon must not die because its supervisor is busy;
they are logged at debug level and the call returns False.

Where the daemon calls it:

- ``ready()`` once the database check has passed and the worker is registered;
- ``maybe_watchdog(clock.monotonic())`` from the tick path, every loop iteration, so that
  a tick that hangs stops the keep-alive pings and systemd restarts the daemon;
- ``stopping()`` when the stop event is seen, before the graceful drain.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping

import structlog

log = structlog.get_logger("scheduler_daemon.systemd")

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"

# A notification that cannot be delivered within this time is dropped: the tick must not
# block on a busy service manager.
DEFAULT_SEND_TIMEOUT = 2.0

_USEC_PER_SECOND = 1_000_000


class SystemdNotifier:
    """Sends sd_notify messages to ``address`` (None: a no-op notifier)."""

    def __init__(
        self,
        address: str | None,
        *,
        watchdog_interval: float | None = None,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        self._address = _socket_address(address)
        self._watchdog_interval = watchdog_interval if self._address is not None else None
        self._send_timeout = send_timeout
        self._last_watchdog: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, env: Mapping[str, str], *, pid: int | None = None) -> SystemdNotifier:
        """The notifier systemd asked for through ``env`` (pass ``os.environ`` at the CLI edge).

        ``pid`` is this process's id (default: ``os.getpid()``); a ``WATCHDOG_PID`` naming
        another process means the watchdog is not ours to feed.
        """
        address = env.get(NOTIFY_SOCKET) or None
        own_pid = os.getpid() if pid is None else pid
        interval = _watchdog_interval(env.get(WATCHDOG_USEC), env.get(WATCHDOG_PID), own_pid)
        return cls(address, watchdog_interval=interval)

    @property
    def enabled(self) -> bool:
        """True when there is a notification socket to talk to."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """systemd's ``WatchdogSec=`` in seconds, or None when no watchdog expects us."""
        return self._watchdog_interval

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up is complete (Type=notify units become active now)."""
        return self.notify("READY=1", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: the graceful shutdown has begun (TimeoutStopSec= runs from here)."""
        return self.notify("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        """``STATUS=…``: a one-line status shown by ``systemctl status``."""
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: one keep-alive ping, unconditionally."""
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC=…``: the current start or stop needs ``seconds`` more."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={round(seconds * _USEC_PER_SECOND)}")

    def maybe_watchdog(self, now_monotonic: float) -> bool:
        """Ping the watchdog if half its interval has passed since the last ping.

        Call it as often as you like from the tick path with the monotonic time; it sends at
        most one ``WATCHDOG=1`` per ``watchdog_interval / 2`` (systemd's advice). Returns True
        when a ping was sent. A failed ping is retried on the next call.
        """
        interval = self._watchdog_interval
        if interval is None:
            return False
        with self._lock:
            last = self._last_watchdog
            if last is not None and now_monotonic - last < interval / 2:
                return False
            sent = self.watchdog()
            if sent:
                self._last_watchdog = now_monotonic
            return sent

    def notify(self, *assignments: str) -> bool:
        """Send ``assignments`` (``KEY=value`` strings) in one datagram; True if sent."""
        if self._address is None or not assignments:
            return False
        message = "\n".join(assignments).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(self._send_timeout)
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as exc:
            log.debug(
                "systemd.notify_failed",
                state=assignments[0],
                error=f"{type(exc).__name__}: {exc}",
            )
            return False
        return True


def _socket_address(raw: str | None) -> str | None:
    """The address to connect to: a path, or ``\\0name`` for ``@name``; None if unusable."""
    if not raw:
        return None
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # e.g. "vsock:CID:PORT" (systemd 253+, for VMs): not a socket this client speaks.
    log.debug("systemd.notify_socket_unsupported", notify_socket=raw)
    return None


def _watchdog_interval(usec: str | None, watchdog_pid: str | None, own_pid: int) -> float | None:
    """Seconds from ``WATCHDOG_USEC``, honouring ``WATCHDOG_PID`` as sd_watchdog_enabled(3)."""
    if not usec:
        return None
    try:
        micros = int(usec)
    except ValueError:
        log.debug("systemd.watchdog_usec_invalid", watchdog_usec=usec)
        return None
    if micros <= 0:
        return None
    if watchdog_pid:
        try:
            target = int(watchdog_pid)
        except ValueError:
            log.debug("systemd.watchdog_pid_invalid", watchdog_pid=watchdog_pid)
            return None
        if target != own_pid:
            return None
    return micros / _USEC_PER_SECOND


def _status(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    # One assignment per line: a newline inside the status would start a bogus assignment.
    return ("STATUS=" + " ".join(text.splitlines()),)
