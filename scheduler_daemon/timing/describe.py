"""A schedule in words, as a form shows it beside the raw expression.

The words come from the parsed value sets (cron_fields), never from the text, so they say what
the engine does: `*/90` minutes is minute 0 alone (classic cron), `*/7` minutes is minutes
0, 7, ..., 56 of every hour (not every 7 minutes: 56 is followed by 0), and the two day fields
are joined as the engine joins them (Vixie cron): when either starts with `*` a day must match
both, otherwise a day matches when either matches. Times are 24-hour wall-clock times in the
schedule's zone, which ends the text; an interval counts elapsed time, so its text names no zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from scheduler_daemon.timing.cron_fields import CronFields
from scheduler_daemon.timing.cron_spec import CronSpec
from scheduler_daemon.timing.interval import IntervalSpec
from scheduler_daemon.timing.limits import DEFAULT_MIN_INTERVAL_SECONDS
from scheduler_daemon.timing.schedules import parse_spec

_WEEKDAY_WORDS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_WORDS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONDAY_FIRST = (1, 2, 3, 4, 5, 6, 0)
_ALL_WEEKDAYS = 0b111_1111
_ALL_DAYS = ((1 << 32) - 1) & ~1
_WEEK_BLOCKS = {1: "first", 8: "second", 15: "third", 22: "fourth"}
# Up to this many fire times a day are listed as clock times ("At 09:00 and 17:30").
_MAX_LISTED_TIMES = 4
# Hours split into more runs than this are named one by one.
_MAX_HOUR_RUNS = 3
_INTERVAL_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))
_WEEK_SECONDS = 604_800


def describe(
    expression: str,
    timezone: str,
    *,
    min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
) -> str:
    """The schedule in words: '0 9 * * 1-5' in America/New_York is
    'At 09:00, Monday to Friday (America/New_York)', '@every 15m' is 'Every 15 minutes'.

    Raises the TimingError parse_spec raises for an invalid expression or zone.
    """
    spec = parse_spec(expression, timezone, None, min_interval_seconds)
    if isinstance(spec, IntervalSpec):
        return _interval_words(spec.seconds)
    assert isinstance(spec, CronSpec)
    return f"{_cron_words(spec.fields)} ({spec.timezone})"


# Shared wording


def _join(items: Sequence[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) < 3:
        return f" {conjunction} ".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _plural(number: int, unit: str) -> str:
    return f"{number} {unit}{'s' * (number != 1)}"


def _clock(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def _values(bits: int, low: int, high: int) -> list[int]:
    return [value for value in range(low, high + 1) if bits >> value & 1]


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive values, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _step(values: Sequence[int]) -> int | None:
    """The common difference (at least 2) of three or more evenly spaced values, else None."""
    if len(values) < 3:
        return None
    step = values[1] - values[0]
    if step < 2 or any(b - a != step for a, b in pairwise(values)):
        return None
    return step


def _uniform_step(values: Sequence[int], size: int) -> int | None:
    """N when the values are k, k + N, k + 2N, ... (k < N) and N divides the field's size, so
    consecutive fires are N units apart even across the field's wrap (`*/15` minutes)."""
    if len(values) < 2 or size % len(values):
        return None
    step = size // len(values)
    return step if list(values) == list(range(values[0], size, step)) else None


def _number_items(values: Sequence[int]) -> list[str]:
    """Values as list items, runs of three or more written 'a through b'."""
    items = []
    for first, last in _runs(values):
        if last - first >= 2:
            items.append(f"{first} through {last}")
        else:
            items.extend(str(value) for value in range(first, last + 1))
    return items


# Intervals


