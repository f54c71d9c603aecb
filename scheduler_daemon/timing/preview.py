"""Preview: the next fire times of a schedule, in its zone and in UTC, with DST notes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from scheduler_daemon.timing.cron_calendar import ceil_minute, hhmm, next_wall
from scheduler_daemon.timing.cron_spec import CronSpec
from scheduler_daemon.timing.limits import DEFAULT_MIN_INTERVAL_SECONDS
from scheduler_daemon.timing.schedules import parse_spec
from scheduler_daemon.timing.spec import ScheduleSpec, require_aware
from scheduler_daemon.timing.zones import WallKind, ZoneTable, offset_text

_MAX_LISTED = 4


@dataclass(frozen=True, slots=True)
class PreviewEntry:
    """One fire time: `local` in the schedule's zone, `utc` the same instant in UTC."""

    local: datetime
    utc: datetime
    note: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "local": self.local.isoformat(),
            "utc": self.utc.isoformat(),
            "zone_abbreviation": self.local.tzname(),
            "note": self.note,
        }


def preview(
    expression: str,
    timezone: str,
    after: datetime,
    count: int,
    *,
    anchor: datetime | None = None,
    min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
) -> list[PreviewEntry]:
    """The next `count` fire times strictly after `after`, each with a note when DST acts."""
    # fires_after checks `after` again; checking before parsing reports it ahead of a bad
    # expression.
    require_aware(after, "after")
    spec = parse_spec(expression, timezone, anchor, min_interval_seconds)
    fires = spec.fires_after(after, count)
    entries = []
    previous = math.floor(after.timestamp())
    for fire in fires:
        instant = math.floor(fire.timestamp())
        note = _note(spec, previous, instant)
        entries.append(PreviewEntry(local=spec.zone.localize_datetime(fire), utc=fire, note=note))
        previous = instant
    return entries


def _note(spec: ScheduleSpec, previous: int, instant: int) -> str | None:
    zone = spec.zone
    if not isinstance(spec, CronSpec):
        old, new = zone.offset_at(previous), zone.offset_at(instant)
        if old == new:
            return None
        return (
            f"UTC offset changed from {offset_text(old)} to {offset_text(new)} (DST); "
            "the interval counts elapsed time"
        )
    wall = zone.wall_at(instant)
    notes = []
    if spec.wildcard:
        skipped = _skipped_gap_slots(spec, previous, instant)
        if skipped:
            notes.append(skipped)
        offset = offset_text(zone.offset_at(instant))
        if zone.is_second_pass(instant):
            notes.append(f"second {hhmm(wall)} (DST fall-back repeat, {offset})")
        elif zone.resolve(wall).kind is WallKind.REPEATED:
            notes.append(f"first of two {hhmm(wall)}s ({offset})")
    else:
        moved = _moved_from_gap(spec, instant)
        if moved:
            notes.append(f"moved from {moved} (nonexistent, DST gap) to {hhmm(wall)}")
        elif zone.resolve(wall).kind is WallKind.REPEATED:
            notes.append(f"first of two {hhmm(wall)}s; the repeat is skipped")
    return "; ".join(notes) or None


def _gap_walls(spec: CronSpec, zone: ZoneTable, segment: int) -> list[int]:
    """Wall times the schedule names inside the spring-forward gap that opens `segment`."""
    low, high = zone.transition_walls(segment)
    walls: list[int] = []
    wall = next_wall(spec.fields, ceil_minute(low), 9999)
    while wall is not None and wall < high and len(walls) <= 24 * 60:
        walls.append(wall)
        wall = next_wall(spec.fields, wall + 60, 9999)
    return walls


def _listed(walls: list[int]) -> str:
    shown = ", ".join(hhmm(wall) for wall in walls[:_MAX_LISTED])
    return shown + (f" and {len(walls) - _MAX_LISTED} more" if len(walls) > _MAX_LISTED else "")


def _moved_from_gap(spec: CronSpec, instant: int) -> str | None:
    zone = spec.zone
    segment = zone.segment(instant)
    if segment == 0 or zone.starts[segment] != instant:
        return None
    if zone.offsets[segment] <= zone.offsets[segment - 1]:
        return None
    walls = _gap_walls(spec, zone, segment)
    return _listed(walls) if walls else None


def _skipped_gap_slots(spec: CronSpec, previous: int, instant: int) -> str | None:
    zone = spec.zone
    skipped: list[int] = []
    for segment in zone.transitions_between(previous, instant):
        if zone.offsets[segment] > zone.offsets[segment - 1]:
            skipped.extend(_gap_walls(spec, zone, segment))
    if not skipped:
        return None
    return f"skipped {_listed(skipped)} (nonexistent, DST gap)"


def render_preview_text(
    entries: Sequence[PreviewEntry],
    expression: str,
    timezone: str,
    warnings: Sequence[str] = (),
) -> str:
    """A plain-text table of the entries, then the warnings, for a terminal."""
    lines = [f"Next {len(entries)} fire times of {expression!r} in {timezone}:"]
    if not entries:
        lines.append("  (none)")
    for number, entry in enumerate(entries, start=1):
        local = entry.local.strftime("%Y-%m-%d %H:%M:%S %a")
        utc_offset = entry.local.utcoffset()
        offset = offset_text(int(utc_offset.total_seconds())) if utc_offset is not None else ""
        abbreviation = entry.local.tzname() or ""
        utc = entry.utc.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        line = f"{number:>4}  {local} {abbreviation:<5} ({offset})  {utc}"
        if entry.note:
            line += f"  {entry.note}"
        lines.append(line)
    if warnings:
        lines.append("Warnings:")
        lines.extend(f"  - {warning}" for warning in warnings)
    return "\n".join(lines) + "\n"


def preview_as_dict(
    entries: Sequence[PreviewEntry],
    expression: str,
    timezone: str,
    warnings: Sequence[str] = (),
) -> dict[str, object]:
    """The preview as plain JSON types (strings, lists, dicts, None)."""
    return {
        "expression": expression,
        "timezone": timezone,
        "fires": [entry.as_dict() for entry in entries],
        "warnings": list(warnings),
    }
