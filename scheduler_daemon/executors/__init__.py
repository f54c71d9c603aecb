"""Executors: what turns a claimed run into an external execution."""

from __future__ import annotations

from scheduler_daemon.config import ExecutorName, Settings
from scheduler_daemon.executors.base import ExecutionOutcome, Executor, RunRequest
from scheduler_daemon.executors.noop import NoopExecutor

__all__ = ["ExecutionOutcome", "Executor", "NoopExecutor", "RunRequest", "build_executor"]


def build_executor(settings: Settings) -> Executor:
    if settings.executor is ExecutorName.NOOP:
        return NoopExecutor(settings.noop_delay)
    raise ValueError(f"unknown executor {settings.executor!r}")
