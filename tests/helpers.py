"""Terse row factories for tests: each takes overrides and returns the new row's id."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select, text

from scheduler_daemon.db.tables import (
    amc_accounts,
    amc_instances,
    schedule_runs,
    workflow_schedules,
    workflows,
)

if TYPE_CHECKING:
    from scheduler_daemon.amc.fake.server import FakeAmcServer

_counter = itertools.count(1)

# A CLI run by a test reads no environment file (the host's /etc/scheduler-daemon one
# included) unless the test gives it one.
NO_ENV_FILE = {"SCHEDULER_ENV_FILE": os.devnull}


class Rows:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _insert(self, table: Any, values: dict[str, Any]) -> uuid.UUID:
        with self.engine.begin() as conn:
            new_id: uuid.UUID = conn.execute(
                insert(table).values(**values).returning(table.c.id)
            ).scalar_one()
            return new_id

    def account(self, **values: Any) -> uuid.UUID:
        n = next(_counter)
        return self._insert(
            amc_accounts,
            {
                "account_id": f"ENTITY{n:06d}",
                "marketplace_id": "ATVPDKIKX0DER",
                "region": "NA",
                "name": f"account {n}",
            }
            | values,
        )

    def instance(self, account_id: uuid.UUID | None = None, **values: Any) -> uuid.UUID:
        n = next(_counter)
        account_id = account_id or self.account()
        return self._insert(
            amc_instances,
            {"instance_id": f"amc{n:08x}", "account_id": account_id, "name": f"instance {n}"}
            | values,
        )

    def workflow(self, instance_id: uuid.UUID | None = None, **values: Any) -> uuid.UUID:
        n = next(_counter)
        instance_id = instance_id or self.instance()
        return self._insert(
            workflows,
            {
                "name": f"workflow {n}",
                "instance_id": instance_id,
                "amc_workflow_id": f"wf-{n}",
                "sql_query": "SELECT 1",
            }
            | values,
        )

    def schedule(self, workflow_id: uuid.UUID | None = None, **values: Any) -> uuid.UUID:
        """A schedule; by default ``0 * * * *`` in UTC, disabled, as the contract says."""
        n = next(_counter)
        workflow_id = workflow_id or self.workflow()
        defaults: dict[str, Any] = {"workflow_id": workflow_id, "name": f"schedule {n}"}
        if "interval_seconds" not in values:
            defaults["cron_expression"] = "0 * * * *"
        return self._insert(workflow_schedules, defaults | values)

    def schedules(
        self, count: int, workflow_id: uuid.UUID | None = None, **values: Any
    ) -> list[uuid.UUID]:
        """``count`` schedules of one workflow, as ``schedule`` makes them, in one statement."""
        workflow_id = workflow_id or self.workflow()
        cron: dict[str, Any] = (
            {} if "interval_seconds" in values else {"cron_expression": "0 * * * *"}
        )
        rows = [
            {"workflow_id": workflow_id, "name": f"schedule {next(_counter)}", **cron} | values
            for _ in range(count)
        ]
        with self.engine.begin() as conn:
            return list(
                conn.execute(
                    insert(workflow_schedules).returning(workflow_schedules.c.id), rows
                ).scalars()
            )

    def run(self, schedule_id: uuid.UUID, **values: Any) -> uuid.UUID:
        with self.engine.connect() as conn:
            workflow_id = conn.execute(
                select(workflow_schedules.c.workflow_id).where(
                    workflow_schedules.c.id == schedule_id
                )
            ).scalar_one()
        return self._insert(
            schedule_runs,
            {
                "schedule_id": schedule_id,
                "workflow_id": workflow_id,
                "trigger": "scheduled",
                "status": "claimed",
            }
            | values,
        )

    def claim(
        self,
        owner: str,
        token: int,
        slot: datetime,
        workflow_id: uuid.UUID | None = None,
        *,
        locked_at: Any = None,
        **run: Any,
    ) -> tuple[uuid.UUID, uuid.UUID]:
        """A daily schedule locked by ``owner`` (at ``locked_at``, default now) with the run
        of its ``slot`` under the same fencing token, as a claim leaves them; ``run``
        overrides the run's columns (its status, say)."""
        schedule_id = self.schedule(
            workflow_id,
            cron_expression=f"{slot.minute} {slot.hour} * * *",
            enabled=True,
            next_run_at=slot + timedelta(days=1),
            last_run_at=slot,
            locked_by=owner,
            locked_at=text("now()") if locked_at is None else locked_at,
            fencing_token=token,
        )
        run_id = self.run(
            schedule_id, scheduled_for=slot, worker_id=owner, fencing_token=token, **run
        )
        return schedule_id, run_id

    def get(self, table: Any, row_id: uuid.UUID) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == row_id)).mappings().one()
        return dict(row)


@dataclass(frozen=True)
class SeededInstance:
    id: uuid.UUID  # our amc_instances row
    instance_id: str  # AMC's own id
    account_id: str  # the entity id


def seeded_amc_instance(
    rows: Rows, amc: FakeAmcServer, workflows: Mapping[str, tuple[str, ...]]
) -> SeededInstance:
    """An instance with its account in our database, and the same instance, account and
    workflows (id → declared input parameters) in the fake AMC."""
    instance = rows.instance()
    instance_row = rows.get(amc_instances, instance)
    account_row = rows.get(amc_accounts, instance_row["account_id"])
    amc.seed(
        instance_row["instance_id"],
        account_row["account_id"],
        account_row["marketplace_id"],
        workflows,
    )
    return SeededInstance(instance, instance_row["instance_id"], account_row["account_id"])


def make_token(engine: Engine, name: str, role: str) -> str:
    """A new API token's secret (``role``: read or write)."""
    from scheduler_daemon import tokens

    with engine.begin() as conn:
        _, secret = tokens.create_token(conn, name, role)
    return secret
