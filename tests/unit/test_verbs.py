"""The verbs (management, catalog, references, sync, health, demo): no SQL of their own, and errors that name a
field as the domain names it, which each face then spells its own way. No database needed."""

from __future__ import annotations

import ast
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import TextClause

from scheduler_daemon import management, sync
from scheduler_daemon.cli.common import FIELD_OPTIONS, field_message
from scheduler_daemon.db.tables import workflow_schedules
from scheduler_daemon.errors import FieldError, InputError, SchedulerError

PACKAGE = Path(__file__).resolve().parents[2] / "scheduler_daemon"
VERBS = ["management.py", "catalog.py", "references.py", "sync.py", "health.py", "demo.py"]
SQL_BUILDERS = {"text", "select", "insert", "update", "delete", "case", "func"}
# A statement on the database's own tables (an AMC workflow's query, ``SELECT 1``, is data).
SQL_STRING = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|DROP|ALTER)\b.*\b(FROM|INTO|SET|DATABASE|TABLE)\b",
    re.DOTALL,
)


def _imports(tree: ast.Module) -> set[str]:
    """Every module and every ``module.name`` the code imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("name", VERBS)
def test_a_verb_holds_no_sql(name: str) -> None:
    """Its statements are in scheduler_daemon.db, where a reader finds them whole."""
    tree = ast.parse((PACKAGE / name).read_text())
    builders = {
        imported
        for imported in _imports(tree)
        if imported.split(".")[0] == "psycopg"
        or (imported.startswith("sqlalchemy") and imported.rsplit(".", 1)[-1] in SQL_BUILDERS)
    }
    statements = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and SQL_STRING.match(node.value)
    ]
    assert (builders, statements) == (set(), [])


def test_the_db_modules_name_their_statements() -> None:
    from scheduler_daemon.db import catalog, health, runs, schedules

    for module in (catalog, health, runs, schedules):
        assert any(isinstance(value, TextClause) for value in vars(module).values()), module


def _as_sql(value: object) -> str:
    if isinstance(value, dict):
        return f"'{json.dumps(value)}'::jsonb"
    return f"'{value}'" if isinstance(value, str) else str(value)


def test_new_schedules_default_as_the_table_does() -> None:
    server_defaults = {
        column: str(getattr(workflow_schedules.c[column].server_default, "arg", None))
        for column in management.DEFINITION_DEFAULTS
    }
    assert server_defaults == {
        column: _as_sql(value) for column, value in management.DEFINITION_DEFAULTS.items()
    }


def _wrong(call: object) -> FieldError:
    assert callable(call)
    with pytest.raises(FieldError) as caught:
        call()
    return caught.value


ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
WORKFLOWS = management.Workflows(frozenset(), {"sales": uuid.uuid4()})
MISTAKES = {
    "cron": lambda: management.spec_columns("61 * * * *", "UTC"),
    "timezone": lambda: management.spec_columns("0 9 * * *", "Europe/Londn"),
    "anchor": lambda: management.spec_columns("0 9 * * *", "UTC", ANCHOR),
    "name": lambda: management.check_name("  "),
    "workflow": lambda: management.resolve_workflow(WORKFLOWS, "nope"),
    "misfire_policy": lambda: management.check_policies({"misfire_policy": "never"}),
    "overlap_policy": lambda: management.check_policies({"overlap_policy": "never"}),
    "misfire_grace_seconds": lambda: management.check_policies({"misfire_grace_seconds": -1}),
    "max_catchup_runs": lambda: management.check_policies({"max_catchup_runs": True}),
}


@pytest.mark.parametrize("field", MISTAKES)
def test_a_field_error_names_the_field_not_a_faces_spelling(field: str) -> None:
    error = _wrong(MISTAKES[field])
    assert error.field == field
    assert isinstance(error, InputError)
    assert isinstance(error, SchedulerError)
    assert "--" not in error.message
    # Each face knows the field: the command line as an option, a file as a key.
    assert field_message(error) == f"{FIELD_OPTIONS[field]}: {error.message}"
    assert field in sync.SCHEDULE_KEYS


def test_the_anchor_error_names_the_value_and_the_spec() -> None:
    error = _wrong(MISTAKES["anchor"])
    assert field_message(error) == (
        "--anchor: an anchor (2026-01-01T00:00:00+00:00) applies to '@every' intervals only, "
        "not to the cron expression '0 9 * * *'"
    )
    assert error.value == ANCHOR


def test_an_interval_takes_an_anchor() -> None:
    columns = management.spec_columns("@every 1h", "UTC", ANCHOR)
    assert (columns.interval_seconds, columns.interval_anchor) == (3600, ANCHOR)


@pytest.mark.parametrize(
    ("source", "key", "line"),
    [
        ('[[schedules]]\nkey = "a"\ncron = "x"\n\n[[schedules]]\ncron = "y"\n', "cron", 3),
        ('[[schedules]]\n"cron" = "x"\n', "cron", 2),
        ("[[schedules]]\n  'cron'= 'x'\n", "cron", 2),
        ('[[schedules]]\nparameters.region = "NA"\n', "parameters", 2),
        ('[[schedules]]\nname = "cron = 1"\n', "cron", 1),  # not a key: the table's header
        ('[[schedules]]\nkey = "a"\n[schedules.parameters]\ncron = 1\n', "cron", 1),
    ],
)
def test_a_key_is_found_on_its_line_in_its_own_table(source: str, key: str, line: int) -> None:
    assert sync._tables(source, "schedules")[0].key_line(key) == line


def test_the_second_table_finds_its_own_keys() -> None:
    source = '[[schedules]]\nkey = "a"\ncron = "x"\n\n[[schedules]]\nkey = "b"\ncron = "y"\n'
    first, second = sync._tables(source, "schedules")
    assert (first.key_line("cron"), second.key_line("cron"), second.key_line("anchor")) == (
        3,
        7,
        5,
    )
