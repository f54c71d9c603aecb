"""Executors: what turns a claimed run into an external execution."""

from __future__ import annotations

from scheduler_daemon.amc.observer import NO_OBSERVER, AmcObserver
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


def build_executor(settings: Settings, *, observer: AmcObserver = NO_OBSERVER) -> Executor:
    """The configured executor; the amc one reports what it sees to ``observer`` (the
    daemon passes its metrics)."""
    if settings.executor is ExecutorName.NOOP:
        return NoopExecutor(settings.noop_delay)
    if settings.executor is ExecutorName.AMC:
        return build_amc_executor(settings, observer=observer)
    raise ValueError(f"unknown executor {settings.executor!r}")


def build_amc_executor(
    settings: Settings, *, observer: AmcObserver = NO_OBSERVER
) -> amc.AmcExecutor:
    if settings.amc_credentials is None:
        raise ValueError("the amc executor needs AMC credentials")
    return amc.make_amc_executor(settings.amc_credentials, settings.amc, observer=observer)
