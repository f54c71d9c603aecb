"""Settings: option over environment over default; bad values name their source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scheduler_daemon.amc.credentials import AmcCredentials
from scheduler_daemon.amc.observer import NO_OBSERVER, AmcObserver, NoObserver
from scheduler_daemon.amc.settings import AmcSettings
from scheduler_daemon.config import ExecutorName, LogFormat, load_settings, mask_url
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
