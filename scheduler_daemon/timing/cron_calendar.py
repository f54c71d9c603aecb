"""Find the next local wall-clock time a cron expression matches, ignoring time zones.

Wall times are integer seconds since 1970-01-01T00:00 on a zone-less calendar. The walk goes
month -> day -> hour -> minute over bitsets, so each step skips whole units at once and a
search over the full horizon costs at most a few thousand loop turns.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from scheduler_daemon.timing.cron_fields import CronFields

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_LAST_ORDINAL = date.max.toordinal()
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MEAN_YEAR_SECONDS = 31_556_952  # the mean Gregorian year


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def month_days(year: int, month: int) -> int:
    return _MONTH_DAYS[month] + (month == 2 and is_leap(year))


def day_mask(fields: CronFields, year: int, month: int) -> int:
    """The days (bits 1-31) of this month that match the day-of-month/day-of-week rule."""
    last = month_days(year, month)
    valid = (2 << last) - 2
    first_weekday = (date(year, month, 1).weekday() + 1) % 7
    days = fields.days | (1 << last) if fields.last_day else fields.days
    weekdays = fields.weekday_masks[first_weekday]
    if fields.day_star or fields.weekday_star:
        return days & weekdays & valid
    return (days | weekdays) & valid


def ceil_minute(seconds: int) -> int:
    return -(-seconds // 60) * 60


def hhmm(wall: int) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%H:%M")


def wall_from_parts(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return (date(year, month, day).toordinal() - EPOCH_ORDINAL) * 86400 + hour * 3600 + minute * 60


def next_wall(fields: CronFields, start: int, last_year: int) -> int | None:
    """The first matching wall time >= start (a whole minute), or None past last_year's end."""
    days, rest = divmod(start, 86400)
    if days + EPOCH_ORDINAL > _LAST_ORDINAL:
        return None
    if days + EPOCH_ORDINAL < 1:
        days, rest = 1 - EPOCH_ORDINAL, 0
    start_date = date.fromordinal(days + EPOCH_ORDINAL)
    year, month, day = start_date.year, start_date.month, start_date.day
    hour, minute = divmod(rest // 60, 60)
    months = fields.months
    next_hour = fields.next_hour
    next_minute = fields.next_minute
    last_year = min(last_year, date.max.year)
    while year <= last_year:
        if not months >> month & 1:
            month = fields.next_month[month]
            if month == 13:
                year += 1
                month = fields.next_month[1]
                if year > last_year:
                    return None
            day, hour, minute = 1, 0, 0
        mask = day_mask(fields, year, month) >> day << day
        if mask:
            found = (mask & -mask).bit_length() - 1
            if found != day:
                day, hour, minute = found, 0, 0
            matched_hour = next_hour[hour]
            if matched_hour < 24:
                matched_minute = next_minute[minute if matched_hour == hour else 0]
                if matched_minute == 60:
                    matched_hour = next_hour[matched_hour + 1]
                    matched_minute = next_minute[0]
                if matched_hour < 24:
                    return wall_from_parts(year, month, day, matched_hour, matched_minute)
            day, hour, minute = day + 1, 0, 0
            continue
        day, hour, minute = 1, 0, 0
        month += 1
        if month == 13:
            month = 1
            year += 1
    return None
