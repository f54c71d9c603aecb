"""Warnings about valid schedules that probably do not do what their author meant."""

from __future__ import annotations

from datetime import UTC, datetime

from scheduler_daemon.timing.cron_calendar import (
    MEAN_YEAR_SECONDS,
    ceil_minute,
    hhmm,
    next_wall,
)
from scheduler_daemon.timing.cron_fields import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    MAX_MONTH_DAYS,
    MONTH_NAMES,
    CronFields,
)
from scheduler_daemon.timing.cron_spec import CronSpec
from scheduler_daemon.timing.interval import IntervalSpec, format_duration
from scheduler_daemon.timing.limits import DEFAULT_MIN_INTERVAL_SECONDS
from scheduler_daemon.timing.schedules import parse_spec
from scheduler_daemon.timing.zones import ZoneTable

_DST_WINDOW_SECONDS = 5 * MEAN_YEAR_SECONDS
# pytz compiles rule-based zones up to 2037; a zone whose table reaches it still has DST.
_ONGOING_DST_YEAR = 2037
_REFERENCE_TRANSITIONS = 10


def warnings(
    expression: str,
    timezone: str,
    after: datetime | None = None,
    min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
) -> list[str]:
    """Advice for a valid schedule (raises TimingError for an invalid one).

    DST advice looks at the five years after `after`, or, without it, at the zone's current
    rules (no clock is read here).
    """
    spec = parse_spec(expression, timezone, None, min_interval_seconds)
    if isinstance(spec, IntervalSpec):
        return _interval_advice(spec, _transitions(spec.zone, after))
    assert isinstance(spec, CronSpec)
    advice = _day_advice(spec.fields)
    if not spec.wildcard:
        advice.extend(_dst_advice(spec, _transitions(spec.zone, after)))
    return advice


def _day_advice(fields: CronFields) -> list[str]:
    advice = []
    day_text = fields.texts[DAY_OF_MONTH]
    months = [m for m in range(1, 13) if fields.months >> m & 1]
    if not fields.day_star:
        for day in (29, 30, 31):
            if not fields.days >> day & 1:
                continue
            short = [MONTH_NAMES[m - 1] for m in months if MAX_MONTH_DAYS[m] < day]
            leap_only = day == 29 and 2 in months
            if short or leap_only:
                where = ", ".join(short) if short else ""
                if leap_only:
                    where = (where + ", " if where else "") + "FEB except in leap years"
                advice.append(
                    f"day-of-month {day} in {day_text!r} does not occur in {where}: those "
                    "months get no fire on that day; use L for the last day of the month"
                )
    if "/" in day_text:
        step = day_text.split("/", 1)[1].split(",", 1)[0]
        days = [d for d in range(1, 32) if fields.days >> d & 1]
        listed = ", ".join(str(d) for d in days[:6]) + (", ..." if len(days) > 6 else "")
        advice.append(
            f"day-of-month {day_text!r} means days {listed} of each month, restarting on the "
            f"1st, not every {step} days; for a fixed period use '@every {step}d'"
        )
    if not fields.day_star and not fields.weekday_star:
        advice.append(
            f"day-of-month {day_text!r} and day-of-week {fields.texts[DAY_OF_WEEK]!r} are both "
            "restricted, so a day matches when EITHER matches (classic cron), not both"
        )
    return advice


def _transitions(zone: ZoneTable, after: datetime | None) -> list[int]:
    """Indexes of the segments whose start changes the offset, in the window looked at."""
    if after is not None:
        start = int(after.timestamp())
        return list(zone.transitions_between(start, start + _DST_WINDOW_SECONDS))
    last = len(zone.starts) - 1
    if last < 1 or datetime.fromtimestamp(zone.starts[last], UTC).year < _ONGOING_DST_YEAR:
        return []
    return list(range(max(1, last - _REFERENCE_TRANSITIONS + 1), last + 1))


def _day(wall: int) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d")


def _dst_advice(spec: CronSpec, transitions: list[int]) -> list[str]:
    zone = spec.zone
    found: dict[str, str] = {}
    for index in transitions:
        old, new = zone.offsets[index - 1], zone.offsets[index]
        low, high = zone.transition_walls(index)
        wall = next_wall(spec.fields, ceil_minute(low), 9999)
        if wall is None or wall >= high:
            continue
        if new > old and "gap" not in found:
            found["gap"] = (
                f"{hhmm(wall)} does not exist in {zone.name} on days such as {_day(wall)} (clocks "
                f"skip {hhmm(low)}-{hhmm(high)}); it fires at {hhmm(high)} instead"
            )
        elif new < old and "repeat" not in found:
            found["repeat"] = (
                f"{hhmm(wall)} happens twice in {zone.name} on days such as {_day(wall)} (clocks "
                f"repeat {hhmm(low)}-{hhmm(high)}); it fires once, at the first {hhmm(wall)}"
            )
    return list(found.values())


def _interval_advice(spec: IntervalSpec, transitions: list[int]) -> list[str]:
    if spec.seconds % 86_400 or not transitions:
        return []
    return [
        f"'@every {format_duration(spec.seconds)}' counts elapsed time, so in {spec.zone.name} "
        "its local time of day shifts by the DST change; for a fixed local time use a cron "
        "expression such as '0 9 * * *'"
    ]
