"""Executors: what turns a claimed run into an external execution."""

from __future__ import annotations

from scheduler_daemon.config import ExecutorName, Settings
from scheduler_daemon.executors import amc
from scheduler_daemon.executors.base import ExecutionOutcome, Executor, RunRequest
from scheduler_daemon.executors.noop import NoopExecutor

__all__ = [
    "ExecutionOutcome",
    "Executor",
    "NoopExecutor",
    "RunRequest",
    "build_amc_executor",
    "build_executor",
]


def build_executor(settings: Settings) -> Executor:
    if settings.executor is ExecutorName.NOOP:
        return NoopExecutor(settings.noop_delay)
    if settings.executor is ExecutorName.AMC:
        return build_amc_executor(settings)
    raise ValueError(f"unknown executor {settings.executor!r}")


def build_amc_executor(settings: Settings) -> amc.AmcExecutor:
    if settings.amc_credentials is None:
        raise ValueError("the amc executor needs AMC credentials")
    return amc.make_amc_executor(
        settings.amc_credentials,
        amc.AmcSettings(
            api_url=settings.amc_api_url,
            token_url=settings.amc_token_url,
            max_in_flight=settings.amc_max_in_flight,
            failure_threshold=settings.amc_circuit_failures,
            cool_down=settings.amc_circuit_cool_down,
            request_timeout=settings.amc_request_timeout,
        ),
    )
