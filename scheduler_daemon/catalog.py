"""The catalog for operators and scripts: AMC accounts, their instances, and the saved
workflows that schedules run. Managed like schedules: validate first, then one transaction.

Each function takes references as an operator writes them (a name, an AMC id, an id or its
start: ``scheduler_daemon.references``) and raises FieldError naming the field (``name``,
``account_id``, ``marketplace_id``, ``region``, ``instance_id``, ``account``, ``instance``,
``amc_workflow_id``, ``sql_query``, ``parameters``) or InputError before it writes anything.
A row is deleted only when nothing uses it; the error lists what does. The verbs are the
same for every kind; ``KINDS`` holds what differs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from scheduler_daemon.db import catalog as db_catalog
from scheduler_daemon.db import references as db_references
from scheduler_daemon.errors import ConflictError, FieldError, InputError
from scheduler_daemon.references import Kind, resolve
from scheduler_daemon.resolve import ENTITY_ID, instance_id_problem

ACCOUNT_FIELDS = ("name", "account_id", "marketplace_id", "region")
INSTANCE_FIELDS = ("name", "instance_id", "account")
WORKFLOW_FIELDS = ("name", "instance", "amc_workflow_id", "sql_query", "parameters")
_USERS_SHOWN = 5


def _text(field: str, value: object, *, required: bool = True) -> str | None:
    """A stripped non-empty string; None only where ``required`` is false."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        problem = "missing: it must be" if value is None else f"{value!r} is not"
        raise FieldError(field, value, f"{problem} a non-empty string")
    return value.strip()


def _account_values(given: Mapping[str, Any]) -> dict[str, Any]:
    values = {
        "name": _text("name", given.get("name")),
        "account_id": _text("account_id", given.get("account_id")),
        "marketplace_id": _text("marketplace_id", given.get("marketplace_id"), required=False),
        "region": _text("region", given.get("region"), required=False),
    }
    if not ENTITY_ID.match(values["account_id"] or ""):
        raise FieldError(
            "account_id",
            values["account_id"],
            f"{values['account_id']!r} is not an AMC account (entity) id: 'ENTITY' and "
            "capital letters or digits",
        )
    return values


def _instance_values(conn: Connection, given: Mapping[str, Any]) -> dict[str, Any]:
    instance_id = _text("instance_id", given.get("instance_id")) or ""
    problem = instance_id_problem(instance_id)
    if problem:
        raise FieldError("instance_id", instance_id, problem)
    account = _text("account", given.get("account")) or ""
    return {
        "name": _text("name", given.get("name")),
        "instance_id": instance_id,
        "account_id": resolve(conn, Kind.ACCOUNT, account),
    }


def _workflow_values(conn: Connection, given: Mapping[str, Any]) -> dict[str, Any]:
    parameters = given.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise FieldError("parameters", parameters, f"{parameters!r} is not a table of values")
    sql_query = given.get("sql_query")
    if sql_query is not None and not isinstance(sql_query, str):
        raise FieldError("sql_query", sql_query, f"{sql_query!r} is not a string")
    instance = _text("instance", given.get("instance")) or ""
    return {
        "name": _text("name", given.get("name")),
        "instance_id": resolve(conn, Kind.INSTANCE, instance),
        "amc_workflow_id": _text("amc_workflow_id", given.get("amc_workflow_id")),
        "sql_query": sql_query,
        "parameters": dict(parameters),
    }


