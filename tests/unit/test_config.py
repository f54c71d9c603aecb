"""Settings: option over environment over default; bad values name their source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scheduler_daemon.amc.credentials import AmcCredentials
from scheduler_daemon.amc.observer import NO_OBSERVER, AmcObserver, NoObserver
from scheduler_daemon.amc.settings import AmcSettings
from scheduler_daemon.config import (
    EnvFileError,
    ExecutorName,
    LogFormat,
    load_configuration,
    load_settings,
    mask_url,
    parse_env_file,
    read_environment,
)
from scheduler_daemon.errors import ConfigError
from scheduler_daemon.executors import amc as amc_executor
from scheduler_daemon.executors import build_executor


def test_defaults() -> None:
    settings = load_settings({}, env={})
    assert settings.database_url is None
    assert settings.poll_interval == 60
    assert settings.heartbeat_interval == 10
    assert settings.dead_after == 30
    assert settings.executor is ExecutorName.NOOP
    assert settings.log_format is LogFormat.AUTO
    assert settings.worker_id.count(":") == 2
    assert settings.session_liveness is True
    assert load_settings({}, env={"SCHEDULER_SESSION_LIVENESS": "off"}).session_liveness is False


def test_option_beats_environment_beats_default() -> None:
    env = {
        "SCHEDULER_POLL_INTERVAL": "30",
        "SCHEDULER_BATCH_SIZE": "100",
        "SCHEDULER_DATA_DIR": "/srv/sd",
    }
    settings = load_settings({"poll_interval": "5", "batch_size": None}, env=env)
    assert settings.poll_interval == 5
    assert settings.batch_size == 100
    assert settings.data_dir == Path("/srv/sd")


def test_an_empty_variable_means_unset() -> None:
    assert load_settings({}, env={"SCHEDULER_DATABASE_URL": ""}).database_url is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SCHEDULER_POLL_INTERVAL": "0"},
            "SCHEDULER_POLL_INTERVAL='0': must be a positive number of seconds",
        ),
        ({"SCHEDULER_LEASE": "nan"}, "SCHEDULER_LEASE='nan': must be a positive number of seconds"),
        (
            {"SCHEDULER_CONCURRENCY": "-1"},
            "SCHEDULER_CONCURRENCY='-1': must be a positive whole number",
        ),
        ({"SCHEDULER_EXECUTOR": "cron"}, "SCHEDULER_EXECUTOR='cron': must be one of: noop"),
        (
            {"SCHEDULER_LOG_LEVEL": "loud"},
            "SCHEDULER_LOG_LEVEL='loud': must be one of: debug, info, warning, error",
        ),
        (
            {"SCHEDULER_DATABASE_URL": "sqlite:///x.db"},
            "SCHEDULER_DATABASE_URL='sqlite:///x.db': not a valid PostgreSQL URL",
        ),
        ({"SCHEDULER_WORKER_ID": "  "}, "SCHEDULER_WORKER_ID='  ': must not be empty"),
        (
            {"SCHEDULER_SESSION_LIVENESS": "maybe"},
            "SCHEDULER_SESSION_LIVENESS='maybe': must be on or off",
        ),
        (
            {"SCHEDULER_AMC_MAX_IN_FLIGHT": "0"},
            "SCHEDULER_AMC_MAX_IN_FLIGHT='0': must be a positive whole number",
        ),
        (
            {"SCHEDULER_AMC_API_URL": "ftp://amc.example"},
            "SCHEDULER_AMC_API_URL='ftp://amc.example': must be an http(s) URL",
        ),
        (
            {"SCHEDULER_AMC_CIRCUIT_COOL_DOWN": "-1"},
            "SCHEDULER_AMC_CIRCUIT_COOL_DOWN='-1': must be a positive number of seconds",
        ),
        (
            {"SCHEDULER_HEARTBEAT_INTERVAL": "10", "SCHEDULER_WORKER_DEAD_AFTER": "5"},
            "SCHEDULER_WORKER_DEAD_AFTER=5.0: must be longer than the heartbeat interval (10.0s)",
        ),
    ],
)
def test_bad_environment_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, env=env)
    assert str(caught.value).startswith(message)


def test_a_bad_option_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"^--batch-size='0': must be a positive whole number$"):
        load_settings({"batch_size": "0"}, env={})


def test_urls_are_masked() -> None:
    assert mask_url("postgresql://me:hunter2@db/x") == "postgresql://me:***@db/x"


def test_amc_settings_are_one_table_with_its_defaults() -> None:
    settings = load_settings({}, env={})
    assert settings.amc == AmcSettings()
    assert (settings.amc.max_in_flight, settings.amc.failure_threshold) == (10, 5)
    assert settings.amc.api_url == "https://advertising-api.amazon.com"


def test_amc_settings_from_their_variables_and_options() -> None:
    env = {
        "SCHEDULER_AMC_API_URL": "http://127.0.0.1:8765/",
        "SCHEDULER_AMC_TOKEN_URL": "http://127.0.0.1:8765/auth/o2/token",
        "SCHEDULER_AMC_MAX_IN_FLIGHT": "3",
        "SCHEDULER_AMC_CIRCUIT_FAILURES": "7",
        "SCHEDULER_AMC_CIRCUIT_COOL_DOWN": "15",
        "SCHEDULER_AMC_REQUEST_TIMEOUT": "4.5",
    }
    settings = load_settings({"amc_max_in_flight": "2"}, env=env)
    assert settings.amc == AmcSettings(
        api_url="http://127.0.0.1:8765",
        token_url="http://127.0.0.1:8765/auth/o2/token",
        max_in_flight=2,  # the option over the variable
        failure_threshold=7,
        cool_down=15.0,
        request_timeout=4.5,
    )
    with pytest.raises(ConfigError, match=r"^--amc-max-in-flight='x': must be a whole number$"):
        load_settings({"amc_max_in_flight": "x"}, env={})


def test_the_amc_settings_reach_the_executor_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SCHEDULER_EXECUTOR": "amc",
        "SCHEDULER_AMC_CIRCUIT_FAILURES": "2",
        "SCHEDULER_AMC_CLIENT_ID": "amzn1.application-oa2-client.x",
        "SCHEDULER_AMC_CLIENT_SECRET": "s3cr3t-value",
        "SCHEDULER_AMC_REFRESH_TOKEN": "Atzr|refresh-value",
    }
    settings = load_settings({}, env=env)
    given: dict[str, Any] = {}
    made = object()

    def make(
        credentials: AmcCredentials, amc: AmcSettings, *, observer: AmcObserver = NO_OBSERVER
    ) -> Any:
        given.update(credentials=credentials, amc=amc, observer=observer)
        return made

    monkeypatch.setattr(amc_executor, "make_amc_executor", make)
    observer = NoObserver()
    assert build_executor(settings, observer=observer) is made
    assert given == {
        "credentials": settings.amc_credentials,
        "amc": settings.amc,
        "observer": observer,
    }
    assert given["amc"] is settings.amc


# --- the environment file ------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_env_file_syntax_is_systemds_simple_one(tmp_path: Path) -> None:
    text = (
        "# a comment\n"
        "; another\n"
        "\n"
        "A=1\n"
        "  B = two words  \n"
        'C="say \\"hi\\" to \\$HOME\\n"\n'
        "D='single $x \\'\n"
        "E=a\\ b\n"
        "F=x # part of the value\n"
        "G=\n"
        "H=\"a\" 'b'\n"
    )
    assert parse_env_file(text, tmp_path / "x.env") == {
        "A": ("1", 4),
        "B": ("two words", 5),
        "C": ('say "hi" to $HOME\\n', 6),
        "D": ("single $x \\", 7),
        "E": ("a b", 8),
        "F": ("x # part of the value", 9),
        "G": ("", 10),
        "H": ("ab", 11),
    }


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("SCHEDULER_DATABASE_URL", "expected KEY=VALUE, found no '='"),
        ("export SCHEDULER_LEASE=5", "'export SCHEDULER_LEASE' is not a variable name"),
        ('SCHEDULER_DATABASE_URL="postgresql://u:hunter2@h/db', 'unterminated " quote'),
        ("SCHEDULER_LEASE='5", "unterminated ' quote"),
        ("SCHEDULER_LEASE=5 \\", "a line ending in a backslash"),
    ],
)
def test_a_malformed_line_names_the_file_and_the_line(line: str, problem: str) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse_env_file(f"# settings\n\n{line}\n", "/etc/sd.env")
    message = str(caught.value)
    assert message.startswith(f"/etc/sd.env:3: {problem}")
    assert "hunter2" not in message
    assert "\n" not in message


def test_precedence_option_variable_env_file_default(tmp_path: Path) -> None:
    env_file = write(
        tmp_path / "sd.env",
        "SCHEDULER_POLL_INTERVAL=30\nSCHEDULER_LEASE=200\nSCHEDULER_BATCH_SIZE=7\n"
        "SCHEDULER_CONCURRENCY=9\nSCHEDULER_DATA_DIR=/srv/file\n",
    )
    environ = {
        "SCHEDULER_ENV_FILE": str(env_file),
        "SCHEDULER_POLL_INTERVAL": "20",
        "SCHEDULER_LEASE": "100",
        "SCHEDULER_CONCURRENCY": "",  # empty: unset, so the file's
    }
    built = load_configuration(
        {"poll_interval": "5", "batch_size": None}, read_environment(environ)
    )
    settings, sources = built.settings, built.sources
    assert (settings.poll_interval, settings.lease, settings.batch_size) == (5, 100, 7)
    assert (settings.concurrency, settings.data_dir) == (9, Path("/srv/file"))
    assert settings.heartbeat_interval == 10
    assert sources["poll_interval"].describe() == "option --poll-interval"
    assert sources["lease"].describe() == "environment variable SCHEDULER_LEASE"
    assert sources["batch_size"].describe() == f"SCHEDULER_BATCH_SIZE in {env_file}:3"
    assert sources["concurrency"].describe() == f"SCHEDULER_CONCURRENCY in {env_file}:4"
    assert sources["heartbeat_interval"].describe() == "default"
    assert sources["data_dir"].as_json() == {
        "from": "env_file",
        "name": "SCHEDULER_DATA_DIR",
        "location": f"{env_file}:5",
    }


def test_the_default_env_file_is_read_when_it_exists(tmp_path: Path) -> None:
    default = tmp_path / "etc" / "scheduler-daemon.env"
    absent = read_environment({}, default_file=default)
    assert absent.file is None
    assert absent.looked_for == default
    default.parent.mkdir()
    write(default, "SCHEDULER_EXECUTOR=noop\n")
    present = read_environment({}, default_file=default)
    assert present.file is not None
    assert (present.file.path, present.file.chosen_by) == (default, "default")
    named = write(tmp_path / "other.env", "")
    chosen = read_environment({"SCHEDULER_ENV_FILE": str(named)}, default_file=default)
    assert chosen.file is not None
    assert (chosen.file.path, chosen.file.chosen_by) == (named, "SCHEDULER_ENV_FILE")
    none = read_environment({"SCHEDULER_ENV_FILE": "/dev/null"}, default_file=default)
    assert none.file is not None
    assert none.file.lines == {}


def test_a_named_env_file_must_exist_and_be_readable(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.env")
    with pytest.raises(ConfigError, match=r"^SCHEDULER_ENV_FILE='.*nope\.env': no such file$"):
        read_environment({"SCHEDULER_ENV_FILE": missing})
    with pytest.raises(EnvFileError, match=r"cannot read the environment file"):
        read_environment({"SCHEDULER_ENV_FILE": str(tmp_path)})  # a directory


def test_a_bad_value_in_the_env_file_names_its_line(tmp_path: Path) -> None:
    env_file = write(tmp_path / "sd.env", "# x\nSCHEDULER_POLL_INTERVAL=-5\n")
    environment = read_environment({"SCHEDULER_ENV_FILE": str(env_file)})
    with pytest.raises(ConfigError) as caught:
        load_configuration({}, environment)
    assert str(caught.value) == (
        f"{env_file}:2: SCHEDULER_POLL_INTERVAL='-5': must be a positive number of seconds"
    )


def test_the_amc_credentials_come_from_the_env_file_too(tmp_path: Path) -> None:
    env_file = write(
        tmp_path / "sd.env",
        "SCHEDULER_EXECUTOR=amc\nSCHEDULER_AMC_CLIENT_ID=amzn1.application-oa2-client.f\n"
        "SCHEDULER_AMC_CLIENT_SECRET=from-file\nSCHEDULER_AMC_REFRESH_TOKEN=Atzr|file\n",
    )
    environ = {"SCHEDULER_ENV_FILE": str(env_file), "SCHEDULER_AMC_REFRESH_TOKEN": "Atzr|env"}
    settings = load_configuration({}, read_environment(environ)).settings
    assert settings.amc_credentials is not None
    assert settings.amc_credentials.client_id == "amzn1.application-oa2-client.f"
    assert settings.amc_credentials.refresh_token.reveal() == "Atzr|env"


def test_worker_dead_after_too_short_names_where_it_was_set() -> None:
    with pytest.raises(ConfigError, match=r"^--worker-dead-after=5\.0: must be longer"):
        load_settings({"worker_dead_after": "5"}, env={})


def test_numbers_name_their_unit() -> None:
    with pytest.raises(ConfigError, match="must be zero or a positive number of days"):
        load_settings({}, env={"SCHEDULER_HISTORY_RETENTION_DAYS": "-1"})
    with pytest.raises(ConfigError, match="must be a positive number of hours"):
        load_settings({}, env={"SCHEDULER_STATUS_DEADLINE_HOURS": "0"})
