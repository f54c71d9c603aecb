"""The per-instance AMC cap, through the database: never exceeded across daemons (each gate
on an engine of its own stands for one daemon), not a lock that serialises calls, and the only
thing an AMC call waits for."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from scheduler_daemon.amc.fake.server import DEFAULT_INSTANCE_ID, FakeAmcServer
from scheduler_daemon.amc.fake.testing import fake_executor, run_request
from scheduler_daemon.clock import SystemClock
from scheduler_daemon.daemon.instance_gate import InstanceBusyError, InstanceGate
from scheduler_daemon.db.engine import make_engine

CAP = 3


@pytest.fixture
def daemons(database_url: str) -> Iterator[list[Engine]]:
    """Three daemons' engines: connection pools of their own, one database."""
    engines = [make_engine(database_url) for _ in range(3)]
    yield engines
    for engine in engines:
        engine.dispose()


def test_the_cap_is_never_exceeded_across_daemons(daemons: list[Engine]) -> None:
    gates = [InstanceGate(engine, slots=CAP, wait=30) for engine in daemons]
    in_flight = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}
    calls = {"a": 0, "b": 0}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def call(gate: InstanceGate, instance: str) -> None:
        try:
            for _ in range(5):
                with gate.slot(instance):
                    with lock:
                        in_flight[instance] += 1
                        peak[instance] = max(peak[instance], in_flight[instance])
                    time.sleep(0.01)
                    with lock:
                        in_flight[instance] -= 1
                        calls[instance] += 1
        except BaseException as exc:
            errors.append(exc)

    # Eight dispatch threads per daemon, half of them on each instance.
    threads = [threading.Thread(target=call, args=(gates[n % 3], "ab"[n % 2])) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert calls == {"a": 60, "b": 60}
    assert peak["a"] <= CAP
    assert peak["b"] <= CAP


def test_calls_go_through_together_up_to_the_cap(daemons: list[Engine]) -> None:
    first, second, third = (InstanceGate(engine, slots=CAP, wait=30) for engine in daemons)
    # The callers and the test meet inside their slots: a gate that let one call through at a
    # time would leave the barrier broken.
    inside = threading.Barrier(CAP + 1, timeout=20)
    release = threading.Event()

    def call(gate: InstanceGate) -> None:
        with gate.slot("a"):
            inside.wait()
            release.wait(20)

    threads = [threading.Thread(target=call, args=(gate,)) for gate in (first, first, second)]
    for thread in threads:
        thread.start()
    try:
        inside.wait()
        impatient = InstanceGate(daemons[2], slots=CAP, wait=0.3)
        with (
            pytest.raises(InstanceBusyError, match="all 3 slots stayed busy"),
            impatient.slot("a"),
        ):
            pass  # pragma: no cover
        with third.slot("b"):  # another instance has slots of its own
            pass
    finally:
        release.set()
        for thread in threads:
            thread.join(20)
    with impatient.slot("a"):  # freed when the calls ended
        pass


def test_a_busy_instance_gives_up_after_the_wait(daemons: list[Engine]) -> None:
    holder = InstanceGate(daemons[0], slots=1, wait=5)
    waiter = InstanceGate(daemons[1], slots=1, wait=0.2)
    with (
        holder.slot("x"),
        pytest.raises(InstanceBusyError, match="all 1 slots stayed busy"),
        waiter.slot("x"),
    ):
        pass
    with waiter.slot("x"):  # released when the holder's call ended
        pass


def test_an_amc_call_waits_for_the_gate_and_nothing_else(daemons: list[Engine]) -> None:
    """With the cap's calls in flight from daemon A, daemon B's call waits for the first
    slot to free, then goes to AMC at once: while A's other call is still in flight."""
    cap = 2
    gate_a, gate_b = (InstanceGate(engine, slots=cap, wait=30) for engine in daemons[:2])
    now = SystemClock().now()
    with FakeAmcServer() as amc:
        amc.seed()
        executor_a, executor_b = fake_executor(amc), fake_executor(amc)
        try:
            for executor in (executor_a, executor_b):  # tokens fetched beforehand
                assert executor.submit(run_request(now)).status == "dispatched"
            warm = len(amc.requests(endpoint="create"))
            amc.faults.slow(0.3, endpoint="create")  # one of A's calls ends soon,
            amc.faults.slow(3.0, endpoint="create")  # the other one late

            def call_a() -> None:
                with gate_a.slot(DEFAULT_INSTANCE_ID):
                    executor_a.submit(run_request(now))

            threads = [threading.Thread(target=call_a) for _ in range(cap)]
            for thread in threads:
                thread.start()
            waited = 0.0
            while len(amc.requests(endpoint="create")) < warm + cap:
                assert waited < 10, "A's calls never reached AMC"
                time.sleep(0.01)
                waited += 0.01
            with gate_b.slot(DEFAULT_INSTANCE_ID):
                entered = time.monotonic()
                outcome = executor_b.submit(run_request(now))
            for thread in threads:
                thread.join(20)
        finally:
            executor_a.close()
            executor_b.close()
        sent = amc.requests(endpoint="create")[warm:]
    [mine] = [r for r in sent if r.fault is None]
    short, long = sorted((r for r in sent if r.fault is not None), key=lambda r: r.finished or 0)
    assert outcome.status == "dispatched"
    assert short.finished is not None
    assert long.finished is not None
    assert short.finished <= entered  # B had to wait for a slot of the gate...
    assert mine.started < long.finished  # ...and, once in, for nothing else
    assert amc.max_in_flight(DEFAULT_INSTANCE_ID) <= cap


def test_a_call_outlives_the_session_that_held_its_slot(daemons: list[Engine]) -> None:
    """The database restarts during an AMC call: the slot's session, and its advisory lock,
    are gone. The call's end must not raise over that (it would discard the call's answer and
    leave its run to a recovery), and the slot is free for the next call."""
    gate = InstanceGate(daemons[0], slots=1, wait=5)
    backends = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    with daemons[1].connect() as admin:
        with gate.slot("x"):
            pids = admin.execute(text(backends)).scalars().all()
            assert len(pids) == 1
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
            admin.commit()
        assert admin.execute(text(backends)).scalars().all() == []
    with InstanceGate(daemons[2], slots=1, wait=0.5).slot("x"):
        pass