def _check_fields(given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InputError(f"unknown field(s) {unknown}; expected some of {list(allowed)}")


@dataclass(frozen=True)
class Kinds:
    """What differs between the kinds of catalog row; the verbs below are the same for each."""

    fields: tuple[str, ...]
    # the given fields → the row's columns, validated (references resolved to ids)
    values: Callable[[Connection, Mapping[str, Any]], dict[str, Any]]
    rows: Callable[[Connection, Sequence[uuid.UUID] | None], list[dict[str, Any]]]
    insert: Callable[[Connection, Mapping[str, Any]], uuid.UUID]
    update: Callable[[Connection, uuid.UUID, Mapping[str, Any]], None]
    delete: Callable[[Connection, uuid.UUID], None]
    # the names of the rows that keep one from being deleted, and what those rows are
    users: Callable[[Connection, uuid.UUID], list[str]]
    user: str
    # a column the listing shows under another name (the field that sets it)
    listed_as: Mapping[str, str]
    # hold the row until the transaction ends
    lock: Callable[[Connection, uuid.UUID], None]


KINDS: Mapping[Kind, Kinds] = {
    Kind.ACCOUNT: Kinds(
        ACCOUNT_FIELDS,
        lambda _conn, given: _account_values(given),
        db_catalog.list_accounts,
        db_catalog.insert_account,
        db_catalog.update_account,
        db_catalog.delete_account,
        db_catalog.account_users,
        "instance",
        {},
        db_catalog.lock_account,
    ),
    Kind.INSTANCE: Kinds(
        INSTANCE_FIELDS,
        _instance_values,
        db_catalog.list_instances,
        db_catalog.insert_instance,
        db_catalog.update_instance,
        db_catalog.delete_instance,
        db_catalog.instance_users,
        "workflow",
        {"account_id": "account"},
        db_catalog.lock_instance,
    ),
    Kind.WORKFLOW: Kinds(
        WORKFLOW_FIELDS,
        _workflow_values,
        db_catalog.list_workflows,
        db_catalog.insert_workflow,
        db_catalog.update_workflow,
        db_catalog.delete_workflow,
        db_catalog.workflow_users,
        "schedule",
        {"instance_id": "instance"},
        db_catalog.lock_workflow,
    ),
}


def list_rows(conn: Connection, kind: Kind) -> list[dict[str, Any]]:
    """Every row of the kind, by name."""
    return KINDS[kind].rows(conn, None)


def workflow_choices(conn: Connection) -> list[dict[str, Any]]:
    """Every workflow's id, name and instance's name, by name: what a form offers."""
    return db_catalog.workflow_choices(conn)


def _row(conn: Connection, kind: Kind, row_id: uuid.UUID) -> dict[str, Any]:
    return KINDS[kind].rows(conn, [row_id])[0]


def show(
    conn: Connection, kind: Kind, reference: str | uuid.UUID, *, lock: bool = False
) -> dict[str, Any]:
    """The row; ``lock``: held until the transaction ends, so that a change decided from it
    (a face's version check) is not raced."""
    row_id = resolve(conn, kind, reference)
    if lock:
        KINDS[kind].lock(conn, row_id)
    return _row(conn, kind, row_id)


def create(conn: Connection, kind: Kind, given: Mapping[str, Any]) -> uuid.UUID:
    how = KINDS[kind]
    _check_fields(given, how.fields)
    return how.insert(conn, how.values(conn, given))


def update(
    conn: Connection, kind: Kind, reference: str | uuid.UUID, changes: Mapping[str, Any]
) -> uuid.UUID:
    """Change what ``changes`` gives (absent or None: unchanged)."""
    how = KINDS[kind]
    row_id = resolve(conn, kind, reference)
    _check_fields(changes, how.fields)
    given = {field: value for field, value in changes.items() if value is not None}
    if not given:
        raise InputError("nothing to update: no change given")
    # The row as it would be; a reference to another row (account, instance) as its id.
    current = _row(conn, kind, row_id)
    merged = {f: str(v) if isinstance(v, uuid.UUID) else v for f, v in current.items()}
    how.update(conn, row_id, how.values(conn, {f: merged[f] for f in how.fields} | given))
    return row_id


def delete(conn: Connection, kind: Kind, reference: str | uuid.UUID) -> uuid.UUID:
    """Delete the row unless something uses it (ConflictError listing what does)."""
    how = KINDS[kind]
    row_id = resolve(conn, kind, reference)
    users = how.users(conn, row_id)
    if users:
        shown = ", ".join(repr(name) for name in users[:_USERS_SHOWN])
        more = f" and {len(users) - _USERS_SHOWN} more" if len(users) > _USERS_SHOWN else ""
        raise ConflictError(
            f"{kind.value} {reference!r} is still used by {len(users)} {how.user}(s): "
            f"{shown}{more}; delete or move them first"
        )
    how.delete(conn, row_id)
    return row_id


def put(
    conn: Connection, kind: Kind, given: Mapping[str, Any]
) -> tuple[str, dict[str, tuple[Any, Any]]]:
    """``sync``'s verb: create the row named ``given["name"]``, or bring it to ``given``:
    ("create", {}), ("update", {column: (old, new)}) or ("unchanged", {})."""
    how = KINDS[kind]
    _check_fields(given, how.fields)
    values = how.values(conn, given)
    # Its name is unique, but another row's AMC id may read the same: both come back.
    named = db_references.find(conn, kind, values["name"], None, limit=10)
    current = next((row for row in named if row["name"] == values["name"]), None)
    if current is None:
        how.insert(conn, values)
        return "create", {}
    listed = _row(conn, kind, current["id"])
    changes = {
        column: (listed[how.listed_as.get(column, column)], value)
        for column, value in values.items()
        if listed[how.listed_as.get(column, column)] != value
    }
    if changes:
        how.update(conn, current["id"], values)
    return ("update" if changes else "unchanged"), changes
