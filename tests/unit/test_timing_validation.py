"""Bad input gets one error type, TimingError, whose message names the field and value."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_daemon.errors import SchedulerError
from scheduler_daemon.timing import (
    TimingError,
    interval_spec,
    next_fire_times,
    parse_spec,
    validate,
    warnings,
)

BAD_INPUT = [
    # empty, too long, wrong shape
    ("", "UTC", "cron expression is empty"),
    ("   ", "UTC", "cron expression is empty"),
    ("x" * 300, "UTC", "is 300 characters long; the limit is 256"),
    ("* * * *", "UTC", "has 4 fields; expected 5 (minute hour day-of-month month day-of-week)"),
    ("* * * * * *", "UTC", "has 6 fields; expected 5"),
    ("0 0 1 1 1 2026", "UTC", "seconds and year fields are not supported"),
    ("*", "UTC", "has 1 field; expected 5"),
    # out of range
    ("0 0 32 * *", "UTC", "cron day-of-month field '32': value 32 out of range 1-31"),
    ("0 0 0 * *", "UTC", "cron day-of-month field '0': value 0 out of range 1-31"),
    ("60 * * * *", "UTC", "cron minute field '60': value 60 out of range 0-59"),
    ("* 24 * * *", "UTC", "cron hour field '24': value 24 out of range 0-23"),
    ("0 0 * 13 *", "UTC", "cron month field '13': value 13 out of range 1-12"),
    ("0 0 * 0 *", "UTC", "cron month field '0': value 0 out of range 1-12"),
    ("0 0 * * 8", "UTC", "cron day-of-week field '8': value 8 out of range 0-7"),
    ("0 0 10000 * *", "UTC", "cron day-of-month field '10000': value 10000 out of range 1-31"),
    ("0 0 1-40 * *", "UTC", "cron day-of-month field '1-40': value 40 out of range 1-31"),
    # bad syntax
    ("a b c d e", "UTC", "cron minute field 'a': 'a' is not a number"),
    ("MON * * * *", "UTC", "cron minute field 'MON': 'MON' is not a number"),
    ("0 0 * FOO *", "UTC", "cron month field 'FOO': 'FOO' is not a number or a month name"),
    (
        "0 0 * * FUNDAY",
        "UTC",
        "cron day-of-week field 'FUNDAY': 'FUNDAY' is not a number or a weekday",
    ),
    ("0 0 * JAN-FOO *", "UTC", "cron month field 'JAN-FOO': 'FOO' is not a number or a month name"),
    ("0 0 * * MON-", "UTC", "cron day-of-week field 'MON-': 'MON-' is not a valid range"),
    ("-1 * * * *", "UTC", "cron minute field '-1': '-1' is not a valid range"),
    ("1,,2 * * * *", "UTC", "cron minute field '1,,2': empty list item"),
    ("1, * * * *", "UTC", "cron minute field '1,': empty list item"),
    ("5-1 * * * *", "UTC", "cron minute field '5-1': range 5-1 is reversed"),
    (
        "0 0 * * SAT-SUN",
        "UTC",
        "cron day-of-week field 'SAT-SUN': range SAT-SUN is reversed; for a range ending on Sunday use 7",
    ),
    ("٣ * * * *", "UTC", "cron minute field '٣': '٣' is not a number"),
    # steps
    ("*/0 * * * *", "UTC", "cron minute field '*/0': step 0 must be at least 1"),
    ("0 0 1-5/0 * *", "UTC", "cron day-of-month field '1-5/0': step 0 must be at least 1"),
    ("*/00000 * * * *", "UTC", "cron minute field '*/00000': step 0 must be at least 1"),
    ("0 0 * * 1-5/0", "UTC", "cron day-of-week field '1-5/0': step 0 must be at least 1"),
    ("*/x * * * *", "UTC", "cron minute field '*/x': step 'x' is not a positive number"),
    ("*/-1 * * * *", "UTC", "cron minute field '*/-1': step '-1' is not a positive number"),
    ("*/ * * * *", "UTC", "cron minute field '*/': step '' is not a positive number"),
    # unsupported extensions
    (
        "0 0 * * 5#3",
        "UTC",
        "cron day-of-week field '5#3': '#' (nth weekday of the month) is not supported",
    ),
    ("0 0 15W * *", "UTC", "cron day-of-month field '15W': 'W' (nearest weekday) is not supported"),
    ("0 0 ? * *", "UTC", "cron day-of-month field '?': '?' is not supported; use '*'"),
    ("0 0 L/2 * *", "UTC", "cron day-of-month field 'L/2': 'L' cannot take a step"),
    (
        "L * * * *",
        "UTC",
        "cron minute field 'L': 'L' (last day of the month) is only allowed in day-of-month",
    ),
    ("0 0 * * 5L", "UTC", "cron day-of-week field '5L': '5L' is not a number or a weekday name"),
    # can never fire
    (
        "0 0 31 2 *",
        "UTC",
        "cron day-of-month field '31': can never fire in month field '2' (FEB has at most 29 days)",
    ),
    (
        "0 0 30 2 *",
        "UTC",
        "cron day-of-month field '30': can never fire in month field '2' (FEB has at most 29 days)",
    ),
    (
        "0 0 30,31 FEB *",
        "UTC",
        "cron day-of-month field '30,31': can never fire in month field 'FEB'",
    ),
    (
        "0 0 31 4,6,9,11 *",
        "UTC",
        "can never fire in month field '4,6,9,11' (APR, JUN, SEP, NOV have at most 30 days)",
    ),
    ("0 0 31 2 */2", "UTC", "cron day-of-month field '31': can never fire in month field '2'"),
    # aliases and intervals
    ("@reboot", "UTC", "alias '@reboot' is not supported"),
    ("@fortnightly", "UTC", "unknown alias '@fortnightly'; expected one of @yearly"),
    ("@every", "UTC", "interval '@every': missing duration, e.g. '@every 15m'"),
    ("@every 0s", "UTC", "interval '@every 0s': the duration must be longer than 0 seconds"),
    ("@every 0h0m", "UTC", "interval '@every 0h0m': the duration must be longer than 0 seconds"),
    ("@every 30s", "UTC", "interval '@every 30s': 30 seconds is below the minimum of 60 seconds"),
    ("@every -5m", "UTC", "interval '@every -5m': the duration must be positive"),
    ("@every 5x", "UTC", "interval '@every 5x': unknown unit 'x' in '5x'; use s, m, h, d or w"),
    ("@every 10 minutes", "UTC", "unknown unit 'minutes'"),
    ("@every 1.5h", "UTC", "interval '@every 1.5h': '1.5h' is not a duration like 90s"),
    ("@every 15", "UTC", "interval '@every 15': '15' is not a duration"),
    ("@every 1h1h", "UTC", "interval '@every 1h1h': unit 'h' appears twice"),
    ("@every 99999w", "UTC", "seconds is above the maximum of 315360000 seconds (3650 days)"),
    ("@every 9999999999999999999999s", "UTC", "is not a duration"),
    # time zones
    (
        "0 0 * * *",
        "Mars/Base",
        "unknown time zone 'Mars/Base'; use an IANA name such as 'Europe/London'",
    ),
    (
        "0 0 * * *",
        "America/New_Yrok",
        "unknown time zone 'America/New_Yrok'; did you mean 'America/New_York'",
    ),
    ("0 0 * * *", "Europe/Londn", "did you mean 'Europe/London'"),
    ("0 0 * * *", "", "time zone is empty"),
    ("0 0 * * *", "a" * 100, "is 100 characters long; the limit is 64"),
    ("0 0 * * *", "Ameriça/NY", "unknown time zone 'Ameriça/NY'; zone names are printable ASCII"),
    ("@every 1h", "Nowhere/Town", "unknown time zone 'Nowhere/Town'"),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("expression", "zone", "message"), BAD_INPUT)
def test_bad_input_is_rejected_with_its_message(expression: str, zone: str, message: str) -> None:
    began = time.perf_counter()
    with pytest.raises(TimingError) as raised:
        validate(expression, zone)
    assert message in str(raised.value)
    assert isinstance(raised.value, SchedulerError)
    assert time.perf_counter() - began < 1


def test_corpus_is_large_enough() -> None:
    assert len(BAD_INPUT) >= 40


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "expression must be a string, got NoneType"),
        (42, "expression must be a string, got int"),
    ],
)
def test_non_string_expression(value: object, message: str) -> None:
    with pytest.raises(TimingError, match=message):
        validate(value, "UTC")  # type: ignore[arg-type]


def test_non_string_zone() -> None:
    with pytest.raises(TimingError, match="time zone must be a string, got NoneType"):
        validate("0 0 * * *", None)  # type: ignore[arg-type]


def test_minimum_interval_is_configurable() -> None:
    validate("@every 30s", "UTC", min_interval_seconds=10)
    validate("@every 1s", "UTC", min_interval_seconds=1)
    with pytest.raises(TimingError, match="below the minimum of 120 seconds"):
        validate("@every 90s", "UTC", min_interval_seconds=120)


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (0, "0 seconds is not positive"),
        (-60, "-60 seconds is not positive"),
        (59, "59 seconds is below the minimum of 60 seconds"),
        (1.5, "seconds must be an integer, got 1.5"),
    ],
)
def test_bad_interval_rows(seconds: int, message: str) -> None:
    with pytest.raises(TimingError, match=message):
        interval_spec(seconds, None)


def test_bad_time_arguments() -> None:
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(TimingError, match="count -1 out of range 0-100000"):
        next_fire_times("* * * * *", "UTC", aware, -1)
    with pytest.raises(TimingError, match="count must be an integer"):
        next_fire_times("* * * * *", "UTC", aware, "3")  # type: ignore[arg-type]
    with pytest.raises(
        TimingError, match="interval anchor 2026-01-01T00:00:00 must be timezone-aware"
    ):
        parse_spec("@every 1h", "UTC", datetime(2026, 1, 1))
    with pytest.raises(TimingError, match="after must be a datetime, got str"):
        parse_spec("@every 1h", "UTC").next_after("2026-01-01")  # type: ignore[arg-type]


@pytest.mark.timeout(10)
def test_hostile_input_never_hangs() -> None:
    began = time.perf_counter()
    hostile = [
        ",".join(str(n) for n in range(60)) + " * * * *",
        "0-59/1 0-23/1 1-31/1 1-12/1 0-7/1",
        " ".join(["*"] * 200),
        "@every " + "1s" * 120,
        "0 0 " + ",".join(["31"] * 80) + " 2 *",
    ]
    for expression in hostile:
        with contextlib.suppress(TimingError):
            next_fire_times(expression, "America/Santiago", datetime(2026, 1, 1, tzinfo=UTC), 50)
    assert time.perf_counter() - began < 2


WARNINGS = [
    ("0 0 31 * *", "UTC", "day-of-month 31 in '31' does not occur in FEB, APR, JUN, SEP, NOV"),
    ("0 0 31 * *", "UTC", "use L for the last day of the month"),
    ("0 0 30 1-3 *", "UTC", "day-of-month 30 in '30' does not occur in FEB"),
    ("0 0 29 * *", "UTC", "does not occur in FEB except in leap years"),
    (
        "0 0 */14 * *",
        "UTC",
        "'*/14' means days 1, 15, 29 of each month, restarting on the 1st, not every 14 days; for a fixed period use '@every 14d'",
    ),
    ("0 0 1-31/10 * *", "UTC", "not every 10 days; for a fixed period use '@every 10d'"),
    (
        "0 9 1-7 * 1",
        "UTC",
        "day-of-month '1-7' and day-of-week '1' are both restricted, so a day matches when EITHER matches",
    ),
    # the mistake the first-weekday idiom fixes, and the idiom itself, said in words
    (
        "0 9 1-7 * MON",
        "UTC",
        "; for the first Monday of each month write day-of-month '*/100,1-7'",
    ),
    ("0 9 1-7 * MON-FRI", "UTC", "for the first Monday, Tuesday, Wednesday, Thursday and Friday"),
    (
        "0 9 */100,1-7 * MON",
        "UTC",
        "day-of-month '*/100,1-7' with day-of-week 'MON' means the first Monday of each month: "
        "'*/100,1-7' starts with '*', so a day must match both day fields (classic cron)",
    ),
    ("0 9 */100,1-7 * SAT,SUN", "UTC", "means the first Saturday and Sunday of each month"),
    ("0 9 8-14 * */7,0", "UTC", "means the second Sunday of each month: '*/7,0' starts with '*'"),
    # a `*/N` step beyond the field's values selects only its first value
    (
        "*/90 * * * *",
        "UTC",
        "minute '*/90' selects only minute 0: a step larger than the field's 60 values selects just the first (classic cron), not every 90 minutes; for a fixed period use '@every 90m'",
    ),
    ("0 */30 * * *", "UTC", "hour '*/30' selects only hour 0"),
    ("0 */30 * * *", "UTC", "not every 30 hours; for a fixed period use '@every 30h'"),
    ("0 0 1 */13 *", "UTC", "month '*/13' selects only month JAN"),
    ("0 0 * * */8", "UTC", "day-of-week '*/8' selects only day-of-week SUN"),
    ("0,*/90 * * * *", "UTC", "minute '*/90' in '0,*/90' selects only minute 0"),
    ("0 0 */100 * *", "UTC", "'*/100' means only day 1 of each month, not every 100 days"),
    # fixed-offset zones
    (
        "0 9 * * *",
        "EST",
        "EST is a fixed offset (UTC-05:00) with no daylight-saving time; for New York's local time use America/New_York",
    ),
    (
        "@every 1h",
        "Etc/GMT+5",
        "Etc/GMT+5 is a fixed offset (UTC-05:00; Etc/GMT signs are inverted)",
    ),
    ("30 2 * * *", "America/New_York", "02:30 does not exist in America/New_York on days such as"),
    ("30 2 * * *", "America/New_York", "(clocks skip 02:00-03:00); it fires at 03:00 instead"),
    (
        "30 1 * * *",
        "America/New_York",
        "(clocks repeat 01:00-02:00); it fires once, at the first 01:30",
    ),
    ("0 0 * * *", "America/Santiago", "(clocks skip 00:00-01:00); it fires at 01:00 instead"),
    ("30 23 * * *", "America/Santiago", "23:30 happens twice in America/Santiago"),
    ("15 2 * * *", "Australia/Lord_Howe", "(clocks skip 02:00-02:30); it fires at 02:30 instead"),
    ("45 2 * * *", "Pacific/Chatham", "02:45 does not exist in Pacific/Chatham"),
    ("45 2 * * *", "Pacific/Chatham", "02:45 happens twice in Pacific/Chatham"),
    ("30 1 * * *", "Europe/Dublin", "01:30 does not exist in Europe/Dublin"),
    (
        "@every 1d",
        "Europe/London",
        "'@every 1d' counts elapsed time, so in Europe/London its local time of day shifts",
    ),
]


@pytest.mark.parametrize(("expression", "zone", "fragment"), WARNINGS)
def test_warnings(expression: str, zone: str, fragment: str) -> None:
    assert any(fragment in warning for warning in warnings(expression, zone)), warnings(
        expression, zone
    )


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("0 0 L * *", "UTC"),
        ("0 9 * * MON-FRI", "America/New_York"),
        ("*/15 * * * *", "America/New_York"),  # wildcard: follows elapsed time, nothing to warn
        ("30 2 * * *", "America/Sao_Paulo"),  # no DST since 2019
        ("30 2 * * *", "Asia/Kolkata"),
        ("30 2 * * 1", "America/New_York"),  # US changes happen on Sundays
        ("@every 2h", "Europe/London"),
        ("@every 1d", "UTC"),
        ("*/60 * * * *", "UTC"),  # a step as large as the field: hourly is every 60 minutes
        ("0 0 * * */7", "UTC"),
        ("0 9 * * *", "Etc/GMT"),
        ("0 9 * * *", "America/Phoenix"),  # a place without DST is what its users mean
    ],
)
def test_no_warnings(expression: str, zone: str) -> None:
    assert warnings(expression, zone) == []


def test_warnings_after_an_instant_use_that_window() -> None:
    found = warnings("30 2 * * *", "America/New_York", after=datetime(2026, 1, 1, tzinfo=UTC))
    assert found == [
        "02:30 does not exist in America/New_York on days such as 2026-03-08 (clocks skip 02:00-03:00); it fires at 03:00 instead"
    ]
    assert warnings("0 0 * * *", "America/Sao_Paulo", after=datetime(2017, 1, 1, tzinfo=UTC)) == [
        "00:00 does not exist in America/Sao_Paulo on days such as 2017-10-15 (clocks skip 00:00-01:00); it fires at 01:00 instead"
    ]


def test_warnings_reject_invalid_expressions() -> None:
    with pytest.raises(TimingError, match="value 32 out of range"):
        warnings("0 0 32 * *", "UTC")


@pytest.mark.timeout(30)
@settings(max_examples=300, deadline=None)
@given(
    expression=st.one_of(
        st.text(max_size=80),
        st.lists(
            st.sampled_from(
                ["*", "*/", "-", ",", "/", "L", "0", "7", "31", "59", "MON", "JAN", " "]
            ),
            max_size=20,
        ).map("".join),
        st.text(alphabet="@every0123456789smhdw -.", max_size=30),
    ),
    zone=st.one_of(
        st.sampled_from(["UTC", "America/Santiago", "Pacific/Chatham"]), st.text(max_size=30)
    ),
)
def test_any_text_either_parses_or_raises_timing_error(expression: str, zone: str) -> None:
    began = time.perf_counter()
    try:
        spec = parse_spec(expression, zone, None, 1)
    except TimingError:
        return
    spec.fires_after(datetime(2026, 3, 8, 6, 59, tzinfo=UTC), 5)
    assert time.perf_counter() - began < 1


@pytest.mark.parametrize("expression", ["* * * * *", "0 0 * * *", "@every 1h", "0 0 29 2 */7"])
@pytest.mark.parametrize("zone", ["America/New_York", "Pacific/Chatham"])
def test_start_of_the_calendar_answers(expression: str, zone: str) -> None:
    after = datetime(1, 1, 1, tzinfo=UTC)
    moments = next_fire_times(expression, zone, after, 3)
    assert moments[0] > after


@pytest.mark.parametrize("expression", ["* * * * *", "0 0 * * *", "@every 1h", "0 0 29 2 */7"])
@pytest.mark.parametrize("zone", ["America/New_York", "Pacific/Chatham"])
def test_end_of_the_calendar_raises_timing_error(expression: str, zone: str) -> None:
    with pytest.raises(TimingError, match=r"9999|no fire time"):
        next_fire_times(expression, zone, datetime(9999, 12, 31, 23, 59, tzinfo=UTC), 3)
