"""How the dispatcher cuts a burst of runs into chunks. Pure.

A chunk costs two statements however many runs it holds (mark them ``dispatching``, record
every outcome), and its runs are sent one after the other on one thread. So a chunk of calls
that wait on a remote API (AMC: hundreds of milliseconds each) should be small enough that
every thread of the pool has one, while calls that are Python work in this process (``noop``)
go in full chunks on a few threads: spreading them would add statements and finish no sooner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# Large enough that a 500-slot burst costs a few dozen statements, small enough that a crash
# leaves few runs to recover.
MAX_CHUNK = 50
# In-process chunks are Python work and database round trips: a few threads keep the
# interpreter busy while others wait on the database; more only take turns at the interpreter
# lock and hold more connections. Measured with 4 daemons on 2 cores (bench_daemon.py, 500-slot
# bursts, side by side): 4 threads sent 6-15% more slots a second than 16.
IN_PROCESS_THREADS = 4


@dataclass(frozen=True)
class Chunking:
    concurrency: int
    in_process: bool
    max_chunk: int = MAX_CHUNK

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_chunk < 1:
            raise ValueError(f"concurrency and max_chunk must be positive: {self}")

    @property
    def threads(self) -> int:
        """How many threads send chunks at once: every one of ``concurrency`` for remote
        calls, so that as many are in flight; a few for in-process work."""
        return min(self.concurrency, IN_PROCESS_THREADS) if self.in_process else self.concurrency

    def size(self, runs: int) -> int:
        """How many runs go in each chunk of a burst of ``runs``."""
        if self.in_process:
            return self.max_chunk
        return max(1, min(self.max_chunk, runs // self.concurrency))

    def split(self, items: Sequence[T]) -> list[Sequence[T]]:
        """``items`` in chunks, in order."""
        size = self.size(len(items))
        return [items[start : start + size] for start in range(0, len(items), size)]
