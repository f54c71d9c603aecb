"""Config as code: a deployment declared in a TOML file kept in version control.

The file may declare the catalog (``[[accounts]]``, ``[[instances]]``, ``[[workflows]]``,
each found by its unique ``name``: created when new, brought to the file's values otherwise,
never deleted by a sync) and the schedules. It owns each schedule's definition (spec, zone,
policies, parameters); the database owns its runtime state (enabled, next and last run,
locks, pauses). A file-managed schedule is found by its ``key``. The whole file is applied in
one transaction: an error anywhere changes nothing, and a dry run rolls everything back.

    [[accounts]]
    name = "Acme US"
    account_id = "ENTITY1ACME0001"      # the AMC entity (advertiser) id
    marketplace_id = "ATVPDKIKX0DER"
    region = "NA"

    [[instances]]
    name = "acme-us"
    instance_id = "amc1acme0a1"
    account = "Acme US"                 # account name, AMC entity id or id

    [[workflows]]
    name = "sales daily"
    instance = "acme-us"                # instance name, AMC instance id or id
    amc_workflow_id = "sales-daily"     # the saved workflow's id in AMC
    sql_query = "SELECT ..."            # optional, for the record

    [[schedules]]
    key = "nightly-sales"             # stable identity; renaming the key means a new schedule
    name = "Nightly sales report"
    workflow = "sales daily"          # workflow name or id
    cron = "30 2 * * *"               # or "@every 15m"
    timezone = "America/New_York"
    misfire_policy = "run_once"       # optional: skip | run_once | run_all
    overlap_policy = "skip"           # optional: skip | allow
    misfire_grace_seconds = 600       # optional
    max_catchup_runs = 5              # optional
    enabled = true                    # optional, only when the schedule is created
    parameters = { region = "NA" }    # optional

An error names the file, the line of the offending key and the key, as ``path:line: key: ...``.
"""

from __future__ import annotations

import re
import tomllib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from scheduler_daemon import catalog
from scheduler_daemon.db import schedules as db_schedules
from scheduler_daemon.errors import FieldError, InputError
from scheduler_daemon.management import (
    DEFINITION_DEFAULTS,
    Workflows,
    check_policies,
    load_workflows,
    resolve_workflow,
    spec_columns,
    spec_of_row,
)
from scheduler_daemon.references import Kind

# The keys of a [[schedules]] table. They are the very names the verbs give their fields, so
# a FieldError's field is the key to point at.
SCHEDULE_KEYS = frozenset(
    {
        "key",
        "name",
        "workflow",
        "cron",
        "timezone",
        "anchor",
        "misfire_policy",
        "overlap_policy",
        "misfire_grace_seconds",
        "max_catchup_runs",
        "enabled",
        "parameters",
    }
)
# The catalog's arrays of tables, in the order they are applied (a workflow names an
# instance, an instance an account); their keys are the catalog verbs' field names.
CATALOG_TABLES = {
    "accounts": Kind.ACCOUNT,
    "instances": Kind.INSTANCE,
    "workflows": Kind.WORKFLOW,
}
TOP_LEVEL = (*CATALOG_TABLES, "schedules")
_SPEC_COLUMNS = {"cron_expression", "interval_seconds", "interval_anchor", "timezone"}
# Any table header, [x] or [[x]]: it ends the table before it.
_TABLE_HEADER = re.compile(r"""\s*\[\[?\s*[\w.\-"' ]+\s*\]\]?\s*(#.*)?$""")
_TOML_ERROR_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass(frozen=True)
class Entry:
    key: str
    enabled: bool
    definition: dict[str, Any]


