"""A circuit breaker per AMC instance, so one broken instance fails fast instead of holding
dispatcher threads in retries while the other instances wait.

Closed: calls pass; ``failure_threshold`` failures in a row open it. Open: calls fail at once
with CircuitOpenError until ``cool_down`` seconds have passed. Half-open: one probe call
passes (the others still fail fast); its success closes the breaker, its failure re-opens it.
A call that ends neither way (e.g. no token) releases the probe without deciding.

Each change of state is told to the observer (the daemon's metrics), under the breaker's lock
so that racing changes reach it in the order they happened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

import structlog

from scheduler_daemon.amc.errors import CircuitOpenError
from scheduler_daemon.amc.observer import NO_OBSERVER, AmcObserver, CircuitState

log = structlog.get_logger("scheduler_daemon.amc")

Verdict = Literal["success", "failure", "neutral"]


@dataclass
class CallRecord:
    """What the guarded call decided; ``neutral`` unless told otherwise."""

    verdict: Verdict = "neutral"
    reason: str = ""

    def success(self) -> None:
        self.verdict = "success"

    def failure(self, reason: str) -> None:
        self.verdict = "failure"
        self.reason = reason


@dataclass
class CircuitBreaker:
    name: str
    monotonic: Callable[[], float]
    _: KW_ONLY
    failure_threshold: int
    cool_down: float
    observer: AmcObserver = field(default=NO_OBSERVER, repr=False)
    _failures: int = 0
    _opened_at: float | None = None
    _probing: bool = False
    _last_reason: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._state()

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self.monotonic() - self._opened_at >= self.cool_down:
            return "half_open"
        return "open"

    def _admit(self) -> bool:
        """Whether this call may go ahead; True for the probe of a half-open breaker."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return False
            if state == "half_open" and not self._probing:
                self._probing = True
                log.info("amc.circuit_half_open", instance_id=self.name)
                self.observer.circuit(self.name, "half_open")
                return True
            assert self._opened_at is not None
            wait = max(0.0, self.cool_down - (self.monotonic() - self._opened_at))
            probing = " (a probe call is in flight)" if state == "half_open" else ""
            message = (
                f"AMC instance {self.name}: circuit open after {self._failures} consecutive "
                f"failures{probing}; next attempt in {wait:.0f} s; "
                f"last failure: {self._last_reason}"
            )
        raise CircuitOpenError(message)

    def _settle(self, record: CallRecord, probe: bool) -> None:
        with self._lock:
            if probe:
                self._probing = False
            if record.verdict == "success":
                if self._opened_at is not None:
                    log.info("amc.circuit_closed", instance_id=self.name)
                    self.observer.circuit(self.name, "closed")
                self._failures = 0
                self._opened_at = None
            elif record.verdict == "failure":
                self._failures += 1
                self._last_reason = record.reason
                if probe or (self._opened_at is None and self._failures >= self.failure_threshold):
                    self._opened_at = self.monotonic()
                    log.warning(
                        "amc.circuit_opened",
                        instance_id=self.name,
                        failures=self._failures,
                        cool_down=self.cool_down,
                        reason=record.reason,
                    )
                    self.observer.circuit(self.name, "open")

    @contextmanager
    def guard(self) -> Iterator[CallRecord]:
        """Admit a call (or raise CircuitOpenError) and settle it with what it recorded."""
        probe = self._admit()
        record = CallRecord()
        try:
            yield record
        finally:
            self._settle(record, probe)


@dataclass
class CircuitBreakers:
    """One breaker per instance id, made on first use."""

    monotonic: Callable[[], float]
    _: KW_ONLY
    failure_threshold: int
    cool_down: float
    observer: AmcObserver = field(default=NO_OBSERVER, repr=False)
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, instance_id: str) -> CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(instance_id)
            if breaker is None:
                breaker = CircuitBreaker(
                    instance_id,
                    self.monotonic,
                    failure_threshold=self.failure_threshold,
                    cool_down=self.cool_down,
                    observer=self.observer,
                )
                self._breakers[instance_id] = breaker
            return breaker
