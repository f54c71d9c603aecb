"""describe(): a schedule in words, matching what the engine does with it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_daemon.timing import (
    CronSpec,
    TimingError,
    describe,
    next_fire_times,
    parse_spec,
)
from tests.unit.test_timing_properties import EXPRESSIONS, ZONES

ALL_DAYS = sum(1 << day for day in range(1, 32))
ALL_WEEKDAYS = 0b111_1111

WORDS = [
    # the examples a form shows
    ("0 9 * * 1-5", "America/New_York", "At 09:00, Monday to Friday (America/New_York)"),
    ("*/15 * * * *", "UTC", "Every 15 minutes (UTC)"),
    ("30 * * * *", "UTC", "At 30 minutes past every hour (UTC)"),
    ("1 * * * *", "UTC", "At 1 minute past every hour (UTC)"),
    ("0 */2 * * *", "UTC", "Every 2 hours, on the hour (UTC)"),
    ("30 */2 * * *", "UTC", "Every 2 hours, at 30 minutes past the hour (UTC)"),
    ("0 6 1 * *", "UTC", "At 06:00, on day 1 of the month (UTC)"),
    ("0 6 L * *", "UTC", "At 06:00, on the last day of the month (UTC)"),
    ("0 8 * * 1,3,5", "UTC", "At 08:00, on Monday, Wednesday and Friday (UTC)"),
    ("0 12 * * * ", "Europe/London", "At 12:00, every day (Europe/London)"),
    ("* * * * *", "UTC", "Every minute (UTC)"),
    # nicknames
    ("@daily", "UTC", "At 00:00, every day (UTC)"),
    ("@midnight", "UTC", "At 00:00, every day (UTC)"),
    ("@hourly", "UTC", "Every hour, on the hour (UTC)"),
    ("@weekly", "UTC", "At 00:00, on Sunday (UTC)"),
    ("@monthly", "UTC", "At 00:00, on day 1 of the month (UTC)"),
    ("@yearly", "UTC", "At 00:00, on January 1 (UTC)"),
    ("@ANNUALLY", "UTC", "At 00:00, on January 1 (UTC)"),
    # intervals count elapsed time, so they name no zone
    ("@every 15m", "UTC", "Every 15 minutes"),
    ("@every 15m", "America/New_York", "Every 15 minutes"),
    ("@every 1m", "UTC", "Every minute"),
    ("@every 1h", "UTC", "Every hour"),
    ("@every 90m", "UTC", "Every 1 hour and 30 minutes"),
    ("@every 1d2h3m4s", "UTC", "Every 1 day, 2 hours, 3 minutes and 4 seconds"),
    ("@every 1d", "UTC", "Every day"),
    ("@every 2w", "UTC", "Every 2 weeks"),
    ("@every 8d", "UTC", "Every 8 days"),
    ("  @EVERY 2H ", "UTC", "Every 2 hours"),
    # both day fields restricted: a day matches when EITHER does (Vixie cron)
    ("0 9 1 * 1", "UTC", "At 09:00, on day 1 of the month or on Monday (UTC)"),
    ("0 9 15 * 1,5", "UTC", "At 09:00, on day 15 of the month or on Monday or Friday (UTC)"),
    (
        "0 9 1-10 * 1-5",
        "UTC",
        "At 09:00, on days 1 through 10 of the month or from Monday to Friday (UTC)",
    ),
    ("0 0 L * 1", "UTC", "At 00:00, on the last day of the month or on Monday (UTC)"),
    # ... unless one is restricted by the other being all days: then every day matches
    ("0 0 1-31 * MON", "UTC", "At 00:00, every day (UTC)"),
    ("0 0 1 * 0-6", "UTC", "At 00:00, every day (UTC)"),
    # a day field starting with '*' makes a day match BOTH fields
    (
        "0 9 */2 * 1",
        "UTC",
        "At 09:00, on every 2nd day of the month from day 1 through 31, if it is a Monday (UTC)",
    ),
    ("0 9 */100,1-7 * MON", "UTC", "At 09:00, on the first Monday of the month (UTC)"),
    (
        "0 9 */100,1-7 * 2,4",
        "UTC",
        "At 09:00, on the first Tuesday and Thursday of the month (UTC)",
    ),
    # `*/100` is day 1, so with days 15-21 it is not the third-weekday idiom
    (
        "0 9 */100,15-21 * 2,4",
        "UTC",
        "At 09:00, on days 1 and 15 through 21 of the month, if it is a Tuesday or Thursday (UTC)",
    ),
    ("0 9 1-7 * */100", "UTC", "At 09:00, on the first Sunday of the month (UTC)"),
    ("0 9 8-14 FEB */100", "UTC", "At 09:00, on the second Sunday of February (UTC)"),
    (
        "0 0 L * */2",
        "UTC",
        "At 00:00, on the last day of the month, if it is a Tuesday, Thursday, Saturday or Sunday (UTC)",
    ),
    (
        "0 0 1-10 * */3",
        "UTC",
        "At 00:00, on days 1 through 10 of the month, if it is a Wednesday, Saturday or Sunday (UTC)",
    ),
    # oversized steps select the range's start alone (classic cron)
    ("*/90 * * * *", "UTC", "Every hour, on the hour (UTC)"),
    ("*/99999 * * * *", "UTC", "Every hour, on the hour (UTC)"),
    ("0 0 */100 * *", "UTC", "At 00:00, on day 1 of the month (UTC)"),
    ("0 0 * * */100", "UTC", "At 00:00, on Sunday (UTC)"),
    ("0 0 1 */100 *", "UTC", "At 00:00, on January 1 (UTC)"),
    # steps that do not divide the hour are not "every N minutes" across the hour
    ("*/7 * * * *", "UTC", "Every 7th minute from minute 0 through 56 of every hour (UTC)"),
    ("5/15 * * * *", "UTC", "Every 15 minutes, starting at minute 5 of the hour (UTC)"),
    ("0-9 * * * *", "UTC", "Every minute from minute 0 through 9 of every hour (UTC)"),
    ("0,15,40 * * * *", "UTC", "At minutes 0, 15 and 40 of every hour (UTC)"),
    # restricted hours
    ("0 9-17 * * *", "UTC", "Every hour from 09:00 through 17:00 (UTC)"),
    ("0 1-23/2 * * *", "UTC", "Every 2 hours from 01:00 through 23:00 (UTC)"),
    (
        "0 0-5,12-17 * * *",
        "UTC",
        "Every hour from 00:00 through 05:00 and from 12:00 through 17:00 (UTC)",
    ),
    ("*/15 9-17 * * *", "UTC", "Every 15 minutes, from 09:00 through 17:45 (UTC)"),
    ("1-59/2 9-17 * * *", "UTC", "Every 2 minutes, from 09:01 through 17:59 (UTC)"),
    ("* 9 * * *", "UTC", "Every minute, from 09:00 through 09:59 (UTC)"),
    (
        "0,30 9-17 * * 1-5",
        "UTC",
        "Every 30 minutes, from 09:00 through 17:30, Monday to Friday (UTC)",
    ),
    (
        "0,40 9-17 * * *",
        "UTC",
        "At minutes 0 and 40 of the hour, from 09:00 through 17:40 (UTC)",
    ),
    (
        "*/15 */2 * * *",
        "UTC",
        "Every 15 minutes, in every 2nd hour from 00:00 through 22:45 (UTC)",
    ),
    (
        "*/15 0,3,5,9,14 * * *",
        "UTC",
        "Every 15 minutes, during the 00:00, 03:00, 05:00, 09:00 and 14:00 hours (UTC)",
    ),
    # a few times a day are listed
    ("0,30 9 * * *", "UTC", "At 09:00 and 09:30, every day (UTC)"),
    ("0 9,17 * * *", "UTC", "At 09:00 and 17:00, every day (UTC)"),
    ("0 */7 * * *", "UTC", "At 00:00, 07:00, 14:00 and 21:00, every day (UTC)"),
    ("0 1-3/0001 * * *", "UTC", "At 01:00, 02:00 and 03:00, every day (UTC)"),
    ("0059 0023 * * *", "UTC", "At 23:59, every day (UTC)"),
    # days of the month
    ("0 0 1,L * *", "UTC", "At 00:00, on day 1 and the last day of the month (UTC)"),
    ("0 0 1,15 * *", "UTC", "At 00:00, on days 1 and 15 of the month (UTC)"),
    (
        "0 0 1-5,10,20-25 * *",
        "UTC",
        "At 00:00, on days 1 through 5, 10 and 20 through 25 of the month (UTC)",
    ),
    (
        "0 0 1-15/2,L * *",
        "UTC",
        "At 00:00, on every 2nd day of the month from day 1 through 15 and on the last day (UTC)",
    ),
    # weekdays: 0 and 7 are Sunday, names in any case
    ("0 0 * * 7", "UTC", "At 00:00, on Sunday (UTC)"),
    ("0 0 * * sun", "UTC", "At 00:00, on Sunday (UTC)"),
    ("0 0 * * 5-7", "UTC", "At 00:00, Friday to Sunday (UTC)"),
    ("0 0 * * 0,1,2", "UTC", "At 00:00, Sunday to Tuesday (UTC)"),
    ("0 0 * * 0-7", "UTC", "At 00:00, every day (UTC)"),
    ("0 0 * * SUN-SAT", "UTC", "At 00:00, every day (UTC)"),
    ("0 9 * * 6,0", "UTC", "At 09:00, on Saturday and Sunday (UTC)"),
    ("0 9 * * mon-fri/2", "UTC", "At 09:00, on Monday, Wednesday and Friday (UTC)"),
    # months
    ("0 0 * 2 *", "UTC", "At 00:00, every day in February (UTC)"),
    ("0 0 * */5 *", "UTC", "At 00:00, every day in January, June and November (UTC)"),
    ("0 9 1 JAN,jul *", "UTC", "At 09:00, on day 1 of the month, in January and July (UTC)"),
    ("0 9 * JAN-MAR 1-5", "UTC", "At 09:00, Monday to Friday, from January to March (UTC)"),
    ("0 0 29 2 *", "UTC", "At 00:00, on February 29 (UTC)"),
    ("0 0 L 2 *", "UTC", "At 00:00, on the last day of February (UTC)"),
    ("59 23 31 12 *", "UTC", "At 23:59, on December 31 (UTC)"),
    (
        "0 9 8-14 FEB MON",
        "UTC",
        "At 09:00, on days 8 through 14 of the month or on Monday, in February (UTC)",
    ),
    # the zone is named as parse_spec resolves it
    ("0 9 * * *", "utc", "At 09:00, every day (UTC)"),
    ("0 9 * * *", "Asia/Kolkata", "At 09:00, every day (Asia/Kolkata)"),
]


@pytest.mark.parametrize(("expression", "zone", "words"), WORDS)
def test_words(expression: str, zone: str, words: str) -> None:
    assert describe(expression, zone) == words


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("", "UTC", "cron expression is empty"),
        ("0 0 32 * *", "UTC", "cron day-of-month field '32': value 32 out of range 1-31"),
        ("0 0 31 2 *", "UTC", "can never fire in month field '2'"),
        ("0 0 * * 5#3", "UTC", "'#' (nth weekday of the month) is not supported"),
        ("0 0 15W * *", "UTC", "'W' (nearest weekday) is not supported"),
        ("0 0 L/2 * *", "UTC", "'L' cannot take a step"),
        ("0 0 * * 5L", "UTC", "'5L' is not a number or a weekday name"),
        ("0 0 * * * 2026", "UTC", "seconds and year fields are not supported"),
        ("@reboot", "UTC", "alias '@reboot' is not supported"),
        ("@fortnightly", "UTC", "unknown alias '@fortnightly'"),
        ("@every 30s", "UTC", "30 seconds is below the minimum of 60 seconds"),
        ("@every 1.5h", "UTC", "is not a duration"),
        ("0 9 * * *", "Mars/Base", "unknown time zone 'Mars/Base'"),
        ("x" * 300, "UTC", "the limit is 256"),
    ],
)
def test_invalid_expressions_raise_timing_error(expression: str, zone: str, message: str) -> None:
    with pytest.raises(TimingError, match=re.escape(message)):
        describe(expression, zone)


def test_the_minimum_interval_is_configurable() -> None:
    assert describe("@every 30s", "UTC", min_interval_seconds=1) == "Every 30 seconds"


ALIASES = st.sampled_from(
    ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly", "@DAILY"]
)
INTERVALS = st.lists(
    st.tuples(st.integers(0, 999), st.sampled_from("wdhms")), min_size=1, max_size=5
).map(lambda parts: "@every " + "".join(f"{amount}{unit}" for amount, unit in parts))
ACCEPTED = st.one_of(EXPRESSIONS, EXPRESSIONS, ALIASES, INTERVALS)


def _parse_error(expression: str, zone: str) -> str | None:
    try:
        parse_spec(expression, zone)
    except TimingError as error:
        return str(error)
    return None


@settings(max_examples=400, deadline=None)
@given(expression=ACCEPTED, zone=st.sampled_from(ZONES))
def test_describes_what_parse_spec_accepts_and_refuses_the_rest(expression: str, zone: str) -> None:
    error = _parse_error(expression, zone)
    if error is not None:
        with pytest.raises(TimingError) as raised:
            describe(expression, zone)
        assert str(raised.value) == error
        return
    words = describe(expression, zone)
    assert words
    assert words[0].isupper()
    if not expression.startswith("@every"):
        assert words.endswith(f" ({parse_spec(expression, zone).timezone})")


@settings(max_examples=300, deadline=None)
@given(
    expression=st.one_of(
        st.text(max_size=60),
        st.lists(
            st.sampled_from(
                ["*", "*/", "-", ",", "/", "L", "0", "7", "31", "59", "MON", "JAN", " ", "@"]
            ),
            max_size=20,
        ).map("".join),
    ),
)
def test_any_text_is_described_or_refused_like_parse_spec(expression: str) -> None:
    error = _parse_error(expression, "UTC")
    if error is None:
        assert describe(expression, "UTC")
    else:
        with pytest.raises(TimingError, match=re.escape(error)):
            describe(expression, "UTC")


_CLOCK_LIST = re.compile(r"At (\d\d:\d\d(?:(?:, | and )\d\d:\d\d)*)(?:,| \()")


@settings(max_examples=200, deadline=None)
@given(expression=EXPRESSIONS)
def test_listed_clock_times_are_the_fire_times(expression: str) -> None:
    """When the words list clock times ('At 09:00 and 17:30, ...'), the schedule fires at
    exactly those times of day (UTC has no DST to move them)."""
    if _parse_error(expression, "UTC") is not None:
        return
    listed = _CLOCK_LIST.match(describe(expression, "UTC"))
    if listed is None:
        return
    times = set(re.findall(r"\d\d:\d\d", listed.group(1)))
    # Each matching day fires at every listed time, so 60 fires cover one whole day.
    fires = next_fire_times(expression, "UTC", datetime(2026, 1, 1, tzinfo=UTC), 60)
    assert {fire.strftime("%H:%M") for fire in fires} == times


@settings(max_examples=200, deadline=None)
@given(expression=EXPRESSIONS)
def test_days_match_either_field_only_when_neither_starts_with_a_star(expression: str) -> None:
    if _parse_error(expression, "UTC") is not None:
        return
    spec = parse_spec(expression, "UTC")
    assert isinstance(spec, CronSpec)
    fields = spec.fields
    words = describe(expression, "UTC")
    either = " or on " in words or " or from " in words
    if fields.day_star or fields.weekday_star:
        assert not either
    else:
        restricted = fields.days != ALL_DAYS and fields.weekdays != ALL_WEEKDAYS
        assert either == restricted
