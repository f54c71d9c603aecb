"""The daemon under systemd's notify protocol: READY once scheduling, watchdog pings, STOPPING."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from sqlalchemy import Engine

from tests.acceptance.daemons import Daemon


def test_ready_watchdog_and_stopping_over_notify_socket(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(0.5)
        daemon = Daemon(
            database_url,
            tmp_path / "d.log",
            "--worker-id",
            "sd",
            env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"},
        )
        messages: list[str] = []
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 3:
                try:
                    messages.append(listener.recv(4096).decode())
                except TimeoutError:
                    continue
        finally:
            assert daemon.terminate() == 0
        try:
            while True:
                messages.append(listener.recv(4096).decode())
        except TimeoutError:
            pass
    ready = [i for i, m in enumerate(messages) if "READY=1" in m]
    pings = [i for i, m in enumerate(messages) if m == "WATCHDOG=1"]
    stopping = [i for i, m in enumerate(messages) if "STOPPING=1" in m]
    assert len(ready) == 1, messages
    assert "STATUS=scheduling as sd" in messages[ready[0]]
    assert len(pings) >= 3
    assert len(stopping) == 1
    assert ready[0] < stopping[0]
    assert stopping[0] == len(messages) - 1
