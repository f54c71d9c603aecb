"""Parse a 5-field cron expression into bitsets, rejecting bad input with a message per field.

croniter's parser accepts things this project must refuse (reversed ranges, `0 0 31 2 *`)
and its messages do not say which field is wrong, so the syntax is parsed here; the test suite
checks the expansions against croniter's own.

Steps follow classic (Vixie) cron: any step of at least 1 is allowed, and one larger than its
range selects just the range's start, so `*/100` in day-of-month is day 1 alone. Together with
the day rule (a day field starting with `*` makes a day match both day fields) that gives the
classic idiom `0 9 */100,1-7 * MON`: days 1-7 AND Monday, the first Monday of the month.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from scheduler_daemon.timing.errors import TimingError

MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK = range(5)
FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAME_VALUES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {name: number for number, name in enumerate(MONTH_NAMES, start=1)},
    {name: number for number, name in enumerate(WEEKDAY_NAMES)},
)
# Bounds a value may take; day-of-week accepts 7 for Sunday, but `*` means 0-6.
_LOW = (0, 0, 1, 1, 0)
_HIGH = (59, 23, 31, 12, 7)
_STAR_HIGH = (59, 23, 31, 12, 6)
# How many values `*` covers: a `*/N` with a larger N selects only the first of them.
FIELD_SIZES = (60, 24, 31, 12, 7)
# Any larger step selects the same single value as this one does.
_STEP_CAP = 10_000
# The longest each month can be, leap years included (index 0 unused).
MAX_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_UNSUPPORTED = {
    "#": "'#' (nth weekday of the month) is not supported",
    "W": "'W' (nearest weekday) is not supported",
    "?": "'?' is not supported; use '*'",
}


@dataclass(frozen=True, slots=True)
class ParsedField:
    """One field: the set of values as a bitset, and whether it was written starting with `*`."""

    bits: int
    star: bool
    last_day: bool = False


@dataclass(frozen=True, slots=True)
class CronFields:
    """A cron expression as bitsets plus the lookup tables the calendar search walks.

    next_minute[m] is the first allowed minute >= m (60 when none), likewise next_hour (24)
    and next_month (13); weekday_masks[w] is the set of days (bits 1-31) of a month whose
    first day is weekday w (0 = Sunday) that fall on an allowed weekday.
    """

    texts: tuple[str, str, str, str, str]
    minutes: int
    hours: int
    days: int
    last_day: bool
    months: int
    weekdays: int
    day_star: bool
    weekday_star: bool
    next_minute: tuple[int, ...]
    next_hour: tuple[int, ...]
    next_month: tuple[int, ...]
    weekday_masks: tuple[int, ...]

    @property
    def text(self) -> str:
        return " ".join(self.texts)

    @property
    def wildcard(self) -> bool:
        """Classic cron's split: a `*` minute or hour follows elapsed time across DST changes."""
        return self.texts[MINUTE].startswith("*") or self.texts[HOUR].startswith("*")

    @property
    def days_and_weekdays(self) -> bool:
        """Vixie rule: when either day field starts with `*`, a day must match both."""
        return self.day_star or self.weekday_star


def field_error(index: int, text: str, problem: str) -> TimingError:
    return TimingError(f"cron {FIELD_NAMES[index]} field {text!r}: {problem}")


def _value(index: int, field_text: str, token: str) -> int:
    if token.isascii() and token.isdigit():
        if len(token) > 4:
            raise field_error(index, field_text, f"value {token} out of range {_range(index)}")
        number = int(token)
        if not _LOW[index] <= number <= _HIGH[index]:
            raise field_error(index, field_text, f"value {number} out of range {_range(index)}")
        return number
    named = _NAME_VALUES[index].get(token.upper())
    if named is not None:
        return named
    if not token:
        raise field_error(index, field_text, "a value is missing")
    if token.upper() == "L":
        raise field_error(
            index, field_text, "'L' (last day of the month) is only allowed in day-of-month"
        )
    expected = {
        MONTH: "a number or a month name (JAN-DEC)",
        DAY_OF_WEEK: "a number or a weekday name (SUN-SAT)",
    }.get(index, "a number")
    raise field_error(index, field_text, f"{token!r} is not {expected}")


def _range(index: int) -> str:
    return f"{_LOW[index]}-{_HIGH[index]}"


def _step(index: int, field_text: str, token: str) -> int:
    """A step of at least 1; classic cron allows any, a large one selecting just the start."""
    if not (token.isascii() and token.isdigit()):
        raise field_error(index, field_text, f"step {token!r} is not a positive number")
    digits = token.lstrip("0")
    if not digits:
        raise field_error(index, field_text, "step 0 must be at least 1")
    return int(digits) if len(digits) <= 4 else _STEP_CAP


