"""Preview: local and UTC times with DST notes, as text and as JSON-ready data."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from scheduler_daemon.timing import (
    PreviewEntry,
    TimingError,
    preview,
    preview_as_dict,
    render_preview_text,
)


def entries(
    expression: str, zone: str, after: str, count: int
) -> list[tuple[str, str, str | None]]:
    found = preview(expression, zone, datetime.fromisoformat(after), count)
    return [(entry.local.isoformat(), entry.utc.isoformat(), entry.note) for entry in found]


def test_fixed_time_moved_out_of_the_gap() -> None:
    assert entries("30 2 * * *", "America/New_York", "2026-03-07T00:00:00-05:00", 3) == [
        ("2026-03-07T02:30:00-05:00", "2026-03-07T07:30:00+00:00", None),
        (
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T07:00:00+00:00",
            "moved from 02:30 (nonexistent, DST gap) to 03:00",
        ),
        ("2026-03-09T02:30:00-04:00", "2026-03-09T06:30:00+00:00", None),
    ]


def test_several_fixed_times_collapse_into_one_fire() -> None:
    assert entries("0,30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", 1) == [
        (
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T07:00:00+00:00",
            "moved from 02:00, 02:30 (nonexistent, DST gap) to 03:00",
        )
    ]


def test_santiago_midnight_moves_to_one() -> None:
    assert entries("0 0 * * *", "America/Santiago", "2026-09-05T12:00:00-04:00", 1) == [
        (
            "2026-09-06T01:00:00-03:00",
            "2026-09-06T04:00:00+00:00",
            "moved from 00:00 (nonexistent, DST gap) to 01:00",
        )
    ]


def test_fixed_time_repeat_is_skipped() -> None:
    assert entries("30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00", 2) == [
        (
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T05:30:00+00:00",
            "first of two 01:30s; the repeat is skipped",
        ),
        ("2026-11-02T01:30:00-05:00", "2026-11-02T06:30:00+00:00", None),
    ]


def test_wildcard_passes_and_gaps() -> None:
    assert entries("*/30 * * * *", "Australia/Lord_Howe", "2026-04-05T01:20:00+11:00", 4) == [
        (
            "2026-04-05T01:30:00+11:00",
            "2026-04-04T14:30:00+00:00",
            "first of two 01:30s (UTC+11:00)",
        ),
        (
            "2026-04-05T01:30:00+10:30",
            "2026-04-04T15:00:00+00:00",
            "second 01:30 (DST fall-back repeat, UTC+10:30)",
        ),
        ("2026-04-05T02:00:00+10:30", "2026-04-04T15:30:00+00:00", None),
        ("2026-04-05T02:30:00+10:30", "2026-04-04T16:00:00+00:00", None),
    ]
    assert entries("*/30 * * * *", "America/New_York", "2026-03-08T01:10:00-05:00", 2) == [
        ("2026-03-08T01:30:00-05:00", "2026-03-08T06:30:00+00:00", None),
        (
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T07:00:00+00:00",
            "skipped 02:00, 02:30 (nonexistent, DST gap)",
        ),
    ]


def test_interval_notes_the_offset_change() -> None:
    assert entries("@every 1h", "Europe/London", "2026-03-29T00:30:00+00:00", 2) == [
        (
            "2026-03-29T02:00:00+01:00",
            "2026-03-29T01:00:00+00:00",
            "UTC offset changed from UTC+00:00 to UTC+01:00 (DST); the interval counts elapsed time",
        ),
        ("2026-03-29T03:00:00+01:00", "2026-03-29T02:00:00+00:00", None),
    ]


def test_text_rendering() -> None:
    found = preview(
        "30 2 * * *", "America/New_York", datetime.fromisoformat("2026-03-07T00:00:00-05:00"), 2
    )
    text = render_preview_text(found, "30 2 * * *", "America/New_York", ["a warning"])
    assert text == (
        "Next 2 fire times of '30 2 * * *' in America/New_York:\n"
        "   1  2026-03-07 02:30:00 Sat EST   (UTC-05:00)  2026-03-07 07:30:00 UTC\n"
        "   2  2026-03-08 03:00:00 Sun EDT   (UTC-04:00)  2026-03-08 07:00:00 UTC"
        "  moved from 02:30 (nonexistent, DST gap) to 03:00\n"
        "Warnings:\n"
        "  - a warning\n"
    )
    assert "(none)" in render_preview_text([], "x", "UTC")


def test_dict_is_json_ready() -> None:
    found = preview(
        "0 9 * * *", "Asia/Kolkata", datetime.fromisoformat("2026-01-01T00:00:00+00:00"), 1
    )
    data = preview_as_dict(found, "0 9 * * *", "Asia/Kolkata", ["w"])
    assert json.loads(json.dumps(data)) == {
        "expression": "0 9 * * *",
        "timezone": "Asia/Kolkata",
        "fires": [
            {
                "local": "2026-01-01T09:00:00+05:30",
                "utc": "2026-01-01T03:30:00+00:00",
                "zone_abbreviation": "IST",
                "note": None,
            }
        ],
        "warnings": ["w"],
    }


def test_entries_are_immutable() -> None:
    entry = preview("@hourly", "UTC", datetime.fromisoformat("2026-01-01T00:00:00+00:00"), 1)[0]
    assert isinstance(entry, PreviewEntry)
    with pytest.raises(AttributeError):
        entry.note = "changed"  # type: ignore[misc]


def test_preview_validates() -> None:
    with pytest.raises(TimingError, match="value 61 out of range 0-59"):
        preview("61 * * * *", "UTC", datetime.fromisoformat("2026-01-01T00:00:00+00:00"), 1)
    with pytest.raises(TimingError, match="must be timezone-aware"):
        preview("* * * * *", "UTC", datetime(2026, 1, 1), 1)
