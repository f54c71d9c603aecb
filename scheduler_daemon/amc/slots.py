"""A cap on requests in flight per AMC instance, so no instance gets more than its share
of the dispatcher's threads; waiting for a slot is bounded too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from scheduler_daemon.amc.errors import InstanceBusyError

log = structlog.get_logger("scheduler_daemon.amc")


class InstanceSlots:
    def __init__(self, *, limit: int, wait: float) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.wait = wait
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def _semaphore(self, instance_id: str) -> threading.BoundedSemaphore:
        with self._lock:
            semaphore = self._semaphores.get(instance_id)
            if semaphore is None:
                semaphore = threading.BoundedSemaphore(self.limit)
                self._semaphores[instance_id] = semaphore
            return semaphore

    @contextmanager
    def hold(self, instance_id: str) -> Iterator[None]:
        """Hold one of the instance's slots; InstanceBusyError if none frees within ``wait``."""
        semaphore = self._semaphore(instance_id)
        if not semaphore.acquire(blocking=False):
            log.info("amc.instance_busy", instance_id=instance_id, limit=self.limit)
            if not semaphore.acquire(timeout=self.wait):
                raise InstanceBusyError(
                    f"AMC instance {instance_id}: {self.limit} requests already in flight "
                    f"and none finished within {self.wait:g} s"
                )
        try:
            yield
        finally:
            semaphore.release()