@dataclass
class Plan:
    create: list[Entry] = field(default_factory=list)
    update: list[tuple[Entry, uuid.UUID, dict[str, tuple[Any, Any]]]] = field(default_factory=list)
    disable: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    unchanged: int = 0
    # (kind, name, "create" | "update" | "unchanged", {column: (old, new)})
    catalog: list[tuple[Kind, str, str, dict[str, tuple[Any, Any]]]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        catalog_changes = any(action != "unchanged" for _, _, action, _ in self.catalog)
        return not (self.create or self.update or self.disable or catalog_changes)

    def as_dict(self) -> dict[str, Any]:
        """The plan as it is (ids and times unconverted); the CLI renders it."""
        return {
            "create": [{"key": e.key, **e.definition} for e in self.create],
            "update": [
                {"key": e.key, "id": i, "changes": {k: [o, n] for k, (o, n) in c.items()}}
                for e, i, c in self.update
            ],
            "disable": [{"key": k, "id": i} for k, i in self.disable],
            "unchanged": self.unchanged,
            "catalog": [
                {
                    "kind": kind.value,
                    "name": name,
                    "action": action,
                    "changes": {k: [o, n] for k, (o, n) in changes.items()},
                }
                for kind, name, action, changes in self.catalog
            ],
        }


@dataclass(frozen=True)
class _Table:
    """Where one [[schedules]] table is in the file: its lines, numbered from 1."""

    header: int
    lines: Sequence[tuple[int, str]]

    def key_line(self, key: str) -> int:
        """The line that sets ``key`` (bare, quoted or dotted), else the table's header.

        tomllib gives no positions; a key of a [[schedules]] table starts its own line."""
        pattern = re.compile(
            rf"""\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*[=.]"""
        )
        return next((n for n, text in self.lines if pattern.match(text)), self.header)


def _tables(source: str, name: str) -> list[_Table]:
    """Where each [[name]] table of the file is."""
    header = re.compile(rf"\s*\[\[\s*{name}\s*\]\]")
    numbered = list(enumerate(source.splitlines(), 1))
    tables = []
    for index, (number, text) in enumerate(numbered):
        if header.match(text):
            body = []
            for following in numbered[index + 1 :]:
                if _TABLE_HEADER.match(following[1]):
                    break
                body.append(following)
            tables.append(_Table(number, body))
    return tables


def _error(path: str, line: int | None, message: str, key: str | None = None) -> InputError:
    where = f"{path}:{line}" if line else path
    return InputError(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def load(source: str, path: str = "file") -> dict[str, Any]:
    """The file's TOML, with only the arrays of tables a sync file may have."""
    try:
        document = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        at = _TOML_ERROR_LINE.search(str(exc))
        raise _error(path, int(at[1]) if at else None, f"not valid TOML: {exc}") from None
    unknown = set(document) - set(TOP_LEVEL)
    if unknown:
        expected = ", ".join(f"[[{name}]]" for name in TOP_LEVEL)
        raise _error(path, None, f"unknown top-level key(s) {sorted(unknown)}; expected {expected}")
    for name in TOP_LEVEL:
        if not isinstance(document.get(name, []), list):
            raise _error(path, None, f"{name} is not an array of tables: write [[{name}]]")
    return document


def _positioned(
    source: str, path: str, name: str, raw_entries: list[Any]
) -> Iterator[tuple[str, _Table, Mapping[str, Any]]]:
    """Each table of the array ``name`` with where it is: ``(where, table, raw)``."""
    tables = _tables(source, name)
    singular = name.removesuffix("s")
    for index, raw in enumerate(raw_entries):
        # Without a [[name]] header (an inline array), the entry's position names it.
        table = tables[index] if index < len(tables) else _Table(0, ())
        where = path if table.header else f"{path}: {singular} {index + 1}"
        if not isinstance(raw, Mapping):
            raise _error(where, table.header, f"{raw!r} is not a table")
        yield where, table, raw


def apply_catalog(
    conn: Connection, document: Mapping[str, Any], source: str, path: str = "file"
) -> list[tuple[Kind, str, str, dict[str, tuple[Any, Any]]]]:
    """Create or update the accounts, instances and workflows the file declares, by name."""
    done = []
    for name, kind in CATALOG_TABLES.items():
        seen: dict[str, int] = {}
        for where, table, raw in _positioned(source, path, name, document.get(name, [])):
            unknown = set(raw) - set(catalog.KINDS[kind].fields)
            if unknown:
                line = min(table.key_line(key) for key in unknown)
                raise _error(where, line, f"unknown key(s) {sorted(unknown)}")
            row_name = str(raw.get("name", "")).strip()
            if row_name in seen:
                message = f"{row_name!r} is already declared at line {seen[row_name]}"
                raise _error(where, table.key_line("name"), message, "name")
            seen[row_name] = table.key_line("name")
            try:
                action, changes = catalog.put(conn, kind, raw)
            except FieldError as exc:
                raise _error(where, table.key_line(exc.field), exc.message, exc.field) from None
            done.append((kind, row_name, action, changes))
    return done


def parse(
    source: str, conn: Connection, path: str = "file", document: Mapping[str, Any] | None = None
) -> list[Entry]:
    """Validate the file's schedules; raise InputError naming the line and key of the first
    error. The workflows they name must exist (``apply_catalog`` first)."""
    if document is None:
        document = load(source, path)
    raw_entries = document.get("schedules", [])
    workflows = load_workflows(
        conn,
        [
            raw["workflow"]
            for raw in raw_entries
            if isinstance(raw, Mapping) and isinstance(raw.get("workflow"), str)
        ],
    )
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    names: dict[str, int] = {}
    for where, table, raw in _positioned(source, path, "schedules", raw_entries):
        unknown = set(raw) - SCHEDULE_KEYS
        if unknown:
            line = min(table.key_line(key) for key in unknown)
            raise _error(where, line, f"unknown key(s) {sorted(unknown)}")
        try:
            entry = _entry(raw, workflows)
        except FieldError as exc:
            raise _error(where, table.key_line(exc.field), exc.message, exc.field) from None
        key_line = table.key_line("key")
        if entry.key in seen:
            message = f"{entry.key!r} is already used at line {seen[entry.key]}"
            raise _error(where, key_line, message, "key")
        seen[entry.key] = key_line
        name, name_line = entry.definition["name"], table.key_line("name")
        if name in names:
            message = f"{name!r} is already used at line {names[name]}"
            raise _error(where, name_line, message, "name")
        names[name] = name_line
        entries.append(entry)
    return entries


def _entry(raw: Mapping[str, Any], workflows: Workflows) -> Entry:
    for required in ("key", "name", "workflow", "cron"):
        value = raw.get(required)
        if not isinstance(value, str) or not value.strip():
            problem = f"{value!r} is not" if value is not None else "missing: it must be"
            raise FieldError(required, value, f"{problem} a non-empty string")
    timezone = raw.get("timezone", "UTC")
    anchor = raw.get("anchor")
    if anchor is not None and (not isinstance(anchor, datetime) or anchor.tzinfo is None):
        raise FieldError("anchor", anchor, f"{anchor!r} is not a TOML date-time with an offset")
    columns = spec_columns(raw["cron"], str(timezone), anchor)
    check_policies(raw)
    if "parameters" in raw and not isinstance(raw["parameters"], dict):
        raise FieldError("parameters", raw["parameters"], f"{raw['parameters']!r} is not a table")
    if "enabled" in raw and not isinstance(raw["enabled"], bool):
        raise FieldError("enabled", raw["enabled"], f"{raw['enabled']!r} is not true or false")
    definition = {**DEFINITION_DEFAULTS, **{k: raw[k] for k in DEFINITION_DEFAULTS if k in raw}}
    definition |= {
        "name": raw["name"].strip(),
        "workflow_id": resolve_workflow(workflows, raw["workflow"]),
        "cron_expression": columns.cron_expression,
        "interval_seconds": columns.interval_seconds,
        "interval_anchor": columns.interval_anchor,
    }
    return Entry(raw["key"].strip(), bool(raw.get("enabled", False)), definition)


def plan(conn: Connection, entries: list[Entry], *, prune: bool) -> Plan:
    current = db_schedules.select_managed(conn)
    result = Plan()
    for entry in entries:
        row = current.get(entry.key)
        if row is None:
            result.create.append(entry)
            continue
        changes = {
            column: (row[column], entry.definition[column])
            for column in db_schedules.DEFINITION_COLUMNS
            if row[column] != entry.definition[column]
        }
        if changes:
            result.update.append((entry, row["id"], changes))
        else:
            result.unchanged += 1
    if prune:
        listed = {e.key for e in entries}
        result.disable = [
            (key, row["id"]) for key, row in current.items() if key not in listed and row["enabled"]
        ]
    return result


def sync(
    conn: Connection,
    source: str,
    now: datetime,
    *,
    path: str = "file",
    prune: bool = False,
    dry_run: bool = False,
) -> Plan:
    """Apply the whole file (or, with ``dry_run``, only say what it would change) in a
    savepoint of the caller's transaction; an error anywhere changes nothing."""
    document = load(source, path)
    savepoint = conn.begin_nested()
    try:
        changed_catalog = apply_catalog(conn, document, source, path)
        result = plan(conn, parse(source, conn, path, document), prune=prune)
        result.catalog = changed_catalog
        if not dry_run:
            try:
                apply(conn, result, now)
            except FieldError as exc:  # a name another schedule (not in the file) has
                raise _error(path, None, exc.message, exc.field) from None
    except BaseException:
        savepoint.rollback()
        raise
    if dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()
    return result


def apply(conn: Connection, result: Plan, now: datetime) -> None:
    if result.create:
        db_schedules.insert_schedules(conn, [_new_row(e, now) for e in result.create])
    updates = []
    for entry, schedule_id, changes in result.update:
        # A new spec starts from its next slot after now; only enabled rows have one.
        restart = bool(_SPEC_COLUMNS & set(changes))
        next_run_at = spec_of_row(entry.definition).next_after(now) if restart else None
        updates.append((schedule_id, entry.definition, restart, next_run_at))
    if updates:
        db_schedules.update_definitions(conn, updates)
    if result.disable:
        db_schedules.disable(conn, [schedule_id for _, schedule_id in result.disable])


def _new_row(entry: Entry, now: datetime) -> dict[str, Any]:
    values = entry.definition | {"config_key": entry.key, "enabled": entry.enabled}
    values["next_run_at"] = spec_of_row(values).next_after(now) if entry.enabled else None
    return values
