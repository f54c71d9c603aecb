"""The one place that reads the time. Everything else receives a Clock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of wall time (which slot is due) and monotonic time (loop cadence)."""

    def now(self) -> datetime:
        """The current instant, as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences are meaningful."""
        ...

    def calibrate(self, database_now: datetime) -> float:
        """Learn the database's clock, which the daemon trusts over the host's; returns the
        host clock's skew against it in seconds (positive: the host is ahead)."""
        ...


class SystemClock:
    """The host's clocks, corrected by the skew last measured against the database."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) - self._offset

    def monotonic(self) -> float:
        return time.monotonic()

    def calibrate(self, database_now: datetime) -> float:
        self._offset = datetime.now(UTC) - database_now
        return self._offset.total_seconds()


class FakeClock:
    """A clock for tests: it moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"FakeClock needs an aware datetime, got {start!r}")
        self._now = start.astimezone(UTC)
        self._monotonic = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def calibrate(self, database_now: datetime) -> float:
        """A fake clock is the truth in its test; the database's clock does not move it."""
        return 0.0

    def advance(self, delta: timedelta | float) -> datetime:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._monotonic += seconds
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._monotonic += max(0.0, (instant - self._now).total_seconds())
            self._now = instant.astimezone(UTC)
