"""The interface every parsed schedule offers, whatever its kind (cron or interval)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from scheduler_daemon.timing.errors import TimingError
from scheduler_daemon.timing.limits import COUNT_CAP, MAX_FIRE_COUNT
from scheduler_daemon.timing.zones import ZoneTable


def require_aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TimingError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise TimingError(f"{name} {value.isoformat()} must be timezone-aware")
    return value


def require_count(count: int, name: str = "count", maximum: int = MAX_FIRE_COUNT) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TimingError(f"{name} must be an integer, got {count!r}")
    if not 0 <= count <= maximum:
        raise TimingError(f"{name} {count} out of range 0-{maximum}")
    return count


class ScheduleSpec(ABC):
    """A parsed, immutable schedule. Every instant it returns is an aware UTC datetime."""

    __slots__ = ()

    expression: str
    timezone: str
    zone: ZoneTable

    @abstractmethod
    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (an aware datetime)."""

    @abstractmethod
    def fires_after(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` fire times strictly after `after`, strictly increasing."""

    @abstractmethod
    def fires_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """Fire times in (start, end], oldest first, at most `limit` of them."""

    @abstractmethod
    def count_between(self, start: datetime, end: datetime, cap: int = COUNT_CAP) -> int:
        """How many fire times lie in (start, end], or `cap` if at least that many."""

    @abstractmethod
    def last_between(self, start: datetime, end: datetime) -> datetime | None:
        """The latest fire time in (start, end], or None (for run-once catch-up)."""
