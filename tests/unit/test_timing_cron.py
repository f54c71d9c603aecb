"""Cron semantics away from DST: the day rule, L, names, aliases, steps, bounds, windows."""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from croniter import croniter

from scheduler_daemon.timing import CronSpec, TimingError, next_fire_times, parse_spec
from scheduler_daemon.timing.cron_fields import parse_cron


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def days(expression: str, after: str, count: int) -> list[str]:
    return [
        moment.date().isoformat()
        for moment in next_fire_times(expression, "UTC", utc(after), count)
    ]


def test_day_of_month_step_and_weekday_both_must_match() -> None:
    # `*/2` starts with `*`, so (Vixie) a day must be odd AND a Monday.
    assert days("0 0 */2 * 1", "2026-01-01T00:00", 6) == [
        "2026-01-05",
        "2026-01-19",
        "2026-02-09",
        "2026-02-23",
        "2026-03-09",
        "2026-03-23",
    ]


def test_both_day_fields_restricted_match_either() -> None:
    assert days("0 0 1,15 * 1", "2026-05-31T00:00", 8) == [
        "2026-06-01",  # the 1st, and a Monday
        "2026-06-08",
        "2026-06-15",  # the 15th, and a Monday
        "2026-06-22",
        "2026-06-29",
        "2026-07-01",  # the 1st, a Wednesday
        "2026-07-06",
        "2026-07-13",
    ]


def test_star_day_of_month_with_weekday_means_weekday_only() -> None:
    assert days("0 0 * * 1", "2026-01-01T00:00", 3) == ["2026-01-05", "2026-01-12", "2026-01-19"]


def test_star_weekday_step_with_day_of_month_means_both() -> None:
    # day-of-week `*/2` is Sun, Tue, Thu, Sat and starts with `*`: both must match.
    assert days("0 0 13 * */2", "2026-01-01T00:00", 3) == ["2026-01-13", "2026-06-13", "2026-08-13"]


def test_first_monday_of_the_month_idiom() -> None:
    # Classic (Vixie) cron: `*/100` is day 1 alone, and because the field starts with `*` a day
    # must match it AND the weekday: days 1-7 that are a Monday.
    moments = next_fire_times(
        "0 9 */100,1-7 * MON", "America/New_York", utc("2026-01-01T00:00"), 13
    )
    assert [moment.isoformat() for moment in moments] == [
        "2026-01-05T09:00:00-05:00",
        "2026-02-02T09:00:00-05:00",
        "2026-03-02T09:00:00-05:00",
        "2026-04-06T09:00:00-04:00",  # EDT: still 09:00 local
        "2026-05-04T09:00:00-04:00",
        "2026-06-01T09:00:00-04:00",  # June 1st is a Monday
        "2026-07-06T09:00:00-04:00",
        "2026-08-03T09:00:00-04:00",
        "2026-09-07T09:00:00-04:00",  # September 1st is a Tuesday: the first Monday is the 7th
        "2026-10-05T09:00:00-04:00",
        "2026-11-02T09:00:00-05:00",
        "2026-12-07T09:00:00-05:00",
        "2027-01-04T09:00:00-05:00",
    ]


def test_first_monday_idiom_fires_on_exactly_the_first_monday_of_every_month() -> None:
    spec = parse_spec("0 9 */100,1-7 * MON", "UTC")
    start, end = utc("2024-01-01T00:00"), utc("2034-01-01T00:00")
    fired = [moment.date() for moment in spec.fires_between(start, end, 1000)]
    first_mondays = [
        day
        for day in (date(2024, 1, 1) + timedelta(days=n) for n in range((end - start).days))
        if day.weekday() == 0 and day.day <= 7
    ]
    assert fired == first_mondays
    assert len(fired) == 120


def test_idiom_is_not_the_naive_spelling() -> None:
    # Without the leading `*`, both day fields are restricted and a day matching EITHER fires.
    assert days("0 9 1-7 * MON", "2026-08-31T12:00", 9) == [
        "2026-09-01",
        "2026-09-02",
        "2026-09-03",
        "2026-09-04",
        "2026-09-05",
        "2026-09-06",
        "2026-09-07",
        "2026-09-14",
        "2026-09-21",
    ]


def test_a_star_led_day_field_whose_step_selects_one_day_still_ands() -> None:
    # `*/100` is day 1 alone, but it starts with `*`, so the 1st must also be a Monday.
    assert days("0 0 */100 * MON", "2026-01-01T00:00", 4) == [
        "2026-06-01",
        "2027-02-01",
        "2027-03-01",
        "2027-11-01",
    ]
    assert len(days("0 0 1 * MON", "2026-01-01T00:00", 20)) == 20  # every 1st and every Monday


