"""What a recovered run may adopt: its own execution or none, never another run's.

The property behind every case: whichever order the runs of one request are recovered in,
each ends with a different execution or with none (then it is submitted again), and an
execution that no run of ours can explain is never guessed at.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_daemon.recovery import (
    CREATION_SKEW_MARGIN,
    Adopt,
    Claimant,
    FoundExecution,
    Relist,
    Resubmit,
    Unresolved,
    Wait,
    decide,
    listing_start,
)

T = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ME = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)


def found(execution_id: str, seconds: float) -> FoundExecution:
    return FoundExecution(execution_id, T + timedelta(seconds=seconds))


def test_nothing_found_means_nothing_reached_amc_submit_again() -> None:
    assert decide(ME, T, [], set(), []) == Resubmit()


def test_the_one_free_execution_is_adopted() -> None:
    assert decide(ME, T, [found("e1", 1)], set(), []) == Adopt("e1")


def test_an_execution_another_run_holds_is_never_adopted() -> None:
    """The previous slot's identical execution is attributed to the previous run."""
    previous = found("prev", -2)
    assert decide(ME, T, [previous], {"prev"}, []) == Resubmit()
    assert decide(ME, T, [previous, found("mine", 1)], {"prev"}, []) == Adopt("mine")


def test_an_execution_created_before_the_run_began_dispatching_is_not_its_own() -> None:
    too_early = FoundExecution("old", T - CREATION_SKEW_MARGIN - timedelta(seconds=1))
    # Left alone, and the run is submitted again (the listing itself starts at the run's
    # window: this guards against a listing that returned more than it was asked for).
    assert decide(ME, T, [too_early], set(), []) == Resubmit()


def test_within_the_skew_margin_an_execution_can_still_be_the_runs_own() -> None:
    skewed = FoundExecution("mine", T - CREATION_SKEW_MARGIN + timedelta(seconds=1))
    assert decide(ME, T, [skewed], set(), []) == Adopt("mine")


def test_a_rival_mid_call_makes_the_run_wait_rather_than_take_its_execution() -> None:
    rival = Claimant(OTHER, T, calling=True)
    decision = decide(ME, T, [found("theirs", 1)], set(), [rival])
    assert isinstance(decision, Wait)
    assert str(OTHER) in decision.reason


def test_a_rival_mid_call_does_not_delay_a_run_when_nothing_free_was_found() -> None:
    assert decide(ME, T, [], set(), [Claimant(OTHER, T, calling=True)]) == Resubmit()


def test_a_listing_that_misses_an_earlier_rivals_window_is_done_again_from_there() -> None:
    """To share executions out alike, every run must see what the earliest rival could have
    started: a listing that began later is not decided on."""
    rival = Claimant(OTHER, T - timedelta(seconds=90), calling=False)
    own_window = T - CREATION_SKEW_MARGIN
    decision = decide(ME, T, [found("e1", 1)], set(), [rival], listed_since=own_window)
    assert decision == Relist(rival.dispatch_started_at - CREATION_SKEW_MARGIN)


def test_more_executions_than_runs_that_could_have_made_them_is_unresolved() -> None:
    decision = decide(ME, T, [found("a", 1), found("b", 2)], set(), [])
    assert isinstance(decision, Unresolved)
    assert "a, b" in decision.reason


def test_two_interrupted_runs_of_one_request_share_the_executions_out() -> None:
    executions = [found("e1", 1), found("e2", 2)]
    first = decide(ME, T, executions, set(), [Claimant(OTHER, T, calling=False)])
    second = decide(OTHER, T, executions, set(), [Claimant(ME, T, calling=False)])
    assert {first, second} == {Adopt("e1"), Adopt("e2")}


def test_with_one_execution_for_two_runs_one_adopts_and_the_other_submits_again() -> None:
    executions = [found("e1", 1)]
    first = decide(ME, T, executions, set(), [Claimant(OTHER, T, calling=False)])
    second = decide(OTHER, T, executions, set(), [Claimant(ME, T, calling=False)])
    assert sorted([first, second], key=repr) == sorted([Adopt("e1"), Resubmit()], key=repr)


@settings(max_examples=500, deadline=None)
@given(
    starts=st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=4),
    reached=st.lists(st.booleans(), min_size=4, max_size=4),
    delays=st.lists(st.integers(min_value=0, max_value=20), min_size=4, max_size=4),
    order_seed=st.integers(min_value=0, max_value=23),
)
def test_in_any_recovery_order_each_slot_ends_with_exactly_one_execution(
    starts: list[int], reached: list[bool], delays: list[int], order_seed: int
) -> None:
    """Runs of one request, each cut short after its call did or did not reach AMC, are
    recovered one after the other in any order, each seeing what the ones before it took:
    in the end every run holds one execution, and no execution is left over or shared."""
    ids = [uuid.UUID(int=n + 1) for n in range(len(starts))]
    started = {run: T + timedelta(seconds=starts[n]) for n, run in enumerate(ids)}
    executions = [found(f"own-{n}", starts[n] + delays[n]) for n in range(len(ids)) if reached[n]]
    orders = list(itertools.permutations(ids))
    holder: dict[str, uuid.UUID] = {}
    pending = list(ids)
    for run in orders[order_seed % len(orders)]:
        pending.remove(run)
        rivals = [Claimant(other, started[other], calling=False) for other in pending]
        since = listing_start(started[run], rivals)
        visible = [e for e in executions if e.created_at is not None and e.created_at >= since]
        decision = decide(run, started[run], visible, set(holder), rivals, listed_since=since)
        assert isinstance(decision, Adopt | Resubmit), decision
        if isinstance(decision, Adopt):
            assert decision.execution_id not in holder
            holder[decision.execution_id] = run
        else:  # submitted again: a new execution, recorded at once
            again = found(f"again-{run.int}", 1000)
            executions.append(again)
            holder[again.execution_id] = run
    assert sorted(holder.values()) == sorted(ids)  # one each
    assert set(holder) == {e.execution_id for e in executions}  # none left over
