"""The operator scripts are thin: each runs one CLI command with the project's virtualenv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, text

from tests.helpers import NO_ENV_FILE, Rows

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def script(name: str, *args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")} | NO_ENV_FILE
    env |= {
        "SCHEDULER_DATABASE_URL": database_url,
        "SCHEDULER_DAEMON_BIN": str(Path(sys.executable).parent / "scheduler-daemon"),
    }
    return subprocess.run(
        [str(SCRIPTS / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_operator_scripts(engine: Engine, rows: Rows, database_url: str) -> None:
    active = rows.schedule(
        name="active", enabled=True, next_run_at=text("now() + interval '1 hour'")
    )
    broken = rows.schedule(name="broken")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE workflow_schedules SET timezone = 'Nowhere/Land' WHERE id = :id"),
            {"id": broken},
        )

    listed = script("list_active_schedules", "--json", database_url=database_url)
    assert [r["name"] for r in json.loads(listed.stdout)] == ["active"]

    validated = script("validate_schedules", database_url=database_url)
    assert validated.returncode == 1
    assert validated.stdout.startswith(f"{broken} 'broken': unknown time zone 'Nowhere/Land'")

    triggered = script("trigger_schedule", str(active), "--json", database_url=database_url)
    assert triggered.returncode == 0, triggered.stderr
    assert json.loads(triggered.stdout)["schedule_id"] == str(active)

    health = script("check_daemon_health", database_url=database_url)
    assert health.returncode == 1
    assert "no live worker" in health.stdout
