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
        "+ create often: '@every 900s' in UTC ('Every quarter hour')",
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
        (('cron = "30 2 * * *"', 'cron = "30 25 * * *"'), ["line 1 (schedule 1)", "hour", "25"]),
        (('cron = "{often_cron}"', 'cron = "0 0 31 2 *"'), ["line 10 (schedule 2)", "never fire"]),
        (
            (
                'workflow = "sales"\ncron = "{often_cron}"',
                'workflow = "nope"\ncron = "{often_cron}"',
            ),
            ["line 10", "workflow 'nope'"],
        ),
        (
            ('misfire_policy = "run_once"', 'misfire_policy = "sometimes"'),
            ["line 10", "misfire_policy 'sometimes'"],
        ),
        (
            ('key = "often"', 'key = "nightly"'),
            ["line 10", "key 'nightly' is already used at line 1"],
        ),
        (
            ('misfire_policy = "run_once"', 'colour = "blue"'),
            ["line 10", "unknown key(s) ['colour']"],
        ),
        (
            ('timezone = "America/New_York"', 'timezone = "America/NewYork"'),
            ["line 1", "America/NewYork", "America/New_York"],
        ),
        (('[[schedules]]\nkey = "often"', '[[schedules]\nkey = "often"'), ["not valid TOML"]),
    ],
)
def test_one_bad_entry_rejects_the_whole_file(
    engine: Engine, database_url: str, config: Path, replace: tuple[str, str], fragments: list[str]
) -> None:
    config.write_text(FILE.replace(*replace).format(often_cron="@every 15m"))
    result = run_cli("sync", str(config), env={"SCHEDULER_DATABASE_URL": database_url})
    assert_one_line_error(result, *fragments)
    assert schedules(engine) == {}


def test_a_missing_file_is_one_line(database_url: str, tmp_path: Path) -> None:
    result = run_cli(
        "sync", str(tmp_path / "nope.toml"), env={"SCHEDULER_DATABASE_URL": database_url}
    )
    assert_one_line_error(result, "nope.toml", "cannot read")
