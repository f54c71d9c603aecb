"""The misfire and overlap policies, pure: a due schedule and a time in, run rows out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduler_daemon.domain import DueSchedule
from scheduler_daemon.policies import plan, spec_of
from scheduler_daemon.timing import COUNT_CAP

SLOT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def due(**values: Any) -> DueSchedule:
    defaults: dict[str, Any] = {
        "id": uuid.uuid4(),
        "workflow_id": uuid.uuid4(),
        "cron_expression": "0 * * * *",
        "interval_seconds": None,
        "interval_anchor": None,
        "timezone": "UTC",
        "next_run_at": SLOT,
        "last_run_at": SLOT - timedelta(hours=1),
        "misfire_policy": "skip",
        "misfire_grace_seconds": 300,
        "max_catchup_runs": 10,
        "overlap_policy": "skip",
        "has_unfinished_run": False,
    }
    return DueSchedule(**(defaults | values))


def planned(
    schedule: DueSchedule, now: datetime, min_grace: float = 0.0
) -> tuple[list[tuple[Any, ...]], datetime]:
    spec = spec_of(
        schedule.cron_expression,
        schedule.interval_seconds,
        schedule.interval_anchor,
        schedule.timezone,
    )
    result = plan(schedule, spec, now, min_grace)
    runs = [(r.scheduled_for, r.status, r.skip_reason, r.missed_slots) for r in result.runs]
    return runs, result.decision.next_run_at


def test_an_on_time_slot_is_claimed_and_the_next_slot_follows_it() -> None:
    runs, next_run_at = planned(due(), SLOT + timedelta(seconds=1))
    assert runs == [(SLOT, "claimed", None, None)]
    assert next_run_at == SLOT + timedelta(hours=1)


def test_a_late_slot_within_grace_runs_and_the_schedule_advances_one_slot() -> None:
    runs, next_run_at = planned(due(cron_expression="* * * * *"), SLOT + timedelta(seconds=290))
    assert runs == [(SLOT, "claimed", None, None)]
    assert next_run_at == SLOT + timedelta(minutes=1)  # itself due: the next tick runs it


def test_grace_is_never_shorter_than_the_floor() -> None:
    late = SLOT + timedelta(seconds=100)
    assert planned(due(misfire_grace_seconds=10), late)[0][0][1] == "skipped"
    assert planned(due(misfire_grace_seconds=10), late, min_grace=120)[0][0][1] == "claimed"


def test_skip_records_every_missed_slot_in_one_row() -> None:
    runs, next_run_at = planned(due(), SLOT + timedelta(hours=3, minutes=10))
    assert runs == [(SLOT, "skipped", "misfire", 4)]
    assert next_run_at == SLOT + timedelta(hours=4)


def test_run_once_runs_the_latest_missed_slot_and_records_the_rest() -> None:
    runs, _ = planned(due(misfire_policy="run_once"), SLOT + timedelta(hours=3, minutes=10))
    assert runs == [
        (SLOT, "skipped", "misfire", 3),
        (SLOT + timedelta(hours=3), "claimed", None, None),
    ]


def test_run_all_runs_the_last_n_oldest_first() -> None:
    runs, _ = planned(
        due(misfire_policy="run_all", max_catchup_runs=2), SLOT + timedelta(hours=3, minutes=10)
    )
    assert runs == [
        (SLOT, "skipped", "misfire", 2),
        (SLOT + timedelta(hours=2), "claimed", None, None),
        (SLOT + timedelta(hours=3), "claimed", None, None),
    ]


def test_run_all_within_the_cap_runs_everything() -> None:
    runs, _ = planned(due(misfire_policy="run_all"), SLOT + timedelta(hours=1, minutes=10))
    assert runs == [
        (SLOT, "claimed", None, None),
        (SLOT + timedelta(hours=1), "claimed", None, None),
    ]


def test_a_year_of_missed_seconds_is_bounded_work() -> None:
    schedule = due(
        cron_expression=None, interval_seconds=1, misfire_policy="run_all", max_catchup_runs=3
    )
    runs, next_run_at = planned(schedule, SLOT + timedelta(days=365))
    assert [r[1] for r in runs] == ["skipped", "claimed", "claimed", "claimed"]
    assert runs[0][3] == COUNT_CAP - 3  # "at least" this many, counted without walking them all
    assert next_run_at == SLOT + timedelta(days=365) - timedelta(seconds=300)


@pytest.mark.parametrize(("policy", "status"), [("skip", "skipped"), ("allow", "claimed")])
def test_overlap(policy: str, status: str) -> None:
    runs, _ = planned(due(overlap_policy=policy, has_unfinished_run=True), SLOT)
    assert runs[0][1] == status
    if policy == "skip":
        assert runs[0][2] == "overlap"


def test_a_schedule_that_only_skips_takes_no_lock() -> None:
    schedule = due(has_unfinished_run=True)
    spec = spec_of("0 * * * *", None, None, "UTC")
    assert plan(schedule, spec, SLOT).decision.take_lock is False
    assert plan(due(), spec, SLOT).decision.take_lock is True
