"""Cron schedules in a time zone, with classic (Vixie/Debian) cron's DST rules.

A *fixed-time* schedule (neither minute nor hour starts with `*`) names wall-clock times: each
fires once, at the first instant showing it; a time skipped by spring-forward fires at the
end of the gap, and a time repeated by fall-back fires in the first pass only. A *wildcard*
schedule follows elapsed time: it fires at every instant whose wall time matches, so it fires
in both passes of a repeat and not at all inside a gap. croniter does neither (it fires a
repeated fixed time twice), hence this module.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime

from scheduler_daemon.timing.cron_calendar import MEAN_YEAR_SECONDS, ceil_minute, next_wall
from scheduler_daemon.timing.cron_fields import CronFields
from scheduler_daemon.timing.errors import TimingError
from scheduler_daemon.timing.limits import COUNT_CAP, SEARCH_HORIZON_YEARS
from scheduler_daemon.timing.spec import ScheduleSpec, require_aware, require_count
from scheduler_daemon.timing.zones import ZoneTable

_MAX_SEGMENT_STEPS = 10_000


@dataclass(frozen=True, slots=True)
class CronSpec(ScheduleSpec):
    """A cron expression in a zone. Instants are handled internally as integer UTC seconds."""

    expression: str
    timezone: str
    fields: CronFields
    zone: ZoneTable

    @property
    def wildcard(self) -> bool:
        return self.fields.wildcard

    def next_instant(self, after: int) -> int:
        """The first fire time (UTC seconds) strictly after `after` (UTC seconds)."""
        zone = self.zone
        wall = zone.wall_at(after)
        last_year = 1971 + wall // MEAN_YEAR_SECONDS + SEARCH_HORIZON_YEARS
        if self.fields.wildcard:
            return self._next_wildcard(after - after % 60 + 60, last_year)
        found = next_wall(self.fields, wall - wall % 60 + 60, last_year)
        if found is None:
            raise self._exhausted(after)
        instant = zone.first_instant(found)
        if instant > after:
            return instant
        # `found` was shown before `after`, so `after` is in the second pass of a fall-back: every
        # repeated wall time fired in the first pass, and the search resumes where the repeat
        # ends. Detecting this after the search, not before, saves the hot path a table lookup.
        found = next_wall(self.fields, ceil_minute(zone.first_unshown_wall(after)), last_year)
        if found is None:
            raise self._exhausted(after)
        return zone.first_instant(found)

    def _next_wildcard(self, instant: int, last_year: int) -> int:
        zone = self.zone
        starts = zone.starts
        for _ in range(_MAX_SEGMENT_STEPS):
            segment = bisect_right(starts, instant) - 1
            offset = zone.offsets[segment]
            found = next_wall(self.fields, instant + offset, last_year)
            if found is None:
                break
            candidate = found - offset
            if segment + 1 == len(starts) or candidate < starts[segment + 1]:
                return candidate
            instant = ceil_minute(starts[segment + 1])
        raise self._exhausted(instant)

    def _exhausted(self, after: int) -> TimingError:
        when = datetime.fromtimestamp(after, UTC).isoformat() if after < 253_402_300_800 else "?"
        return TimingError(
            f"cron expression {self.expression!r} has no fire time in {self.timezone} "
            f"within {SEARCH_HORIZON_YEARS} years after {when}"
        )

    def next_after(self, after: datetime) -> datetime:
        require_aware(after, "after")
        instant = self.next_instant(math.floor(after.timestamp()))
        return _utc(instant)

    def fires_after(self, after: datetime, count: int) -> list[datetime]:
        require_aware(after, "after")
        require_count(count)
        instant = math.floor(after.timestamp())
        fires = []
        for _ in range(count):
            instant = self.next_instant(instant)
            fires.append(_utc(instant))
        return fires

    def fires_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        end_seconds = require_aware(end, "end").timestamp()
        require_count(limit, "limit")
        instant = math.floor(require_aware(start, "start").timestamp())
        fires: list[datetime] = []
        while len(fires) < limit:
            instant = self._next_until(instant, end_seconds)
            if instant > end_seconds:
                break
            fires.append(_utc(instant))
        return fires

    def count_between(self, start: datetime, end: datetime, cap: int = COUNT_CAP) -> int:
        end_seconds = require_aware(end, "end").timestamp()
        require_count(cap, "cap", COUNT_CAP)
        instant = math.floor(require_aware(start, "start").timestamp())
        count = 0
        while count < cap:
            instant = self._next_until(instant, end_seconds)
            if instant > end_seconds:
                break
            count += 1
        return count

    def last_between(self, start: datetime, end: datetime) -> datetime | None:
        end_seconds = math.floor(require_aware(end, "end").timestamp())
        low = math.floor(require_aware(start, "start").timestamp())
        if low >= end_seconds:
            return None
        fire = self._next_until(low, end_seconds)
        if fire > end_seconds:
            return None
        # Fire times only grow with their lower bound, so bisect for the last bound whose next
        # fire still lies inside the window: about 30 searches even for a decade-long window.
        high = end_seconds
        while high - low > 1:
            middle = (low + high) // 2
            found = self._next_until(middle, end_seconds)
            if found <= end_seconds:
                low, fire = middle, found
            else:
                high = middle
        return _utc(fire)

    def _next_until(self, after: int, end: float) -> int:
        """Like next_instant, but a schedule that never fires before `end` is not an error."""
        try:
            return self.next_instant(after)
        except TimingError:
            return math.floor(end) + 1


def _utc(instant: int) -> datetime:
    try:
        return datetime.fromtimestamp(instant, UTC)
    except (OverflowError, ValueError, OSError):
        raise TimingError(
            f"fire time {instant} s after the epoch is beyond the year 9999"
        ) from None
