"""A run's time window, rendered from its slot in the schedule's time zone.

The window depends only on the slot (``scheduled_for``) and the zone, never on the current
time, so a retry or a manual run of the same slot sends the same request. Days are calendar
days in the zone (a DST day is 23 or 25 hours long); the bounds are sent as wall times in
the zone they were computed in. Should a bound fall on a wall time that a fall-back change
shows twice, the whole window is sent in UTC instead, so AMC cannot pick the other pass.

Kinds (``time_window`` parameter):

- ``{"kind": "previous_days", "days": N, "end_offset_days": K}``: the N full days ending K
  days before the slot's day (K defaults to 0: ``days: 1`` is the previous full day).
- ``{"kind": "previous_hours", "hours": N, "end_offset_hours": K}``: the N hours ending K
  hours before the start of the slot's hour (elapsed hours).
- ``{"kind": "previous_weeks", "weeks": N, "week_start": "monday"}``: the N full weeks
  before the slot's week.
- ``{"kind": "previous_month", "months": N}``: the N full calendar months before the slot's
  month (N defaults to 1).
- ``{"kind": "explicit", "start": "2026-01-01", "end": "2026-02-01T00:00:00"}``: fixed
  wall-time bounds in the zone, for backfills and manual runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from scheduler_daemon.errors import SchedulerError
from scheduler_daemon.timing.errors import TimingError
from scheduler_daemon.timing.zones import WallKind, ZoneTable, load_zone

KEY = "time_window"
WALL_FORMAT = "%Y-%m-%dT%H:%M:%S"
MAX_DAYS = 3660
MAX_HOURS = 24 * MAX_DAYS
MAX_WEEKS = MAX_DAYS // 7
MAX_MONTHS = 120
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_DAY = 86400
_HOUR = 3600
_EPOCH_DATE = date(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WindowError(SchedulerError):
    """A time window spec is invalid; the message names the key and the offending value."""


@dataclass(frozen=True)
class TimeWindow:
    """Half-open [start, end) as UTC instants, and as the wall times sent to AMC."""

    start: datetime
    end: datetime
    zone: str
    start_wall: str
    end_wall: str

    def as_body(self) -> dict[str, str]:
        return {
            "timeWindowType": "EXPLICIT",
            "timeWindowStart": self.start_wall,
            "timeWindowEnd": self.end_wall,
            "timeWindowTimeZone": self.zone,
        }

    def placeholders(self) -> dict[str, str]:
        """Values a workflow parameter may quote as ``{name}``."""
        last = load_zone(self.zone).wall_at(_seconds(self.end) - 1)
        return {
            "window_start": self.start_wall,
            "window_end": self.end_wall,
            "window_start_date": self.start_wall[:10],
            "window_end_date": self.end_wall[:10],
            "window_last_date": _wall_text(last)[:10],
        }


def shown(value: object) -> str:
    """``value`` as an error message quotes it: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(path: str, value: object, problem: str) -> WindowError:
    return WindowError(f"{path}={shown(value)}: {problem}")


