"""The CLI as a user meets it: a subprocess, its exit code, its stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler_daemon import __version__
from scheduler_daemon.db.migrate import head_revision
from tests.helpers import NO_ENV_FILE


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")} | NO_ENV_FILE
    return subprocess.run(
        [sys.executable, "-m", "scheduler_daemon", *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("scheduler-daemon: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_version() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"scheduler-daemon {__version__}"


def test_help_lists_only_working_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    commands = result.stdout.split("Commands:")[1].split()
    for name in ("db", "migrate", "version"):
        assert name in commands


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        (
            {"SCHEDULER_DATABASE_URL": "mysql://u@h/db"},
            ["SCHEDULER_DATABASE_URL", "mysql://u@h/db", "not postgresql"],
        ),
        ({"SCHEDULER_DATABASE_URL": "::not a url::"}, ["SCHEDULER_DATABASE_URL", "::not a url::"]),
        ({"SCHEDULER_POLL_INTERVAL": "-5"}, ["SCHEDULER_POLL_INTERVAL", "'-5'", "positive"]),
        ({"SCHEDULER_BATCH_SIZE": "lots"}, ["SCHEDULER_BATCH_SIZE", "'lots'", "whole number"]),
        (
            {"SCHEDULER_EXECUTOR": "carrier-pigeon"},
            ["SCHEDULER_EXECUTOR", "carrier-pigeon", "one of: noop"],
        ),
        ({"SCHEDULER_LOG_FORMAT": "xml"}, ["SCHEDULER_LOG_FORMAT", "'xml'", "json"]),
    ],
)
def test_bad_configuration_is_one_line_exit_2(env: dict[str, str], fragments: list[str]) -> None:
    assert_one_line_error(run_cli("db", "status", env=env), *fragments)


def test_bad_option_names_the_option() -> None:
    result = run_cli("--database-url", "redis://localhost/0", "db", "status")
    assert_one_line_error(result, "--database-url", "redis://localhost/0")


def test_unreachable_database_is_one_line_exit_2_with_password_masked() -> None:
    result = run_cli(
        "db",
        "status",
        env={"SCHEDULER_DATABASE_URL": "postgresql://me:hunter2@127.0.0.1:1/nowhere"},
    )
    assert_one_line_error(result, "cannot connect", "127.0.0.1:1")
    assert "hunter2" not in result.stderr


def test_unknown_command_is_one_line_exit_2() -> None:
    assert_one_line_error(run_cli("frobnicate"), "frobnicate")


def test_migrate_check_and_status_against_a_real_database(empty_database_url: str) -> None:
    env = {"SCHEDULER_DATABASE_URL": empty_database_url}
    behind = run_cli("migrate", "--check", env=env)
    assert behind.returncode == 1
    assert "behind" in behind.stdout

    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert f"-> {head_revision()}" in first.stdout
    again = run_cli("migrate", env=env)
    assert again.returncode == 0
    assert "already at head" in again.stdout
    assert run_cli("migrate", "--check", env=env).returncode == 0

    status = run_cli("db", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert {key: shown[key] for key in ("embedded", "current_revision", "up_to_date")} == {
        "embedded": False,
        "current_revision": head_revision(),
        "up_to_date": True,
    }


def test_embedded_default_two_processes_at_once_share_one_server(tmp_path: Path) -> None:
    """No URL: the CLI starts the embedded server; two at once neither clash nor corrupt it."""
    env = {"SCHEDULER_DATA_DIR": str(tmp_path / "data")}
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")} | NO_ENV_FILE
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "scheduler_daemon", "migrate"],
            env=base | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert all(f"data in {tmp_path / 'data'}" in err for _, err in outputs)
    messages = sorted(out.strip() for out, _ in outputs)
    assert messages == [
        f"database already at head ({head_revision()})",
        f"migrated empty database -> {head_revision()}",
    ]

    status = run_cli("db", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["up_to_date"] is True
    # The last process to leave stopped the server: no postmaster is left running.
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()


def test_run_once_on_the_embedded_default(tmp_path: Path) -> None:
    """The README's first command: no URL, so the embedded database, migrated, one tick."""
    result = run_cli(
        "run", "--once", "--log-format", "json", env={"SCHEDULER_DATA_DIR": str(tmp_path / "data")}
    )
    assert result.returncode == 0, result.stderr
    assert f"data in {tmp_path / 'data'}" in result.stderr
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert events == ["worker.started", "tick.done", "worker.stopped"]