def _item_bits(index: int, field_text: str, item: str) -> tuple[int, bool]:
    """Bits of one list item, and whether it is the `L` (last day of the month) marker."""
    for marker, problem in _UNSUPPORTED.items():
        if marker in item.upper() and (marker != "W" or index == DAY_OF_MONTH):
            raise field_error(index, field_text, problem)
    if not item:
        raise field_error(index, field_text, "empty list item")
    base, slash, step_text = item.partition("/")
    step = _step(index, field_text, step_text) if slash else 1
    if base.upper() == "L" and index == DAY_OF_MONTH:
        if slash:
            raise field_error(index, field_text, "'L' cannot take a step")
        return 0, True
    if base == "*":
        low, high = _LOW[index], _STAR_HIGH[index]
    elif "-" in base:
        start_text, _, end_text = base.partition("-")
        if not start_text or not end_text:
            raise field_error(index, field_text, f"{base!r} is not a valid range")
        low = _value(index, field_text, start_text)
        high = _value(index, field_text, end_text)
        if low > high:
            hint = "; for a range ending on Sunday use 7, e.g. 5-7" if index == DAY_OF_WEEK else ""
            raise field_error(index, field_text, f"range {base} is reversed{hint}")
    else:
        low = _value(index, field_text, base)
        high = _STAR_HIGH[index] if slash else low
    bits = 0
    for number in range(low, high + 1, step):
        bits |= 1 << number
    return bits, False


@lru_cache(maxsize=4096)
def parse_field(index: int, text: str) -> ParsedField:
    """One field's value set. Cached: real crontabs share most of their fields."""
    bits = 0
    last_day = False
    for item in text.split(","):
        item_bits, is_last = _item_bits(index, text, item)
        bits |= item_bits
        last_day = last_day or is_last
    if index == DAY_OF_WEEK and bits & (1 << 7):
        bits = (bits | 1) & ~(1 << 7)
    return ParsedField(bits=bits, star=text.startswith("*"), last_day=last_day)


@lru_cache(maxsize=1024)
def _next_table(bits: int, size: int) -> tuple[int, ...]:
    table = [size] * (size + 1)
    following = size
    for value in range(size - 1, -1, -1):
        if bits >> value & 1:
            following = value
        table[value] = following
    return tuple(table)


@lru_cache(maxsize=256)
def _weekday_masks(weekdays: int) -> tuple[int, ...]:
    masks = []
    for first in range(7):
        mask = 0
        for day in range(1, 32):
            if weekdays >> ((first + day - 1) % 7) & 1:
                mask |= 1 << day
        masks.append(mask)
    return tuple(masks)


def split_fields(expression: str) -> tuple[str, str, str, str, str]:
    """The five field texts of a cron expression (aliases expanded)."""
    stripped = expression.strip()
    if not stripped:
        raise TimingError("cron expression is empty")
    if stripped.startswith("@"):
        alias = ALIASES.get(stripped.lower())
        if stripped.lower() == "@reboot":
            raise TimingError("alias '@reboot' is not supported: a schedule needs a time to fire")
        if alias is None:
            known = ", ".join(ALIASES)
            raise TimingError(
                f"unknown alias {stripped!r}; expected one of {known} or '@every <interval>'"
            )
        stripped = alias
    parts = stripped.split()
    if len(parts) != 5:
        extra = " (seconds and year fields are not supported)" if len(parts) in (6, 7) else ""
        raise TimingError(
            f"cron expression {stripped!r} has {len(parts)} field{'s' * (len(parts) != 1)}; "
            f"expected 5 (minute hour day-of-month month day-of-week){extra}"
        )
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def parse_cron(expression: str) -> CronFields:
    """Parse and check a 5-field cron expression or alias; raises TimingError naming the field.

    The length limit is parse_spec's to check: it is the package's one way in.
    """
    texts = split_fields(expression)
    minute, hour, day, month, weekday = (parse_field(i, text) for i, text in enumerate(texts))
    fields = CronFields(
        texts=texts,
        minutes=minute.bits,
        hours=hour.bits,
        days=day.bits,
        last_day=day.last_day,
        months=month.bits,
        weekdays=weekday.bits,
        day_star=day.star,
        weekday_star=weekday.star,
        next_minute=_next_table(minute.bits, 60),
        next_hour=_next_table(hour.bits, 24),
        next_month=_next_table(month.bits, 13),
        weekday_masks=_weekday_masks(weekday.bits),
    )
    _check_can_fire(fields)
    return fields


def _check_can_fire(fields: CronFields) -> None:
    """Reject, without searching, day/month combinations that no calendar ever has.

    Over the 400-year Gregorian cycle every date, February 29th included, falls on every
    weekday, so a day restricted by both fields (Vixie AND) can fire iff the date exists;
    when both are restricted a day matches if either does, and every month has every weekday.
    """
    if not fields.days_and_weekdays or fields.last_day:
        return
    for month in range(1, 13):
        if fields.months >> month & 1 and fields.days & ((1 << (MAX_MONTH_DAYS[month] + 1)) - 2):
            return
    month_names = [MONTH_NAMES[m - 1] for m in range(1, 13) if fields.months >> m & 1]
    longest = max(MAX_MONTH_DAYS[m] for m in range(1, 13) if fields.months >> m & 1)
    raise TimingError(
        f"cron day-of-month field {fields.texts[DAY_OF_MONTH]!r}: can never fire in month field "
        f"{fields.texts[MONTH]!r} ({', '.join(month_names)} "
        f"{'has' if len(month_names) == 1 else 'have'} at most {longest} days)"
    )
