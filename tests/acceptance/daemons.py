"""Real daemon processes for the acceptance tests, their JSON logs, and the rows they work on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from scheduler_daemon.amc.fake.server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    FakeAmcServer,
)
from tests.helpers import NO_ENV_FILE


def insert_due_schedules(
    engine: Engine, workflow_id: object, count: int, seconds_ahead: float
) -> None:
    """``count`` enabled cron schedules whose next run is ``seconds_ahead`` from now."""
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO workflow_schedules (workflow_id, name, cron_expression, enabled, next_run_at)
                SELECT :workflow_id, 'bulk ' || n || ' ' || gen_random_uuid(), '0 9 * * *', true,
                       date_trunc('second', now()) + make_interval(secs => :ahead)
                  FROM generate_series(1, :count) AS n
                """
            ),
            {"workflow_id": workflow_id, "count": count, "ahead": seconds_ahead},
        )


def count(engine: Engine, sql: str) -> int:
    """The single number ``sql`` selects."""
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - start


def wait_for_count(
    engine: Engine, sql: str, expected: int, what: str, timeout: float = 30
) -> float:
    """Poll until the single number ``sql`` selects is ``expected``; the seconds it took."""
    return wait_until(lambda: count(engine, sql) == expected, timeout, what)


class Daemon:
    def __init__(
        self, database_url: str, log_path: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.log_path = log_path
        base = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")} | NO_ENV_FILE
        self._log_file = log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scheduler_daemon",
                "--database-url",
                database_url,
                "run",
                "--log-format",
                "json",
                *args,
            ],
            env=base | (env or {}),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def terminate(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._log_file.close()
        return code

    def freeze(self) -> None:
        """SIGSTOP: alive, its connections open, but silent (a hung or paused process)."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self._log_file.close()

    def events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events


def free_port() -> int:
    """A TCP port nobody listens on now (for a daemon's ``--metrics-port``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric(port: int, name: str) -> float | None:
    """The sum of the samples called ``name`` (all labels) that a daemon serving metrics on
    ``port`` shows now; None if it shows none, or does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    except OSError:
        return None
    values = [
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name
    ]
    return sum(values) if values else None


def fake_amc_env(amc: FakeAmcServer, **extra: str) -> dict[str, str]:
    """A daemon's settings for the amc executor against the fake AMC (statuses polled every
    second), plus ``extra``."""
    return {
        "SCHEDULER_EXECUTOR": "amc",
        "SCHEDULER_AMC_API_URL": amc.base_url,
        "SCHEDULER_AMC_TOKEN_URL": amc.token_url,
        "SCHEDULER_AMC_CLIENT_ID": DEFAULT_CLIENT_ID,
        "SCHEDULER_AMC_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "SCHEDULER_AMC_REFRESH_TOKEN": DEFAULT_REFRESH_TOKEN,
        "SCHEDULER_STATUS_POLL_INTERVAL": "1",
    } | extra


def db_now(engine: Engine) -> datetime:
    """The database's clock, in UTC."""
    with engine.connect() as conn:
        moment: datetime = conn.execute(text("SELECT now()")).scalar_one()
    return moment.astimezone(UTC)
