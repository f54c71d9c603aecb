"""``scheduler-daemon serve`` as an operator runs it: a real process on a real port, the same
database and settings as every command, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.acceptance.daemons import free_port, wait_until
from tests.acceptance.test_cli import assert_one_line_error, run_cli
from tests.helpers import NO_ENV_FILE


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_serve_answers_with_a_token_made_by_the_cli_and_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    env = {"SCHEDULER_DATABASE_URL": database_url}
    created = run_cli("tokens", "create", "--name", "ci", "--role", "read", env=env)
    assert created.returncode == 0, created.stderr
    secret = next(word for word in created.stdout.split() if word.startswith("sdt_"))
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")} | NO_ENV_FILE
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "scheduler_daemon", "serve", "--port", str(port)],
        env=base | env | {"SCHEDULER_LOG_FORMAT": "json"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        root = f"http://127.0.0.1:{port}/api/v1"
        wait_until(lambda: _answers(f"{root}/openapi.json"), 30, "the API to answer")
        assert httpx.get(f"{root}/schedules").status_code == 401
        listed = httpx.get(f"{root}/schedules", headers={"Authorization": f"Bearer {secret}"})
        assert listed.status_code == 200
        assert listed.json() == {"items": [], "next": None}
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        log.close()
    assert code == 0
    logged = (tmp_path / "serve.log").read_text()
    assert f"127.0.0.1:{port}/api/v1" in logged
    assert secret not in logged


def test_serve_on_a_port_in_use_says_so_in_one_line(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), env={"SCHEDULER_DATABASE_URL": database_url})
    assert_one_line_error(result, f"127.0.0.1:{port}", "cannot listen")


def test_serve_binds_to_loopback_by_default() -> None:
    result = run_cli("serve", "--help")
    assert "127.0.0.1" in result.stdout
