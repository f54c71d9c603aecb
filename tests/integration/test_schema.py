"""The migrated schema: no drift from the table definitions, and constraints that bite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, text, update
from sqlalchemy.exc import IntegrityError

from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.migrate import (
    current_revision,
    downgrade_to,
    head_revision,
    upgrade_to_head,
)
from scheduler_daemon.db.tables import metadata, schedule_runs, workflow_schedules
from tests.helpers import Rows


def test_migrated_schema_matches_table_definitions(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrate_twice_then_down_to_base_and_up_again(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        assert upgrade_to_head(engine) == (None, head_revision())
        assert upgrade_to_head(engine) == (head_revision(), head_revision())
        downgrade_to(engine, "base")
        with engine.connect() as conn:
            assert current_revision(conn) is None
            tables = conn.execute(
                text(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            ).scalar_one()
        assert tables == 0
        assert upgrade_to_head(engine) == (None, head_revision())
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def _violates(engine: Engine, statement: Any, constraint: str) -> None:
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        conn.execute(statement)
    diag = caught.value.orig.diag  # type: ignore[union-attr]
    assert diag.constraint_name == constraint


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        (
            {"cron_expression": "0 * * * *", "interval_seconds": 60},
            "ck_workflow_schedules_exactly_one_spec",
        ),
        (
            {"cron_expression": None, "interval_seconds": None},
            "ck_workflow_schedules_exactly_one_spec",
        ),
        (
            {"cron_expression": None, "interval_seconds": 0},
            "ck_workflow_schedules_interval_positive",
        ),
        (
            {"cron_expression": None, "interval_seconds": -5},
            "ck_workflow_schedules_interval_positive",
        ),
        ({"misfire_policy": "sometimes"}, "ck_workflow_schedules_misfire_policy_allowed"),
        ({"overlap_policy": "queue"}, "ck_workflow_schedules_overlap_policy_allowed"),
        ({"locked_by": "w1"}, "ck_workflow_schedules_lock_complete"),
        ({"max_catchup_runs": 0}, "ck_workflow_schedules_max_catchup_runs_positive"),
        (
            {"interval_anchor": datetime(2026, 1, 1, tzinfo=UTC)},
            "ck_workflow_schedules_anchor_needs_interval",
        ),
    ],
)
def test_schedule_constraints_reject_bad_rows(
    engine: Engine, rows: Rows, values: dict[str, Any], constraint: str
) -> None:
    row = {"workflow_id": rows.workflow(), "name": "bad", "cron_expression": "0 * * * *"} | values
    _violates(engine, insert(workflow_schedules).values(**row), constraint)


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"status": "exploded"}, "ck_schedule_runs_status_allowed"),
        ({"trigger": "cosmic_ray"}, "ck_schedule_runs_trigger_allowed"),
        ({"status": "skipped"}, "ck_schedule_runs_skipped_has_reason"),
        ({"status": "skipped", "skip_reason": "bored"}, "ck_schedule_runs_skip_reason_allowed"),
    ],
)
def test_run_constraints_reject_bad_rows(
    engine: Engine, rows: Rows, values: dict[str, Any], constraint: str
) -> None:
    schedule_id = rows.schedule()
    workflow_id = rows.get(workflow_schedules, schedule_id)["workflow_id"]
    row = {
        "schedule_id": schedule_id,
        "workflow_id": workflow_id,
        "scheduled_for": datetime(2026, 1, 1, tzinfo=UTC),
        "trigger": "scheduled",
        "status": "claimed",
    } | values
    _violates(engine, insert(schedule_runs).values(**row), constraint)


def test_a_second_run_of_one_slot_is_refused_by_the_database(engine: Engine, rows: Rows) -> None:
    schedule_id = rows.schedule()
    slot = datetime(2026, 3, 1, 9, tzinfo=UTC)
    rows.run(schedule_id, scheduled_for=slot)
    workflow_id = rows.get(workflow_schedules, schedule_id)["workflow_id"]
    second = insert(schedule_runs).values(
        schedule_id=schedule_id,
        workflow_id=workflow_id,
        scheduled_for=slot,
        trigger="scheduled",
        status="claimed",
    )
    _violates(engine, second, "uq_schedule_runs_slot")


def test_manual_runs_may_share_a_slot_with_a_scheduled_run(engine: Engine, rows: Rows) -> None:
    schedule_id = rows.schedule()
    slot = datetime(2026, 3, 1, 9, tzinfo=UTC)
    scheduled = rows.run(schedule_id, scheduled_for=slot)
    manual = [
        rows.run(schedule_id, scheduled_for=slot, trigger="manual", status="pending")
        for _ in range(2)
    ]
    with engine.connect() as conn:
        at_slot: dict[uuid.UUID, str] = dict(
            conn.execute(
                text(
                    "SELECT id, trigger FROM schedule_runs"
                    " WHERE schedule_id = :id AND scheduled_for = :slot"
                ),
                {"id": schedule_id, "slot": slot},
            ).all()
        )
    assert at_slot == {scheduled: "scheduled", manual[0]: "manual", manual[1]: "manual"}


def test_schedules_with_history_can_only_be_soft_deleted(engine: Engine, rows: Rows) -> None:
    schedule_id = rows.schedule()
    run_id = rows.run(schedule_id, scheduled_for=datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        conn.execute(text("DELETE FROM workflow_schedules WHERE id = :id"), {"id": schedule_id})
    violation = caught.value.orig
    assert isinstance(violation, psycopg.Error)
    assert violation.diag.constraint_name == "fk_schedule_runs_schedule_id_workflow_schedules"
    with engine.begin() as conn:
        conn.execute(
            update(workflow_schedules)
            .where(workflow_schedules.c.id == schedule_id)
            .values(deleted_at=text("now()"))
        )
    assert rows.get(workflow_schedules, schedule_id)["deleted_at"] is not None
    assert rows.get(schedule_runs, run_id)["schedule_id"] == schedule_id


def test_a_schedule_needs_an_existing_workflow(engine: Engine) -> None:
    statement = insert(workflow_schedules).values(
        workflow_id=uuid.uuid4(), name="orphan", cron_expression="* * * * *"
    )
    _violates(engine, statement, "fk_workflow_schedules_workflow_id_workflows")


def test_new_schedules_are_disabled_by_default(rows: Rows) -> None:
    schedule = rows.get(workflow_schedules, rows.schedule())
    assert schedule["enabled"] is False
    assert schedule["timezone"] == "UTC"
    assert schedule["misfire_policy"] == "skip"
    assert schedule["overlap_policy"] == "skip"


def test_ops_views_answer(engine: Engine, rows: Rows) -> None:
    overdue = rows.schedule(enabled=True, next_run_at=datetime.now(UTC) - timedelta(hours=1))
    scheduled = rows.schedule(enabled=True, next_run_at=datetime.now(UTC) + timedelta(hours=1))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler_workers (worker_id, hostname, pid, version) VALUES ('w1', 'h', 1, 'x')"
            )
        )
    locked, _ = rows.claim("w1", 4, datetime(2026, 3, 1, 9, tzinfo=UTC))
    failed = rows.run(
        scheduled,
        scheduled_for=datetime.now(UTC) - timedelta(hours=2),
        status="failed",
        error_message="AMC said no",
        finished_at=text("now() - interval '1 hour'"),
    )
    rows.run(
        scheduled,
        scheduled_for=datetime.now(UTC) - timedelta(days=30),
        status="failed",
        error_message="long ago",
        finished_at=text("now() - interval '30 days'"),
    )
    with engine.connect() as conn:
        states: dict[uuid.UUID, str] = dict(
            conn.execute(text("SELECT schedule_id, state FROM schedule_status")).all()
        )
        overdue_ids = (
            conn.execute(text("SELECT schedule_id FROM overdue_schedules")).scalars().all()
        )
        live = conn.execute(text("SELECT worker_id FROM live_workers")).scalars().all()
        stalled = conn.execute(text("SELECT schedule_id, locked_by FROM stalled_schedules")).all()
        failures = conn.execute(text("SELECT run_id, error_message FROM recent_failures")).all()
        workers = conn.execute(text("SELECT worker_id, state, locks_held FROM worker_status")).all()
    assert states == {overdue: "due", scheduled: "scheduled", locked: "running"}
    assert overdue_ids == [overdue]
    assert live == ["w1"]
    assert [tuple(row) for row in stalled] == [(locked, "w1")]
    assert [tuple(row) for row in failures] == [(failed, "AMC said no")]
    assert [tuple(row) for row in workers] == [("w1", "live", 1)]


def test_one_amc_execution_is_attributed_to_at_most_one_run(engine: Engine, rows: Rows) -> None:
    schedule_id = rows.schedule()
    rows.run(schedule_id, scheduled_for=datetime(2026, 3, 1, 9, tzinfo=UTC), amc_execution_id="e1")
    workflow_id = rows.get(workflow_schedules, schedule_id)["workflow_id"]
    second = insert(schedule_runs).values(
        schedule_id=schedule_id,
        workflow_id=workflow_id,
        scheduled_for=datetime(2026, 3, 1, 9, 1, tzinfo=UTC),
        trigger="scheduled",
        status="dispatched",
        amc_execution_id="e1",
    )
    _violates(engine, second, "uq_schedule_runs_amc_execution_id")


def test_upgrading_past_0007_detaches_a_shared_execution_and_shows_the_victim(
    empty_database_url: str,
) -> None:
    """Runs that an older version's recovery gave someone else's execution are marked
    unresolved, with the reason, and the first run keeps it."""
    engine = make_engine(empty_database_url)
    try:
        upgrade_to_head(engine)
        downgrade_to(engine, "0006")
        rows = Rows(engine)
        schedule_id = rows.schedule()
        first = rows.run(
            schedule_id,
            scheduled_for=datetime(2026, 3, 1, 9, tzinfo=UTC),
            status="succeeded",
            started_at=datetime(2026, 3, 1, 9, tzinfo=UTC),
            amc_execution_id="shared",
        )
        victim = rows.run(
            schedule_id,
            scheduled_for=datetime(2026, 3, 1, 9, 1, tzinfo=UTC),
            status="dispatched",
            started_at=datetime(2026, 3, 1, 9, 1, tzinfo=UTC),
            amc_execution_id="shared",
        )
        upgrade_to_head(engine)
        kept, detached = rows.get(schedule_runs, first), rows.get(schedule_runs, victim)
        assert (kept["status"], kept["amc_execution_id"]) == ("succeeded", "shared")
        assert (detached["status"], detached["amc_execution_id"]) == ("unresolved", None)
        assert f"also attributed to run {first}" in detached["error_message"]
        assert detached["finished_at"] is not None
    finally:
        engine.dispose()
