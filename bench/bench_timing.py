"""Next-fire computations per second: scheduler_daemon.timing beside plain croniter.

    python bench/bench_timing.py            # 100,000 computations per scenario
    python bench/bench_timing.py --n 5000   # a quick run

(a) burst: n schedules due at one slot, over 100 expressions x 10 zones, each asking for the
    fire after that slot (the daemon's claim path: parse_spec(...).next_after(slot)).
(b) distinct: n different expressions, each with its own `after`, so nothing is cached but
    the per-field parses real crontabs share.
croniter runs as `croniter(expr, after_localized).get_next(datetime)` on the same inputs.
The two engines disagree on purpose on DST and day-of-month/day-of-week cases, so only
speed is compared here; correctness lives in tests/unit/test_timing_*.py.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytz
from croniter import croniter

from scheduler_daemon.timing import TimingError, parse_spec
from scheduler_daemon.timing.cron_fields import parse_cron

ZONES = (
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
)


def burst_expressions() -> list[str]:
    """100 distinct, everyday expressions: wildcard and fixed-time, names, ranges, L."""
    expressions = [
        "* * * * *",
        "*/5 * * * *",
        "*/15 * * * *",
        "0 * * * *",
        "30 * * * *",
        "0 */2 * * *",
        "0 9 * * MON-FRI",
        "30 2 * * *",
        "0 0 L * *",
        "0 0 1,15 * *",
        "@daily",
        "@weekly",
        "@monthly",
        "@hourly",
        "0 6 * JAN-MAR *",
        "0 0 */2 * 1",
        "15 8 1-7 * 1",
        "45 23 * * 7",
        "0 12 * * SAT,SUN",
        "5,35 * * * *",
    ]
    minute, hour = 0, 0
    while len(expressions) < 100:
        expressions.append(f"{minute} {hour} * * *")
        minute, hour = (minute + 7) % 60, (hour + 5) % 24
    return expressions


def distinct_inputs(count: int, rng: random.Random) -> list[tuple[str, str, datetime]]:
    """`count` different valid expressions, each with a zone and an `after` in 2024-2027."""

    def minute() -> str:
        return rng.choice(
            [str(rng.randrange(60)), f"*/{rng.randint(2, 30)}", f"{rng.randrange(30)}-59/10"]
        )

    def hour() -> str:
        return rng.choice([str(rng.randrange(24)), "*", f"{rng.randrange(12)}-23/3", "9-17"])

    def day() -> str:
        return rng.choice(["*", "*", str(rng.randint(1, 28)), "L", f"*/{rng.randint(2, 9)}"])

    def month() -> str:
        return rng.choice(["*", "*", "*", str(rng.randint(1, 12)), "JAN-JUN", "*/3"])

    def weekday() -> str:
        return rng.choice(["*", "*", "MON-FRI", str(rng.randrange(8)), "SAT,SUN"])

    start = datetime(2024, 1, 1, tzinfo=UTC)
    seen: set[str] = set()
    inputs: list[tuple[str, str, datetime]] = []
    while len(inputs) < count:
        expression = f"{minute()} {hour()} {day()} {month()} {weekday()}"
        if expression in seen:
            continue
        seen.add(expression)
        zone = rng.choice(ZONES)
        try:
            parse_cron(expression)  # drops the never-firing; leaves whole specs uncached
        except TimingError:
            continue
        after = start + timedelta(seconds=rng.randrange(4 * 365 * 86400))
        inputs.append((expression, zone, after))
    return inputs


def rate(function: Callable[[], None], count: int) -> float:
    began = time.perf_counter()
    function()
    return count / (time.perf_counter() - began)


def report(title: str, ours: float, theirs: float) -> None:
    print(f"{title}")
    print(f"  scheduler_daemon.timing {ours:>12,.0f} next-fire/s")
    print(f"  plain croniter          {theirs:>12,.0f} next-fire/s")
    print(f"  ratio ours/croniter     {ours / theirs:>12.1f}x")


def bench_burst(count: int) -> None:
    expressions = burst_expressions()
    slot = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    jobs = [(expressions[i % 100], ZONES[(i // 100) % 10]) for i in range(count)]
    localized = {zone: slot.astimezone(pytz.timezone(zone)) for zone in ZONES}

    def ours() -> None:
        for expression, zone in jobs:
            parse_spec(expression, zone).next_after(slot)

    def theirs() -> None:
        for expression, zone in jobs:
            croniter(expression, localized[zone]).get_next(datetime)

    report(
        f"(a) burst: {count:,} schedules at one slot, 100 expressions x 10 zones",
        rate(ours, count),
        rate(theirs, count),
    )


def bench_distinct(count: int) -> None:
    inputs = distinct_inputs(count, random.Random(20260308))
    localized = [(e, after.astimezone(pytz.timezone(zone))) for e, zone, after in inputs]

    def ours() -> None:
        for expression, zone, after in inputs:
            parse_spec(expression, zone).next_after(after)

    def theirs() -> None:
        for expression, after in localized:
            croniter(expression, after).get_next(datetime)

    report(
        f"(b) distinct: {count:,} different expressions, each with its own 'after'",
        rate(ours, count),
        rate(theirs, count),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="computations per scenario")
    count = parser.parse_args().n
    bench_burst(count)
    bench_distinct(count)


if __name__ == "__main__":
    main()
