"""Interval schedules: every N seconds of elapsed time from an anchor, blind to DST.

Slots are anchor + k * period for k = 0, 1, 2, ...: the anchor is the first slot. Every
question about slots is answered arithmetically, so catching up after a month-long outage of
a one-second interval costs the same as after a minute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scheduler_daemon.timing.errors import TimingError
from scheduler_daemon.timing.limits import (
    COUNT_CAP,
    DEFAULT_MIN_INTERVAL_SECONDS,
    MAX_INTERVAL_SECONDS,
)
from scheduler_daemon.timing.spec import ScheduleSpec, require_aware, require_count
from scheduler_daemon.timing.zones import ZoneTable

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVERY_PREFIX = "@every"
UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART = re.compile(r"([0-9]{1,12})([a-z]+)")
_MICROSECOND = timedelta(microseconds=1)


def is_interval_expression(expression: str) -> bool:
    return expression.strip().lower().startswith(EVERY_PREFIX)


def format_duration(seconds: int) -> str:
    """90 -> '1m30s', 86400 -> '1d': the shortest form parse_every reads back."""
    parts = []
    rest = seconds
    for unit in ("d", "h", "m", "s"):
        size = UNIT_SECONDS[unit]
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def format_every(seconds: int) -> str:
    """A stored interval as an operator writes it, in the largest exact units: 900 ->
    '@every 15m', 5400 -> '@every 1h30m', 86400 -> '@every 1d'. parse_every reads it back.

    Days are the largest unit (14 days is '14d', not '2w'), as in the expressions the package
    prints elsewhere. Raises TimingError unless `seconds` is a positive integer.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TimingError(f"interval seconds must be an integer, got {seconds!r}")
    if seconds <= 0:
        raise TimingError(f"interval of {seconds} seconds is not positive")
    return f"{EVERY_PREFIX} {format_duration(seconds)}"


def parse_every(expression: str) -> int:
    """Seconds of an '@every 1h30m' expression; raises TimingError naming the bad part."""
    stripped = expression.strip()
    text = stripped[len(EVERY_PREFIX) :].strip().lower()
    if not text:
        raise TimingError(f"interval {stripped!r}: missing duration, e.g. '@every 15m'")
    if text.startswith("-"):
        raise TimingError(f"interval {stripped!r}: the duration must be positive")
    compact = text.replace(" ", "")
    position = 0
    total = 0
    seen: set[str] = set()
    for match in _PART.finditer(compact):
        if match.start() != position:
            break
        amount, unit = int(match.group(1)), match.group(2)
        if unit not in UNIT_SECONDS:
            raise TimingError(
                f"interval {stripped!r}: unknown unit {unit!r} in {match.group(0)!r}; "
                "use s, m, h, d or w"
            )
        if unit in seen:
            raise TimingError(f"interval {stripped!r}: unit {unit!r} appears twice")
        seen.add(unit)
        total += amount * UNIT_SECONDS[unit]
        position = match.end()
    if position != len(compact) or not seen:
        raise TimingError(
            f"interval {stripped!r}: {text!r} is not a duration like 90s, 15m, 2h, 14d or 1h30m"
        )
    if total <= 0:
        raise TimingError(f"interval {stripped!r}: the duration must be longer than 0 seconds")
    return total


def check_interval(
    seconds: int, expression: str, min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS
) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TimingError(f"interval {expression!r}: seconds must be an integer, got {seconds!r}")
    if seconds <= 0:
        raise TimingError(f"interval {expression!r}: {seconds} seconds is not positive")
    if seconds < min_interval_seconds:
        raise TimingError(
            f"interval {expression!r}: {seconds} seconds is below the minimum of "
            f"{min_interval_seconds} seconds"
        )
    if seconds > MAX_INTERVAL_SECONDS:
        raise TimingError(
            f"interval {expression!r}: {seconds} seconds is above the maximum of "
            f"{MAX_INTERVAL_SECONDS} seconds ({MAX_INTERVAL_SECONDS // 86400} days)"
        )
    return seconds


def check_anchor(anchor: datetime | None) -> datetime:
    if anchor is None:
        return EPOCH
    return require_aware(anchor, "interval anchor").astimezone(UTC)


@dataclass(frozen=True, slots=True)
class IntervalSpec(ScheduleSpec):
    """Every `seconds` of elapsed time from `anchor` (aware, UTC); `timezone` is for display."""

    expression: str
    timezone: str
    seconds: int
    anchor: datetime
    zone: ZoneTable

    def _index_after(self, after: datetime) -> int:
        """The index k of the first slot strictly after `after`."""
        elapsed = (require_aware(after, "after") - self.anchor) // _MICROSECOND
        return max(0, elapsed // (self.seconds * 1_000_000) + 1)

    def _index_at_or_before(self, end: datetime) -> int:
        elapsed = (require_aware(end, "end") - self.anchor) // _MICROSECOND
        return elapsed // (self.seconds * 1_000_000)

    def _slot(self, index: int) -> datetime:
        try:
            return self.anchor + timedelta(seconds=self.seconds * index)
        except OverflowError:
            raise TimingError(
                f"interval {self.expression!r}: slot {index} is beyond the year 9999"
            ) from None

    def next_after(self, after: datetime) -> datetime:
        return self._slot(self._index_after(after))

    def fires_after(self, after: datetime, count: int) -> list[datetime]:
        first = self._index_after(after)
        return [self._slot(first + k) for k in range(require_count(count))]

    def fires_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        first = self._index_after(start)
        last = min(self._index_at_or_before(end), first + require_count(limit, "limit") - 1)
        return [self._slot(k) for k in range(first, last + 1)]

    def count_between(self, start: datetime, end: datetime, cap: int = COUNT_CAP) -> int:
        count = self._index_at_or_before(end) - self._index_after(start) + 1
        return max(0, min(count, cap))

    def last_between(self, start: datetime, end: datetime) -> datetime | None:
        first = self._index_after(start)
        last = self._index_at_or_before(end)
        return self._slot(last) if last >= first else None
