"""A scrape of a running daemon's metrics shows the counters moving by the right amounts."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from tests.acceptance.daemons import Daemon, count, insert_due_schedules, wait_until
from tests.helpers import Rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_counters_move_by_the_right_amounts(
    engine: Engine, rows: Rows, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    daemon = Daemon(
        database_url, tmp_path / "d.log", "--worker-id", "m", "--metrics-port", str(port)
    )
    try:
        wait_until(
            lambda: count(engine, "SELECT count(*) FROM live_workers") == 1, 60, "a live worker"
        )
        before = scrape(port)
        workflow_id = rows.workflow()
        insert_due_schedules(engine, workflow_id, 7, seconds_ahead=0)
        overlapping = rows.schedule(workflow_id, enabled=True, next_run_at=text("now()"))
        rows.run(overlapping, scheduled_for=text("now() - interval '1 hour'"), status="dispatched")
        wait_until(
            lambda: (
                count(
                    engine,
                    "SELECT count(*) FROM schedule_runs WHERE status IN ('succeeded', 'skipped')",
                )
                == 8
            ),
            30,
            "8 decisions",
        )
        wait_until(
            lambda: (
                scrape(port).get(
                    ("scheduler_runs_total", (("outcome", "succeeded"), ("trigger", "scheduled"))),
                    0,
                )
                == 7
            ),
            10,
            "the counter",
        )
        after = scrape(port)
    finally:
        assert daemon.terminate() == 0
    succeeded = ("scheduler_runs_total", (("outcome", "succeeded"), ("trigger", "scheduled")))
    overlap = ("scheduler_runs_total", (("outcome", "skipped_overlap"), ("trigger", "scheduled")))
    assert after[succeeded] - before.get(succeeded, 0) == 7
    assert after[overlap] - before.get(overlap, 0) == 1
    assert after[("scheduler_run_lateness_seconds_count", ())] == 7
    assert (
        after[("scheduler_tick_duration_seconds_count", ())]
        > before[("scheduler_tick_duration_seconds_count", ())]
    )
    assert (
        after[
            (
                "scheduler_executor_call_seconds_count",
                (("executor", "noop"), ("outcome", "succeeded")),
            )
        ]
        == 7
    )
    assert after[("scheduler_claims_lost_total", ())] == 0
    assert after[("scheduler_database_available", ())] == 1
