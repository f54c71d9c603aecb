"""Time zone input: suggestions for unknown names, and the warning for fixed-offset zones."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import pytz

from scheduler_daemon.timing import TimingError, fixed_offset_warning, validate, warnings
from scheduler_daemon.timing.zones import legacy_zone_links, load_zone


def suggestions(name: str) -> list[str]:
    """The zones an unknown-zone error suggests, in order."""
    with pytest.raises(TimingError) as raised:
        validate("0 9 * * *", name)
    message = str(raised.value)
    assert message.startswith(f"unknown time zone {name!r}; ")
    hint = message.partition("; ")[2]
    return re.findall(r"'([^']+)'", hint)


def same_clock(one: str, other: str) -> bool:
    a, b = load_zone(one), load_zone(other)
    return (a.starts, a.offsets) == (b.starts, b.offsets)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Eastern", "America/New_York"),
        ("eastern", "America/New_York"),
        ("Pacific", "America/Los_Angeles"),
        ("Central", "America/Chicago"),
        ("Mountain", "America/Denver"),
        ("Alaska", "America/Anchorage"),
        ("Hawaii", "Pacific/Honolulu"),
        ("Arizona", "America/Phoenix"),
        ("Atlantic", "America/Halifax"),
        ("Newfoundland", "America/St_Johns"),
        ("Saskatchewan", "America/Regina"),
        ("Calcutta", "Asia/Kolkata"),
        ("Kiev", "Europe/Kyiv"),
        ("New York", "America/New_York"),
        ("US/Eastrn", "America/New_York"),
        ("Canada/Pacfic", "America/Vancouver"),
    ],
)
def test_legacy_names_suggest_the_canonical_zone(typed: str, expected: str) -> None:
    found = suggestions(typed)
    assert found[0] == expected, found


def test_a_region_name_lists_each_country_canonical_zone_us_first() -> None:
    assert suggestions("Eastern") == ["America/New_York", "America/Toronto"]
    assert suggestions("Pacific") == ["America/Los_Angeles", "America/Vancouver"]


@pytest.mark.parametrize(
    "alias",
    sorted(name for name in pytz.all_timezones if name.startswith(("US/", "Canada/"))),
)
def test_every_us_and_canada_alias_leads_to_a_zone_with_its_clock(alias: str) -> None:
    region = alias.split("/", 1)[1]
    typo = alias[:-1]
    for typed in (region, region.replace("_", " ").lower(), typo):
        found = suggestions(typed)
        assert alias not in found
        assert any(same_clock(alias, zone) for zone in found), (typed, found)


@pytest.mark.parametrize(
    "typed",
    ["Eastern", "Pacific", "US/Pacifc", "Calcuta", "Asia/Saigon2", "Buenos_Aires", "Ulan_Bator"],
)
def test_suggestions_are_current_zone_names(typed: str) -> None:
    found = suggestions(typed)
    assert found
    for zone in found:
        load_zone(zone)
        assert zone not in legacy_zone_links()


def test_legacy_links_come_from_tzdata() -> None:
    links = legacy_zone_links()
    assert links["US/Eastern"] == "America/New_York"
    assert links["US/Pacific"] == "America/Los_Angeles"
    assert links["Canada/Eastern"] == "America/Toronto"
    assert links["Asia/Calcutta"] == "Asia/Kolkata"
    for alias, target in links.items():
        assert target not in links
        assert same_clock(alias, target)
    # Still listed for its country, so not legacy; links into Etc/ and bare abbreviations kept.
    for name in ("Asia/Kuwait", "Etc/Zulu", "UTC", "EST"):
        assert name not in links


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("PST", "America/Los_Angeles"),
        ("pdt", "America/Los_Angeles"),
        ("CST", "America/Chicago"),
        ("EDT", "America/New_York"),
        ("MDT", "America/Denver"),
        ("AKST", "America/Anchorage"),
    ],
)
def test_us_abbreviations_suggest_the_local_zone(typed: str, expected: str) -> None:
    assert suggestions(typed) == [expected]


@pytest.mark.parametrize("typed", ["BST", "IST", "JST", "AEST", "PST", "CST", "EDT", "ES"])
def test_fixed_offset_zones_are_never_suggested_for_an_abbreviation(typed: str) -> None:
    assert not {"EST", "MST", "HST"} & set(suggestions(typed))


@pytest.mark.parametrize("sign", ["+", "-"])
@pytest.mark.parametrize("hours", [1, 5, 9, 12])
@pytest.mark.parametrize(
    "spelling", ["UTC{sign}{hours}", "GMT{sign}{hours:02d}:00", "utc {sign}{hours}"]
)
def test_a_utc_offset_suggests_the_etc_zone_of_that_offset(
    spelling: str, sign: str, hours: int
) -> None:
    typed = spelling.format(sign=sign, hours=hours)
    etc = suggestions(typed)[0]
    assert etc.startswith("Etc/GMT")
    # Etc/GMT signs are inverted, so the suggestion must not simply echo what was typed.
    expected = (1 if sign == "+" else -1) * hours * 3600
    assert load_zone(etc).offsets == (expected,)


def test_utc_plus_zero_suggests_utc() -> None:
    assert suggestions("UTC+0") == ["UTC"]


def test_legacy_and_fixed_offset_names_stay_valid() -> None:
    for name in ("US/Eastern", "Canada/Pacific", "EST", "MST", "HST", "Etc/GMT+5", "Japan"):
        validate("0 9 * * *", name)
    assert load_zone("US/Eastern").name == "US/Eastern"


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (
            "EST",
            "EST is a fixed offset (UTC-05:00) with no daylight-saving time; "
            "for New York's local time use America/New_York",
        ),
        (
            "est",
            "EST is a fixed offset (UTC-05:00) with no daylight-saving time; "
            "for New York's local time use America/New_York",
        ),
        (
            "MST",
            "MST is a fixed offset (UTC-07:00) with no daylight-saving time; "
            "for Denver's local time use America/Denver "
            "(Arizona, which keeps UTC-07:00 all year, is America/Phoenix)",
        ),
        (
            "HST",
            "HST is a fixed offset (UTC-10:00) with no daylight-saving time; "
            "for Honolulu's local time use Pacific/Honolulu",
        ),
        (
            "Etc/GMT+5",
            "Etc/GMT+5 is a fixed offset (UTC-05:00; Etc/GMT signs are inverted) with no "
            "daylight-saving time; for New York's local time use America/New_York",
        ),
        (
            "Etc/GMT-14",
            "Etc/GMT-14 is a fixed offset (UTC+14:00; Etc/GMT signs are inverted) with no "
            "daylight-saving time; for a place's local time use its IANA name (Area/City) instead",
        ),
    ],
)
def test_fixed_offset_warning(zone: str, expected: str) -> None:
    assert fixed_offset_warning(zone) == expected


@pytest.mark.parametrize(
    "zone",
    [
        "UTC",
        "Etc/UTC",
        "GMT",
        "Etc/GMT0",
        "Etc/GMT-0",
        "America/New_York",
        "US/Eastern",
        "EST5EDT",
        "Europe/London",
        "Asia/Kolkata",  # no DST, but a place: its local time is what is meant
        "America/Phoenix",
        "Pacific/Honolulu",
        "America/Panama",
    ],
)
def test_no_fixed_offset_warning(zone: str) -> None:
    assert fixed_offset_warning(zone) is None


@pytest.mark.parametrize(
    "zone",
    [
        "EST",
        "MST",
        "HST",
        *(z for z in pytz.all_timezones if re.fullmatch(r"Etc/GMT[+-][1-9]\d*", z)),
    ],
)
def test_fixed_offset_warning_states_the_offset_the_zone_keeps_all_year(zone: str) -> None:
    warning = fixed_offset_warning(zone)
    assert warning is not None
    match = re.search(r"UTC([+-])(\d\d):(\d\d)", warning)
    assert match is not None
    sign = 1 if match.group(1) == "+" else -1
    stated = sign * (int(match.group(2)) * 3600 + int(match.group(3)) * 60)
    tz = pytz.timezone(zone)
    for month in range(1, 13):
        moment = datetime(2026, month, 15, 12, tzinfo=UTC).astimezone(tz)
        offset = moment.utcoffset()
        assert offset is not None
        assert offset.total_seconds() == stated


def test_fixed_offset_warning_rejects_an_unknown_zone() -> None:
    with pytest.raises(TimingError, match="unknown time zone 'Eastern'"):
        fixed_offset_warning("Eastern")


def test_schedule_advice_includes_the_fixed_offset_warning() -> None:
    assert warnings("0 9 * * *", "EST") == [fixed_offset_warning("EST")]
    assert fixed_offset_warning("MST") in warnings("@every 15m", "MST")
    assert fixed_offset_warning("Etc/GMT+5") in warnings("0 9 */100,1-7 * MON", "Etc/GMT+5")
    assert not any("fixed offset" in warning for warning in warnings("0 9 * * *", "US/Eastern"))
