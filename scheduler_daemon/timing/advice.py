"""Warnings about valid schedules that probably do not do what their author meant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler_daemon.timing.cron_calendar import (
    MEAN_YEAR_SECONDS,
    ceil_minute,
    hhmm,
    next_wall,
)
from scheduler_daemon.timing.cron_fields import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    FIELD_NAMES,
    FIELD_SIZES,
    HOUR,
    MAX_MONTH_DAYS,
    MINUTE,
    MONTH,
    MONTH_NAMES,
    WEEKDAY_NAMES,
    CronFields,
)
from scheduler_daemon.timing.cron_spec import CronSpec
from scheduler_daemon.timing.errors import TimingError
from scheduler_daemon.timing.interval import UNIT_SECONDS, IntervalSpec, format_duration
from scheduler_daemon.timing.limits import DEFAULT_MIN_INTERVAL_SECONDS, MAX_INTERVAL_SECONDS
from scheduler_daemon.timing.schedules import parse_spec
from scheduler_daemon.timing.spec import ScheduleSpec
from scheduler_daemon.timing.zones import ZoneTable, fixed_offset_warning

_DST_WINDOW_SECONDS = 5 * MEAN_YEAR_SECONDS
# pytz compiles rule-based zones up to 2037; a zone whose table reaches it still has DST.
_ONGOING_DST_YEAR = 2037
_REFERENCE_TRANSITIONS = 10
_ALL_WEEKDAYS = 0b111_1111
_WEEKDAY_WORDS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_ORDINALS = {1: "first", 8: "second", 15: "third", 22: "fourth"}
# How a `*/N` item of each field would be misread as a period: (unit words, '@every' unit).
_PERIOD_UNITS = {MINUTE: ("minutes", "m"), HOUR: ("hours", "h"), DAY_OF_WEEK: ("days", "d")}


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
    zone_warning = fixed_offset_warning(spec.timezone)
    advice = [zone_warning] if zone_warning else []
    if isinstance(spec, IntervalSpec):
        return advice + _interval_advice(spec, _transitions(spec.zone, after))
    assert isinstance(spec, CronSpec)
    idiom = _nth_weekday(spec.fields)
    advice.extend(_lone_step_advice(spec.fields, skip_weekdays=idiom is not None))
    advice.extend(_day_advice(spec.fields, idiom))
    if not spec.wildcard:
        advice.extend(_dst_advice(spec, _transitions(spec.zone, after)))
    return advice


def dst_warnings(expression: str, timezone: str, start: datetime, days: int) -> list[str]:
    """What the daylight-saving changes of the ``days`` after ``start`` do to a valid
    schedule: a slot in an hour the clocks skip or repeat, or an interval whose local time of
    day shifts. Nothing for a spec that cannot be parsed (the caller reports that)."""
    try:
        spec = parse_spec(expression, timezone, None, min_interval_seconds=1)
    except TimingError:
        return []
    begin = int(start.timestamp())
    transitions = list(spec.zone.transitions_between(begin, begin + days * 86_400))
    if not transitions:
        return []
    if isinstance(spec, IntervalSpec):
        return _interval_advice(spec, transitions)
    assert isinstance(spec, CronSpec)
    return [] if spec.wildcard else _dst_advice(spec, transitions)


def clock_changes(
    expression: str,
    timezone: str,
    after: datetime,
    *,
    days: int = 366,
    limit: int = 2,
    anchor: datetime | None = None,
) -> list[dict[str, str]]:
    """The zone's next clock changes in the ``days`` after ``after`` (at most ``limit``), and
    what each does to the schedule: ``{date, change, effect, first_local, first_utc}``, the
    last two being its first slot from the change on. For a form, before the change is due.
    Raises TimingError for a spec that is not valid."""
    spec = parse_spec(expression, timezone, anchor, min_interval_seconds=1)
    zone = spec.zone
    begin = int(after.timestamp())
    changes: list[dict[str, str]] = []
    for index in zone.transitions_between(begin, begin + days * 86_400):
        old, new = zone.offsets[index - 1], zone.offsets[index]
        if old == new:
            continue
        at = datetime.fromtimestamp(zone.starts[index], UTC)
        first = zone.localize_datetime(spec.next_after(at - timedelta(seconds=1)))
        names = (
            zone.localize_datetime(at - timedelta(seconds=1)).tzname(),
            zone.localize_datetime(at).tzname(),
        )
        shift = format_duration(abs(new - old)).replace("h", " hour").replace("m", " minutes")
        forward = new > old
        changes.append(
            {
                "date": zone.localize_datetime(at).strftime("%Y-%m-%d"),
                "change": f"clocks go {'forward' if forward else 'back'} {shift} "
                f"({names[0]} → {names[1]})",
                "effect": _change_effect(spec, index, shift, forward),
                "first_local": first.isoformat(),
                "first_utc": first.astimezone(UTC).isoformat(),
            }
        )
        if len(changes) == limit:
            break
    return changes


def _change_effect(spec: ScheduleSpec, index: int, shift: str, forward: bool) -> str:
    if isinstance(spec, IntervalSpec):
        return (
            f"'@every' counts elapsed time: its slots keep their UTC times and move {shift} "
            f"{'later' if forward else 'earlier'} on the local clock"
        )
    assert isinstance(spec, CronSpec)
    if spec.wildcard:
        return "it runs on as before, every slot once"
    effect = (
        f"slots keep their local times, so they run {shift} "
        f"{'earlier' if forward else 'later'} in UTC"
    )
    return "; ".join([effect, *_dst_advice(spec, [index])])


def _weekday_words(weekdays: int) -> str:
    """'Monday', 'Monday and Friday', 'Monday, Wednesday and Friday' (Monday first)."""
    words = [_WEEKDAY_WORDS[w] for w in (1, 2, 3, 4, 5, 6, 0) if weekdays >> w & 1]
    return " and ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " and " + words[-1]


def _week_block(fields: CronFields) -> int | None:
    """The first day of the 7-day block (1-7, 8-14, 15-21, 22-28) that is the whole
    day-of-month set, if it is one: such a block holds each weekday exactly once."""
    if fields.last_day:
        return None
    for first in _ORDINALS:
        if fields.days == 0b111_1111 << first:
            return first
    return None


def _nth_weekday(fields: CronFields) -> str | None:
    """'the first Monday' when both day fields must match (one starts with `*`), the days are
    a 7-day block and the weekdays are restricted: `0 9 */100,1-7 * MON`."""
    first = _week_block(fields)
    if first is None or not fields.days_and_weekdays or fields.weekdays == _ALL_WEEKDAYS:
        return None
    return f"the {_ORDINALS[first]} {_weekday_words(fields.weekdays)}"


def _period_hint(step: int, unit: str) -> str:
    """'; for a fixed period use '@every 90m'', unless no interval can be that long."""
    if step * UNIT_SECONDS[unit] > MAX_INTERVAL_SECONDS:
        return ""
    return f"; for a fixed period use '@every {step}{unit}'"


def _lone_step_advice(fields: CronFields, skip_weekdays: bool) -> list[str]:
    """`*/N` with N beyond the field's values selects only its first value (classic cron), so
    `*/90` minutes is minute 0, hourly, not every 90 minutes. Day-of-month has its own advice,
    and an nth-weekday idiom may start day-of-week with such a step on purpose."""
    advice = []
    for index in (MINUTE, HOUR, MONTH, DAY_OF_WEEK):
        if skip_weekdays and index == DAY_OF_WEEK:
            continue
        text = fields.texts[index]
        for item in text.split(","):
            base, _, step_text = item.partition("/")
            if base != "*" or not step_text or int(step_text) <= FIELD_SIZES[index]:
                continue
            first = {MONTH: MONTH_NAMES[0], DAY_OF_WEEK: WEEKDAY_NAMES[0]}.get(index, "0")
            where = f"in {text!r} " if item != text else ""
            message = (
                f"{FIELD_NAMES[index]} {item!r} {where}selects only {FIELD_NAMES[index]} {first}: "
                f"a step larger than the field's {FIELD_SIZES[index]} values selects just the "
                "first (classic cron)"
            )
            if index in _PERIOD_UNITS:
                words, unit = _PERIOD_UNITS[index]
                step = int(step_text)
                message += f", not every {step} {words}{_period_hint(step, unit)}"
            advice.append(message)
    return advice


def _day_advice(fields: CronFields, idiom: str | None) -> list[str]:
    advice = []
    day_text = fields.texts[DAY_OF_MONTH]
    weekday_text = fields.texts[DAY_OF_WEEK]
    first = _week_block(fields)
    if idiom is not None and first is not None:
        star_text = day_text if fields.day_star else weekday_text
        advice.append(
            f"day-of-month {day_text!r} with day-of-week {weekday_text!r} means {idiom} of "
            f"each month: {star_text!r} starts with '*', so a day must match both day fields "
            f"(classic cron), and days {first}-{first + 6} hold each weekday once"
        )
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
    if "/" in day_text and idiom is None:
        step = int(day_text.split("/", 1)[1].split(",", 1)[0])
        days = [d for d in range(1, 32) if fields.days >> d & 1]
        if len(days) == 1:
            meaning = f"only day {days[0]} of each month"
        else:
            listed = ", ".join(str(d) for d in days[:6]) + (", ..." if len(days) > 6 else "")
            meaning = f"days {listed} of each month, restarting on the 1st"
        advice.append(
            f"day-of-month {day_text!r} means {meaning}, not every {step} days"
            + _period_hint(step, "d")
        )
    if not fields.day_star and not fields.weekday_star:
        message = (
            f"day-of-month {day_text!r} and day-of-week {weekday_text!r} are both "
            "restricted, so a day matches when EITHER matches (classic cron), not both"
        )
        if first == 1 and fields.weekdays != _ALL_WEEKDAYS:
            message += (
                f"; for the first {_weekday_words(fields.weekdays)} of each month write "
                f"day-of-month '*/100,{day_text}'"
            )
        advice.append(message)
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
