"""The schedule management CLI, run as a subprocess against a real database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from scheduler_daemon.db.tables import schedule_runs, workflow_schedules
from tests.acceptance.test_cli import assert_one_line_error, run_cli
from tests.helpers import Rows


class Cli:
    def __init__(self, database_url: str) -> None:
        self.env = {"SCHEDULER_DATABASE_URL": database_url}

    def ok(self, *args: str) -> Any:
        result = run_cli(*args, "--json", env=self.env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def text(self, *args: str) -> str:
        result = run_cli(*args, env=self.env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def fails(self, *args: str) -> str:
        result = run_cli(*args, env=self.env)
        assert_one_line_error(result)
        return result.stderr


@pytest.fixture
def cli(database_url: str) -> Cli:
    return Cli(database_url)


def snapshot(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return [
            conn.execute(text("SELECT * FROM workflow_schedules ORDER BY id")).all(),
            conn.execute(text("SELECT * FROM schedule_runs ORDER BY id")).all(),
        ]


def test_create_is_validated_and_disabled_by_default(cli: Cli, rows: Rows) -> None:
    workflow = str(rows.workflow())
    created = cli.ok(
        "schedules",
        "create",
        "--workflow",
        workflow,
        "--name",
        "nightly",
        "--cron",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--param",
        "days=7",
    )
    schedule = rows.get(workflow_schedules, uuid.UUID(created["id"]))
    assert created["enabled"] is False
    assert (schedule["enabled"], schedule["next_run_at"], schedule["cron_expression"]) == (
        False,
        None,
        "30 2 * * *",
    )
    assert schedule["parameters"] == {"days": 7}

    every = cli.ok(
        "schedules",
        "create",
        "--workflow",
        workflow,
        "--name",
        "often",
        "--cron",
        "@every 15m",
        "--enable",
    )
    interval = rows.get(workflow_schedules, uuid.UUID(every["id"]))
    assert (interval["interval_seconds"], interval["cron_expression"], interval["enabled"]) == (
        900,
        None,
        True,
    )
    assert interval["next_run_at"] is not None
    assert interval["next_run_at"].timestamp() % 900 == 0


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--cron", "61 * * * *"], ["--cron: ", "minute", "61"]),
        (["--cron", "0 0 31 2 *"], ["--cron: ", "'31'", "never fire"]),
        (
            ["--cron", "0 9 * * *", "--tz", "Europe/Londn"],
            ["--tz: ", "Europe/Londn", "Europe/London"],
        ),
        (["--cron", "@every 0s"], ["--cron: ", "@every 0s"]),
        (["--cron", "0 9 * * *", "--max-catchup", "0"], ["--max-catchup: 0 is not"]),
        (["--cron", "0 9 * * *", "--param", "novalue"], ["--param: 'novalue' is not"]),
        (
            ["--cron", "0 9 * * *", "--misfire-policy", "never"],
            ["--misfire-policy", "never"],
        ),
        (["--cron", "0 9 * * *", "--anchor", "yesterday"], ["--anchor", "yesterday"]),
        (
            ["--cron", "0 9 * * *", "--anchor", "2026-01-01T00:00:00Z"],
            ["--anchor: ", "2026-01-01T00:00:00+00:00", "'@every'", "'0 9 * * *'"],
        ),
        (["--name", " ", "--cron", "0 9 * * *"], ["--name: ", "a schedule needs a name"]),
    ],
)
def test_create_rejects_bad_input_and_changes_nothing(
    cli: Cli, rows: Rows, engine: Engine, args: list[str], fragments: list[str]
) -> None:
    workflow = str(rows.workflow())
    before = snapshot(engine)
    stderr = cli.fails("schedules", "create", "--workflow", workflow, "--name", "x", *args)
    for fragment in fragments:
        assert fragment in stderr
    assert snapshot(engine) == before


def test_create_needs_an_existing_workflow(cli: Cli) -> None:
    missing = str(uuid.uuid4())
    assert f"--workflow: no workflow has the id {missing}" in cli.fails(
        "schedules", "create", "--workflow", missing, "--name", "x", "--cron", "0 9 * * *"
    )


def test_list_filters_and_json(cli: Cli, rows: Rows) -> None:
    workflow = rows.workflow(name="reports")
    due = rows.schedule(
        workflow, name="late", enabled=True, next_run_at=datetime.now(UTC) - timedelta(hours=1)
    )
    paused = rows.schedule(
        name="held",
        enabled=True,
        next_run_at=datetime.now(UTC) + timedelta(hours=1),
        paused_at=datetime.now(UTC),
        pause_reason="x",
    )
    off = rows.schedule(name="off")
    everything = cli.ok("schedules", "list")
    assert {r["id"] for r in everything} == {str(due), str(paused), str(off)}
    assert {
        "id",
        "name",
        "spec",
        "timezone",
        "state",
        "next_run_at",
        "enabled",
    } <= everything[0].keys()
    assert [r["id"] for r in cli.ok("schedules", "list", "--overdue")] == [str(due)]
    assert [r["id"] for r in cli.ok("schedules", "list", "--paused")] == [str(paused)]
    assert [r["id"] for r in cli.ok("schedules", "list", "--disabled")] == [str(off)]
    assert [r["id"] for r in cli.ok("schedules", "list", "--workflow", "reports")] == [str(due)]
    table = cli.text("schedules", "list")
    assert table.splitlines()[0].split()[:3] == ["ID", "NAME", "WORKFLOW"]


def test_the_table_shows_no_next_run_for_a_disabled_schedule(cli: Cli, rows: Rows) -> None:
    at = datetime(2030, 1, 1, 9, tzinfo=UTC)
    rows.schedule(name="on", enabled=True, next_run_at=at)
    rows.schedule(name="off", enabled=False, next_run_at=at)
    lines = {line.split()[1]: line for line in cli.text("schedules", "list").splitlines()[1:]}
    assert "2030-01-01" in lines["on"]
    assert "2030-01-01" not in lines["off"]
    stored = {r["name"]: r for r in cli.ok("schedules", "list")}
    assert stored["off"]["next_run_local"] is not None  # --json keeps the stored value


def test_show(cli: Cli, rows: Rows) -> None:
    schedule_id = rows.schedule(
        cron_expression="0 9 * * *", enabled=True, next_run_at=datetime(2026, 3, 1, 9, tzinfo=UTC)
    )
    rows.run(
        schedule_id,
        scheduled_for=datetime(2026, 2, 28, 9, tzinfo=UTC),
        status="succeeded",
        started_at=datetime(2026, 2, 28, 9, tzinfo=UTC),
        finished_at=datetime(2026, 2, 28, 9, 0, 30, tzinfo=UTC),
    )
    rows.run(
        schedule_id,
        scheduled_for=datetime(2026, 2, 27, 9, tzinfo=UTC),
        status="failed",
        finished_at=datetime(2026, 2, 27, 9, 1, tzinfo=UTC),
    )
    shown = cli.ok("schedules", "show", str(schedule_id))
    assert shown["spec"] == "0 9 * * *"
    assert len(shown["next_fire_times"]) == 10
    assert shown["statistics"]["success_rate"] == 0.5
    assert shown["statistics"]["mean_duration_seconds"] == 30.0
    assert [r["status"] for r in shown["recent_runs"]] == ["succeeded", "failed"]
    assert "next_fire_times:" in cli.text("schedules", "show", str(schedule_id))


def test_an_auto_paused_schedule_shows_as_paused_with_its_reason(cli: Cli, rows: Rows) -> None:
    reason = "auto-paused after 5 consecutive failures; last error: Object 'x' not found"
    schedule_id = rows.schedule(  # as the daemon leaves it
        name="nightly",
        enabled=True,
        next_run_at=datetime.now(UTC) + timedelta(hours=1),
        paused_at=datetime.now(UTC),
        pause_reason=reason,
        consecutive_failures=5,
        last_error="Object 'x' not found",
    )
    rows.schedule(name="healthy", enabled=True, next_run_at=datetime.now(UTC) + timedelta(hours=2))

    shown = cli.ok("schedules", "show", str(schedule_id))
    assert (shown["state"], shown["pause_reason"]) == ("paused", reason)
    lines = cli.text("schedules", "show", str(schedule_id)).splitlines()
    assert any(line.split() == ["state", "paused"] for line in lines)
    assert any(line.split(None, 1) == ["pause_reason", reason] for line in lines)

    [listed] = cli.ok("schedules", "list", "--paused")
    assert (listed["id"], listed["state"], listed["pause_reason"]) == (
        str(schedule_id),
        "paused",
        reason,
    )
    table = cli.text("schedules", "list").splitlines()
    assert table[0].split()[-1] == "PAUSE_REASON"
    [row] = [line for line in table if line.startswith(schedule_id.hex[:8])]
    assert " paused " in row
    assert row.endswith(reason)


def test_update_recomputes_the_next_slot_when_the_spec_changes(cli: Cli, rows: Rows) -> None:
    schedule_id = rows.schedule(
        cron_expression="0 9 * * *", enabled=True, next_run_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    cli.ok(
        "schedules",
        "update",
        str(schedule_id),
        "--cron",
        "*/5 * * * *",
        "--overlap-policy",
        "allow",
        "--name",
        "renamed",
    )
    schedule = rows.get(workflow_schedules, schedule_id)
    assert (schedule["cron_expression"], schedule["overlap_policy"], schedule["name"]) == (
        "*/5 * * * *",
        "allow",
        "renamed",
    )
    assert datetime.now(UTC) < schedule["next_run_at"] <= datetime.now(UTC) + timedelta(minutes=5)


def test_update_keeps_an_interval_anchor_until_the_spec_becomes_a_cron(
    cli: Cli, rows: Rows
) -> None:
    anchor = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    schedule_id = rows.schedule(interval_seconds=3600, interval_anchor=anchor)
    cli.ok("schedules", "update", str(schedule_id), "--tz", "Europe/Paris")
    schedule = rows.get(workflow_schedules, schedule_id)
    assert (schedule["interval_seconds"], schedule["interval_anchor"], schedule["timezone"]) == (
        3600,
        anchor,
        "Europe/Paris",
    )
    # The stored anchor belongs to the interval: a new cron expression drops it, and the
    # operator who gave no --anchor is not told off about one.
    cli.ok("schedules", "update", str(schedule_id), "--cron", "0 9 * * *")
    schedule = rows.get(workflow_schedules, schedule_id)
    assert (schedule["cron_expression"], schedule["interval_anchor"]) == ("0 9 * * *", None)


def test_update_with_nothing_or_bad_values_changes_nothing(
    cli: Cli, rows: Rows, engine: Engine
) -> None:
    schedule_id = str(rows.schedule())
    before = snapshot(engine)
    assert "nothing to update" in cli.fails("schedules", "update", schedule_id)
    assert "--tz: unknown time zone 'Mars/Base'" in cli.fails(
        "schedules", "update", schedule_id, "--tz", "Mars/Base"
    )
    assert "--misfire-grace: -1 is not a whole number of at least 0" in cli.fails(
        "schedules", "update", schedule_id, "--misfire-grace", "-1"
    )
    missing = uuid.uuid4()
    assert f"no schedule has the id {missing}" in cli.fails(
        "schedules", "update", str(missing), "--name", "x"
    )
    assert snapshot(engine) == before


def test_enable_disable_from_now_and_lifts_quarantine(cli: Cli, rows: Rows) -> None:
    schedule_id = rows.schedule(
        cron_expression="* * * * *",
        enabled=False,
        paused_at=datetime.now(UTC),
        pause_reason="quarantined: bad zone",
    )
    cli.ok("schedules", "enable", str(schedule_id))
    schedule = rows.get(workflow_schedules, schedule_id)
    assert (schedule["enabled"], schedule["paused_at"], schedule["pause_reason"]) == (
        True,
        None,
        None,
    )
    assert datetime.now(UTC) < schedule["next_run_at"] <= datetime.now(UTC) + timedelta(minutes=1)
    cli.ok("schedules", "disable", str(schedule_id))
    assert rows.get(workflow_schedules, schedule_id)["enabled"] is False


def test_enable_refuses_a_spec_that_cannot_fire(cli: Cli, rows: Rows, engine: Engine) -> None:
    schedule_id = rows.schedule(cron_expression="0 0 30 2 *")
    before = snapshot(engine)
    assert "cannot be enabled" in cli.fails("schedules", "enable", str(schedule_id))
    assert snapshot(engine) == before


def test_pause_until_and_resume(cli: Cli, rows: Rows) -> None:
    schedule_id = rows.schedule(
        cron_expression="0 * * * *", enabled=True, next_run_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    cli.ok(
        "schedules",
        "pause",
        str(schedule_id),
        "--until",
        until.isoformat(),
        "--reason",
        "quarterly close",
    )
    schedule = rows.get(workflow_schedules, schedule_id)
    assert (schedule["paused_until"], schedule["pause_reason"]) == (until, "quarterly close")
    assert "--until: 2001-01-01T00:00:00+00:00 is not in the future" in cli.fails(
        "schedules", "pause", str(schedule_id), "--until", "2001-01-01T00:00Z"
    )
    resumed = cli.ok("schedules", "resume", str(schedule_id))
    schedule = rows.get(workflow_schedules, schedule_id)
    assert schedule["paused_at"] is None
    assert schedule["next_run_at"].isoformat() == resumed["next_run_at"]
    assert schedule["next_run_at"] > datetime.now(UTC)
    # Like enabling an enabled schedule: resuming one that is not paused changes nothing.
    assert cli.ok("schedules", "resume", str(schedule_id))["next_run_at"] == resumed["next_run_at"]
    assert rows.get(workflow_schedules, schedule_id) == schedule


def test_trigger_queues_a_manual_run_and_leaves_next_run_at(cli: Cli, rows: Rows) -> None:
    next_run_at = datetime(2030, 1, 1, tzinfo=UTC)
    schedule_id = rows.schedule(enabled=True, next_run_at=next_run_at)
    now_run = cli.ok(
        "schedules", "trigger", str(schedule_id), "--param", "days=3", "--param", "label=adhoc"
    )
    later = cli.ok("schedules", "trigger", str(schedule_id), "--at", "2031-05-01T09:00:00+02:00")
    first = rows.get(schedule_runs, uuid.UUID(now_run["id"]))
    second = rows.get(schedule_runs, uuid.UUID(later["id"]))
    assert (first["trigger"], first["status"], first["parameters_override"]) == (
        "manual",
        "pending",
        {"days": 3, "label": "adhoc"},
    )
    assert second["scheduled_for"] == datetime(2031, 5, 1, 7, tzinfo=UTC)
    assert rows.get(workflow_schedules, schedule_id)["next_run_at"] == next_run_at


def test_delete_soft_and_hard(cli: Cli, rows: Rows, engine: Engine) -> None:
    soft = rows.schedule()
    rows.run(soft, scheduled_for=datetime(2026, 1, 1, tzinfo=UTC), status="succeeded")
    cli.ok("schedules", "delete", str(soft))
    assert rows.get(workflow_schedules, soft)["deleted_at"] is not None
    assert cli.ok("schedules", "list") == []
    hard = rows.schedule()
    rows.run(hard, scheduled_for=datetime(2026, 1, 1, tzinfo=UTC), status="succeeded")
    refused = run_cli(
        "schedules", "delete", str(hard), "--hard", env=cli.env
    )  # no tty: the prompt aborts
    assert refused.returncode == 1
    cli.ok("schedules", "delete", str(hard), "--hard", "--yes")
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM workflow_schedules WHERE id = :id"), {"id": hard}
            ).scalar_one()
            == 0
        )
        assert (
            conn.execute(
                text("SELECT count(*) FROM schedule_runs WHERE schedule_id = :id"), {"id": hard}
            ).scalar_one()
            == 0
        )


def test_runs_list_show_and_prune(cli: Cli, rows: Rows) -> None:
    schedule_id = rows.schedule()
    old = rows.run(
        schedule_id,
        scheduled_for=datetime(2020, 1, 1, tzinfo=UTC),
        status="succeeded",
        finished_at=datetime(2020, 1, 1, tzinfo=UTC),
    )
    failed = rows.run(
        schedule_id,
        scheduled_for=datetime.now(UTC),
        status="failed",
        finished_at=datetime.now(UTC),
        error_message="AMC said no",
        request={"workflowId": "wf"},
    )
    assert [r["id"] for r in cli.ok("runs", "list", "--schedule", str(schedule_id))] == [
        str(failed),
        str(old),
    ]
    assert [r["id"] for r in cli.ok("runs", "list", "--status", "failed")] == [str(failed)]
    assert [r["id"] for r in cli.ok("runs", "list", "--since", "2025-01-01T00:00Z")] == [
        str(failed)
    ]
    assert cli.ok("runs", "list", "--trigger", "manual") == []
    shown = cli.ok("runs", "show", str(failed))
    assert (shown["error"], shown["request"]) == ("AMC said no", {"workflowId": "wf"})
    assert cli.ok("runs", "prune", "--older-than", "90") == {"deleted": 1}
    assert [r["id"] for r in cli.ok("runs", "list")] == [str(failed)]
    assert "'lost'" in cli.fails("runs", "list", "--status", "lost")


def test_runs_resolve_settles_an_unresolved_run(cli: Cli, rows: Rows, engine: Engine) -> None:
    """The operator looked in AMC: a run takes the execution found to be its own, or is
    recorded as having none and, if asked, its slot is queued again as a manual run."""
    schedule_id = rows.schedule()
    slot = datetime(2026, 3, 1, 9, tzinfo=UTC)
    unresolved = {
        "status": "unresolved",
        "finished_at": slot,
        "error_message": "2 execution(s) (a, b) match this run's request",
        "request": {"workflowId": "wf"},
    }
    found = rows.run(schedule_id, scheduled_for=slot, **unresolved)
    none = rows.run(schedule_id, scheduled_for=slot + timedelta(hours=1), **unresolved)
    assert [r["id"] for r in cli.ok("runs", "list", "--status", "unresolved")] == [
        str(none),
        str(found),
    ]
    assert cli.ok("runs", "resolve", str(found), "--execution", "a")["status"] == "dispatched"
    shown = cli.ok("runs", "show", str(found))
    assert (shown["status"], shown["amc_execution_id"], shown["finished_at"]) == (
        "dispatched",
        "a",
        None,
    )
    assert shown["execution_status"] == "pending"  # the status sync follows it from here
    assert "it was unresolved: 2 execution(s)" in shown["error"]

    before = snapshot(engine)
    assert "already the execution of run" in cli.fails(
        "runs", "resolve", str(none), "--execution", "a"
    )
    assert "exactly one of" in cli.fails("runs", "resolve", str(none))
    assert "not unresolved" in cli.fails("runs", "resolve", str(found), "--no-execution")
    assert snapshot(engine) == before

    settled = cli.ok("runs", "resolve", str(none), "--no-execution", "--rerun")
    assert settled["status"] == "failed"
    rerun = cli.ok("runs", "show", settled["rerun_id"])
    assert (rerun["trigger"], rerun["status"]) == ("manual", "pending")
    assert rerun["scheduled_for"] == (slot + timedelta(hours=1)).isoformat()


def test_workers(cli: Cli, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler_workers (worker_id, hostname, pid, version, clock_skew_seconds) VALUES ('a', 'h', 1, 'v', 0.25)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO scheduler_workers (worker_id, hostname, pid, version, heartbeat_at) VALUES ('b', 'h', 2, 'v', now() - interval '1 hour')"
            )
        )
    workers = cli.ok("workers")
    assert [(w["worker_id"], w["state"], w["clock_skew_seconds"]) for w in workers] == [
        ("a", "live", 0.25),
        ("b", "dead", None),
    ]
    assert "WORKER_ID" in cli.text("workers")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["schedules", "show", "42"], "no schedule is named '42'"),
        (["schedules", "delete", "00000000-0000-0000-0000-000000000000"], "no schedule has the id"),
        (["schedules", "enable", "00000000-0000-0000-0000-000000000000"], "no schedule has the id"),
        (["schedules", "pause", "{id}", "--until", "tomorrow"], "--until"),
        (["schedules", "trigger", "{id}", "--at", "2026-13-01T00:00Z"], "--at"),
        (
            ["schedules", "trigger", "00000000-0000-0000-0000-000000000000"],
            "no schedule has the id 00000000-0000-0000-0000-000000000000 (or it was deleted)",
        ),
        (["schedules", "trigger", "{id}", "--param", "=1"], "--param: '=1' is not KEY=VALUE"),
        (["schedules", "list", "--workflow"], "--workflow"),
        (["runs", "show", "not-a-run"], "'not-a-run' is not a run id"),
        (["runs", "show", "00000000-0000-0000-0000-000000000000"], "no run has the id"),
        (["runs", "list", "--since", "last week"], "--since"),
        (["runs", "prune", "--older-than", "0"], "--older-than"),
        (["workers", "--bogus"], "--bogus"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    cli: Cli, rows: Rows, engine: Engine, args: list[str], fragment: str
) -> None:
    schedule_id = rows.schedule(enabled=True, next_run_at=datetime(2030, 1, 1, tzinfo=UTC))
    before = snapshot(engine)
    stderr = cli.fails(*[a.replace("{id}", str(schedule_id)) for a in args])
    assert fragment in stderr
    assert snapshot(engine) == before


def test_the_catalog_from_the_shell(cli: Cli, engine: Engine) -> None:
    account = cli.ok("accounts", "create", "--name", "Acme", "--account-id", "ENTITY1ACME0001")
    instance = cli.ok(
        "instances", "create", "--name", "acme-us", "--instance-id", "amc1acme0a1",
        "--account", account["id"][:8],
    )  # fmt: skip
    workflow = cli.ok(
        "workflows", "create", "--name", "sales", "--instance", "acme-us",
        "--amc-workflow-id", "sales-daily", "--param", "region=NA",
    )  # fmt: skip
    assert (instance["account_name"], workflow["instance_name"], workflow["parameters"]) == (
        "Acme",
        "acme-us",
        {"region": "NA"},
    )
    renamed = cli.ok("workflows", "update", workflow["id"], "--name", "sales daily")
    assert renamed["name"] == "sales daily"
    cli.ok("schedules", "create", "--workflow", "sales daily", "--name", "s", "--cron", "@daily")
    assert [w["name"] for w in cli.ok("workflows", "list")] == ["sales daily"]
    assert "sales daily" in cli.text("workflows", "list")

    before = snapshot(engine)
    assert "--account-id: '1234' is not an AMC account" in cli.fails(
        "accounts", "update", "Acme", "--account-id", "1234"
    )
    assert "--instance: no instance is named 'nope'" in cli.fails(
        "workflows", "update", "sales daily", "--instance", "nope"
    )
    assert "still used by 1 schedule(s): 's'" in cli.fails("workflows", "delete", "sales daily")
    assert snapshot(engine) == before
    cli.ok("schedules", "delete", "s", "--hard", "--yes")
    assert cli.ok("workflows", "delete", "sales daily")["deleted"] is True