def _interval_words(seconds: int) -> str:
    if seconds % _WEEK_SECONDS == 0:
        parts = [("week", seconds // _WEEK_SECONDS)]
    else:
        parts = []
        rest = seconds
        for unit, size in _INTERVAL_UNITS:
            amount, rest = divmod(rest, size)
            if amount:
                parts.append((unit, amount))
    if len(parts) == 1 and parts[0][1] == 1:
        return f"Every {parts[0][0]}"
    return "Every " + _join([_plural(amount, unit) for unit, amount in parts])


# Cron: minute and hour


def _cron_words(fields: CronFields) -> str:
    minutes = _values(fields.minutes, 0, 59)
    hours = _values(fields.hours, 0, 23)
    time_words, at_clock_times = _time_words(minutes, hours)
    months = _values(fields.months, 1, 12)
    only_month = _MONTH_WORDS[months[0] - 1] if len(months) == 1 else None
    day_words, month_named = _day_words(fields, only_month)
    month_words = None if month_named else _month_words(months)
    parts = [time_words]
    if day_words is not None:
        parts.append(day_words)
    elif at_clock_times:
        parts.append("every day" + (f" {month_words}" if month_words else ""))
        month_words = None
    if month_words:
        parts.append(month_words)
    return ", ".join(parts)


def _time_words(minutes: list[int], hours: list[int]) -> tuple[str, bool]:
    """The times of day, and whether they were listed as clock times ('At 09:00')."""
    all_minutes, all_hours = len(minutes) == 60, len(hours) == 24
    if not all_minutes and not all_hours and len(minutes) * len(hours) <= _MAX_LISTED_TIMES:
        return "At " + _join([_clock(hour, minute) for hour in hours for minute in minutes]), True
    if len(minutes) == 1:
        return _hourly_words(minutes[0], hours)
    hours_words = None if all_hours else _hours_words(hours, minutes[0], minutes[-1])
    # Hours words that give the first fire time show where the minutes start, too.
    within_hour, uniform = _minute_words(minutes, hours_words is None or "during" in hours_words)
    if hours_words is None:
        return (within_hour if uniform else f"{within_hour} of every hour"), False
    if not uniform:
        within_hour += " of the hour"
    return f"{within_hour}, {hours_words}", False


def _hourly_words(minute: int, hours: list[int]) -> tuple[str, bool]:
    """Once an hour, at `minute`, in the given hours."""
    past = "on the hour" if minute == 0 else f"at {_plural(minute, 'minute')} past the hour"
    if len(hours) == 24:
        if minute == 0:
            return "Every hour, on the hour", False
        return f"At {_plural(minute, 'minute')} past every hour", False
    uniform = _uniform_step(hours, 24)
    if uniform is not None and hours[0] == 0:
        return f"Every {uniform} hours, {past}", False
    step = _step(hours)
    if step is not None:
        first, last = _clock(hours[0], minute), _clock(hours[-1], minute)
        return f"Every {step} hours from {first} through {last}", False
    runs = _runs(hours)
    if len(runs) <= _MAX_HOUR_RUNS and any(last > first for first, last in runs):
        spans = [
            f"from {_clock(first, minute)} through {_clock(last, minute)}"
            if last > first
            else f"at {_clock(first, minute)}"
            for first, last in runs
        ]
        return "Every hour " + _join(spans), False
    return "At " + _join([_clock(hour, minute) for hour in hours]), True


def _minute_words(minutes: list[int], name_start: bool) -> tuple[str, bool]:
    """Several minutes of an hour, and whether they are evenly spaced across hours too (then
    the first minute is named only when `name_start` asks for it)."""
    if len(minutes) == 60:
        return "Every minute", True
    uniform = _uniform_step(minutes, 60)
    if uniform is not None:
        start = (
            f", starting at minute {minutes[0]} of the hour" if minutes[0] and name_start else ""
        )
        return f"Every {uniform} minutes{start}", True
    step = _step(minutes)
    if step is not None:
        return (
            f"Every {_ordinal(step)} minute from minute {minutes[0]} through {minutes[-1]}",
            False,
        )
    runs = _runs(minutes)
    if len(runs) == 1:
        return f"Every minute from minute {minutes[0]} through {minutes[-1]}", False
    return "At minutes " + _join(_number_items(minutes)), False


def _hours_words(hours: list[int], first_minute: int, last_minute: int) -> str:
    """The hours a several-times-an-hour schedule runs in, with its first and last times."""
    step = _step(hours)
    if step is not None:
        first, last = _clock(hours[0], first_minute), _clock(hours[-1], last_minute)
        return f"in every {_ordinal(step)} hour from {first} through {last}"
    runs = _runs(hours)
    if len(runs) <= _MAX_HOUR_RUNS:
        return _join(
            [
                f"from {_clock(first, first_minute)} through {_clock(last, last_minute)}"
                for first, last in runs
            ]
        )
    return f"during the {_join([_clock(hour, 0) for hour in hours])} hours"


# Cron: days and months


def _day_words(fields: CronFields, only_month: str | None) -> tuple[str | None, bool]:
    """The days words (None: every day), and whether they already name the single month."""
    days = _values(fields.days, 1, 31)
    all_days = fields.days == _ALL_DAYS
    all_weekdays = fields.weekdays == _ALL_WEEKDAYS
    if not fields.days_and_weekdays:
        # Both fields restricted: a day matches when EITHER does.
        if all_days or all_weekdays:
            return None, False
        dom = _month_day_words(days, fields.last_day, None)
        return f"{dom} or {_weekday_alternative(fields.weekdays)}", False
    # A day must match both fields.
    if all_weekdays:
        if all_days:
            return None, False
        if only_month is not None and len(days) == 1 and not fields.last_day:
            return f"on {only_month} {days[0]}", True
        return _month_day_words(days, fields.last_day, only_month), only_month is not None
    if all_days:
        return _weekday_words(fields.weekdays), False
    block = _WEEK_BLOCKS.get(days[0]) if len(days) == 7 and not fields.last_day else None
    if block is not None and days[-1] == days[0] + 6:
        names = _join(_weekday_names(fields.weekdays))
        where = only_month or "the month"
        return f"on the {block} {names} of {where}", only_month is not None
    dom = _month_day_words(days, fields.last_day, only_month)
    return f"{dom}, if it is {_weekday_condition(fields.weekdays)}", only_month is not None


def _month_day_words(days: list[int], last_day: bool, month: str | None) -> str:
    of = f"of {month or 'the month'}"
    last = ["the last day"] if last_day else []
    if not days:
        return f"on the last day {of}"
    step = _step(days)
    if step is not None:
        words = f"on every {_ordinal(step)} day {of} from day {days[0]} through {days[-1]}"
        return words + (" and on the last day" if last_day else "")
    if len(days) == 1:
        return f"on {_join([f'day {days[0]}', *last])} {of}"
    return f"on days {_join(_number_items(days) + last)} {of}"


def _weekday_names(weekdays: int) -> list[str]:
    return [_WEEKDAY_WORDS[day] for day in _MONDAY_FIRST if weekdays >> day & 1]


def _weekday_span(weekdays: int) -> tuple[str, str] | None:
    """(first, last) when the weekdays are three to six consecutive days (Friday to Sunday)."""
    count = bin(weekdays).count("1")
    if not 3 <= count < 7:
        return None
    for start in _MONDAY_FIRST:
        span = sum(1 << ((start + offset) % 7) for offset in range(count))
        if span == weekdays:
            return _WEEKDAY_WORDS[start], _WEEKDAY_WORDS[(start + count - 1) % 7]
    return None


def _weekday_words(weekdays: int) -> str:
    span = _weekday_span(weekdays)
    if span is not None:
        return f"{span[0]} to {span[1]}"
    return "on " + _join(_weekday_names(weekdays))


def _weekday_alternative(weekdays: int) -> str:
    span = _weekday_span(weekdays)
    if span is not None:
        return f"from {span[0]} to {span[1]}"
    return "on " + _join(_weekday_names(weekdays), "or")


def _weekday_condition(weekdays: int) -> str:
    span = _weekday_span(weekdays)
    if span is not None:
        return f"between {span[0]} and {span[1]}"
    return "a " + _join(_weekday_names(weekdays), "or")


def _month_words(months: list[int]) -> str | None:
    if len(months) == 12:
        return None
    runs = _runs(months)
    if len(runs) == 1 and len(months) >= 3:
        return f"from {_MONTH_WORDS[months[0] - 1]} to {_MONTH_WORDS[months[-1] - 1]}"
    return "in " + _join([_MONTH_WORDS[month - 1] for month in months])
