"""The sd_notify client against a fake NOTIFY_SOCKET: real AF_UNIX datagram sockets."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from scheduler_daemon.systemd import SystemdNotifier


class FakeSystemd:
    """The receiving end of a notification socket, as PID 1 holds it."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket

    def receive(self) -> str:
        return self.sock.recv(4096).decode("utf-8")

    def pending(self) -> list[str]:
        """Every datagram queued right now (delivery over AF_UNIX is synchronous)."""
        messages = []
        self.sock.setblocking(False)
        try:
            while True:
                messages.append(self.sock.recv(4096).decode("utf-8"))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(2.0)
        return messages


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        yield FakeSystemd(sock, str(path))


@pytest.fixture
def abstract_systemd() -> Iterator[FakeSystemd]:
    name = f"scheduler-daemon-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        yield FakeSystemd(sock, "@" + name)


@pytest.fixture
def debug_logs() -> Iterator[None]:
    """Let debug events through whatever level another test configured."""
    previous = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(wrapper_class=previous)


def test_ready_reaches_a_path_socket(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": systemd.notify_socket})

    assert notifier.enabled
    assert notifier.ready()
    assert systemd.receive() == "READY=1"


def test_ready_with_status_is_one_datagram(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": systemd.notify_socket})

    assert notifier.ready(status="scheduling as host:1:abc")
    assert systemd.receive() == "READY=1\nSTATUS=scheduling as host:1:abc"
    assert systemd.pending() == []


def test_every_message_reaches_an_abstract_socket(abstract_systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": abstract_systemd.notify_socket})

    assert notifier.ready()
    assert notifier.status("tick ok: 3 claimed")
    assert notifier.watchdog()
    assert notifier.stopping()
    assert notifier.extend_timeout(1.5)

    assert abstract_systemd.pending() == [
        "READY=1",
        "STATUS=tick ok: 3 claimed",
        "WATCHDOG=1",
        "STOPPING=1",
        "EXTEND_TIMEOUT_USEC=1500000",
    ]


def test_stopping_with_status(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": systemd.notify_socket})

    assert notifier.stopping(status="draining 2 dispatches")
    assert systemd.receive() == "STOPPING=1\nSTATUS=draining 2 dispatches"


def test_status_cannot_smuggle_a_second_assignment(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": systemd.notify_socket})

    assert notifier.status("database down\nREADY=1")
    assert systemd.receive() == "STATUS=database down READY=1"


def test_without_notify_socket_everything_is_a_quiet_no_op() -> None:
    notifier = SystemdNotifier.from_environment({"WATCHDOG_USEC": "120000000"})

    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready("x")
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert not notifier.stopping()
    assert not notifier.maybe_watchdog(0.0)


def test_empty_notify_socket_is_unset() -> None:
    assert not SystemdNotifier.from_environment({"NOTIFY_SOCKET": ""}).enabled


def test_unsupported_socket_kind_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"})

    assert not notifier.enabled
    assert not notifier.ready()


@pytest.mark.usefixtures("debug_logs")
def test_socket_errors_are_logged_at_debug_and_swallowed(tmp_path: Path) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "missing")})

    with capture_logs() as logs:
        assert not notifier.ready()
        assert not notifier.watchdog()

    assert [(e["event"], e["log_level"], e["state"]) for e in logs] == [
        ("systemd.notify_failed", "debug", "READY=1"),
        ("systemd.notify_failed", "debug", "WATCHDOG=1"),
    ]
    assert "FileNotFoundError" in logs[0]["error"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "120000000"}, 120.0),
        ({"WATCHDOG_USEC": "500000"}, 0.5),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "4242"}, 120.0),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": ""}, 120.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "2min"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(
    systemd: FakeSystemd, env: dict[str, str], expected: float | None
) -> None:
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": systemd.notify_socket, **env}, pid=4242
    )

    assert notifier.watchdog_interval == expected


def test_watchdog_pid_defaults_to_this_process(systemd: FakeSystemd) -> None:
    ours = {"NOTIFY_SOCKET": systemd.notify_socket, "WATCHDOG_USEC": "1000000"}

    mine = SystemdNotifier.from_environment({**ours, "WATCHDOG_PID": str(os.getpid())})
    parents = SystemdNotifier.from_environment({**ours, "WATCHDOG_PID": str(os.getppid())})

    assert mine.watchdog_interval == 1.0
    assert parents.watchdog_interval is None


def test_maybe_watchdog_pings_at_most_every_half_interval(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": systemd.notify_socket, "WATCHDOG_USEC": "10000000"}
    )

    sent = {now: notifier.maybe_watchdog(now) for now in (100.0, 101.0, 104.9, 105.0, 106.0, 109.9)}

    assert sent == {
        100.0: True,
        101.0: False,
        104.9: False,
        105.0: True,
        106.0: False,
        109.9: False,
    }
    assert systemd.pending() == ["WATCHDOG=1", "WATCHDOG=1"]
    # A long gap (a slow tick) is followed by one ping, not a burst of catch-up pings.
    assert notifier.maybe_watchdog(130.0)
    assert not notifier.maybe_watchdog(131.0)
    assert systemd.pending() == ["WATCHDOG=1"]


def test_maybe_watchdog_is_silent_without_a_watchdog(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": systemd.notify_socket})

    assert not notifier.maybe_watchdog(0.0)
    assert not notifier.maybe_watchdog(1000.0)
    assert systemd.pending() == []


def test_maybe_watchdog_for_another_pid_is_silent(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier.from_environment(
        {
            "NOTIFY_SOCKET": systemd.notify_socket,
            "WATCHDOG_USEC": "10000000",
            "WATCHDOG_PID": "1",
        },
        pid=4242,
    )

    assert not notifier.maybe_watchdog(0.0)
    assert systemd.pending() == []


def test_a_failed_ping_is_retried_on_the_next_call(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "10000000"}
    )

    assert not notifier.maybe_watchdog(100.0)  # nobody listening yet

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        assert notifier.maybe_watchdog(101.0)  # not throttled by the failed attempt
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert not notifier.maybe_watchdog(102.0)
