"""Time windows rendered from a slot: hand-computed tables, DST days, and bad specs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler_daemon.amc.windows import WindowError, render_window

NY = "America/New_York"  # 2026: spring forward Sun Mar 8 02:00, fall back Sun Nov 1 02:00
LONDON = "Europe/London"  # 2026: spring forward Sun Mar 29 01:00


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# (slot UTC, zone, spec, start wall, end wall, zone sent, start UTC, end UTC)
CASES = [
    pytest.param(
        utc(2026, 3, 9, 6), NY, {"kind": "previous_days", "days": 1},
        "2026-03-08T00:00:00", "2026-03-09T00:00:00", NY,
        utc(2026, 3, 8, 5), utc(2026, 3, 9, 4),
        id="previous day is 23 h on spring-forward day",
    ),
    pytest.param(
        utc(2026, 11, 2, 12), NY, {"kind": "previous_days", "days": 1},
        "2026-11-01T00:00:00", "2026-11-02T00:00:00", NY,
        utc(2026, 11, 1, 4), utc(2026, 11, 2, 5),
        id="previous day is 25 h on fall-back day",
    ),
    pytest.param(
        utc(2026, 1, 15, 3), NY, {"kind": "previous_days", "days": 1},
        "2026-01-13T00:00:00", "2026-01-14T00:00:00", NY,
        utc(2026, 1, 13, 5), utc(2026, 1, 14, 5),
        id="slot's day is the local day, not the UTC day",
    ),
    pytest.param(
        utc(2026, 3, 10, 13), NY, {"kind": "previous_days", "days": 7, "end_offset_days": 2},
        "2026-03-01T00:00:00", "2026-03-08T00:00:00", NY,
        utc(2026, 3, 1, 5), utc(2026, 3, 8, 5),
        id="7 days ending 2 days before the slot's day",
    ),
    pytest.param(
        utc(2026, 3, 10, 13), NY, {"kind": "previous_days", "days": 7},
        "2026-03-03T00:00:00", "2026-03-10T00:00:00", NY,
        utc(2026, 3, 3, 5), utc(2026, 3, 10, 4),
        id="7 calendar days across spring forward are 167 h",
    ),
    pytest.param(
        utc(2026, 9, 7, 16), "America/Santiago", {"kind": "previous_days", "days": 1},
        "2026-09-06T01:00:00", "2026-09-07T00:00:00", "America/Santiago",
        utc(2026, 9, 6, 4), utc(2026, 9, 7, 3),
        id="a day whose midnight is skipped starts at the end of the gap",
    ),
    pytest.param(
        utc(2026, 3, 1, 5), NY, {"kind": "previous_month"},
        "2026-02-01T00:00:00", "2026-03-01T00:00:00", NY,
        utc(2026, 2, 1, 5), utc(2026, 3, 1, 5),
        id="previous month from the first instant of the next",
    ),
    pytest.param(
        utc(2026, 1, 10, 12), NY, {"kind": "previous_month"},
        "2025-12-01T00:00:00", "2026-01-01T00:00:00", NY,
        utc(2025, 12, 1, 5), utc(2026, 1, 1, 5),
        id="previous month across a year",
    ),
    pytest.param(
        utc(2026, 4, 15, 12), LONDON, {"kind": "previous_month", "months": 3},
        "2026-01-01T00:00:00", "2026-04-01T00:00:00", LONDON,
        utc(2026, 1, 1), utc(2026, 3, 31, 23),
        id="previous 3 months end at BST midnight",
    ),
    pytest.param(
        utc(2026, 3, 8, 7), NY, {"kind": "previous_hours", "hours": 1},
        "2026-03-08T01:00:00", "2026-03-08T03:00:00", NY,
        utc(2026, 3, 8, 6), utc(2026, 3, 8, 7),
        id="previous hour across the spring gap is one elapsed hour",
    ),
    pytest.param(
        utc(2026, 11, 1, 6, 30), NY, {"kind": "previous_hours", "hours": 1},
        "2026-11-01T05:00:00", "2026-11-01T06:00:00", "UTC",
        utc(2026, 11, 1, 5), utc(2026, 11, 1, 6),
        id="bounds in the repeated hour are sent in UTC",
    ),
    pytest.param(
        utc(2026, 6, 1, 12, 34, 56), "Asia/Kolkata",
        {"kind": "previous_hours", "hours": 3, "end_offset_hours": 1},
        "2026-06-01T14:00:00", "2026-06-01T17:00:00", "Asia/Kolkata",
        utc(2026, 6, 1, 8, 30), utc(2026, 6, 1, 11, 30),
        id="hours truncate to the local hour in a :30 zone",
    ),
    pytest.param(
        utc(2026, 3, 11, 12), LONDON, {"kind": "previous_weeks"},
        "2026-03-02T00:00:00", "2026-03-09T00:00:00", LONDON,
        utc(2026, 3, 2), utc(2026, 3, 9),
        id="previous week from Monday",
    ),
    pytest.param(
        utc(2026, 3, 11, 12), LONDON, {"kind": "previous_weeks", "weeks": 2, "week_start": "sunday"},
        "2026-02-22T00:00:00", "2026-03-08T00:00:00", LONDON,
        utc(2026, 2, 22), utc(2026, 3, 8),
        id="previous 2 weeks from Sunday",
    ),
    pytest.param(
        utc(2026, 3, 11, 12), NY, {"kind": "explicit", "start": "2026-01-01", "end": "2026-02-01T06:00:00"},
        "2026-01-01T00:00:00", "2026-02-01T06:00:00", NY,
        utc(2026, 1, 1, 5), utc(2026, 2, 1, 11),
        id="explicit wall times in the zone",
    ),
    pytest.param(
        utc(2026, 7, 1, 0, 0), "UTC", {"kind": "previous_days", "days": 1},
        "2026-06-30T00:00:00", "2026-07-01T00:00:00", "UTC",
        utc(2026, 6, 30), utc(2026, 7, 1),
        id="UTC",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("slot", "zone", "spec", "start_wall", "end_wall", "sent_zone", "start", "end"), CASES
)
def test_window_table(
    slot: datetime,
    zone: str,
    spec: dict[str, object],
    start_wall: str,
    end_wall: str,
    sent_zone: str,
    start: datetime,
    end: datetime,
) -> None:
    window = render_window(spec, slot, zone)
    assert (window.start_wall, window.end_wall, window.zone) == (start_wall, end_wall, sent_zone)
    assert (window.start, window.end) == (start, end)
    assert window.as_body() == {
        "timeWindowType": "EXPLICIT",
        "timeWindowStart": start_wall,
        "timeWindowEnd": end_wall,
        "timeWindowTimeZone": sent_zone,
    }


def test_n_days_are_calendar_days_not_24_hour_blocks() -> None:
    spring = render_window({"kind": "previous_days", "days": 1}, utc(2026, 3, 9, 6), NY)
    autumn = render_window({"kind": "previous_days", "days": 1}, utc(2026, 11, 2, 12), NY)
    assert spring.end - spring.start == timedelta(hours=23)
    assert autumn.end - autumn.start == timedelta(hours=25)


def test_every_slot_of_one_local_day_renders_the_same_window() -> None:
    spec = {"kind": "previous_days", "days": 1}
    # 00:00 to 23:59 local on the fall-back day (25 h of slots).
    first = utc(2026, 11, 1, 4)
    windows = {render_window(spec, first + timedelta(minutes=15 * i), NY) for i in range(25 * 4)}
    assert len(windows) == 1
    assert render_window(spec, first + timedelta(hours=25), NY) not in windows


def test_placeholders() -> None:
    window = render_window({"kind": "previous_days", "days": 7}, utc(2026, 3, 10, 13), NY)
    assert window.placeholders() == {
        "window_start": "2026-03-03T00:00:00",
        "window_end": "2026-03-10T00:00:00",
        "window_start_date": "2026-03-03",
        "window_end_date": "2026-03-10",
        "window_last_date": "2026-03-09",
    }


@pytest.mark.parametrize(
    ("spec", "zone", "message"),
    [
        ("yesterday", NY, "time_window='yesterday': must be an object"),
        ({"days": 1}, NY, "time_window.kind=None: must be one of previous_days, "),
        ({"kind": "last_days"}, NY, "time_window.kind='last_days': must be one of"),
        ({"kind": "previous_days"}, NY, "time_window.days=None: is required for kind 'previous_days'"),
        ({"kind": "previous_days", "days": 0}, NY, "time_window.days=0: must be a whole number from 1 to 3660"),
        ({"kind": "previous_days", "days": "7"}, NY, "time_window.days='7': must be a whole number"),
        ({"kind": "previous_days", "days": True}, NY, "time_window.days=True: must be a whole number"),
        ({"kind": "previous_days", "days": 1.5}, NY, "time_window.days=1.5: must be a whole number"),
        ({"kind": "previous_days", "days": 1, "end_offset_days": -1}, NY, "time_window.end_offset_days=-1:"),
        ({"kind": "previous_days", "days": 1, "hours": 2}, NY, "time_window.hours=2: unknown key for kind 'previous_days' (days, end_offset_days)"),
        ({"kind": "previous_hours", "hours": 10**6}, NY, "time_window.hours=1000000: must be a whole number from 1 to 87840"),
        ({"kind": "previous_month", "months": 0}, NY, "time_window.months=0:"),
        ({"kind": "previous_weeks", "week_start": "funday"}, NY, "time_window.week_start='funday': must be one of monday"),
        ({"kind": "explicit", "start": "2026-02-01", "end": "2026-01-01"}, NY, "time_window.end='2026-01-01': must be after time_window.start='2026-02-01'"),
        ({"kind": "explicit", "start": "2026-01-01T00:00:00Z", "end": "2026-02-01"}, NY, "time_window.start='2026-01-01T00:00:00Z': must be a wall time"),
        ({"kind": "explicit", "start": "January", "end": "2026-02-01"}, NY, "time_window.start='January':"),
        ({"kind": "explicit", "start": "2026-03-08T02:30:00", "end": "2026-03-09"}, NY, "time_window.start='2026-03-08T02:30:00': does not exist in America/New_York"),
        ({"kind": "previous_days", "days": 1}, "Mars/Olympus", "timezone='Mars/Olympus': unknown time zone"),
    ],
)  # fmt: skip
def test_invalid_specs_name_the_key_and_value(spec: object, zone: str, message: str) -> None:
    with pytest.raises(WindowError) as caught:
        render_window(spec, utc(2026, 3, 10, 13), zone)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_naive_slot_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        render_window({"kind": "previous_days", "days": 1}, datetime(2026, 1, 1), NY)
