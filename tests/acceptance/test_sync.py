"""`sync FILE`: config as code, validated as a whole, with an exact dry-run diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.acceptance.test_cli import assert_one_line_error, run_cli
from tests.helpers import Rows

FILE = """\
[[schedules]]
key = "nightly"
name = "Nightly sales"
workflow = "sales"
cron = "30 2 * * *"
timezone = "America/New_York"
enabled = true
parameters = {{ region = "NA" }}

[[schedules]]
key = "often"
name = "Every quarter hour"
workflow = "sales"
cron = "{often_cron}"
misfire_policy = "run_once"
"""


def schedules(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM workflow_schedules WHERE config_key IS NOT NULL")
        ).mappings()
        return {r["config_key"]: dict(r) for r in rows}


def sync(database_url: str, path: Path, *args: str) -> Any:
    result = run_cli("sync", str(path), *args, env={"SCHEDULER_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def config(tmp_path: Path, rows: Rows) -> Path:
    rows.workflow(name="sales")
    path = tmp_path / "schedules.toml"
    path.write_text(FILE.format(often_cron="@every 15m"))
    return path


def test_create_then_nothing_to_do(engine: Engine, database_url: str, config: Path) -> None:
    first = sync(database_url, config)
    assert first.stdout.splitlines() == [
        "+ create nightly: '30 2 * * *' in America/New_York ('Nightly sales')",
        "+ create often: '@every 15m' in UTC ('Every quarter hour')",
        "= 0 unchanged",
    ]
    created = schedules(engine)
    assert (created["nightly"]["enabled"], created["nightly"]["parameters"]) == (
        True,
        {"region": "NA"},
    )
    assert created["nightly"]["next_run_at"] is not None
    assert (
        created["often"]["enabled"],
        created["often"]["interval_seconds"],
        created["often"]["misfire_policy"],
    ) == (False, 900, "run_once")
    assert sync(database_url, config).stdout.splitlines() == ["= 2 unchanged"]


def test_dry_run_prints_the_exact_diff_and_changes_nothing(
    engine: Engine, database_url: str, config: Path
) -> None:
    sync(database_url, config)
    config.write_text(
        FILE.format(often_cron="*/10 * * * *").replace('region = "NA"', 'region = "EU"')
    )
    before = schedules(engine)
    dry = sync(database_url, config, "--dry-run", "--prune")
    assert dry.stdout.splitlines() == [
        '~ update nightly: parameters {"region": "NA"} -> {"region": "EU"}',
        '~ update often: cron_expression null -> "*/10 * * * *"; interval_seconds 900 -> null',
        "= 0 unchanged",
        "(dry run: nothing changed)",
    ]
    assert schedules(engine) == before
    as_json = json.loads(sync(database_url, config, "--dry-run", "--json").stdout)
    assert as_json["applied"] is False
    assert [u["key"] for u in as_json["update"]] == ["nightly", "often"]


def test_an_update_writes_the_definition_and_a_new_spec_restarts_enabled_ones(
    engine: Engine, database_url: str, config: Path
) -> None:
    sync(database_url, config)
    before = schedules(engine)
    config.write_text(
        FILE.format(often_cron="*/10 * * * *")
        .replace('region = "NA"', 'region = "EU"')
        .replace('misfire_policy = "run_once"', 'misfire_policy = "run_all"\nmax_catchup_runs = 3')
    )
    assert sync(database_url, config).stdout.splitlines()[-1] == "= 0 unchanged"
    after = schedules(engine)
    nightly, often = after["nightly"], after["often"]
    # Not the spec: the runtime state stays as it was.
    assert (nightly["parameters"], nightly["next_run_at"]) == (
        {"region": "EU"},
        before["nightly"]["next_run_at"],
    )
    assert nightly["updated_at"] > before["nightly"]["updated_at"]
    # A new spec on a disabled schedule leaves it unscheduled.
    assert (
        often["cron_expression"],
        often["interval_seconds"],
        often["misfire_policy"],
        often["max_catchup_runs"],
        often["next_run_at"],
    ) == ("*/10 * * * *", None, "run_all", 3, None)
    config.write_text(FILE.format(often_cron="*/10 * * * *").replace("30 2 * * *", "45 3 * * *"))
    sync(database_url, config)
    restarted = schedules(engine)["nightly"]
    assert restarted["next_run_at"] != nightly["next_run_at"]
    assert restarted["next_run_at"].minute == 45


def test_json_names_a_workflow_by_id_and_prints_times_as_iso_8601(
    database_url: str, rows: Rows, tmp_path: Path
) -> None:
    workflow = rows.workflow(name="sales")
    path = tmp_path / "schedules.toml"
    path.write_text(
        "[[schedules]]\n"
        'key = "anchored"\n'
        'name = "Anchored"\n'
        f'workflow = "{workflow}"\n'
        'cron = "@every 1h"\n'
        "anchor = 2026-01-01T00:30:00Z\n"
    )
    (created,) = json.loads(sync(database_url, path, "--dry-run", "--json").stdout)["create"]
    assert (created["workflow_id"], created["interval_anchor"]) == (
        str(workflow),
        "2026-01-01T00:30:00+00:00",
    )


def test_runtime_state_stays_in_the_database_and_prune_disables(
    engine: Engine, database_url: str, config: Path
) -> None:
    sync(database_url, config)
    with engine.begin() as conn:  # an operator enabled 'often' by hand: runtime state
        conn.execute(
            text(
                "UPDATE workflow_schedules SET enabled = true, next_run_at = now() WHERE config_key = 'often'"
            )
        )
    config.write_text(FILE.format(often_cron="@every 15m").split('[[schedules]]\nkey = "often"')[0])
    result = sync(database_url, config, "--prune")
    assert result.stdout.splitlines() == [
        "- disable often (no longer in the file)",
        "= 1 unchanged",
    ]
    after = schedules(engine)
    assert after["often"]["enabled"] is False
    assert after["nightly"]["enabled"] is True


@pytest.mark.parametrize(
    ("replace", "fragments"),
    [
        (
            ('cron = "30 2 * * *"', 'cron = "30 25 * * *"'),
            ["schedules.toml:5: cron: ", "hour", "25"],
        ),
        (
            ('cron = "{often_cron}"', 'cron = "0 0 31 2 *"'),
            ["schedules.toml:14: cron: ", "never fire"],
        ),
        (
            (
                'workflow = "sales"\ncron = "{often_cron}"',
                'workflow = "nope"\ncron = "{often_cron}"',
            ),
            ["schedules.toml:13: workflow: no workflow is named 'nope'"],
        ),
        (
            ('misfire_policy = "run_once"', 'misfire_policy = "sometimes"'),
            ["schedules.toml:15: misfire_policy: 'sometimes' is not one of skip, run_once"],
        ),
        (
            ('misfire_policy = "run_once"', "max_catchup_runs = 0"),
            ["schedules.toml:15: max_catchup_runs: 0 is not a whole number of at least 1"],
        ),
        (
            ('key = "often"', 'key = "nightly"'),
            ["schedules.toml:11: key: 'nightly' is already used at line 2"],
        ),
        (
            ('name = "Every quarter hour"', 'name = " "'),
            ["schedules.toml:12: name: ' ' is not a non-empty string"],
        ),
        (
            ('name = "Every quarter hour"\n', ""),
            ["schedules.toml:10: name: missing"],
        ),
        (
            ('misfire_policy = "run_once"', 'colour = "blue"'),
            ["schedules.toml:15: unknown key(s) ['colour']"],
        ),
        (
            ('timezone = "America/New_York"', 'timezone = "America/NewYork"'),
            ["schedules.toml:6: timezone: ", "America/NewYork", "America/New_York"],
        ),
        (
            ("enabled = true", 'enabled = "yes"'),
            ["schedules.toml:7: enabled: 'yes' is not true or false"],
        ),
        (
            ('[[schedules]]\nkey = "often"', '[[schedules]\nkey = "often"'),
            ["schedules.toml:10: not valid TOML"],
        ),
    ],
)
def test_one_bad_entry_rejects_the_whole_file(
    engine: Engine, database_url: str, config: Path, replace: tuple[str, str], fragments: list[str]
) -> None:
    config.write_text(FILE.replace(*replace).format(often_cron="@every 15m"))
    result = run_cli("sync", str(config), env={"SCHEDULER_DATABASE_URL": database_url})
    assert_one_line_error(result, str(config), *fragments)
    assert schedules(engine) == {}


def test_an_error_names_the_file_the_line_and_the_key_as_the_file_spells_it(
    engine: Engine, database_url: str, config: Path
) -> None:
    """The same mistake as ``schedules create --cron '30 2 * * *' --anchor ...``: the file
    is told about its key ``anchor`` on its line, never about the option ``--anchor``."""
    sync(database_url, config)
    before = schedules(engine)
    config.write_text(
        FILE.replace('cron = "30 2 * * *"', 'cron = "30 2 * * *"\n"anchor" = 2026-01-01T00:00:00Z')
        .replace('region = "NA"', 'region = "EU"')
        .format(often_cron="@every 15m")
    )
    result = run_cli("sync", str(config), env={"SCHEDULER_DATABASE_URL": database_url})
    assert_one_line_error(result)
    assert result.stderr.strip() == (
        f"scheduler-daemon: error: {config}:6: anchor: an anchor (2026-01-01T00:00:00+00:00) "
        "applies to '@every' intervals only, not to the cron expression '30 2 * * *'"
    )
    assert "--anchor" not in result.stderr
    assert schedules(engine) == before  # the valid change to 'nightly' was not applied either


def test_a_missing_file_is_one_line(database_url: str, tmp_path: Path) -> None:
    result = run_cli(
        "sync", str(tmp_path / "nope.toml"), env={"SCHEDULER_DATABASE_URL": database_url}
    )
    assert_one_line_error(result, "nope.toml", "cannot read")