def _seconds(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def _instant(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _wall_text(wall: int) -> str:
    return (_EPOCH.replace(tzinfo=None) + timedelta(seconds=wall)).strftime(WALL_FORMAT)


def _day_wall(day: date) -> int:
    return (day - _EPOCH_DATE).days * _DAY


def _start_of_day(zone: ZoneTable, day: date) -> int:
    """The first instant of a calendar day in the zone (the gap's end if midnight is skipped)."""
    return zone.resolve(_day_wall(day)).instant


def _whole(spec: Mapping[str, Any], name: str, default: int | None, low: int, high: int) -> int:
    value = spec.get(name, default)
    path = f"{KEY}.{name}"
    if value is None:
        raise _fail(path, value, f"is required for kind {spec['kind']!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, value, f"must be a whole number from {low} to {high}")
    if not low <= value <= high:
        raise _fail(path, value, f"must be a whole number from {low} to {high}")
    return value


def _check_keys(spec: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for name in spec:
        if name != "kind" and name not in allowed:
            known = ", ".join(allowed) or "none"
            raise _fail(
                f"{KEY}.{name}", spec[name], f"unknown key for kind {spec['kind']!r} ({known})"
            )


def _shift_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _previous_days(spec: Mapping[str, Any], zone: ZoneTable, slot: int) -> tuple[int, int]:
    _check_keys(spec, ("days", "end_offset_days"))
    days = _whole(spec, "days", None, 1, MAX_DAYS)
    offset = _whole(spec, "end_offset_days", 0, 0, MAX_DAYS)
    slot_day = _EPOCH_DATE + timedelta(days=zone.wall_at(slot) // _DAY)
    end_day = slot_day - timedelta(days=offset)
    return _start_of_day(zone, end_day - timedelta(days=days)), _start_of_day(zone, end_day)


def _previous_hours(spec: Mapping[str, Any], zone: ZoneTable, slot: int) -> tuple[int, int]:
    _check_keys(spec, ("hours", "end_offset_hours"))
    hours = _whole(spec, "hours", None, 1, MAX_HOURS)
    offset = _whole(spec, "end_offset_hours", 0, 0, MAX_HOURS)
    # The slot's local hour began this many seconds ago (zones with :30 offsets included).
    hour_start = slot - zone.wall_at(slot) % _HOUR
    end = hour_start - offset * _HOUR
    return end - hours * _HOUR, end


def _previous_weeks(spec: Mapping[str, Any], zone: ZoneTable, slot: int) -> tuple[int, int]:
    _check_keys(spec, ("weeks", "week_start"))
    weeks = _whole(spec, "weeks", 1, 1, MAX_WEEKS)
    week_start = spec.get("week_start", "monday")
    if not isinstance(week_start, str) or week_start.lower() not in WEEKDAYS:
        raise _fail(f"{KEY}.week_start", week_start, f"must be one of {', '.join(WEEKDAYS)}")
    first_weekday = WEEKDAYS.index(week_start.lower())
    slot_day = _EPOCH_DATE + timedelta(days=zone.wall_at(slot) // _DAY)
    this_week = slot_day - timedelta(days=(slot_day.weekday() - first_weekday) % 7)
    start_day = this_week - timedelta(weeks=weeks)
    return _start_of_day(zone, start_day), _start_of_day(zone, this_week)


def _previous_month(spec: Mapping[str, Any], zone: ZoneTable, slot: int) -> tuple[int, int]:
    _check_keys(spec, ("months",))
    months = _whole(spec, "months", 1, 1, MAX_MONTHS)
    slot_day = _EPOCH_DATE + timedelta(days=zone.wall_at(slot) // _DAY)
    end_day = slot_day.replace(day=1)
    return _start_of_day(zone, _shift_months(end_day, months)), _start_of_day(zone, end_day)


def _explicit_bound(spec: Mapping[str, Any], name: str, zone: ZoneTable) -> int:
    value = spec.get(name)
    path = f"{KEY}.{name}"
    hint = "must be a wall time 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SS' without offset"
    if not isinstance(value, str):
        raise _fail(path, value, hint)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(path, value, hint) from None
    if parsed.tzinfo is not None:
        raise _fail(path, value, hint + f"; it is read in the schedule's zone {zone.name}")
    wall = _seconds(parsed.replace(tzinfo=UTC))
    resolution = zone.resolve(wall)
    if resolution.kind is WallKind.GAP:
        raise _fail(path, value, f"does not exist in {zone.name} (skipped by a DST change)")
    return resolution.instant


def _explicit(spec: Mapping[str, Any], zone: ZoneTable, slot: int) -> tuple[int, int]:
    _check_keys(spec, ("start", "end"))
    start = _explicit_bound(spec, "start", zone)
    end = _explicit_bound(spec, "end", zone)
    if end <= start:
        raise _fail(f"{KEY}.end", spec["end"], f"must be after {KEY}.start={spec['start']!r}")
    return start, end


_KINDS: dict[str, Callable[[Mapping[str, Any], ZoneTable, int], tuple[int, int]]] = {
    "previous_days": _previous_days,
    "previous_hours": _previous_hours,
    "previous_weeks": _previous_weeks,
    "previous_month": _previous_month,
    "explicit": _explicit,
}


def _is_ambiguous(zone: ZoneTable, instant: int) -> bool:
    return zone.resolve(zone.wall_at(instant)).kind is WallKind.REPEATED


def render_window(spec: object, slot: datetime, zone_name: str) -> TimeWindow:
    """The window ``spec`` describes for the slot, in the zone; raises WindowError."""
    if slot.tzinfo is None:
        raise ValueError(f"slot must be an aware datetime, got {slot!r}")
    if not isinstance(spec, Mapping):
        raise _fail(KEY, spec, 'must be an object such as {"kind": "previous_days", "days": 1}')
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise _fail(f"{KEY}.kind", kind, f"must be one of {', '.join(_KINDS)}")
    zone = zone_named(zone_name)
    start, end = _KINDS[kind](spec, zone, _seconds(slot))
    shown_zone = zone
    if _is_ambiguous(zone, start) or _is_ambiguous(zone, end):
        shown_zone = load_zone("UTC")
    return TimeWindow(
        start=_instant(start),
        end=_instant(end),
        zone=shown_zone.name,
        start_wall=_wall_text(shown_zone.wall_at(start)),
        end_wall=_wall_text(shown_zone.wall_at(end)),
    )


def zone_named(zone_name: str) -> ZoneTable:
    """The zone's offset table; raises WindowError naming a zone that does not exist."""
    try:
        return load_zone(zone_name)
    except TimingError as exc:
        raise WindowError(f"timezone={shown(zone_name)}: {exc}") from None


def slot_placeholders(slot: datetime, zone_name: str) -> dict[str, str]:
    """The slot's own wall time and date in the zone, for ``{slot}`` and ``{slot_date}``."""
    zone = zone_named(zone_name)
    wall = _wall_text(zone.wall_at(_seconds(slot)))
    return {"slot": wall, "slot_date": wall[:10]}
