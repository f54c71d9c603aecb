"""Building the amc executor from the settings, credentials read only for the amc executor."""

from __future__ import annotations

import pytest

from scheduler_daemon.config import ExecutorName, load_settings
from scheduler_daemon.errors import ConfigError
from scheduler_daemon.executors import build_executor
from scheduler_daemon.executors.amc import AmcExecutor

CREDENTIALS = {
    "SCHEDULER_AMC_CLIENT_ID": "amzn1.application-oa2-client.x",
    "SCHEDULER_AMC_CLIENT_SECRET": "s3cr3t-value",
    "SCHEDULER_AMC_REFRESH_TOKEN": "Atzr|refresh-value",
}


def test_builds_the_amc_executor_from_settings() -> None:
    env = CREDENTIALS | {
        "SCHEDULER_EXECUTOR": "amc",
        "SCHEDULER_AMC_API_URL": "http://127.0.0.1:1/",
    }
    settings = load_settings({}, env=env)
    assert settings.executor is ExecutorName.AMC
    executor = build_executor(settings)
    assert isinstance(executor, AmcExecutor)
    try:
        assert repr(executor) == "AmcExecutor(AmcClient(base_url='http://127.0.0.1:1'))"
    finally:
        executor.close()
    assert "s3cr3t" not in repr(settings)
    assert "refresh-value" not in repr(settings)


def test_the_amc_executor_needs_credentials() -> None:
    with pytest.raises(ConfigError, match="SCHEDULER_AMC_CLIENT_ID"):
        load_settings({}, env={"SCHEDULER_EXECUTOR": "amc"})


def test_noop_hosts_never_read_amc_credentials() -> None:
    settings = load_settings({}, env={"SCHEDULER_AMC_CLIENT_ID_FILE": "/nonexistent"})
    assert settings.amc_credentials is None
