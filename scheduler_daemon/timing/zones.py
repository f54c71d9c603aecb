"""Time zones as tables of UTC offsets, built once per zone from pytz's compiled tzdata.

Every DST rule in this package is expressed with offsets only, never with pytz's is_dst
flags: tzdata marks Europe/Dublin's winter time as *negative* DST, so "is_dst" does not
say which of two repeated wall times comes first, while comparing UTC instants always does.
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from collections.abc import Mapping
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


# US abbreviations that are not zone names, by the zone whose local time they name.
_ABBREVIATIONS = {
    "ET": "America/New_York",
    "EDT": "America/New_York",
    "CT": "America/Chicago",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "MT": "America/Denver",
    "MDT": "America/Denver",
    "PT": "America/Los_Angeles",
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "AKST": "America/Anchorage",
    "AKDT": "America/Anchorage",
}
_UTC_OFFSET_TEXT = re.compile(r"(?:UTC|GMT)\s*([+-])\s*(\d{1,2})(?::?00)?", re.IGNORECASE)
_ETC_OFFSET_ZONE = re.compile(r"Etc/GMT[+-]\d{1,2}")
# Fixed-offset zones whose names read like a local time: valid, but without DST.
_FIXED_ABBREVIATIONS = frozenset({"EST", "MST", "HST"})
# The local time a fixed offset is usually meant as, by its (standard) offset in hours.
_PLACES_BY_OFFSET = {
    -5: ("America/New_York", "New York"),
    -6: ("America/Chicago", "Chicago"),
    -7: ("America/Denver", "Denver"),
    -8: ("America/Los_Angeles", "Los Angeles"),
    -9: ("America/Anchorage", "Anchorage"),
    -10: ("Pacific/Honolulu", "Honolulu"),
}
_DEFAULT_HINT = "use an IANA name such as 'Europe/London' or 'UTC'"


def _key(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "_")


@lru_cache(maxsize=1)
def legacy_zone_links() -> Mapping[str, str]:
    """Backward-compatible Area/Location names (US/Eastern, Canada/Pacific, Asia/Calcutta) by
    the zone they link to (America/New_York, ...), read from the tzdata pytz ships.

    Names that zone.tab still lists for a country (Asia/Kuwait) are not legacy, nor are links
    into Etc/ (UTC, GMT) or without an area (EST, which links to America/Panama).
    """
    package: Any = pytz  # types-pytz does not declare open_resource
    try:
        with package.open_resource("tzdata.zi") as source:
            lines = source.read().decode("utf-8").splitlines()
    except (OSError, UnicodeError):
        return {}
    current = {zone for zones in pytz.country_timezones.values() for zone in zones}
    links = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "L":
            target, alias = parts[1], parts[2]
            if "/" in alias and alias not in current and not target.startswith("Etc/"):
                links[alias] = target
    return {alias: _follow(links, alias) for alias in links}


def _follow(links: dict[str, str], alias: str) -> str:
    """The zone at the end of a chain of links (tzdata.zi has none today)."""
    seen = {alias}
    target = links[alias]
    while target in links and target not in seen:
        seen.add(target)
        target = links[target]
    return target


def _canonical(names: list[str]) -> list[str]:
    """The names with each legacy link replaced by the zone it links to, duplicates dropped."""
    links = legacy_zone_links()
    return list(dict.fromkeys(links.get(name, name) for name in names))


def _same_last_part(name: str) -> list[str]:
    """Zones whose last part is `name` ('Eastern': US/Eastern, Canada/Eastern), US/ first."""
    wanted = _key(name.strip())
    found = [zone for zone in pytz.all_timezones if _key(zone.rsplit("/", 1)[-1]) == wanted]
    return sorted(found, key=lambda zone: (not zone.startswith("US/"), zone))


def _offset_hint(name: str) -> str | None:
    """For 'UTC+5' or 'GMT-03:00': the Etc zone of that fixed offset, whose sign is inverted."""
    match = _UTC_OFFSET_TEXT.fullmatch(name.strip())
    if match is None:
        return None
    sign, hours = match.group(1), int(match.group(2))
    if hours == 0:
        return "did you mean 'UTC'?"
    if hours > (14 if sign == "+" else 12):
        return None
    etc = f"Etc/GMT{'-' if sign == '+' else '+'}{hours}"
    return (
        f"for a fixed UTC{sign}{hours:02d}:00 use {etc!r} (Etc/GMT signs are inverted), or "
        "better the IANA name of the place (Area/City), which follows its daylight-saving time"
    )


def _suggestions(name: str) -> list[str]:
    if name.strip().upper() in _ABBREVIATIONS:
        return [_ABBREVIATIONS[name.strip().upper()]]
    same = _same_last_part(name)
    if same:
        return _canonical(same)[:3]
    # EST, MST and HST are never what a misspelling means: they would answer BST or IST.
    candidates = [zone for zone in pytz.all_timezones if zone not in _FIXED_ABBREVIATIONS]
    matches = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not matches:
        lowered = {zone.lower(): zone for zone in candidates}
        found = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
        matches = [lowered[zone] for zone in found]
    return _canonical(matches)


def _unknown_zone(name: str) -> TimingError:
    hint = _offset_hint(name)
    if hint is None:
        matches = _suggestions(name)
        if matches:
            hint = "did you mean " + " or ".join(repr(zone) for zone in matches) + "?"
        else:
            hint = _DEFAULT_HINT
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


def offset_text(seconds: int) -> str:
    """-18000 -> 'UTC-05:00'."""
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def fixed_offset_warning(timezone: str) -> str | None:
    """A warning when `timezone` is a fixed UTC offset that reads like a local time (EST, MST,
    HST, Etc/GMT+5): valid, but with no daylight-saving time, which whoever types EST rarely
    means. None for every other zone, UTC and places without DST (Asia/Kolkata) included.

    Raises TimingError for an unknown zone, like every other entry point.
    """
    zone = load_zone(timezone)
    name = zone.name
    if name not in _FIXED_ABBREVIATIONS and not _ETC_OFFSET_ZONE.fullmatch(name):
        return None
    offset = zone.offsets[-1]
    # Only a zone whose offset has not changed since 1970 is called fixed.
    if offset == 0 or zone.starts[-1] > 0:
        return None
    inverted = "; Etc/GMT signs are inverted" if name.startswith("Etc/") else ""
    warning = (
        f"{name} is a fixed offset ({offset_text(offset)}{inverted}) with no daylight-saving time"
    )
    hours, rest = divmod(offset, 3600)
    place = _PLACES_BY_OFFSET.get(hours) if not rest else None
    if place is None:
        return warning + "; for a place's local time use its IANA name (Area/City) instead"
    zone_name, city = place
    warning += f"; for {city}'s local time use {zone_name}"
    if hours == -7:
        warning += " (Arizona, which keeps UTC-07:00 all year, is America/Phoenix)"
    return warning
