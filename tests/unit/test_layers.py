"""The layers hold: pyproject.toml's import-linter contracts, checked with the suite."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_every_import_contract_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename="pyproject.toml", no_cache=True) == 0, (
        "a layer imports one it must not: run `lint-imports` for the chain"
    )


SQL_STATEMENT = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH)\b.*\b(FROM|INTO|SET|TABLE|pg_\w+)\b",
    re.IGNORECASE | re.DOTALL,
)
SQL_BUILDERS = {"text", "select", "insert", "update", "delete", "func", "literal_column"}


def test_every_sql_statement_lives_under_db() -> None:
    """A reader finds every statement the product sends under scheduler_daemon/db/, whole,
    and can paste it into psql; the other layers call functions there."""
    package = ROOT / "scheduler_daemon"
    misplaced: list[str] = []
    for path in sorted(package.rglob("*.py")):
        if package / "db" in path.parents:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SQL_STATEMENT.match(node.value):
                    misplaced.append(f"{where}: {node.value.strip()[:60]!r}")
            elif isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy":
                builders = SQL_BUILDERS & {alias.name for alias in node.names}
                if builders:
                    misplaced.append(f"{where}: imports {sorted(builders)} from sqlalchemy")
    assert not misplaced, "SQL outside scheduler_daemon/db/:\n" + "\n".join(misplaced)
