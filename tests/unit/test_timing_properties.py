"""Property tests against a brute-force oracle built only from pytz's public API and croniter.

The oracle knows nothing of the engine: it expands fields with croniter.expand, asks pytz
what every UTC minute shows on the wall clock (wildcard schedules), or localizes every named
wall time of every day, taking the first pass of a repeat and walking a gap to its end
(fixed-time schedules).
"""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, timedelta

import pytz
from croniter import croniter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduler_daemon.timing import TimingError, next_fire_times, parse_spec

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Europe/Dublin",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "America/Santiago",
]
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


def _transitions() -> list[tuple[str, datetime]]:
    found = []
    for zone in ZONES:
        tz = pytz.timezone(zone)
        for moment in getattr(tz, "_utc_transition_times", []):
            if 2024 <= moment.year <= 2027:
                found.append((zone, moment.replace(tzinfo=UTC)))
    return found


TRANSITIONS = _transitions()


def _number_field(low: int, high: int) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    # Ranges are written with start < end: croniter.expand, which the oracle relies on,
    # misreads `4-4` as `*` and `4-4/2` as `*/2`.
    ranges = st.tuples(value, value).filter(lambda pair: pair[0] != pair[1]).map(sorted)
    return st.one_of(
        st.just("*"),
        st.integers(1, max(1, (high - low) // 2)).map(lambda step: f"*/{step}"),
        # Classic cron: a step beyond the range selects just its start.
        st.integers(high - low, 200).map(lambda step: f"*/{step}"),
        value.map(str),
        ranges.map(lambda pair: f"{pair[0]}-{pair[1]}"),
        st.tuples(ranges, st.integers(2, 9)).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"),
        st.tuples(ranges, st.integers(10, 99)).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"),
        st.lists(value, min_size=2, max_size=4, unique=True).map(
            lambda values: ",".join(map(str, values))
        ),
    )


DAY_OF_MONTH = st.one_of(
    _number_field(1, 31),
    st.sampled_from(["L", "1,L", "15,L"]),
    st.sampled_from(["*/100,1-7", "*/100,15-21"]),  # star-led lists: the first-weekday idiom
)
DAY_OF_WEEK = st.one_of(_number_field(0, 7), st.sampled_from(["MON-FRI", "SAT,SUN", "SUN", "7"]))
MONTH = st.one_of(
    st.just("*"), st.just("*"), _number_field(1, 12), st.sampled_from(["JAN-MAR", "OCT,NOV"])
)
EXPRESSIONS = st.tuples(
    _number_field(0, 59), _number_field(0, 23), DAY_OF_MONTH, MONTH, DAY_OF_WEEK
).map(" ".join)
FIXED_EXPRESSIONS = st.tuples(
    st.integers(0, 59).map(str),
    st.integers(0, 23).map(str),
    DAY_OF_MONTH,
    MONTH,
    DAY_OF_WEEK,
).map(" ".join)


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """Mostly near a DST change of one of the zones, otherwise anywhere in 2024-2027."""
    if draw(st.booleans()):
        _, moment = draw(st.sampled_from(TRANSITIONS))
        return moment + timedelta(seconds=draw(st.integers(-30 * 3600, 30 * 3600)))
    seconds = draw(st.integers(0, 4 * 365 * 86400))
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


class Oracle:
    def __init__(self, expression: str, zone: str) -> None:
        texts = expression.split()
        expanded, _ = croniter.expand(expression)
        full = (range(60), range(24), range(1, 32), range(1, 13), range(7))
        self.last_day = "l" in expanded[2]
        self.sets: list[set[int]] = [
            set(full[index]) if values == ["*"] else {int(v) for v in values if v != "l"}
            for index, values in enumerate(expanded)
        ]
        self.sets[4] = {v % 7 for v in self.sets[4]}
        self.both_days = texts[2].startswith("*") or texts[4].startswith("*")
        self.wildcard = texts[0].startswith("*") or texts[1].startswith("*")
        self.tz = pytz.timezone(zone)

    def day_matches(self, day: date) -> bool:
        if day.month not in self.sets[3]:
            return False
        last = calendar.monthrange(day.year, day.month)[1]
        by_day = day.day in self.sets[2] or (self.last_day and day.day == last)
        by_weekday = day.isoweekday() % 7 in self.sets[4]
        return (by_day and by_weekday) if self.both_days else (by_day or by_weekday)

    def matches(self, wall: datetime) -> bool:
        return (
            wall.minute in self.sets[0]
            and wall.hour in self.sets[1]
            and self.day_matches(wall.date())
        )

    def first_instant(self, wall: datetime) -> datetime:
        try:
            return self.tz.localize(wall, is_dst=None).astimezone(UTC)
        except pytz.AmbiguousTimeError:
            passes = (self.tz.localize(wall, is_dst=flag).astimezone(UTC) for flag in (True, False))
            return min(passes)
        except pytz.NonExistentTimeError:
            return self.first_instant(wall + timedelta(minutes=1))

    def fires(self, start: datetime, end: datetime) -> list[datetime]:
        """Fire times in (start, end]."""
        if self.wildcard:
            moment = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
            found = []
            while moment <= end:
                if self.matches(moment.astimezone(self.tz).replace(tzinfo=None)):
                    found.append(moment)
                moment += timedelta(minutes=1)
            return found
        instants: set[datetime] = set()
        day = start.astimezone(self.tz).date() - timedelta(days=1)
        while day <= end.astimezone(self.tz).date() + timedelta(days=1):
            if self.day_matches(day):
                for hour in sorted(self.sets[1]):
                    for minute in sorted(self.sets[0]):
                        moment = self.first_instant(
                            datetime(day.year, day.month, day.day, hour, minute)
                        )
                        if start < moment <= end:
                            instants.add(moment)
            day += timedelta(days=1)
        return sorted(instants)


def _valid(expression: str, zone: str) -> bool:
    try:
        parse_spec(expression, zone)
    except TimingError:
        return False
    return True


@PROPERTY_SETTINGS
@given(expression=EXPRESSIONS, zone=st.sampled_from(ZONES), start=instants())
def test_matches_the_oracle_over_a_day_and_a_half(
    expression: str, zone: str, start: datetime
) -> None:
    assume(_valid(expression, zone))
    end = start + timedelta(hours=36)
    spec = parse_spec(expression, zone)
    assert spec.fires_between(start, end, 10_000) == Oracle(expression, zone).fires(start, end)


@PROPERTY_SETTINGS
@given(expression=EXPRESSIONS, zone=st.sampled_from(ZONES), after=instants())
def test_fires_increase_and_match_local_wall_time(
    expression: str, zone: str, after: datetime
) -> None:
    assume(_valid(expression, zone))
    oracle = Oracle(expression, zone)
    moments = next_fire_times(expression, zone, after, 25)
    assert moments[0] > after
    assert all(earlier < later for earlier, later in itertools.pairwise(moments))
    for moment in moments:
        assert moment.tzinfo is not None
        assert moment.tzinfo.zone == pytz.timezone(zone).zone  # type: ignore[attr-defined]
        wall = moment.replace(tzinfo=None)
        if oracle.matches(wall):
            continue
        # Only a fixed time moved out of a spring-forward gap may not match: it lands exactly
        # where the gap ends, and the minute before it shows an earlier offset.
        assert not oracle.wildcard
        before = (moment - timedelta(minutes=1)).astimezone(oracle.tz)
        assert before.utcoffset() < moment.utcoffset()  # type: ignore[operator]
        gap = moment.utcoffset() - before.utcoffset()  # type: ignore[operator]
        skipped = [wall - gap + timedelta(minutes=k) for k in range(int(gap.total_seconds() // 60))]
        assert any(oracle.matches(candidate) for candidate in skipped)


@PROPERTY_SETTINGS
@given(expression=FIXED_EXPRESSIONS, zone=st.sampled_from(ZONES), after=instants())
def test_fixed_minute_and_hour_fire_at_most_once_a_day(
    expression: str, zone: str, after: datetime
) -> None:
    assume(_valid(expression, zone))
    moments = next_fire_times(expression, zone, after, 40)
    local_days = [moment.date() for moment in moments]
    assert len(local_days) == len(set(local_days))


@PROPERTY_SETTINGS
@given(expression=EXPRESSIONS, zone=st.sampled_from(ZONES), after=instants())
def test_window_queries_agree_with_iteration(expression: str, zone: str, after: datetime) -> None:
    assume(_valid(expression, zone))
    spec = parse_spec(expression, zone)
    moments = spec.fires_after(after, 30)
    end = moments[-1]
    assert spec.fires_between(after, end, 100) == moments
    assert spec.count_between(after, end) == 30
    assert spec.last_between(after, end) == end
    assert spec.last_between(after, end - timedelta(seconds=1)) == moments[-2]
    assert spec.next_after(after) == moments[0]
