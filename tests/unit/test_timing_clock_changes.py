"""What the next clock changes do to a schedule, for forms and the schedules list: the change,
its effect on the schedule's slots, and its first slot after it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler_daemon.timing import TimingError, clock_changes, dst_warnings

DECEMBER = datetime(2026, 12, 7, tzinfo=UTC)


def test_a_weekday_morning_in_new_york_keeps_its_local_time_across_the_march_change() -> None:
    march, november = clock_changes("0 9 * * 1-5", "America/New_York", DECEMBER)
    assert march["date"] == "2027-03-14"
    assert march["change"] == "clocks go forward 1 hour (EST → EDT)"
    assert march["effect"] == "slots keep their local times, so they run 1 hour earlier in UTC"
    assert march["first_local"] == "2027-03-15T09:00:00-04:00"
    assert march["first_utc"] == "2027-03-15T13:00:00+00:00"
    assert november["change"] == "clocks go back 1 hour (EDT → EST)"
    assert november["first_utc"] == "2027-11-08T14:00:00+00:00"


def test_a_slot_in_the_skipped_hour_says_where_it_goes() -> None:
    march, _ = clock_changes("30 2 * * *", "America/New_York", DECEMBER)
    assert "02:30 does not exist" in march["effect"]
    assert march["first_local"] == "2027-03-14T03:00:00-04:00"


def test_a_slot_in_the_repeated_hour_says_it_runs_once() -> None:
    _, november = clock_changes("30 1 * * *", "America/New_York", DECEMBER)
    assert "01:30 happens twice" in november["effect"]
    assert "fires once" in november["effect"]


def test_an_interval_keeps_utc_and_moves_on_the_local_clock() -> None:
    march, _ = clock_changes("@every 6h", "Europe/Paris", DECEMBER)
    assert march["date"] == "2027-03-28"
    assert "move 1 hour later on the local clock" in march["effect"]


def test_half_hour_changes_are_named_in_minutes() -> None:
    first, _ = clock_changes("0 9 * * *", "Australia/Lord_Howe", DECEMBER)
    assert first["change"].startswith("clocks go back 30 minutes")


def test_zones_without_changes_have_none_and_the_window_limits_them() -> None:
    assert clock_changes("0 9 * * *", "UTC", DECEMBER) == []
    assert clock_changes("0 9 * * *", "Asia/Tokyo", DECEMBER) == []
    assert len(clock_changes("0 9 * * *", "America/New_York", DECEMBER, limit=1)) == 1
    assert clock_changes("0 9 * * *", "America/New_York", DECEMBER, days=30) == []


def test_a_spec_that_is_not_valid_raises() -> None:
    with pytest.raises(TimingError):
        clock_changes("0 25 * * *", "America/New_York", DECEMBER)


def test_dst_warnings_look_only_at_the_window_given() -> None:
    early_march = datetime(2027, 3, 1, tzinfo=UTC)
    [warning] = dst_warnings("30 2 * * *", "America/New_York", early_march, 30)
    assert warning.startswith("02:30 does not exist in America/New_York")
    assert dst_warnings("30 2 * * *", "America/New_York", DECEMBER, 30) == []
    assert dst_warnings("0 9 * * 1-5", "America/New_York", early_march, 30) == []
    assert dst_warnings("not a spec", "UTC", early_march, 30) == []
