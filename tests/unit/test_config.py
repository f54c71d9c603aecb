"""Settings: option over environment over default; bad values name their source."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler_daemon.config import ExecutorName, LogFormat, load_settings, mask_url
from scheduler_daemon.errors import ConfigError


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