@pytest.mark.parametrize(
    ("expression", "same_as"),
    [
        ("*/90 * * * *", "0 * * * *"),
        ("*/61 * * * *", "0 * * * *"),
        ("*/99999 * * * *", "0 * * * *"),
        ("*/0100 * * * *", "0 * * * *"),
        ("5/100 * * * *", "5 * * * *"),
        ("10-40/45 * * * *", "10 * * * *"),
        ("0 */30 * * *", "0 0 * * *"),
        ("0 9-17/24 * * *", "0 9 * * *"),
        ("0 0 */100 * *", "0 0 1 * *"),
        ("0 0 1-5/10 * *", "0 0 1 * *"),
        ("0 0 1 */13 *", "0 0 1 1 *"),
        ("0 0 1 6/12 *", "0 0 1 6 *"),
        ("0 0 * * */8", "0 0 * * 0"),
        ("0 0 * * 1-5/7", "0 0 * * 1"),
    ],
)
def test_a_step_beyond_the_range_selects_only_its_start(expression: str, same_as: str) -> None:
    after = utc("2026-02-27T10:17")
    assert next_fire_times(expression, "Europe/London", after, 30) == next_fire_times(
        same_as, "Europe/London", after, 30
    )


def test_last_day_of_month() -> None:
    assert days("0 0 L * *", "2027-12-15T00:00", 4) == [
        "2027-12-31",
        "2028-01-31",
        "2028-02-29",
        "2028-03-31",
    ]
    assert days("0 0 L 2 *", "2026-01-01T00:00", 3) == ["2026-02-28", "2027-02-28", "2028-02-29"]
    assert days("0 0 15,L * *", "2026-04-01T00:00", 3) == ["2026-04-15", "2026-04-30", "2026-05-15"]


def test_last_day_with_weekday_is_either() -> None:
    assert days("0 0 L * 5", "2026-01-24T00:00", 3) == ["2026-01-30", "2026-01-31", "2026-02-06"]


