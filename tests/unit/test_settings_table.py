"""One table of settings (config.SETTINGS): every field of Settings has a row, and every row is
a ``run`` option (or a root option), a variable and a line of the environment file, shown in
``run --help`` and docs/config.md with the table's default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scheduler_daemon.amc.settings import AmcSettings
from scheduler_daemon.cli import cli
from scheduler_daemon.cli import run as run_module
from scheduler_daemon.cli import serve as serve_module
from scheduler_daemon.cli.common import CliState
from scheduler_daemon.config import (
    SETTINGS,
    Environment,
    Setting,
    Settings,
    load_configuration,
    run_settings,
    settings_markdown,
    show_value,
)

ROOT = Path(__file__).resolve().parents[2]
# Settings fields that are not rows: the AMC executor's (its rows are named amc_*) and its
# credentials (SCHEDULER_AMC_CLIENT_ID and friends, read by amc.credentials, never options).
NOT_ROWS = {"amc", "amc_credentials"}
CREDENTIALS = {
    "SCHEDULER_AMC_CLIENT_ID": "amzn1.application-oa2-client.test",
    "SCHEDULER_AMC_CLIENT_SECRET": "secret-value",
    "SCHEDULER_AMC_REFRESH_TOKEN": "Atzr|refresh-value",
}
# A valid value unlike the default, for each kind of value a setting takes (by metavar).
SAMPLES = {
    "SECONDS": "7.5",
    "INTEGER": "3",
    "PORT": "9123",
    "DAYS": "12",
    "HOURS": "5",
    "URL": "http://127.0.0.1:9/amc",
    "ADDRESS": "10.1.2.3",
    "ID": "worker-7",
    "ORIGINS": "https://app.example.com,http://localhost:3000",
    "BYTES": "4096",
}
SPECIAL_SAMPLES = {
    "database_url": "postgresql://someone@db.invalid/scheduler",
    "worker_dead_after": "45",  # must exceed the heartbeat interval (7.5 here)
}


def sample(setting: Setting, tmp_path: Path) -> str:
    if setting.name in SPECIAL_SAMPLES:
        return SPECIAL_SAMPLES[setting.name]
    if setting.metavar == "DIR":
        return str(tmp_path / "data")
    if setting.choices:
        return next(c for c in setting.choices if c != setting.shown_default)
    assert setting.metavar in SAMPLES, f"add a sample value for {setting.metavar} ({setting.name})"
    return SAMPLES[setting.metavar]


def value_of(settings: Settings, setting: Setting) -> Any:
    if setting.amc_field is not None:
        return getattr(settings.amc, setting.amc_field)
    return getattr(settings, setting.name)


def test_every_field_of_settings_is_a_row() -> None:
    """Add a field to Settings and this fails until SETTINGS has its row."""
    fields = {f.name for f in dataclasses.fields(Settings)} - NOT_ROWS
    rows = {s.name for s in SETTINGS if s.amc_field is None}
    assert fields == rows
    amc_fields = {f.name for f in dataclasses.fields(AmcSettings)}
    for setting in SETTINGS:
        if setting.amc_field is not None:
            assert setting.name.startswith("amc_")
            assert setting.amc_field in amc_fields
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)


def test_the_table_defaults_are_the_settings_defaults() -> None:
    """A row's default is what Settings (or AmcSettings) holds when nothing is set; a row that
    describes its default instead has none of its own (a computed one, or unset)."""
    built = load_configuration({}, Environment({}))
    assert set(built.sources) == {s.name for s in SETTINGS}
    assert all(source.kind == "default" for source in built.sources.values())
    for setting in SETTINGS:
        if setting.default_text is None:
            assert value_of(Settings(), setting) == setting.default, setting.name
            assert value_of(built.settings, setting) == setting.default, setting.name
        else:
            assert setting.default is None, setting.name
    assert Settings().amc == AmcSettings()


def test_run_has_one_option_per_daemon_setting() -> None:
    options = {param.name: param for param in run_module.run_command.params if param.name != "once"}
    assert set(options) == {s.name for s in run_settings()}
    for setting in run_settings():
        assert options[setting.name].opts == [setting.option]
        assert options[setting.name].metavar == setting.metavar
    root = {param.name: param.opts for param in cli.params}
    for setting in SETTINGS:
        if setting.scope == "root":
            assert root[setting.name] == [setting.option]


def test_run_help_shows_what_each_setting_takes_its_variable_and_default() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    for setting in run_settings():
        assert f"{setting.option} {setting.metavar} " in flat
        assert f"[env: {setting.env_var}; default: {setting.shown_default}]" in flat
        assert " ".join(setting.option_help().split()) in flat


def test_defaults_are_shown_as_operators_write_them() -> None:
    shown = {s.name: s.shown_default for s in SETTINGS}
    assert shown["poll_interval"] == "60"
    assert shown["noop_delay"] == "0"
    assert shown["session_liveness"] == "on"
    assert shown["executor"] == "noop"
    assert shown["amc_max_in_flight"] == "10"
    assert shown["worker_dead_after"] == "3 × heartbeat interval"
    assert show_value(None) == "unset"
    executor = next(s for s in SETTINGS if s.name == "executor")
    assert executor.metavar == "noop|amc"


@pytest.mark.parametrize("command", ["run", "serve"])
@pytest.mark.parametrize("how", ["option", "variable", "env file"])
def test_every_setting_reaches_the_daemon(
    how: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each row of a command (``run``'s, ``serve``'s, and the root's), given as an option, a
    variable or a line of the environment file, is what the command builds its settings with
    (caught where it first uses them)."""
    captured: list[Settings] = []

    class CapturedError(Exception):
        pass

    def capture(*_: object, **__: object) -> None:
        raise CapturedError

    original = CliState.settings

    def settings(self: CliState, **options: object) -> Settings:
        captured.append(original(self, **options))
        return captured[-1]

    # What each command does first once its settings are built.
    if command == "run":
        monkeypatch.setattr(run_module, "configure_logging", capture)
    else:
        monkeypatch.setattr(serve_module, "open_database", capture)
    monkeypatch.setattr(CliState, "settings", settings)
    env_file = tmp_path / "scheduler-daemon.env"
    env = {"SCHEDULER_ENV_FILE": str(env_file), **CREDENTIALS}
    values = {
        setting: sample(setting, tmp_path)
        for setting in SETTINGS
        if setting.scope in {"root", command}
    }
    root: list[str] = []
    run: list[str] = []
    lines: list[str] = []
    for setting, raw in values.items():
        if how == "option":
            (root if setting.scope == "root" else run).extend([setting.option, raw])
        elif how == "variable":
            env[setting.env_var] = raw
        else:
            lines.append(f"{setting.env_var}='{raw}'")
    env_file.write_text("\n".join(lines) + "\n")

    result = CliRunner(env=env).invoke(cli, [*root, command, *run])

    assert isinstance(result.exception, CapturedError), result.output
    (settings_built,) = captured
    for setting, raw in values.items():
        assert value_of(settings_built, setting) == setting.parse(raw), setting.name
        assert value_of(settings_built, setting) != setting.default, setting.name


def test_docs_config_md_has_the_table() -> None:
    """docs/config.md's table is settings_markdown(); paste its output between the markers."""
    text = (ROOT / "docs" / "config.md").read_text()
    found = re.search(
        r"<!-- settings table: begin[^>]*-->\n(.*?)<!-- settings table: end -->", text, re.DOTALL
    )
    assert found is not None, "docs/config.md has lost its settings table markers"
    assert found.group(1) == settings_markdown(), (
        "docs/config.md's settings table is out of date; replace it with:\n" + settings_markdown()
    )
