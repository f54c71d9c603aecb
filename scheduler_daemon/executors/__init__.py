"""Executors: what turns a claimed run into an external execution."""

from __future__ import annotations

from scheduler_daemon.config import ExecutorName
from scheduler_daemon.executors.base import ExecutionOutcome, Executor, RunRequest
from scheduler_daemon.executors.noop import NoopExecutor

__all__ = ["ExecutionOutcome", "Executor", "NoopExecutor", "RunRequest", "build_executor"]


def build_executor(name: ExecutorName) -> Executor:
    if name is ExecutorName.NOOP:
        return NoopExecutor()
    raise ValueError(f"unknown executor {name!r}")
