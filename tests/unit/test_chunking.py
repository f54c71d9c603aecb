"""The dispatcher's chunking: every run in exactly one chunk, in order; remote calls spread so
that every thread has work; in-process calls in as few chunks (statements) as possible."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler_daemon.daemon.chunking import IN_PROCESS_THREADS, MAX_CHUNK, Chunking


@given(
    runs=st.integers(min_value=0, max_value=3000),
    concurrency=st.integers(min_value=1, max_value=64),
    in_process=st.booleans(),
)
def test_every_run_is_in_exactly_one_chunk_in_order_and_no_chunk_is_too_big(
    runs: int, concurrency: int, in_process: bool
) -> None:
    chunks = Chunking(concurrency, in_process).split(list(range(runs)))
    assert [run for chunk in chunks for run in chunk] == list(range(runs))
    assert all(1 <= len(chunk) <= MAX_CHUNK for chunk in chunks)


@given(
    runs=st.integers(min_value=1, max_value=3000),
    concurrency=st.integers(min_value=1, max_value=64),
)
def test_remote_calls_keep_every_thread_busy(runs: int, concurrency: int) -> None:
    """At least as many chunks as threads while there are runs enough: no thread idles while
    another sends a queue of slow calls."""
    chunks = Chunking(concurrency, in_process=False).split(list(range(runs)))
    assert len(chunks) >= min(runs, concurrency)


@given(runs=st.integers(min_value=1, max_value=3000))
def test_in_process_calls_cost_the_fewest_chunks(runs: int) -> None:
    chunks = Chunking(16, in_process=True).split(list(range(runs)))
    assert len(chunks) == math.ceil(runs / MAX_CHUNK)


@given(concurrency=st.integers(min_value=1, max_value=64), in_process=st.booleans())
def test_threads_never_exceed_the_concurrency_and_remote_calls_get_them_all(
    concurrency: int, in_process: bool
) -> None:
    threads = Chunking(concurrency, in_process).threads
    assert 1 <= threads <= concurrency
    assert threads == (min(concurrency, IN_PROCESS_THREADS) if in_process else concurrency)


def test_a_small_burst_of_remote_calls_goes_one_run_per_thread() -> None:
    assert [len(c) for c in Chunking(16, in_process=False).split(list(range(10)))] == [1] * 10


@pytest.mark.parametrize(("concurrency", "max_chunk"), [(0, 50), (4, 0)])
def test_a_pool_without_threads_or_chunks_is_refused(concurrency: int, max_chunk: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Chunking(concurrency, in_process=False, max_chunk=max_chunk)
