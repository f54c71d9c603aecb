"""Interval schedules: elapsed time from an anchor, the same in every zone and across DST."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler_daemon.timing import (
    IntervalSpec,
    TimingError,
    format_every,
    interval_spec,
    next_fire_times,
    parse_spec,
)
from scheduler_daemon.timing.interval import parse_every
from scheduler_daemon.timing.limits import MAX_INTERVAL_SECONDS


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("@every 90s", 90),
        ("@every 15m", 900),
        ("@every 2h", 7200),
        ("@every 14d", 1_209_600),
        ("@every 1h30m", 5400),
        ("@every 1d12h", 129_600),
        ("@every 2w", 1_209_600),
        ("@every 1h 30m", 5400),
        ("@EVERY 5M", 300),
        ("  @every   10m ", 600),
    ],
)
def test_durations(expression: str, seconds: int) -> None:
    spec = parse_spec(expression, "UTC")
    assert isinstance(spec, IntervalSpec)
    assert spec.seconds == seconds


def test_epoch_anchor_by_default() -> None:
    moments = next_fire_times("@every 90s", "UTC", utc("2026-01-01T00:00:00"), 3)
    # 2026-01-01T00:00Z is 1767225600 s after the epoch, a multiple of 90.
    assert [m.isoformat() for m in moments] == [
        "2026-01-01T00:01:30+00:00",
        "2026-01-01T00:03:00+00:00",
        "2026-01-01T00:04:30+00:00",
    ]


def test_fourteen_days_from_the_epoch() -> None:
    # 2026-01-01 is day 20454 = 1461 * 14 after the epoch: a slot, so the next ones follow it.
    moments = next_fire_times("@every 14d", "UTC", utc("2026-01-01T00:00:00"), 2)
    assert [m.isoformat() for m in moments] == [
        "2026-01-15T00:00:00+00:00",
        "2026-01-29T00:00:00+00:00",
    ]


def test_explicit_anchor() -> None:
    anchor = datetime.fromisoformat("2026-03-01T09:15:00-05:00")
    moments = next_fire_times(
        "@every 1h30m", "America/New_York", utc("2026-03-01T15:00:00"), 3, anchor=anchor
    )
    assert [m.isoformat() for m in moments] == [
        "2026-03-01T10:45:00-05:00",
        "2026-03-01T12:15:00-05:00",
        "2026-03-01T13:45:00-05:00",
    ]


def test_anchor_is_the_first_slot() -> None:
    anchor = utc("2030-01-01T00:00:00")
    spec = parse_spec("@every 1h", "UTC", anchor)
    assert spec.next_after(utc("2026-01-01T00:00:00")) == anchor
    assert spec.next_after(anchor) == utc("2030-01-01T01:00:00")


def test_anchor_with_microseconds_is_exact() -> None:
    anchor = utc("2026-01-01T00:00:00.123456")
    spec = parse_spec("@every 1m", "UTC", anchor)
    assert spec.next_after(utc("2026-01-01T00:00:00.123456")) == utc("2026-01-01T00:01:00.123456")
    assert spec.next_after(utc("2026-01-01T00:00:00.123455")) == anchor


def test_interval_ignores_dst() -> None:
    # 02:00 EST + 1 h of elapsed time is 04:00 EDT on the spring-forward night.
    moments = next_fire_times(
        "@every 1h", "America/New_York", datetime.fromisoformat("2026-03-08T00:30:00-05:00"), 4
    )
    assert [m.isoformat() for m in moments] == [
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
        "2026-03-08T05:00:00-04:00",
    ]
    fall = next_fire_times(
        "@every 30m", "America/New_York", datetime.fromisoformat("2026-11-01T00:50:00-04:00"), 5
    )
    assert [m.isoformat() for m in fall] == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]


def test_same_instants_in_every_zone() -> None:
    after = utc("2026-10-04T12:34:56")
    expected = next_fire_times("@every 15m", "UTC", after, 10)
    for zone in ("Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kolkata", "America/Santiago"):
        assert next_fire_times("@every 15m", zone, after, 10) == expected


def test_database_row_form() -> None:
    anchor = utc("2026-01-01T00:00:00")
    spec = interval_spec(86_400, anchor)
    assert spec.expression == "@every 1d"
    assert spec.next_after(utc("2026-02-10T08:00:00")) == utc("2026-02-11T00:00:00")
    assert interval_spec(5400, None).expression == "@every 1h30m"
    assert interval_spec(3600, None).anchor == datetime(1970, 1, 1, tzinfo=UTC)
    assert interval_spec(90, None, timezone="Europe/London").timezone == "Europe/London"


def test_window_questions_are_arithmetic() -> None:
    spec = interval_spec(1, None, min_interval_seconds=1)
    start, end = utc("2025-01-01T00:00:00"), utc("2026-01-01T00:00:00")
    began = time.perf_counter()
    assert spec.count_between(start, end, cap=10**12) == 365 * 86_400
    assert spec.count_between(start, end) == 100_000
    assert spec.fires_between(start, end, 3) == [start + timedelta(seconds=k) for k in (1, 2, 3)]
    assert spec.last_between(start, end) == end
    assert time.perf_counter() - began < 0.1


def test_window_edges() -> None:
    spec = parse_spec("@every 1h", "UTC")
    start, end = utc("2026-01-01T00:00:00"), utc("2026-01-01T03:00:00")
    assert [m.hour for m in spec.fires_between(start, end, 10)] == [1, 2, 3]
    assert spec.count_between(start, end) == 3
    assert spec.last_between(start, end) == end
    assert spec.last_between(start, utc("2026-01-01T00:59:59")) is None
    assert spec.fires_between(end, start, 10) == []
    assert spec.count_between(end, start) == 0
    assert spec.fires_between(start, end, 0) == []


def test_before_the_anchor_nothing_fires() -> None:
    spec = parse_spec("@every 1h", "UTC", utc("2026-01-01T00:00:00"))
    assert spec.count_between(utc("2025-12-01T00:00:00"), utc("2025-12-31T23:59:59")) == 0
    assert spec.count_between(utc("2025-12-01T00:00:00"), utc("2026-01-01T00:00:00")) == 1


def test_specs_are_cached_by_anchor() -> None:
    first = parse_spec("@every 1h", "UTC", utc("2026-01-01T00:00:00"))
    assert parse_spec("@every 1h", "UTC", utc("2026-01-01T00:00:00")) is first
    assert parse_spec("@every 1h", "UTC", utc("2026-01-01T00:30:00")) is not first


def test_row_specs_are_cached_but_not_across_types() -> None:
    anchor = utc("2026-01-01T00:00:00")
    assert interval_spec(3600, anchor) is interval_spec(3600, anchor)
    assert interval_spec(3600, anchor) is not interval_spec(3600, utc("2026-01-01T00:30:00"))
    interval_spec(60, None)
    with pytest.raises(TimingError, match=r"seconds must be an integer, got 60\.0"):
        interval_spec(60.0, None)  # type: ignore[arg-type]
    interval_spec(1, None, min_interval_seconds=1)
    with pytest.raises(TimingError, match="seconds must be an integer, got True"):
        interval_spec(True, None, min_interval_seconds=1)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (900, "@every 15m"),
        (3600, "@every 1h"),
        (5400, "@every 1h30m"),
        (90, "@every 1m30s"),
        (45, "@every 45s"),
        (60, "@every 1m"),
        (86_400, "@every 1d"),
        (129_600, "@every 1d12h"),
        (1_209_600, "@every 14d"),
        (90_061, "@every 1d1h1m1s"),
        (MAX_INTERVAL_SECONDS, "@every 3650d"),
    ],
)
def test_format_every(seconds: int, text: str) -> None:
    assert format_every(seconds) == text


SECONDS = st.one_of(
    st.integers(1, MAX_INTERVAL_SECONDS),
    # exact multiples of each unit, where a careless formatter would show a smaller one
    st.sampled_from([1, 60, 3600, 86_400]).flatmap(
        lambda unit: st.integers(1, MAX_INTERVAL_SECONDS // unit).map(lambda n: n * unit)
    ),
)


@given(SECONDS)
def test_format_every_round_trips_through_the_parser(seconds: int) -> None:
    text = format_every(seconds)
    assert parse_every(text) == seconds
    spec = parse_spec(text, "UTC", None, 1)
    assert isinstance(spec, IntervalSpec)
    assert spec.seconds == seconds
    # the same spelling the spec of a database row carries
    assert interval_spec(seconds, None, min_interval_seconds=1).expression == text


@given(SECONDS)
def test_format_every_uses_the_largest_exact_units(seconds: int) -> None:
    parts = re.findall(r"(\d+)([dhms])", format_every(seconds).removeprefix("@every "))
    units = [unit for _, unit in parts]
    amounts = {unit: int(amount) for amount, unit in parts}
    # each unit at most once, largest first, none zero, none that would fill the next unit up
    assert units == [unit for unit in "dhms" if unit in units]
    assert all(amounts.values())
    assert amounts.get("h", 0) < 24
    assert amounts.get("m", 0) < 60
    assert amounts.get("s", 0) < 60


@pytest.mark.parametrize("seconds", [0, -60, True, 1.5, "900"])
def test_format_every_refuses_what_is_not_an_interval(seconds: object) -> None:
    with pytest.raises(TimingError):
        format_every(seconds)  # type: ignore[arg-type]
