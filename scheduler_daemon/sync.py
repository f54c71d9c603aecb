"""Config as code: schedules declared in a TOML file kept in version control.

The file owns each schedule's definition (spec, zone, policies, parameters); the database owns
its runtime state (enabled, next and last run, locks, pauses). A file-managed schedule is
found by its ``key``. The whole file is validated before anything is written.

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
"""

from __future__ import annotations

import re
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, insert, text

from scheduler_daemon.db.tables import workflow_schedules
from scheduler_daemon.management import (
    InputError,
    SpecColumns,
    Workflows,
    check_policies,
    disable_schedules,
    load_workflows,
    resolve_workflow,
    spec_columns,
    spec_of_row,
    update_schedule_row,
)

_ALLOWED_KEYS = {
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
# The columns the file owns; everything else on the row is runtime state.
_DEFINITION = (
    "name",
    "workflow_id",
    "cron_expression",
    "interval_seconds",
    "interval_anchor",
    "timezone",
    "misfire_policy",
    "overlap_policy",
    "misfire_grace_seconds",
    "max_catchup_runs",
    "parameters",
)
_SPEC_COLUMNS = {"cron_expression", "interval_seconds", "interval_anchor", "timezone"}
_DEFAULTS: dict[str, Any] = {
    "misfire_policy": "skip",
    "overlap_policy": "skip",
    "misfire_grace_seconds": 300,
    "max_catchup_runs": 10,
    "parameters": {},
    "timezone": "UTC",
}


@dataclass(frozen=True)
class Entry:
    key: str
    line: int
    enabled: bool
    definition: dict[str, Any]


@dataclass
class Plan:
    create: list[Entry] = field(default_factory=list)
    update: list[tuple[Entry, uuid.UUID, dict[str, tuple[Any, Any]]]] = field(default_factory=list)
    disable: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.disable)

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
        }


def _entry_lines(source: str) -> list[int]:
    return [
        n
        for n, line in enumerate(source.splitlines(), 1)
        if re.match(r"\s*\[\[\s*schedules\s*\]\]", line)
    ]


def parse(source: str, conn: Connection, path: str = "file") -> list[Entry]:
    """Validate the whole file; raise InputError naming the line of the first bad entry."""
    try:
        document = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(document) - {"schedules"}
    if unknown:
        raise InputError(
            f"{path}: unknown top-level key(s) {sorted(unknown)}; expected [[schedules]]"
        )
    raw_entries = document.get("schedules", [])
    workflows = load_workflows(
        conn,
        [
            raw["workflow"]
            for raw in raw_entries
            if isinstance(raw, Mapping) and isinstance(raw.get("workflow"), str)
        ],
    )
    lines = _entry_lines(source)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_entries):
        line = lines[index] if index < len(lines) else 0
        where = f"{path} line {line} (schedule {index + 1})"
        try:
            entry = _entry(raw, line, workflows)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        if entry.key in seen:
            raise InputError(
                f"{where}: key {entry.key!r} is already used at line {seen[entry.key]}"
            )
        seen[entry.key] = line
        entries.append(entry)
    return entries


def _entry(raw: Mapping[str, Any], line: int, workflows: Workflows) -> Entry:
    unknown = set(raw) - _ALLOWED_KEYS
    if unknown:
        raise InputError(f"unknown key(s) {sorted(unknown)}")
    for required in ("key", "name", "workflow", "cron"):
        if not isinstance(raw.get(required), str) or not raw[required].strip():
            raise InputError(f"{required!r} is required and must be a non-empty string")
    timezone = raw.get("timezone", "UTC")
    anchor = raw.get("anchor")
    if anchor is not None and (not isinstance(anchor, datetime) or anchor.tzinfo is None):
        raise InputError(f"anchor {anchor!r}: must be a TOML date-time with an offset")
    columns: SpecColumns = spec_columns(raw["cron"], str(timezone), anchor)
    check_policies(raw)
    if "parameters" in raw and not isinstance(raw["parameters"], dict):
        raise InputError(f"parameters {raw['parameters']!r}: must be a table")
    if "enabled" in raw and not isinstance(raw["enabled"], bool):
        raise InputError(f"enabled {raw['enabled']!r}: must be true or false")
    definition = _DEFAULTS | {k: raw[k] for k in _DEFAULTS if k in raw}
    definition |= {
        "name": raw["name"].strip(),
        "workflow_id": resolve_workflow(workflows, raw["workflow"]),
        "cron_expression": columns.cron_expression,
        "interval_seconds": columns.interval_seconds,
        "interval_anchor": columns.interval_anchor,
    }
    return Entry(raw["key"].strip(), line, bool(raw.get("enabled", False)), definition)


def plan(conn: Connection, entries: list[Entry], *, prune: bool) -> Plan:
    current = {
        row["config_key"]: dict(row)
        for row in conn.execute(
            text(
                f"SELECT id, config_key, enabled, {', '.join(_DEFINITION)} FROM workflow_schedules "
                "WHERE config_key IS NOT NULL AND deleted_at IS NULL FOR UPDATE"
            )
        ).mappings()
    }
    result = Plan()
    for entry in entries:
        row = current.get(entry.key)
        if row is None:
            result.create.append(entry)
            continue
        changes = {
            column: (row[column], entry.definition[column])
            for column in _DEFINITION
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


def apply(conn: Connection, result: Plan, now: datetime) -> None:
    if result.create:
        # Every row has the same keys (the definition fills in defaults): one statement.
        conn.execute(insert(workflow_schedules), [_new_row(e, now) for e in result.create])
    for entry, schedule_id, changes in result.update:
        values = {column: new for column, (_, new) in changes.items()}
        if _SPEC_COLUMNS & set(values):
            # A new spec starts from its next slot after now; only enabled rows have one.
            next_run_at = spec_of_row(entry.definition).next_after(now)
            values["next_run_at"] = case((workflow_schedules.c.enabled, next_run_at), else_=None)
        update_schedule_row(conn, schedule_id, values)
    if result.disable:
        disable_schedules(conn, [schedule_id for _, schedule_id in result.disable])


def _new_row(entry: Entry, now: datetime) -> dict[str, Any]:
    values = entry.definition | {"config_key": entry.key, "enabled": entry.enabled}
    values["next_run_at"] = spec_of_row(values).next_after(now) if entry.enabled else None
    return values
