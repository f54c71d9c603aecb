"""The audit trail: every change, whichever way it was made (the CLI, sync, the verbs as the
API calls them, the daemon, plain SQL), leaves one row saying who, what, and each changed
field before and after; the daemon's claims and an update that changes nothing leave none."""

from __future__ import annotations

import getpass
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from scheduler_daemon import catalog, history, management
from scheduler_daemon.cli import main
from scheduler_daemon.clock import FakeClock
from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.db.audit import set_actor
from scheduler_daemon.db.engine import libpq_url
from scheduler_daemon.db.statements import parse_statements
from scheduler_daemon.errors import InputError, NotFoundError
from scheduler_daemon.references import Kind
from tests.helpers import Rows
from tests.integration.conftest import FailingExecutor

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
USER = getpass.getuser()

DEPLOYMENT = """\
[[accounts]]
name = "Acme US"
account_id = "ENTITY1ACME0001"

[[instances]]
name = "acme-us"
instance_id = "amc1acme0a1"
account = "Acme US"

[[workflows]]
name = "sales daily"
instance = "acme-us"
amc_workflow_id = "sales-daily"

[[schedules]]
key = "weekday-sales"
name = "Weekday sales"
workflow = "sales daily"
cron = "0 9 * * MON-FRI"
"""


def audit_rows(engine: Engine, entity_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """The audit rows (of one entity, or all), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT id, actor, entity, entity_id, entity_name, action, before, after
                  FROM audit_log
                 WHERE entity_id = :id OR CAST(:id AS uuid) IS NULL
                 ORDER BY id
                """
            ),
            {"id": entity_id},
        ).mappings()
        return [dict(row) for row in rows]


def last_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar_one())


def rows_after(engine: Engine, mark: int) -> list[dict[str, Any]]:
    return [row for row in audit_rows(engine) if row["id"] > mark]


def what(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["actor"], row["entity"], row["action"], row["before"], row["after"])


