"""``db status`` says which database it used and why, ``db shell`` opens psql on it, and every
command reads the environment file (here always one of the test's own, named by
SCHEDULER_ENV_FILE: never the host's /etc/scheduler-daemon/scheduler-daemon.env).

The embedded database is one fresh data directory for the whole module (each start of a new
one costs seconds); the URL cases use the suite's PostgreSQL.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.acceptance.test_cli import assert_one_line_error, run_cli

PASSWORD = "hunter2-db-shell"


@dataclass(frozen=True)
class Embedded:
    data_dir: Path
    env_file: Path

    @property
    def env(self) -> dict[str, str]:
        return {"SCHEDULER_ENV_FILE": str(self.env_file)}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Embedded:
    """A data directory nothing has created yet, named (as on a service host) in the env file."""
    root = tmp_path_factory.mktemp("db_commands")
    data_dir = root / "data"
    env_file = root / "scheduler-daemon.env"
    env_file.write_text(f'# the service\'s settings\n\nSCHEDULER_DATA_DIR="{data_dir}"\n')
    return Embedded(data_dir, env_file)


@pytest.fixture
def password_url(database_url: str) -> Iterator[str]:
    """The test database's URL as a role with a password (what psql must be handed)."""
    role = f"sd_shell_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        try:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(PASSWORD)
                )
            )
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test server's user may not create roles")
        conn.execute(sql.SQL("GRANT SELECT ON alembic_version TO {}").format(sql.Identifier(role)))
    url = make_url(database_url).set(username=role, password=PASSWORD)
    yield url.render_as_string(hide_password=False)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def status_json(*args: str, env: dict[str, str]) -> dict[str, object]:
    result = run_cli(*args, "db", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    status: dict[str, object] = json.loads(result.stdout)
    return status


def test_db_status_names_the_embedded_data_directory_and_the_env_file_line(
    embedded: Embedded,
) -> None:
    status = status_json(env=embedded.env)
    assert status["embedded"] is True
    assert status["up_to_date"] is True  # the embedded database is kept at head
    assert status["env_file"] == str(embedded.env_file)
    assert status["database"] == {
        "setting": "data_dir",
        "value": str(embedded.data_dir),
        "from": "env_file",
        "name": "SCHEDULER_DATA_DIR",
        "location": f"{embedded.env_file}:3",
    }
    assert (embedded.data_dir / "pgdata" / "PG_VERSION").exists()
    if os.geteuid() != 0:  # as root the wheel opens the path up for its own postgres user
        assert stat.S_IMODE(embedded.data_dir.stat().st_mode) == 0o700

    text = run_cli("db", "status", env=embedded.env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"database: embedded, data in {embedded.data_dir}"
    assert lines[1].startswith(f"  from:   SCHEDULER_DATA_DIR in {embedded.env_file}:3")
    assert lines[2] == f"env file: {embedded.env_file} (named by SCHEDULER_ENV_FILE)"


def test_db_shell_runs_psql_on_the_embedded_database(embedded: Embedded) -> None:
    result = run_cli("db", "shell", "--", "-c", "select 1", env=embedded.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["?column?", "----------", "1", "(1", "row)"]
    # This process started the server, so it stopped it again when psql exited.
    assert not (embedded.data_dir / "pgdata" / "postmaster.pid").exists()


def test_a_variable_wins_over_the_env_file_and_an_option_over_both(
    embedded: Embedded, database_url: str
) -> None:
    env = embedded.env | {"SCHEDULER_DATABASE_URL": database_url}
    by_variable = status_json(env=env)
    assert by_variable["embedded"] is False
    assert by_variable["database"] == {
        "setting": "database_url",
        "value": make_url(database_url).render_as_string(hide_password=True),
        "from": "environment",
        "name": "SCHEDULER_DATABASE_URL",
        "location": None,
    }
    by_option = status_json("--database-url", database_url, env=embedded.env)
    assert by_option["database"] == by_variable["database"] | {
        "from": "option",
        "name": "--database-url",
    }


def test_a_url_in_the_env_file_is_shown_masked_with_its_line(
    tmp_path: Path, password_url: str
) -> None:
    env_file = tmp_path / "scheduler-daemon.env"
    env_file.write_text(f"SCHEDULER_LOG_LEVEL=info\nSCHEDULER_DATABASE_URL='{password_url}'\n")
    env = {"SCHEDULER_ENV_FILE": str(env_file)}
    status = status_json(env=env)
    assert status["database"] == {
        "setting": "database_url",
        "value": make_url(password_url).render_as_string(hide_password=True),
        "from": "env_file",
        "name": "SCHEDULER_DATABASE_URL",
        "location": f"{env_file}:2",
    }
    assert status["up_to_date"] is True
    text = run_cli("db", "status", env=env)
    assert text.returncode == 0, text.stderr
    assert f"  from:   SCHEDULER_DATABASE_URL in {env_file}:2" in text.stdout
    assert PASSWORD not in text.stdout + json.dumps(status)


def test_db_shell_runs_psql_on_a_url_database(tmp_path: Path, password_url: str) -> None:
    plain = run_cli(
        "db", "shell", "--", "-c", "select 1", env={"SCHEDULER_DATABASE_URL": password_url}
    )
    assert plain.returncode == 0, plain.stderr
    assert "(1 row)" in plain.stdout

    env_file = tmp_path / "scheduler-daemon.env"
    env_file.write_text(f'SCHEDULER_DATABASE_URL="{password_url}"\n')
    env = {"SCHEDULER_ENV_FILE": str(env_file)}
    who = run_cli("db", "shell", "--", "-At", "-c", "select current_user", env=env)
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == make_url(password_url).username
    # psql's own exit code is the command's.
    failing = run_cli("db", "shell", "--", "-c", "select no_such_column", env=env)
    assert failing.returncode == 1
    assert "no_such_column" in failing.stderr
    assert PASSWORD not in failing.stderr


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("# ok\nexport SCHEDULER_LEASE=5\n", [":2: 'export SCHEDULER_LEASE' is not a variable"]),
        ('SCHEDULER_DATABASE_URL="postgresql://u:pw@h/db\n', [':1: unterminated " quote']),
        ("\n\nSCHEDULER_POLL_INTERVAL=-5\n", [":3: SCHEDULER_POLL_INTERVAL='-5'", "positive"]),
    ],
)
def test_a_bad_env_file_is_one_line_naming_file_and_line(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text(text)
    result = run_cli("schedules", "list", env={"SCHEDULER_ENV_FILE": str(env_file)})
    assert_one_line_error(result, str(env_file), *fragments)
    assert "pw@" not in result.stderr


def test_a_missing_named_env_file_is_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.env")
    result = run_cli("db", "status", env={"SCHEDULER_ENV_FILE": missing})
    assert_one_line_error(result, "SCHEDULER_ENV_FILE", missing, "no such file")
