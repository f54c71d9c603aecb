"""The demo: sample schedules running against the fake AMC, on the embedded database.

Everything is local: an embedded PostgreSQL (a database of its own, made afresh each time),
the fake AMC server on 127.0.0.1, and the real daemon with the amc executor pointed at it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from scheduler_daemon.amc.fake.server import FakeAmcServer
from scheduler_daemon.config import ExecutorName, Settings
from scheduler_daemon.db import catalog
from scheduler_daemon.db.databases import create_database, drop_database
from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.migrate import upgrade_to_head
from scheduler_daemon.db.queries import insert_manual_run
from scheduler_daemon.db.runs import run_feed
from scheduler_daemon.db.schedules import insert_schedule
from scheduler_daemon.management import DEFINITION_DEFAULTS, spec_of_row

DEMO_DATABASE = "scheduler_demo"
INSTANCE = "amc1demo0a1"
ENTITY = "ENTITY1DEMO0000001"
MARKETPLACE = "ATVPDKIKX0DER"

# name, workflow id in AMC, cron expression, interval seconds, time zone, parameters
SCHEDULES: tuple[tuple[str, str, str | None, int | None, str, dict[str, Any]], ...] = (
    ("every 10 seconds", "spend-by-country", None, 10, "UTC", {"country": "US"}),
    ("every minute", "spend-by-country", "* * * * *", None, "Europe/London", {"country": "GB"}),
    (
        "nightly, previous day",
        "daily-conversions",
        "30 2 * * *",
        None,
        "America/New_York",
        {"time_window": {"kind": "previous_days", "days": 1}},
    ),
)


@contextlib.contextmanager
def demo_database(admin_url: str) -> Iterator[str]:
    """A fresh demo database on the embedded server, dropped again afterwards."""
    drop_database(admin_url, DEMO_DATABASE, missing_ok=True)
    url = create_database(admin_url, DEMO_DATABASE)
    try:
        yield url
    finally:
        drop_database(admin_url, DEMO_DATABASE)


def seed(engine: Engine, amc: FakeAmcServer, now: datetime) -> None:
    """Sample accounts, an instance, workflows and enabled schedules, due from now."""
    amc.seed(
        INSTANCE, ENTITY, MARKETPLACE, {"spend-by-country": ("country",), "daily-conversions": ()}
    )
    with engine.begin() as conn:
        account = catalog.insert_account(conn, ENTITY, MARKETPLACE, "NA", "Demo advertiser")
        instance = catalog.insert_instance(conn, INSTANCE, account, "Demo instance")
        workflows = {
            amc_id: catalog.insert_workflow(conn, name, instance, amc_id, "SELECT 1")
            for amc_id, name in (
                ("spend-by-country", "Spend by country"),
                ("daily-conversions", "Daily conversions"),
            )
        }
        for name, amc_id, cron, interval, zone, parameters in SCHEDULES:
            # Not management.create_schedule: it refuses intervals under a minute, and the
            # demo wants one every 10 s.
            values: dict[str, Any] = {
                **DEFINITION_DEFAULTS,
                "workflow_id": workflows[amc_id],
                "name": name,
                "cron_expression": cron,
                "interval_seconds": interval,
                "interval_anchor": None,
                "timezone": zone,
                "enabled": True,
                "parameters": parameters,
            }
            values["next_run_at"] = spec_of_row(values).next_after(now)
            schedule_id = insert_schedule(conn, values)
            if cron == "30 2 * * *":
                # The nightly one would wait for 02:30: run it once by hand, now.
                insert_manual_run(conn, schedule_id, now, None)


def demo_settings(settings: Settings, amc: FakeAmcServer) -> Settings:
    return replace(
        settings,
        executor=ExecutorName.AMC,
        amc_credentials=amc.credentials,
        amc=replace(settings.amc, api_url=amc.base_url, token_url=amc.token_url),
        poll_interval=5.0,
        status_poll_interval=1.0,
    )


class RunPrinter(threading.Thread):
    """Prints each run as it happens and each change of its status, from the database."""

    def __init__(self, engine: Engine, stop: threading.Event, echo: Callable[[str], None]) -> None:
        super().__init__(name="demo-printer", daemon=True)
        self._engine = engine
        self._stop_event = stop
        self._echo = echo
        self._seen: dict[object, str] = {}

    def run(self) -> None:
        while not self._stop_event.wait(0.5):
            with contextlib.suppress(Exception), self._engine.connect() as conn:
                for row in run_feed(conn):
                    self._show(row)

    def _show(self, row: Mapping[str, Any]) -> None:
        if self._seen.get(row["id"]) == row["status"]:
            return
        self._seen[row["id"]] = row["status"]
        error = f"  ({row['error_message']})" if row["error_message"] else ""
        when = "manual" if row["trigger"] == "manual" else "slot"
        self._echo(
            f"{when:6} {row['scheduled_for']:%H:%M:%S} UTC  {row['schedule']!r:25} "
            f"workflow {row['workflow']!r:21} execution {row['amc_execution_id'] or '-'}  "
            f"{row['status']}{error}"
        )


def make_demo_engine(url: str, settings: Settings) -> Engine:
    engine = make_engine(url, pool_size=settings.concurrency + 2)
    upgrade_to_head(engine)
    return engine