def test_run_refuses_a_database_behind_the_code(empty_database_url: str) -> None:
    result = run_cli("run", "--once", env={"SCHEDULER_DATABASE_URL": empty_database_url})
    assert_one_line_error(result, "schema is at revision none", "scheduler-daemon migrate")


def test_operator_commands_work_on_a_fresh_embedded_database(tmp_path: Path) -> None:
    """The embedded default is the daemon's own: a command that reads the tables brings its
    schema to head first, as ``run`` does, instead of failing on a missing table."""
    env = {"SCHEDULER_DATA_DIR": str(tmp_path / "data")}
    listed = run_cli("schedules", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    for args in (["runs", "list", "--json"], ["workers", "--json"]):
        result = run_cli(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert json.loads(result.stdout) == []


@pytest.mark.parametrize(
    "args", [["schedules", "list"], ["workers"], ["runs", "prune", "--older-than", "30"]]
)
def test_operator_commands_refuse_a_database_of_your_own_behind_the_code(
    empty_database_url: str, args: list[str]
) -> None:
    """A database of your own is migrated only by ``migrate``: one line saying so, exit 2."""
    result = run_cli(*args, env={"SCHEDULER_DATABASE_URL": empty_database_url})
    assert_one_line_error(result, "schema is at revision none", "scheduler-daemon migrate")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "--poll-interval", "-1"], ["--poll-interval='-1'", "positive"]),
        (["run", "--executor", "amc2"], ["--executor='amc2'", "one of: noop"]),
        (["run", "--log-format", "yaml"], ["--log-format='yaml'"]),
    ],
)
def test_run_rejects_bad_options(args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(run_cli(*args), *fragments)


def test_preview_marks_times_a_dst_change_moves() -> None:
    args = (
        "preview",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-03-06T00:00:00Z",
        "--count",
        "4",
    )
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    fires = json.loads(result.stdout)["fires"]
    assert [f["utc"] for f in fires] == [
        "2026-03-06T07:30:00+00:00",
        "2026-03-07T07:30:00+00:00",
        "2026-03-08T07:00:00+00:00",
        "2026-03-09T06:30:00+00:00",
    ]
    assert [f["note"] is not None for f in fires] == [False, False, True, False]
    text = run_cli(*args)
    assert "moved from 02:30" in text.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["preview", "0 0 31 2 *"], ["day-of-month", "'31'"]),
        (["preview", "0 9 * * *", "--tz", "Europe/Londn"], ["Europe/Londn", "Europe/London"]),
        (["preview", "0 9 * * *", "--after", "2026-01-01"], ["--after", "UTC offset"]),
        (["preview", "0 9 * * *", "--count", "0"], ["--count"]),
        (["preview", "61 * * * *"], ["minute", "61"]),
    ],
)
def test_preview_bad_input_is_one_line_exit_2(args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(run_cli(*args), *fragments)


def test_embedded_server_stops_even_after_a_user_was_killed(tmp_path: Path) -> None:
    """A process killed with SIGKILL stays in the wheel's list of users of the server; it must
    not keep the last real user from stopping it."""
    env = {"SCHEDULER_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("migrate", env=env).returncode == 0
    handles = tmp_path / "data" / "pgdata" / ".handle_pids.json"
    handles.write_text(json.dumps([2**22 + 12345]))  # above pid_max: no such process
    assert run_cli("db", "status", env=env).returncode == 0
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()
    assert json.loads(handles.read_text()) == []
