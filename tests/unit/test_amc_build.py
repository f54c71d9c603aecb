"""Building the amc executor from settings (the amc_* fields the lead adds to Settings)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from scheduler_daemon.amc.credentials import AmcCredentials
from scheduler_daemon.amc.secret import Secret
from scheduler_daemon.executors import _build_amc
from scheduler_daemon.executors.amc import AmcExecutor

CREDENTIALS = AmcCredentials("amzn1.application-oa2-client.x", Secret("s"), Secret("Atzr|r"))


def test_builds_from_amc_settings_with_defaults_for_the_missing_ones() -> None:
    settings = SimpleNamespace(amc_credentials=CREDENTIALS, amc_api_url="http://127.0.0.1:1")
    executor = _build_amc(settings)  # type: ignore[arg-type]
    try:
        assert repr(executor) == "AmcExecutor(AmcClient(base_url='http://127.0.0.1:1'))"
    finally:
        assert isinstance(executor, AmcExecutor)
        executor.close()


def test_needs_credentials() -> None:
    with pytest.raises(ValueError, match="amc_credentials"):
        _build_amc(SimpleNamespace())  # type: ignore[arg-type]
