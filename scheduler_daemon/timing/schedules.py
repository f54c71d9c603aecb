"""Entry points: parse (cached) and validate schedule expressions, list their next fire times."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from scheduler_daemon.timing.cron_fields import parse_cron
from scheduler_daemon.timing.cron_spec import CronSpec
from scheduler_daemon.timing.errors import TimingError
from scheduler_daemon.timing.interval import (
    IntervalSpec,
    check_anchor,
    check_interval,
    format_duration,
    is_interval_expression,
    parse_every,
)
from scheduler_daemon.timing.limits import DEFAULT_MIN_INTERVAL_SECONDS, MAX_EXPRESSION_LENGTH
from scheduler_daemon.timing.spec import ScheduleSpec, require_aware, require_count
from scheduler_daemon.timing.zones import load_zone


def parse_spec(
    expression: str,
    timezone: str,
    anchor: datetime | None = None,
    min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
) -> ScheduleSpec:
    """Parse a cron expression, alias or '@every' interval in an IANA zone.

    `anchor` (aware) is the first slot of an interval (default: the Unix epoch); cron
    expressions ignore it. Results are cached, so calling this per run is cheap.
    Raises TimingError, whose message names the offending field and value.
    """
    if not isinstance(expression, str):
        raise TimingError(f"expression must be a string, got {type(expression).__name__}")
    return _parse_spec(expression, timezone, anchor, min_interval_seconds)


@lru_cache(maxsize=8192)
def _parse_spec(
    expression: str, timezone: str, anchor: datetime | None, min_interval_seconds: int
) -> ScheduleSpec:
    zone = load_zone(timezone)
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise TimingError(
            f"expression {expression[:20]!r}... is {len(expression)} characters long; "
            f"the limit is {MAX_EXPRESSION_LENGTH}"
        )
    if is_interval_expression(expression):
        seconds = check_interval(parse_every(expression), expression.strip(), min_interval_seconds)
        return IntervalSpec(
            expression=" ".join(expression.split()),
            timezone=zone.name,
            seconds=seconds,
            anchor=check_anchor(anchor),
            zone=zone,
        )
    fields = parse_cron(expression)
    return CronSpec(expression=fields.text, timezone=zone.name, fields=fields, zone=zone)


def interval_spec(
    seconds: int,
    anchor: datetime | None,
    timezone: str = "UTC",
    min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
) -> IntervalSpec:
    """The spec of a database row's interval_seconds + interval_anchor columns (cached)."""
    return _interval_spec(seconds, anchor, timezone, min_interval_seconds)


# typed: 60.0 and True hash like 60 and 1, and must still be refused after those are cached.
@lru_cache(maxsize=8192, typed=True)
def _interval_spec(
    seconds: int, anchor: datetime | None, timezone: str, min_interval_seconds: int
) -> IntervalSpec:
    expression = f"@every {format_duration(seconds) if isinstance(seconds, int) else seconds}"
    check_interval(seconds, expression, min_interval_seconds)
    zone = load_zone(timezone)
    return IntervalSpec(
        expression=expression,
        timezone=zone.name,
        seconds=seconds,
        anchor=check_anchor(anchor),
        zone=zone,
    )


def validate(
    expression: str,
    timezone: str,
    min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
) -> None:
    """Raise TimingError, naming the field and value, unless the schedule is usable."""
    parse_spec(expression, timezone, None, min_interval_seconds)


def next_fire_times(
    expression: str,
    timezone: str,
    after: datetime,
    count: int,
    *,
    anchor: datetime | None = None,
    min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
) -> list[datetime]:
    """The next `count` fire times strictly after `after`, as aware datetimes in the zone."""
    # fires_after checks both again; checking before parsing reports a bad argument ahead of
    # a bad expression.
    require_aware(after, "after")
    require_count(count)
    spec = parse_spec(expression, timezone, anchor, min_interval_seconds)
    return [spec.zone.localize_datetime(fire) for fire in spec.fires_after(after, count)]
