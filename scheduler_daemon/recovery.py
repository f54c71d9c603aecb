"""Which execution, if any, a recovered run may adopt: a pure decision, no I/O.

A run is recovered when its call to the executor was cut short (its daemon died, or the call
ended without an answer): the call may or may not have started an execution. The executor
lists the executions that a call with this run's request could have started (same request,
created since the run began dispatching, less a clock-skew margin); the database says which of
them are already attributed to a run, and which other runs with the same request are still
unfinished. From those facts alone, ``decide`` gives this run an execution of its own, or
none, or says it must wait or cannot be decided. docs/semantics.md ("Recovery") states the
rules; the unique constraint on ``schedule_runs.amc_execution_id`` backs them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# AMC stamps an execution's creationTime with its own clock, to the second; the run's dispatch
# instant is the database's. An execution created this long before the run began dispatching
# may still be the run's own.
CREATION_SKEW_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class FoundExecution:
    """An execution the executor found that a call with the run's request could have started."""

    execution_id: str
    created_at: datetime | None  # None: the executor could not say; the listing bounded it


@dataclass(frozen=True)
class Claimant:
    """An unfinished run with the same request on the same instance, without an execution yet."""

    run_id: uuid.UUID
    dispatch_started_at: datetime
    calling: bool  # its call is under way now (a live daemon is waiting for the answer)


@dataclass(frozen=True)
class Adopt:
    execution_id: str


@dataclass(frozen=True)
class Resubmit:
    """Nothing found can be this run's: submit it again, once."""


@dataclass(frozen=True)
class Relist:
    """A rival began dispatching earlier than the listing reached: list again from ``since``,
    so that every run sharing the executions out sees the same ones."""

    since: datetime


@dataclass(frozen=True)
class Wait:
    """Another run's call with the same request is under way: what it started is not yet
    attributed, so the executions found cannot be told apart until it is."""

    reason: str


@dataclass(frozen=True)
class Unresolved:
    """More executions match than the runs that could have started them: some came from
    elsewhere, and which one (if any) is this run's cannot be told."""

    reason: str


Decision = Adopt | Resubmit | Relist | Wait | Unresolved


def listing_start(
    dispatch_started_at: datetime,
    rivals: Sequence[Claimant],
    margin: timedelta = CREATION_SKEW_MARGIN,
) -> datetime:
    """Since when the executions must be listed: the earliest window of this run and of the
    rivals it may share them with (each must see the same executions to share them alike)."""
    return min([dispatch_started_at, *(r.dispatch_started_at for r in rivals)]) - margin


def decide(
    run_id: uuid.UUID,
    dispatch_started_at: datetime,
    found: Sequence[FoundExecution],
    attributed: set[str],
    rivals: Sequence[Claimant],
    *,
    listed_since: datetime | None = None,
    margin: timedelta = CREATION_SKEW_MARGIN,
) -> Decision:
    """The decision for run ``run_id``.

    ``found``: the executions the executor listed for this run's request since
    ``listed_since`` (by default this run's own window: its dispatch start less ``margin``);
    ``attributed``: which of them the database already gives to a run; ``rivals``: the other
    unfinished runs with the same request and no execution yet.

    Runs with one request on one instance are interchangeable to AMC, so the free executions
    are shared out among this run and its rivals whose calls are over: earliest dispatch first,
    each taking the earliest execution created within its own window. Every run that computes
    this sees the same runs and executions (minus those already taken), so each gets a
    different execution or none; the unique constraint refuses anything else."""
    free = sorted(
        (f for f in found if f.execution_id not in attributed),
        key=lambda f: (f.created_at is not None, f.created_at, f.execution_id),
    )
    if not free:
        return Resubmit()
    needed = listing_start(dispatch_started_at, rivals, margin)
    if listed_since is not None and listed_since > needed:
        return Relist(needed)
    calling = sorted(str(r.run_id) for r in rivals if r.calling)
    if calling:
        return Wait(
            f"run {calling[0]} has the same request and its call is under way; "
            f"{_executions(free)} cannot be attributed until it ends"
        )
    me = Claimant(run_id, dispatch_started_at, calling=False)
    members = sorted([me, *rivals], key=lambda r: (r.dispatch_started_at, str(r.run_id)))
    left = list(free)
    mine: FoundExecution | None = None
    for member in members:
        taken = next((f for f in left if _within(f, member, margin)), None)
        if taken is not None:
            left.remove(taken)
            if member is me:
                mine = taken
    unexplained = [f for f in left if _within(f, me, margin)]
    if unexplained:
        return Unresolved(
            f"{_executions(free)} match this run's request, more than the "
            f"{len(members)} run(s) that could have started them; which one (if any) is this "
            "run's cannot be told"
        )
    return Resubmit() if mine is None else Adopt(mine.execution_id)


def _within(execution: FoundExecution, run: Claimant, margin: timedelta) -> bool:
    created = execution.created_at
    return created is None or created >= run.dispatch_started_at - margin


def _executions(found: Sequence[FoundExecution]) -> str:
    ids = ", ".join(f.execution_id for f in found)
    return f"{len(found)} execution(s) ({ids})"
