"""`scheduler-daemon health` flips its exit code for each unhealthy condition."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, text

from tests.acceptance.test_cli import run_cli
from tests.helpers import Rows


def health(database_url: str, *args: str, **env: str) -> tuple[int, str]:
    result = run_cli("health", *args, env={"SCHEDULER_DATABASE_URL": database_url, **env})
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout


def live_worker(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler_workers (worker_id, hostname, pid, version) VALUES ('w', 'h', 1, 'v')"
            )
        )


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def test_healthy(engine: Engine, rows: Rows, database_url: str) -> None:
    live_worker(engine)
    rows.schedule(enabled=True, next_run_at=text("now() + interval '1 hour'"))
    code, out = health(database_url)
    assert code == 0
    assert out.startswith("OK: 1 live worker(s)")
    code, out = health(database_url, "--json")
    assert json.loads(out) == {
        "healthy": True,
        "status": "ok",
        "problems": [],
        "facts": {
            "schema_revision": json.loads(out)["facts"]["schema_revision"],
            "live_workers": 1,
            "dead_workers": [],
            "overdue_schedules": 0,
            "stale_locks": 0,
            "quarantined_or_auto_paused": 0,
            "unresolved_runs": 0,
            "recent_failure_rate": 0.0,
        },
    }


def test_no_live_worker(engine: Engine, database_url: str) -> None:
    live_worker(engine)
    sql(engine, "UPDATE scheduler_workers SET heartbeat_at = now() - interval '10 minutes'")
    code, out = health(database_url)
    assert code == 1
    assert out.splitlines() == [
        "CRITICAL: no live worker (newest heartbeat of a running worker: 10m ago; threshold 5m)"
    ]
    assert health(database_url, "--nagios")[0] == 2


def test_alive_but_not_claiming(engine: Engine, rows: Rows, database_url: str) -> None:
    """The failure operators miss most: heartbeats fine, an enabled schedule left unclaimed."""
    live_worker(engine)
    rows.schedule(enabled=True, next_run_at=text("now() - interval '20 minutes'"))
    code, out = health(database_url)
    assert code == 1
    assert "1 enabled schedule(s) due but unclaimed for more than 5m" in out
    assert health(database_url, "--overdue-threshold", "3600")[0] == 0


def test_stale_lock_is_a_warning(engine: Engine, rows: Rows, database_url: str) -> None:
    live_worker(engine)
    rows.schedule(
        enabled=True,
        next_run_at=text("now() + interval '1 hour'"),
        locked_by="w",
        locked_at=text("now() - interval '10 minutes'"),
    )
    code, out = health(database_url)
    assert (code, out.splitlines()) == (
        1,
        ["WARNING: 1 lock(s) older than the 2m lease (oldest: 10m)"],
    )
    assert health(database_url, "--nagios")[0] == 1
    # The daemons' lease, from the environment file they share with the health check.
    assert health(database_url, SCHEDULER_LEASE="900")[0] == 0
    assert health(database_url, "--lease", "300", SCHEDULER_LEASE="900")[0] == 1


@pytest.mark.parametrize(
    "reason", ["quarantined: bad cron", "auto-paused after 5 consecutive failures; last error: x"]
)
def test_quarantined_or_auto_paused(
    engine: Engine, rows: Rows, database_url: str, reason: str
) -> None:
    live_worker(engine)
    rows.schedule(
        name="nightly report",
        enabled=True,
        next_run_at=text("now() + interval '1 hour'"),
        paused_at=text("now()"),
        pause_reason=reason,
    )
    code, out = health(database_url)
    assert code == 1
    assert "1 schedule(s) quarantined or auto-paused: 'nightly report'" in out
    assert health(database_url, "--allow-paused")[0] == 0


def test_a_pause_by_an_operator_is_healthy(engine: Engine, rows: Rows, database_url: str) -> None:
    live_worker(engine)
    rows.schedule(
        enabled=True,
        next_run_at=text("now() - interval '1 hour'"),
        paused_at=text("now()"),
        pause_reason="maintenance",
    )
    assert health(database_url)[0] == 0


def test_an_unresolved_run_is_critical_until_an_operator_settles_it(
    engine: Engine, rows: Rows, database_url: str
) -> None:
    """A slot whose fate recovery could not tell may never have run: someone must look."""
    live_worker(engine)
    schedule_id = rows.schedule(name="hourly spend")
    run_id = rows.run(
        schedule_id,
        scheduled_for=text("now() - interval '1 hour'"),
        status="unresolved",
        finished_at=text("now()"),
        error_message="2 execution(s) (a, b) match this run's request",
    )
    code, out = health(database_url, "--nagios")
    assert code == 2
    assert "1 run(s) unresolved" in out
    assert f"{run_id} ('hourly spend')" in out
    result = run_cli(
        "runs",
        "resolve",
        str(run_id),
        "--no-execution",
        env={"SCHEDULER_DATABASE_URL": database_url},
    )
    assert result.returncode == 0, result.stderr
    assert health(database_url)[0] == 0


def test_failure_rate(engine: Engine, rows: Rows, database_url: str) -> None:
    live_worker(engine)
    schedule_id = rows.schedule()
    for minute in range(6):
        rows.run(
            schedule_id,
            scheduled_for=text(f"now() - interval '{minute} minutes'"),
            status="failed",
            finished_at=text("now()"),
        )
    code, out = health(database_url)
    assert code == 1
    assert "6 of 6 runs failed in the last 60m (100% > 50%)" in out


def test_schema_behind(empty_database_url: str) -> None:
    code, out = health(empty_database_url, "--nagios")
    assert code == 2
    assert "database schema at none" in out


def test_database_unreachable() -> None:
    result = run_cli(
        "health", "--json", env={"SCHEDULER_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/x"}
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["status"] == "critical"
    assert "cannot connect" in report["problems"][0]["message"]
    assert "secret" not in result.stdout
