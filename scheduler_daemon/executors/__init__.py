"""Executors: what turns a claimed run into an external execution."""

from __future__ import annotations

from typing import Any

from scheduler_daemon.config import ExecutorName, Settings
from scheduler_daemon.executors.base import ExecutionOutcome, Executor, RunRequest
from scheduler_daemon.executors.noop import NoopExecutor

__all__ = ["ExecutionOutcome", "Executor", "NoopExecutor", "RunRequest", "build_executor"]


def build_executor(settings: Settings) -> Executor:
    if settings.executor is ExecutorName.NOOP:
        return NoopExecutor(settings.noop_delay)
    # TODO(lead): ExecutorName.AMC and the amc_* settings are added in config.py; until then
    # they are looked up by name so this module works with either version of Settings.
    if settings.executor is getattr(ExecutorName, "AMC", object()):
        return _build_amc(settings)
    raise ValueError(f"unknown executor {settings.executor!r}")


def _build_amc(settings: Settings) -> Executor:
    from scheduler_daemon.executors.amc import AmcSettings, build_amc_executor  # noqa: PLC0415

    def setting(name: str, default: Any) -> Any:
        value = getattr(settings, name, None)
        return default if value is None else value

    defaults = AmcSettings()
    credentials = getattr(settings, "amc_credentials", None)
    if credentials is None:
        raise ValueError("the amc executor needs settings.amc_credentials")
    return build_amc_executor(
        credentials,
        AmcSettings(
            api_url=setting("amc_api_url", defaults.api_url),
            token_url=setting("amc_token_url", defaults.token_url),
            max_in_flight=setting("amc_max_in_flight", defaults.max_in_flight),
            failure_threshold=setting("amc_circuit_failures", defaults.failure_threshold),
            cool_down=setting("amc_circuit_cool_down", defaults.cool_down),
            request_timeout=setting("amc_request_timeout", defaults.request_timeout),
        ),
    )
