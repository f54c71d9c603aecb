"""The demo: sample schedules running against the fake AMC, on the embedded database.

Everything is local: the embedded PostgreSQL (the very database every other command uses
when no URL is configured), the fake AMC server on 127.0.0.1, and the real daemon with the
amc executor pointed at it. Its rows are named ``demo: …`` and made afresh each time; when it
stops, its schedules are disabled and left, with their runs, for ``schedules list``,
``runs list`` and the rest to inspect. It refuses to start while other schedules are enabled
in the database, since its daemon would run them against the fake AMC too.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from scheduler_daemon import catalog, references
from scheduler_daemon.amc.fake.server import FakeAmcServer
from scheduler_daemon.config import ExecutorName, Settings
from scheduler_daemon.db.audit import set_actor
from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.migrate import upgrade_to_head
from scheduler_daemon.db.queries import insert_manual_run
from scheduler_daemon.db.runs import run_feed
from scheduler_daemon.db.schedules import (
    disable,
    enabled_schedules_besides,
    hard_delete,
    insert_schedule,
)
from scheduler_daemon.errors import FieldError, InputError
from scheduler_daemon.history import os_actor
from scheduler_daemon.management import DEFINITION_DEFAULTS, spec_of_row

PREFIX = "demo: "
INSTANCE = "amc1demo0a1"
ENTITY = "ENTITY1DEMO0000001"
MARKETPLACE = "ATVPDKIKX0DER"
ACCOUNT = {
    "name": "demo: advertiser",
    "account_id": ENTITY,
    "marketplace_id": MARKETPLACE,
    "region": "NA",
}
INSTANCE_ROW = {"name": "demo: instance", "instance_id": INSTANCE, "account": ACCOUNT["name"]}
# AMC workflow id: our name for it
WORKFLOWS = {"spend-by-country": "demo: spend by country", "daily-conversions": "demo: conversions"}

# name, workflow id in AMC, cron expression, interval seconds, time zone, parameters
SCHEDULES: tuple[tuple[str, str, str | None, int | None, str, dict[str, Any]], ...] = (
    ("demo: every 10 seconds", "spend-by-country", None, 10, "UTC", {"country": "US"}),
    (
        "demo: every minute",
        "spend-by-country",
        "* * * * *",
        None,
        "Europe/London",
        {"country": "GB"},
    ),
    (
        "demo: nightly, previous day",
        "daily-conversions",
        "30 2 * * *",
        None,
        "America/New_York",
        {"time_window": {"kind": "previous_days", "days": 1}},
    ),
)
SCHEDULE_NAMES = [schedule[0] for schedule in SCHEDULES]


def _existing(conn: Connection, kind: references.Kind, name: str) -> uuid.UUID | None:
    try:
        return references.resolve(conn, kind, name)
    except FieldError:
        return None


def seed(engine: Engine, amc: FakeAmcServer, now: datetime) -> list[uuid.UUID]:
    """The demo's account, instance, workflows and enabled schedules, due from now (the last
    demo's schedules and runs replaced); their ids. InputError if other schedules are enabled."""
    amc.seed(
        INSTANCE, ENTITY, MARKETPLACE, {"spend-by-country": ("country",), "daily-conversions": ()}
    )
    with engine.begin() as conn:
        set_actor(conn, os_actor("demo"))
        others = enabled_schedules_besides(conn, SCHEDULE_NAMES)
        if others:
            raise InputError(
                f"{len(others)} other schedule(s) are enabled in this database "
                f"({', '.join(map(repr, others[:3]))}{', …' if len(others) > 3 else ''}); the "
                "demo's daemon would run them against its fake AMC: disable them, or give the "
                "demo a data directory of its own (scheduler-daemon --data-dir DIR demo)"
            )
        for name in SCHEDULE_NAMES:
            previous = _existing(conn, references.Kind.SCHEDULE, name)
            if previous is not None:
                hard_delete(conn, previous)
        catalog.put(conn, references.Kind.ACCOUNT, ACCOUNT)
        catalog.put(conn, references.Kind.INSTANCE, INSTANCE_ROW)
        workflows = {}
        for amc_id, name in WORKFLOWS.items():
            given = {"name": name, "instance": INSTANCE_ROW["name"], "amc_workflow_id": amc_id}
            catalog.put(conn, references.Kind.WORKFLOW, given | {"sql_query": "SELECT 1"})
            workflows[amc_id] = references.resolve(conn, references.Kind.WORKFLOW, name)
        schedule_ids = []
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
            schedule_ids.append(schedule_id)
            if cron == "30 2 * * *":
                # The nightly one would wait for 02:30: run it once by hand, now.
                insert_manual_run(conn, schedule_id, now, None)
    return schedule_ids


def stop(engine: Engine, schedule_ids: list[uuid.UUID]) -> None:
    """Disable the demo's schedules, keeping them and their runs to look at."""
    with engine.begin() as conn:
        set_actor(conn, os_actor("demo"))
        disable(conn, schedule_ids)


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
            f"{when:6} {row['scheduled_for']:%H:%M:%S} UTC  {row['schedule']!r:31} "
            f"workflow {row['workflow']!r:26} execution {row['amc_execution_id'] or '-'}  "
            f"{row['status']}{error}"
        )


def make_demo_engine(url: str, settings: Settings) -> Engine:
    engine = make_engine(url, pool_size=settings.concurrency + 2)
    upgrade_to_head(engine)
    return engine
