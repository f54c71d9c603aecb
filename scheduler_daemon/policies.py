"""What to do with a due schedule: the misfire and overlap policies (DESIGN §6). Pure.

A slot within the grace window is *late*, not missed: it runs, and the schedule advances to
the slot after it (so a slow burst catches up one slot at a time). Slots older than the grace
window are *missed*; the misfire policy decides about all of them at once, every decision
leaves a run row, and the schedule advances to its first slot that is not missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler_daemon.domain import (
    DueSchedule,
    MisfirePolicy,
    NewRun,
    OverlapPolicy,
    RunStatus,
    ScheduleDecision,
    SkipReason,
)
from scheduler_daemon.timing import COUNT_CAP, ScheduleSpec, interval_spec, parse_spec

_TINY = timedelta(microseconds=1)


@dataclass(frozen=True)
class Plan:
    decision: ScheduleDecision
    runs: list[NewRun]


def spec_of(
    cron_expression: str | None,
    interval_seconds: int | None,
    interval_anchor: datetime | None,
    timezone: str,
) -> ScheduleSpec:
    """The parsed spec of a schedule row; raises TimingError for a row that cannot fire."""
    # The minimum interval is a rule for creating schedules, not for running them: a row the
    # database accepted (interval_seconds > 0) is run as written.
    if interval_seconds is not None:
        return interval_spec(interval_seconds, interval_anchor, min_interval_seconds=1)
    return parse_spec(cron_expression or "", timezone, min_interval_seconds=1)


def plan(schedule: DueSchedule, spec: ScheduleSpec, now: datetime, min_grace: float = 0.0) -> Plan:
    """Decide about a due schedule at ``now``. The grace window is never shorter than
    ``min_grace`` (twice the poll interval), so a slot is not missed merely for waiting for
    the safety-net tick."""
    slot = schedule.next_run_at
    grace = max(float(schedule.misfire_grace_seconds), min_grace)
    cutoff = now - timedelta(seconds=grace)
    if slot >= cutoff:
        runs = [_dispatch_or_overlap(schedule, slot)]
        next_run_at = spec.next_after(slot)
    else:
        runs = _misfire_runs(schedule, spec, slot, cutoff, grace)
        next_run_at = spec.next_after(cutoff - _TINY)
    decision = ScheduleDecision(
        schedule_id=schedule.id,
        old_last_run_at=schedule.last_run_at,
        last_run_at=max(run.scheduled_for for run in runs),
        next_run_at=next_run_at,
        take_lock=any(run.status is RunStatus.CLAIMED for run in runs),
    )
    return Plan(decision, runs)


def _dispatch_or_overlap(schedule: DueSchedule, slot: datetime) -> NewRun:
    if schedule.has_unfinished_run and schedule.overlap_policy == OverlapPolicy.SKIP:
        return NewRun(
            schedule.id,
            schedule.workflow_id,
            slot,
            RunStatus.SKIPPED,
            skip_reason=SkipReason.OVERLAP,
            message="skipped: the previous run was still in progress (overlap policy 'skip')",
        )
    return NewRun(schedule.id, schedule.workflow_id, slot, RunStatus.CLAIMED)


def _missed_slots(
    spec: ScheduleSpec, first: datetime, cutoff: datetime, keep: int
) -> tuple[int, list[datetime]]:
    """How many slots lie in [first, cutoff) (at most COUNT_CAP), and the last ``keep`` of
    them, oldest first."""
    count = spec.count_between(first - _TINY, cutoff - _TINY)
    last: list[datetime] = []
    end = cutoff - _TINY
    while len(last) < keep:
        slot = spec.last_between(first - _TINY, end)
        if slot is None:
            break
        last.append(slot)
        end = slot - _TINY
    return max(count, 1), last[::-1] or [first]


def _misfire_runs(
    schedule: DueSchedule, spec: ScheduleSpec, slot: datetime, cutoff: datetime, grace: float
) -> list[NewRun]:
    keep = 1 if schedule.misfire_policy != MisfirePolicy.RUN_ALL else schedule.max_catchup_runs
    count, last = _missed_slots(spec, slot, cutoff, keep)
    if schedule.misfire_policy == MisfirePolicy.SKIP:
        return [_missed_row(schedule, slot, count, f"up to {last[-1].isoformat()}", grace)]
    to_run = last if schedule.misfire_policy == MisfirePolicy.RUN_ALL else last[-1:]
    runs = [_dispatch_or_overlap(schedule, s) for s in to_run]
    dropped = count - len(to_run)
    if dropped > 0:
        until = f"before {to_run[0].isoformat()}, which runs"
        runs.insert(0, _missed_row(schedule, slot, dropped, until, grace))
    return runs


def _missed_row(
    schedule: DueSchedule, first: datetime, count: int, until: str, grace: float
) -> NewRun:
    span = first.isoformat() if count == 1 else f"from {first.isoformat()} {until}"
    plural = "slot" if count == 1 else "slots"
    at_least = "at least " if count >= COUNT_CAP else ""
    return NewRun(
        schedule.id,
        schedule.workflow_id,
        first,
        RunStatus.SKIPPED,
        skip_reason=SkipReason.MISFIRE,
        missed_slots=count,
        message=(
            f"missed {at_least}{count} {plural} ({span}): older than the misfire grace of "
            f"{grace:g}s when claimed (policy '{schedule.misfire_policy}')"
        ),
    )
