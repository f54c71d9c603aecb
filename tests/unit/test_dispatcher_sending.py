"""When a daemon may still send a call for runs it claimed: only while its heartbeat (which
renews its claims) never lapsed since, for as long as the others wait before taking them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine

from scheduler_daemon.clock import FakeClock
from scheduler_daemon.daemon.chunking import Chunking
from scheduler_daemon.daemon.dispatcher import Dispatcher
from scheduler_daemon.executors.noop import NoopExecutor
from scheduler_daemon.metrics import Metrics

WINDOW = 15.0


def dispatcher(clock: FakeClock, send_window: float | None = WINDOW) -> Dispatcher:
    # Never connects: the rule under test reads no database.
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")
    return Dispatcher(
        engine,
        NoopExecutor(),
        "w1",
        chunking=Chunking(4, in_process=True),
        max_failures=5,
        write_retry_seconds=1,
        clock=clock,
        metrics=Metrics(),
        send_window=send_window,
    )


def test_a_call_marked_before_a_lapse_is_never_sent_after_it() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    sending = dispatcher(clock)
    sending.claims_renewed()
    marked_at = clock.monotonic()
    allowed = sending.may_send(marked_at)
    assert allowed()
    clock.advance(10)
    sending.claims_renewed()  # on time
    assert allowed()
    clock.advance(WINDOW)  # frozen: no heartbeat for the window
    assert not allowed()
    sending.claims_renewed()  # thawed; the others may have taken its claims meanwhile
    assert not allowed()
    assert sending.may_send(clock.monotonic())()  # runs marked since are its own again


def test_no_heartbeat_yet_sends_nothing_and_no_window_sends_all() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert not dispatcher(clock).may_send(clock.monotonic())()
    assert dispatcher(clock, send_window=None).may_send(clock.monotonic())()
