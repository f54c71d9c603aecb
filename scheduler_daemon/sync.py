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

import json
import re
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, text

from scheduler_daemon.db.tables import MISFIRE_POLICIES, OVERLAP_POLICIES, workflow_schedules
from scheduler_daemon.management import (
    InputError,
    SpecColumns,
    check_at_least,
    check_choice,
    insert_schedule,
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

    def lines(self) -> list[str]:
        out = [f"+ create {e.key}: {_describe(e.definition)}" for e in self.create]
        for entry, _, changes in self.update:
            diff = "; ".join(
                f"{k} {_show(old)} -> {_show(new)}" for k, (old, new) in changes.items()
            )
            out.append(f"~ update {entry.key}: {diff}")
        out += [f"- disable {key} (no longer in the file)" for key, _ in self.disable]
        out.append(f"= {self.unchanged} unchanged")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "create": [{"key": e.key, **_plain(e.definition)} for e in self.create],
            "update": [
                {
                    "key": e.key,
                    "id": str(i),
                    "changes": {k: [_plain(o), _plain(n)] for k, (o, n) in c.items()},
                }
                for e, i, c in self.update
            ],
            "disable": [{"key": k, "id": str(i)} for k, i in self.disable],
            "unchanged": self.unchanged,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, uuid.UUID | datetime):
        return str(value)
    return value


def _show(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True)


def _describe(definition: Mapping[str, Any]) -> str:
    spec = definition["cron_expression"] or f"@every {definition['interval_seconds']}s"
    return f"{spec!r} in {definition['timezone']} ({definition['name']!r})"


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
    lines = _entry_lines(source)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_entries):
        line = lines[index] if index < len(lines) else 0
        where = f"{path} line {line} (schedule {index + 1})"
        try:
            entry = _entry(raw, line, conn)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        if entry.key in seen:
            raise InputError(
                f"{where}: key {entry.key!r} is already used at line {seen[entry.key]}"
            )
        seen[entry.key] = line
        entries.append(entry)
    return entries


def _entry(raw: Mapping[str, Any], line: int, conn: Connection) -> Entry:
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
    check_choice(raw.get("misfire_policy"), MISFIRE_POLICIES, "misfire_policy")
    check_choice(raw.get("overlap_policy"), OVERLAP_POLICIES, "overlap_policy")
    check_at_least(raw.get("misfire_grace_seconds"), 0, "misfire_grace_seconds")
    check_at_least(raw.get("max_catchup_runs"), 1, "max_catchup_runs")
    if "parameters" in raw and not isinstance(raw["parameters"], dict):
        raise InputError(f"parameters {raw['parameters']!r}: must be a table")
    if "enabled" in raw and not isinstance(raw["enabled"], bool):
        raise InputError(f"enabled {raw['enabled']!r}: must be true or false")
    definition = _DEFAULTS | {k: raw[k] for k in _DEFAULTS if k in raw}
    definition |= {
        "name": raw["name"].strip(),
        "workflow_id": _workflow_id(conn, raw["workflow"]),
        "cron_expression": columns.cron_expression,
        "interval_seconds": columns.interval_seconds,
        "interval_anchor": columns.interval_anchor,
    }
    return Entry(raw["key"].strip(), line, bool(raw.get("enabled", False)), definition)


def _workflow_id(conn: Connection, reference: str) -> uuid.UUID:
    try:
        workflow_id = uuid.UUID(reference)
    except ValueError:
        ids = (
            conn.execute(text("SELECT id FROM workflows WHERE name = :name"), {"name": reference})
            .scalars()
            .all()
        )
        if len(ids) != 1:
            found = "no workflow" if not ids else f"{len(ids)} workflows"
            raise InputError(f"workflow {reference!r}: {found} has that name") from None
        return uuid.UUID(str(ids[0]))
    if (
        conn.execute(text("SELECT 1 FROM workflows WHERE id = :id"), {"id": workflow_id}).first()
        is None
    ):
        raise InputError(f"workflow {reference!r}: no such workflow")
    return workflow_id


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
    for entry in result.create:
        values = entry.definition | {"config_key": entry.key, "enabled": entry.enabled}
        values["next_run_at"] = spec_of_row(values).next_after(now) if entry.enabled else None
        insert_schedule(conn, values)
    for entry, schedule_id, changes in result.update:
        values = {column: new for column, (_, new) in changes.items()}
        if _SPEC_COLUMNS & set(values):
            # A new spec starts from its next slot after now; only enabled rows have one.
            next_run_at = spec_of_row(entry.definition).next_after(now)
            values["next_run_at"] = case((workflow_schedules.c.enabled, next_run_at), else_=None)
        update_schedule_row(conn, schedule_id, values)
    for _, schedule_id in result.disable:
        update_schedule_row(conn, schedule_id, {"enabled": False})