def cli(database_url: str, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``scheduler-daemon ARGS`` in this process; its stdout. It must succeed."""
    with pytest.raises(SystemExit) as done:
        main(["--database-url", database_url, *args])
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    return out


def schedule_id(engine: Engine, name: str) -> uuid.UUID:
    with engine.connect() as conn:
        found: uuid.UUID = conn.execute(
            text("SELECT id FROM workflow_schedules WHERE name = :name"), {"name": name}
        ).scalar_one()
    return found


@pytest.fixture
def synced(
    database_url: str, engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Path:
    """The deployment, applied by ``sync``; the file."""
    path = tmp_path / "deployment.toml"
    path.write_text(DEPLOYMENT)
    cli(database_url, capsys, "sync", str(path))
    return path


def test_sync_records_each_row_it_creates_and_only_the_fields_it_changes(
    database_url: str, engine: Engine, capsys: pytest.CaptureFixture[str], synced: Path
) -> None:
    created = audit_rows(engine)
    assert [(r["actor"], r["entity"], r["entity_name"], r["action"]) for r in created] == [
        (f"sync:{USER}", "account", "Acme US", "create"),
        (f"sync:{USER}", "instance", "acme-us", "create"),
        (f"sync:{USER}", "workflow", "sales daily", "create"),
        (f"sync:{USER}", "schedule", "Weekday sales", "create"),
    ]
    schedule = created[-1]
    assert schedule["before"] is None
    # what was set, and nothing of the runtime state (next_run_at) or bookkeeping
    assert schedule["after"] == {
        "name": "Weekday sales",
        "workflow_id": str(created[2]["entity_id"]),
        "user_id": None,
        "config_key": "weekday-sales",
        "cron_expression": "0 9 * * MON-FRI",
        "interval_seconds": None,
        "interval_anchor": None,
        "timezone": "UTC",
        "enabled": False,
        "misfire_policy": "skip",
        "misfire_grace_seconds": 300,
        "max_catchup_runs": 10,
        "overlap_policy": "skip",
        "parameters": {},
        "paused_at": None,
        "paused_until": None,
        "pause_reason": None,
        "deleted_at": None,
    }

    mark = last_id(engine)
    cli(database_url, capsys, "sync", str(synced))  # the same file: nothing changes
    assert rows_after(engine, mark) == []
    synced.write_text(DEPLOYMENT.replace("0 9 * * MON-FRI", "30 8 * * MON-FRI"))
    cli(database_url, capsys, "sync", str(synced))
    [update] = rows_after(engine, mark)
    assert what(update) == (
        f"sync:{USER}",
        "schedule",
        "update",
        {"cron_expression": "0 9 * * MON-FRI"},
        {"cron_expression": "30 8 * * MON-FRI"},
    )


def test_the_cli_records_who_and_a_word_for_what(
    database_url: str, engine: Engine, capsys: pytest.CaptureFixture[str], synced: Path
) -> None:
    sales = schedule_id(engine, "Weekday sales")
    mark = last_id(engine)
    cli(database_url, capsys, "schedules", "enable", "Weekday sales")
    cli(database_url, capsys, "schedules", "update", "Weekday sales", "--tz", "Europe/London")
    cli(database_url, capsys, "schedules", "pause", "Weekday sales", "--reason", "month-end")
    cli(database_url, capsys, "schedules", "resume", "Weekday sales")
    cli(database_url, capsys, "schedules", "disable", "Weekday sales")
    enable, update, pause, resume, disable = rows_after(engine, mark)
    assert {row["entity_id"] for row in (enable, update, pause, resume, disable)} == {sales}
    assert {row["actor"] for row in (enable, update, pause, resume, disable)} == {f"cli:{USER}"}
    assert (enable["action"], enable["before"], enable["after"]) == (
        "enable",
        {"enabled": False},
        {"enabled": True},
    )
    # a new zone moved next_run_at too: runtime state, not recorded
    assert (update["action"], update["before"], update["after"]) == (
        "update",
        {"timezone": "UTC"},
        {"timezone": "Europe/London"},
    )
    assert pause["action"] == "pause"
    assert pause["before"] == {"paused_at": None, "pause_reason": None}
    assert pause["after"]["pause_reason"] == "month-end"
    paused_at = datetime.fromisoformat(pause["after"]["paused_at"])
    assert paused_at.utcoffset() == timedelta(0)  # recorded in UTC, whatever the session's zone
    assert (resume["action"], resume["before"], resume["after"]) == (
        "resume",
        pause["after"],
        {"paused_at": None, "pause_reason": None},
    )
    assert (disable["action"], disable["after"]) == ("disable", {"enabled": False})


def test_schedules_show_lists_the_latest_changes_newest_first(
    database_url: str, engine: Engine, capsys: pytest.CaptureFixture[str], synced: Path
) -> None:
    cli(database_url, capsys, "schedules", "pause", "Weekday sales", "--reason", "month-end")
    shown = json.loads(cli(database_url, capsys, "schedules", "show", "Weekday sales", "--json"))
    assert [(e["actor"], e["action"]) for e in shown["history"]] == [
        (f"cli:{USER}", "pause"),
        (f"sync:{USER}", "create"),
    ]
    assert shown["history"][0]["changes"]["pause_reason"] == {"before": None, "after": "month-end"}
    text_lines = cli(database_url, capsys, "schedules", "show", "Weekday sales").splitlines()
    history_at = text_lines.index("history:")
    pause, create = text_lines[history_at + 1 :]
    assert f"cli:{USER}  pause" in pause
    assert 'pause_reason null -> "month-end"' in pause
    assert create.endswith(f"sync:{USER}  create")


def test_the_verbs_record_the_actor_their_face_names(engine: Engine, synced: Path) -> None:
    """The API's path: set_actor, then the verbs, in one transaction."""
    with engine.begin() as conn:
        set_actor(conn, "api:deploy-bot")
        workflow = catalog.update(conn, Kind.WORKFLOW, "sales daily", {"amc_workflow_id": "v2"})
    mark = last_id(engine)
    with engine.begin() as conn:  # the same value again: nothing changed, nothing recorded
        set_actor(conn, "api:deploy-bot")
        catalog.update(conn, Kind.WORKFLOW, "sales daily", {"amc_workflow_id": "v2"})
    assert rows_after(engine, mark) == []
    [update] = [row for row in audit_rows(engine, workflow) if row["action"] == "update"]
    assert what(update) == (
        "api:deploy-bot",
        "workflow",
        "update",
        {"amc_workflow_id": "sales-daily"},
        {"amc_workflow_id": "v2"},
    )
    # The actor is the transaction's own: the next transaction on the connection has none.
    with engine.begin() as conn:
        catalog.update(conn, Kind.WORKFLOW, "sales daily", {"amc_workflow_id": "v3"})
    assert audit_rows(engine, workflow)[-1]["actor"] == "daemon"  # our application_name


def test_a_manual_run_is_recorded_on_its_schedule(engine: Engine, synced: Path) -> None:
    sales = schedule_id(engine, "Weekday sales")
    with engine.begin() as conn:
        set_actor(conn, "api:ops")
        run_id = management.trigger(conn, "Weekday sales", T0, None, {"days": 7})
    [trigger] = [row for row in audit_rows(engine, sales) if row["action"] == "trigger"]
    assert what(trigger) == (
        "api:ops",
        "schedule",
        "trigger",
        None,
        {
            "run_id": str(run_id),
            "scheduled_for": "2026-03-01T09:00:00+00:00",
            "parameters_override": {"days": 7},
        },
    )


def test_a_deleted_schedule_keeps_its_history_by_its_whole_id(engine: Engine, synced: Path) -> None:
    sales = schedule_id(engine, "Weekday sales")
    with engine.begin() as conn:
        set_actor(conn, "api:ops")
        management.delete(conn, "Weekday sales", hard=False)
    with engine.begin() as conn:
        deleted, created = history.history(conn, Kind.SCHEDULE, str(sales))
        with pytest.raises(NotFoundError):
            history.history(conn, Kind.SCHEDULE, "Weekday sales")
        with pytest.raises(NotFoundError):  # an id nothing ever had
            history.history(conn, Kind.SCHEDULE, str(uuid.uuid4()))
    assert (deleted["actor"], deleted["action"]) == ("api:ops", "delete")
    # it was disabled already: only deleted_at changed
    [change] = deleted["changes"].values()
    assert set(deleted["changes"]) == {"deleted_at"}
    assert change["before"] is None
    assert change["after"] is not None
    assert created["action"] == "create"


def test_a_change_in_plain_sql_names_the_database_role(
    database_url: str, engine: Engine, synced: Path
) -> None:
    sales = schedule_id(engine, "Weekday sales")
    mark = last_id(engine)
    with psycopg.connect(libpq_url(database_url), application_name="psql") as conn:
        role = conn.execute("SELECT session_user").fetchone()
        conn.execute("SET TimeZone = 'Asia/Tokyo'")
        conn.execute(
            "UPDATE workflow_schedules SET max_catchup_runs = 3, updated_at = now() WHERE id = %s",
            (sales,),
        )
        # every column written, none changed
        conn.execute(
            "UPDATE workflow_schedules SET name = name, enabled = enabled, parameters = parameters"
        )
        conn.execute(
            "UPDATE workflow_schedules SET paused_at = '2026-03-01 18:00+09', pause_reason = 'x'"
        )
    update, pause = rows_after(engine, mark)
    assert role is not None
    assert what(update) == (
        f"sql:{role[0]}",
        "schedule",
        "update",
        {"max_catchup_runs": 10},
        {"max_catchup_runs": 3},
    )
    # in UTC, whatever the session's zone
    assert (pause["action"], pause["after"]["paused_at"]) == ("pause", "2026-03-01T09:00:00+00:00")


# The claim protocol's writes to schedules at the rate of the slots they claim.
HOT_WRITES = ("claim", "release_locks", "renew_locks", "take_over_locks")


def test_the_claims_hot_writes_set_no_column_that_fires_the_audit_trigger(engine: Engine) -> None:
    """Not merely no row: the trigger is not even called (its UPDATE OF names the columns)."""
    with engine.connect() as conn:
        audited = set(
            conn.execute(
                text(
                    """
                    SELECT a.attname
                      FROM pg_trigger t
                      JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = ANY(t.tgattr)
                     WHERE t.tgname = 'workflow_schedules_audit_update'
                    """
                )
            ).scalars()
        )
    assert {"name", "enabled", "paused_at", "deleted_at"} <= audited
    statements = parse_statements(files("scheduler_daemon.db").joinpath("claim.sql").read_text())
    for name in HOT_WRITES:
        statement = statements[name]
        assert statement.startswith("UPDATE workflow_schedules"), name
        assignments = re.split(r"\b(?:SET|FROM|WHERE)\b", statement)[1]
        written = set(re.findall(r"(?:^|,)\s*(\w+)\s*=", assignments))
        assert written, name
        assert not written & audited, name


def tick(scheduler: Scheduler) -> None:
    scheduler.tick()
    assert scheduler.wait_idle(20)


def test_the_daemons_claims_leave_no_row_and_its_own_decisions_are_the_daemons(
    engine: Engine, rows: Rows, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    good = rows.schedules(5, cron_expression="* * * * *", enabled=True, next_run_at=T0)
    mark = last_id(engine)
    scheduler = make_scheduler()
    for minute in range(3):  # claims, dispatches, outcomes, releases
        clock.set(T0 + timedelta(minutes=minute))
        tick(scheduler)
    with engine.connect() as conn:
        ran = conn.execute(
            text("SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'")
        ).scalar_one()
    assert ran == 3 * len(good)
    assert rows_after(engine, mark) == []

    failing = rows.schedule(cron_expression="* * * * *", enabled=True, next_run_at=T0)
    broken = rows.schedule(cron_expression="* * * * *", enabled=True, next_run_at=T0)
    with engine.begin() as conn:  # behind the CLI's validation
        conn.execute(
            text("UPDATE workflow_schedules SET timezone = 'Mars/Olympus' WHERE id = :id"),
            {"id": broken},
        )
    scheduler = make_scheduler(FailingExecutor(), worker_id="w2", max_consecutive_failures=2)
    for minute in range(3, 6):
        clock.set(T0 + timedelta(minutes=minute))
        tick(scheduler)
    [paused] = [row for row in audit_rows(engine, failing) if row["action"] == "pause"]
    assert paused["actor"] == "daemon"
    assert paused["after"]["pause_reason"].startswith("auto-paused after 2 consecutive failures")
    [quarantined] = [row for row in audit_rows(engine, broken) if row["action"] == "disable"]
    assert quarantined["actor"] == "daemon"
    assert quarantined["after"]["pause_reason"].startswith("quarantined: ")
    assert quarantined["after"]["enabled"] is False


def test_history_is_newest_first_and_pages_with_before(engine: Engine, rows: Rows) -> None:
    schedule = rows.schedule(name="paged")
    for reason in ("one", "two", "three", "four"):
        with engine.begin() as conn:
            set_actor(conn, "api:pager")
            management.pause(conn, "paged", T0 - timedelta(days=1), None, reason)
    with engine.begin() as conn:
        first = history.history(conn, Kind.SCHEDULE, "paged", limit=2)
        rest = history.history(conn, Kind.SCHEDULE, schedule, limit=2, before=first[-1]["id"])
        last = history.history(conn, Kind.SCHEDULE, schedule, limit=2, before=rest[-1]["id"])
        with pytest.raises(InputError):
            history.history(conn, Kind.RUN, str(uuid.uuid4()))
        with pytest.raises(InputError, match="limit: 0 is not"):
            history.history(conn, Kind.SCHEDULE, schedule, limit=0)
    reasons = [
        entry["changes"]["pause_reason"]["after"] if entry["action"] == "pause" else None
        for entry in first + rest + last
    ]
    assert reasons == ["four", "three", "two", "one", None]
    assert [entry["action"] for entry in last] == ["create"]
    ids = [entry["id"] for entry in first + rest + last]
    assert ids == sorted(ids, reverse=True)
    assert first[0]["changes"]["pause_reason"] == {"before": "three", "after": "four"}


def test_a_deleted_catalog_row_keeps_its_history(engine: Engine, rows: Rows) -> None:
    account = rows.account(name="gone")
    with engine.begin() as conn:
        set_actor(conn, "cli:someone")
        catalog.delete(conn, Kind.ACCOUNT, "gone")
    with engine.begin() as conn:
        deleted, created = history.history(conn, Kind.ACCOUNT, account)
    assert (deleted["actor"], deleted["action"]) == ("cli:someone", "delete")
    assert deleted["changes"]["name"] == {"before": "gone", "after": None}
    assert created["changes"]["name"] == {"before": None, "after": "gone"}
