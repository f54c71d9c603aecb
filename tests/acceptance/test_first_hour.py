"""An operator's first hour, as README tells it, on a fresh data directory: the demo, then a
deployment of one's own declared in one TOML file, run and inspected through the CLI alone
(no SQL), every object addressed by its name or the start of its id."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_cli import run_cli

DEPLOYMENT = """\
[[accounts]]
name = "Acme US"
account_id = "ENTITY1ACME0001"
marketplace_id = "ATVPDKIKX0DER"
region = "NA"

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
timezone = "America/New_York"

[[schedules]]
key = "spend-quarter-hour"
name = "Spend every quarter hour"
workflow = "sales daily"
cron = "@every 15m"
"""


JSON_DOC = Path(__file__).resolve().parents[2] / "docs" / "json.md"


def documented_fields(section: str) -> list[set[str]]:
    """The field names of each table in docs/json.md's ``## section``."""
    text = JSON_DOC.read_text().split(f"\n## {section}\n")[1].split("\n## ")[0]
    tables: list[set[str]] = []
    for block in re.split(r"\n\n+", text):
        names = re.findall(r"^\| `(\w+)` \|", block, re.MULTILINE)
        if names:
            tables.append(set(names))
    return tables


class Operator:
    def __init__(self, data_dir: Path) -> None:
        self.env = {"SCHEDULER_DATA_DIR": str(data_dir)}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, env=self.env, timeout=180)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture
def operator(tmp_path: Path) -> Operator:
    return Operator(tmp_path / "data")


def test_the_first_hour_needs_no_sql(operator: Operator, tmp_path: Path) -> None:
    # The demo runs, says how to stop it, and leaves what it did to look at.
    demo = operator.ok("demo", "--seconds", "3")
    assert "Ctrl-C stops the demo" in demo
    assert {s["name"] for s in operator.json("schedules", "list")} >= {"demo: every minute"}

    # One file declares the account, instance, workflow and two schedules.
    deployment = tmp_path / "deployment.toml"
    deployment.write_text(DEPLOYMENT)
    planned = operator.ok("sync", str(deployment), "--dry-run")
    assert "+ create workflow 'sales daily'" in planned
    assert "+ create spend-quarter-hour: '@every 15m' in UTC" in planned
    assert operator.json("workflows", "list") == [
        w for w in operator.json("workflows", "list") if w["name"].startswith("demo: ")
    ], "a dry run changed nothing"
    operator.ok("sync", str(deployment))
    assert "= 2 unchanged" in operator.ok("sync", str(deployment))

    workflow = operator.json("workflows", "show", "sales daily")
    assert (workflow["instance_name"], workflow["amc_workflow_id"]) == ("acme-us", "sales-daily")
    assert operator.json("instances", "show", "amc1acme0a1")["account_name"] == "Acme US"

    preview = operator.json("preview", "0 9 * * MON-FRI", "--tz", "America/New_York")
    assert preview["fires"][0]["local"].endswith(("T09:00:00-05:00", "T09:00:00-04:00"))

    # Names and id prefixes work wherever an id goes.
    operator.ok("schedules", "enable", "Weekday sales")
    quarter = operator.json("schedules", "show", "Spend every quarter hour")
    operator.ok("schedules", "enable", quarter["id"][:8])
    listed = {s["name"]: s for s in operator.json("schedules", "list", "--workflow", "sales daily")}
    assert {name: s["state"] for name, s in listed.items()} == {
        "Weekday sales": "scheduled",
        "Spend every quarter hour": "scheduled",
    }
    weekday = listed["Weekday sales"]
    assert weekday["next_run_local"].endswith(("-05:00", "-04:00"))  # New York's wall clock
    assert weekday["spec"] == "0 9 * * MON-FRI"

    # A run now, carried out by one tick of the daemon, shows in the history.
    run = operator.json("schedules", "trigger", "Weekday sales")
    assert run["status"] == "pending"
    operator.ok("run", "--once")
    [done] = operator.json("runs", "list", "--schedule", "Weekday sales")
    assert (done["id"], done["status"], done["trigger"]) == (run["id"], "succeeded", "manual")
    assert operator.json("runs", "show", run["id"][:8])["id"] == run["id"]

    paused = operator.json("schedules", "pause", "Weekday sales", "--reason", "month-end")
    assert (paused["state"], paused["pause_reason"]) == ("paused", "month-end")
    assert operator.json("schedules", "resume", "Weekday sales")["state"] == "scheduled"

    # Each object has the one shape docs/json.md documents, whichever command prints it.
    [schedule_fields, show_fields, statistics_fields] = documented_fields("schedule")
    assert set(paused) == set(weekday) == schedule_fields
    shown = operator.json("schedules", "show", "Weekday sales")
    assert set(shown) == schedule_fields | show_fields
    assert set(shown["statistics"]) == statistics_fields
    [run_fields] = documented_fields("run")
    assert set(run) == set(done) == set(shown["recent_runs"][0]) == run_fields
    check_catalog_and_workers(operator)
    check_history_and_tokens(operator, shown)
    [deleted_fields] = documented_fields("deleted")
    assert set(operator.json("schedules", "delete", quarter["id"])) == deleted_fields

    health = operator.run("health")
    assert health.returncode in (0, 1), health.stderr
    assert health.stdout.strip()


def check_catalog_and_workers(operator: Operator) -> None:
    """The catalog's rows and the workers have the shapes docs/json.md documents."""
    for kind in ("account", "instance", "workflow"):
        [fields] = documented_fields(kind)
        listed_rows = operator.json(f"{kind}s", "list")
        assert all(set(row) == fields for row in listed_rows), kind
    [worker_fields] = documented_fields("worker")
    assert all(set(worker) == worker_fields for worker in operator.json("workers"))


def check_history_and_tokens(operator: Operator, shown: dict[str, Any]) -> None:
    """A schedule's history and the tokens have the shapes docs/json.md documents."""
    [history_fields] = documented_fields("history entry")
    assert [entry["action"] for entry in shown["history"]][:3] == ["resume", "pause", "trigger"]
    assert all(set(entry) == history_fields for entry in shown["history"])
    [token_fields, create_fields] = documented_fields("token")
    token = operator.json("tokens", "create", "--name", "dashboard", "--role", "read")
    assert set(token) == token_fields | create_fields
    assert all(set(row) == token_fields for row in operator.json("tokens", "list"))
    assert set(operator.json("tokens", "revoke", "dashboard")) == token_fields


def test_names_are_unique_and_references_say_what_they_could_mean(
    operator: Operator, tmp_path: Path
) -> None:
    deployment = tmp_path / "deployment.toml"
    deployment.write_text(DEPLOYMENT)
    operator.ok("sync", str(deployment))

    taken = operator.run(
        "workflows", "create", "--name", "sales daily", "--instance", "acme-us",
        "--amc-workflow-id", "other",
    )  # fmt: skip
    assert taken.returncode == 2
    assert "--name: another workflow already has the name 'sales daily'" in taken.stderr

    unknown = operator.run("schedules", "show", "nightly")
    assert unknown.returncode == 2
    assert "no schedule is named 'nightly'" in unknown.stderr

    in_use = operator.run("workflows", "delete", "sales daily")
    assert in_use.returncode == 2
    assert "still used by 2 schedule(s)" in in_use.stderr
    assert operator.json("workflows", "show", "sales daily")["schedules"] == 2