@pytest.mark.parametrize(
    ("expression", "same_as"),
    [
        ("0 9 * JAN-MAR MON-FRI", "0 9 * 1-3 1-5"),
        ("0 9 * jan,Jul *", "0 9 * 1,7 *"),
        ("0 0 * * SUN", "0 0 * * 0"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * 5-7", "0 0 * * 0,5,6"),
        ("0 0 * * FRI-7", "0 0 * * 5,6,0"),
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("  0   9 * * *  ", "0 9 * * *"),
        ("5/15 * * * *", "5-59/15 * * * *"),
    ],
)
def test_equivalent_spellings(expression: str, same_as: str) -> None:
    after = utc("2026-02-27T10:17")
    assert next_fire_times(expression, "Europe/London", after, 20) == next_fire_times(
        same_as, "Europe/London", after, 20
    )


def test_aliases_classify_like_their_expansion() -> None:
    hourly = parse_spec("@hourly", "UTC")
    daily = parse_spec("@daily", "UTC")
    assert isinstance(hourly, CronSpec)
    assert isinstance(daily, CronSpec)
    assert hourly.wildcard
    assert not daily.wildcard
    assert not parse_spec("0 0-23 * * *", "UTC").wildcard  # type: ignore[attr-defined]
    assert parse_spec("0 */2 * * *", "UTC").wildcard  # type: ignore[attr-defined]


def test_field_expansion_agrees_with_croniter() -> None:
    rng = random.Random(7)  # noqa: S311 - a seeded, reproducible sample
    items = {
        0: ["*", "*/7", "5", "0-30/10", "15,45", "59", "3-9", "*/90", "20-30/15"],
        1: ["*", "*/5", "0", "9-17", "23", "1,13", "*/30"],
        2: ["*", "1", "*/9", "10-20", "31", "2,30", "*/100", "*/100,1-7", "1-5/10"],
        3: ["*", "2", "JAN-MAR", "*/4", "12", "*/13"],
        4: ["*", "MON-FRI", "0", "7", "2,4", "5-7", "*/8", "1-5/7"],
    }
    for _ in range(300):
        texts = [rng.choice(items[index]) for index in range(5)]
        expression = " ".join(texts)
        try:
            fields = parse_cron(expression)
        except TimingError:
            continue
        expanded, _ = croniter.expand(expression)
        bitsets = (fields.minutes, fields.hours, fields.days, fields.months, fields.weekdays)
        for index, values in enumerate(expanded):
            ours = {v for v in range(64) if bitsets[index] >> v & 1}
            if values == ["*"]:
                continue
            assert ours == {int(v) % 7 if index == 4 else int(v) for v in values}, expression


def test_matches_croniter_in_utc_where_croniter_is_classic() -> None:
    # In UTC there is no DST, and when no day field starts with `*/` croniter applies the
    # classic day rule too, so both engines must agree exactly.
    rng = random.Random(11)  # noqa: S311 - a seeded, reproducible sample
    choices = (
        ["*", "*/5", "0", "30", "10-40/15", "0,20,40"],
        ["*", "*/3", "0", "9-17", "23"],
        ["*", "1", "15", "L", "1,15", "28-31"],
        ["*", "*", "2", "JAN-JUN", "11,12"],
        ["*", "*", "1-5", "0", "SAT,SUN"],
    )
    for _ in range(150):
        expression = " ".join(rng.choice(choice) for choice in choices)
        after = (
            utc("2026-01-01T00:00")
            + (utc("2028-01-01T00:00") - utc("2026-01-01T00:00")) * rng.random()
        )
        iterator = croniter(expression, after)
        expected = [iterator.get_next(datetime) for _ in range(12)]
        assert next_fire_times(expression, "UTC", after, 12) == expected, expression


def test_rare_schedule_found_across_decades() -> None:
    # February 29th that is a Sunday: 2004, 2032, 2060, 2088, then 2128 (2100 is no leap year).
    assert days("0 0 29 2 */7", "2089-01-01T00:00", 1) == ["2128-02-29"]


def test_search_ends_at_the_calendar_limit() -> None:
    with pytest.raises(TimingError, match="no fire time"):
        next_fire_times("0 0 1 1 *", "UTC", utc("9999-06-01T00:00"), 1)


def test_hostile_rare_searches_are_bounded() -> None:
    began = time.perf_counter()
    for expression in ("* * 29 2 */7", "59 23 31 12 */7", "0 0 29 2 */7", "* * L 2 6"):
        for zone in ("America/Santiago", "Pacific/Chatham", "UTC"):
            next_fire_times(expression, zone, utc("2026-01-01T00:00"), 3)
    assert time.perf_counter() - began < 2


def test_fires_between_count_between_last_between() -> None:
    spec = parse_spec("*/15 * * * *", "America/New_York")
    start = datetime.fromisoformat("2026-11-01T00:50:00-04:00")
    end = datetime.fromisoformat("2026-11-01T01:30:00-05:00")
    window = spec.fires_between(start, end, 100)
    assert [moment.isoformat() for moment in window] == [
        "2026-11-01T05:00:00+00:00",
        "2026-11-01T05:15:00+00:00",
        "2026-11-01T05:30:00+00:00",
        "2026-11-01T05:45:00+00:00",
        "2026-11-01T06:00:00+00:00",
        "2026-11-01T06:15:00+00:00",
        "2026-11-01T06:30:00+00:00",
    ]
    assert spec.fires_between(start, end, 2) == window[:2]
    assert spec.count_between(start, end) == 7
    assert spec.last_between(start, end) == window[-1]
    assert spec.last_between(start, start) is None
    assert spec.fires_between(end, start, 10) == []
    assert spec.count_between(end, start) == 0


def test_window_is_open_at_start_closed_at_end() -> None:
    spec = parse_spec("0 * * * *", "UTC")
    start, end = utc("2026-01-01T00:00"), utc("2026-01-01T03:00")
    assert [m.hour for m in spec.fires_between(start, end, 10)] == [1, 2, 3]


def test_count_between_is_capped_and_cheap() -> None:
    spec = parse_spec("* * * * *", "UTC")
    began = time.perf_counter()
    assert spec.count_between(utc("2020-01-01T00:00"), utc("2026-01-01T00:00"), cap=5000) == 5000
    assert time.perf_counter() - began < 1


def test_last_between_over_a_long_window() -> None:
    spec = parse_spec("0 0 1 * *", "UTC")
    last = spec.last_between(utc("2000-01-01T00:00"), utc("2026-05-17T12:00"))
    assert last == utc("2026-05-01T00:00")
    sparse = parse_spec("0 0 29 2 *", "UTC")
    assert sparse.last_between(utc("2025-01-01T00:00"), utc("2027-01-01T00:00")) is None
    assert sparse.last_between(utc("2020-01-01T00:00"), utc("2027-01-01T00:00")) == utc(
        "2024-02-29T00:00"
    )


def test_naive_after_is_rejected() -> None:
    with pytest.raises(TimingError, match="after 2026-01-01T00:00:00 must be timezone-aware"):
        next_fire_times("* * * * *", "UTC", datetime(2026, 1, 1), 1)


def test_results_are_in_the_schedule_zone_and_spec_is_cached() -> None:
    moments = next_fire_times("0 9 * * *", "Asia/Kolkata", utc("2026-01-01T00:00"), 1)
    assert moments[0].isoformat() == "2026-01-01T09:00:00+05:30"
    assert parse_spec("0 9 * * *", "Asia/Kolkata") is parse_spec("0 9 * * *", "Asia/Kolkata")
    assert next_fire_times("0 9 * * *", "UTC", utc("2026-01-01T00:00"), 0) == []


def test_zone_names_are_canonicalised() -> None:
    assert parse_spec("0 9 * * *", "america/new_york").timezone == "America/New_York"
