"""The per-instance cap holds across processes' worth of threads, through the database."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine

from scheduler_daemon.daemon.instance_gate import InstanceBusyError, InstanceGate


def test_never_more_than_the_cap_in_flight_per_instance(engine: Engine) -> None:
    # Four gates stand for four daemons; each thread is one dispatch.
    gates = [InstanceGate(engine, slots=3, wait=30) for _ in range(4)]
    in_flight: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}
    lock = threading.Lock()

    def call(gate: InstanceGate, instance: str) -> None:
        with gate.slot(instance):
            with lock:
                in_flight[instance] += 1
                peak[instance] = max(peak[instance], in_flight[instance])
            time.sleep(0.05)
            with lock:
                in_flight[instance] -= 1

    threads = [
        threading.Thread(target=call, args=(gates[n % 4], "a" if n % 2 else "b")) for n in range(24)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert peak == {"a": 3, "b": 3}


def test_a_busy_instance_gives_up_after_the_wait(engine: Engine) -> None:
    holder, waiter = InstanceGate(engine, slots=1, wait=5), InstanceGate(engine, slots=1, wait=0.2)
    with (
        holder.slot("x"),
        pytest.raises(InstanceBusyError, match="all 1 slots stayed busy"),
        waiter.slot("x"),
    ):
        pass
    with waiter.slot("x"):  # released when the holder's call ended
        pass
