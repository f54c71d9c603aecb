"""Time zones as tables of UTC offsets, built once per zone from pytz's compiled tzdata.

Every DST rule in this package is expressed with offsets only, never with pytz's is_dst
flags: tzdata marks Europe/Dublin's winter time as *negative* DST, so "is_dst" does not
say which of two repeated wall times comes first, while comparing UTC instants always does.
"""

from __future__ import annotations

import difflib
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any

import pytz

from scheduler_daemon.timing.errors import TimingError
from scheduler_daemon.timing.limits import MAX_TIMEZONE_LENGTH

_FAR = 2**62
_NAIVE_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - pytz's transition times are naive UTC


class WallKind(Enum):
    """How a local wall-clock time maps onto real instants."""

    NORMAL = "normal"
    GAP = "gap"  # skipped by a spring-forward change: it never happens
    REPEATED = "repeated"  # happens twice, in two passes of a fall-back change


@dataclass(frozen=True, slots=True)
class WallResolution:
    """The first instant at or after which a wall time is shown (the gap's end for a gap)."""

    instant: int
    kind: WallKind


@dataclass(frozen=True, eq=False, slots=True)
class ZoneTable:
    """A zone as segments of constant UTC offset; times are integer seconds since the epoch.

    Segment i covers UTC [starts[i], starts[i+1]) and local wall time
    [wall_starts[i], wall_ends[i]).
    """

    name: str
    tz: pytz.BaseTzInfo
    starts: tuple[int, ...]
    offsets: tuple[int, ...]
    wall_starts: tuple[int, ...]
    wall_ends: tuple[int, ...]

    def segment(self, instant: int) -> int:
        return bisect_right(self.starts, instant) - 1

    def offset_at(self, instant: int) -> int:
        return self.offsets[bisect_right(self.starts, instant) - 1]

    def wall_at(self, instant: int) -> int:
        return instant + self.offsets[bisect_right(self.starts, instant) - 1]

    def first_instant(self, wall: int) -> int:
        """The earliest instant showing this wall time, or the end of the gap it falls in."""
        i = bisect_right(self.wall_ends, wall)
        if self.wall_starts[i] > wall:
            return self.starts[i]
        return wall - self.offsets[i]

    def resolve(self, wall: int) -> WallResolution:
        """first_instant(wall), and whether the wall time is shown once, never or twice."""
        instant = self.first_instant(wall)
        # That instant opens the segment after a gap, or lies in the first segment showing wall.
        i = self.segment(instant)
        if self.wall_starts[i] > wall:
            return WallResolution(instant, WallKind.GAP)
        repeated = i + 1 < len(self.starts) and self.wall_starts[i + 1] <= wall
        return WallResolution(instant, WallKind.REPEATED if repeated else WallKind.NORMAL)

    def first_unshown_wall(self, instant: int) -> int:
        """The earliest wall time from this instant on that was not shown before: the wall time
        at this instant or, in the second pass of a fall-back, the end of the repeat."""
        i = bisect_right(self.starts, instant) - 1
        wall = instant + self.offsets[i]
        if i > 0 and self.wall_ends[i - 1] > wall:
            return self.wall_ends[i - 1]
        return wall

    def is_second_pass(self, instant: int) -> bool:
        """Whether the wall time at this instant was already shown before (fall-back repeat)."""
        return self.first_unshown_wall(instant) != self.wall_at(instant)

    def transition_walls(self, index: int) -> tuple[int, int]:
        """The wall times [low, high) that the change opening segment `index` skips (spring
        forward) or repeats (fall back)."""
        old, new = self.offsets[index - 1], self.offsets[index]
        return self.starts[index] + min(old, new), self.starts[index] + max(old, new)

    def transitions_between(self, start: int, end: int) -> range:
        """Indexes of the segments that begin in (start, end]."""
        return range(bisect_right(self.starts, start), bisect_right(self.starts, end))

    def localize_datetime(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _build_table(name: str, tz: pytz.BaseTzInfo) -> ZoneTable:
    raw: Any = tz
    transition_times: list[datetime] | None = getattr(raw, "_utc_transition_times", None)
    if transition_times:
        pairs = [
            (_seconds(when - _NAIVE_EPOCH), _seconds(info[0]))
            for when, info in zip(transition_times, raw._transition_info, strict=True)
        ]
    else:
        fixed = tz.utcoffset(_NAIVE_EPOCH)
        pairs = [(-_FAR, _seconds(fixed) if fixed is not None else 0)]
    starts: list[int] = []
    offsets: list[int] = []
    for start, offset in pairs:
        # pytz also records changes of abbreviation or DST flag alone; only offsets matter here.
        if offsets and offsets[-1] == offset:
            continue
        starts.append(start)
        offsets.append(offset)
    starts[0] = -_FAR
    wall_starts = [start + offset for start, offset in zip(starts, offsets, strict=True)]
    wall_ends = [starts[i + 1] + offsets[i] for i in range(len(starts) - 1)] + [_FAR]
    return ZoneTable(
        name=name,
        tz=tz,
        starts=tuple(starts),
        offsets=tuple(offsets),
        wall_starts=tuple(wall_starts),
        wall_ends=tuple(wall_ends),
    )


def _unknown_zone(name: str) -> TimingError:
    matches = difflib.get_close_matches(name, pytz.all_timezones, n=3, cutoff=0.6)
    if not matches:
        lowered = {zone.lower(): zone for zone in pytz.all_timezones}
        found = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
        matches = [lowered[zone] for zone in found]
    if matches:
        hint = "did you mean " + " or ".join(repr(zone) for zone in matches) + "?"
    else:
        hint = "use an IANA name such as 'Europe/London' or 'UTC'"
    return TimingError(f"unknown time zone {name!r}; {hint}")


@lru_cache(maxsize=1024)
def load_zone(name: str) -> ZoneTable:
    """The offset table of an IANA zone name; raises TimingError naming the bad zone."""
    if not isinstance(name, str):
        raise TimingError(f"time zone must be a string, got {type(name).__name__}")
    if not name.strip():
        raise TimingError("time zone is empty; use an IANA name such as 'Europe/London' or 'UTC'")
    if len(name) > MAX_TIMEZONE_LENGTH:
        raise TimingError(
            f"time zone {name[:20]!r}... is {len(name)} characters long; "
            f"the limit is {MAX_TIMEZONE_LENGTH}"
        )
    if not name.isascii() or not name.isprintable():
        raise TimingError(f"unknown time zone {name!r}; zone names are printable ASCII")
    try:
        tz = pytz.timezone(name)
    except (pytz.UnknownTimeZoneError, ValueError, UnicodeError):
        raise _unknown_zone(name) from None
    return _build_table(str(tz.zone), tz)
