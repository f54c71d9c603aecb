"""`scheduler-daemon demo` on nothing but the package: runs with execution ids within 30 s."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tests.acceptance.test_cli import run_cli

EXECUTION = re.compile(r"execution ([0-9a-f-]{36})  (dispatched|succeeded)")


def test_demo_shows_runs_with_execution_ids(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_cli(
        "demo", "--seconds", "25", env={"SCHEDULER_DATA_DIR": str(tmp_path / "data")}, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    runs = [line for line in lines if EXECUTION.search(line)]
    assert any(
        "'demo: every 10 seconds'" in line and line.endswith("succeeded") for line in runs
    ), result.stdout
    assert any(
        line.startswith("manual") and "'demo: nightly, previous day'" in line for line in runs
    ), result.stdout
    assert "demo stopped" in result.stdout
    assert lines[-1].strip() == "scheduler-daemon workflows list"
    assert time.monotonic() - started < 90
    assert "Traceback" not in result.stderr

    # What the demo leaves is what the next command sees: its schedules, disabled, and runs.
    env = {"SCHEDULER_DATA_DIR": str(tmp_path / "data")}
    listed = run_cli("schedules", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    schedules = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(schedules) == {
        "demo: every 10 seconds",
        "demo: every minute",
        "demo: nightly, previous day",
    }
    assert {row["state"] for row in schedules.values()} == {"disabled"}
    history = run_cli("runs", "list", "--schedule", "demo: every 10 seconds", "--json", env=env)
    assert {run["status"] for run in json.loads(history.stdout)} >= {"succeeded"}
