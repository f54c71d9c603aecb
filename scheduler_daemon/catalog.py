"""The catalog for operators and scripts: AMC accounts, their instances, and the saved
workflows that schedules run. Managed like schedules: validate first, then one transaction.

Each function takes references as an operator writes them (a name, an AMC id, an id or its
start: ``scheduler_daemon.references``) and raises FieldError naming the field (``name``,
``account_id``, ``marketplace_id``, ``region``, ``instance_id``, ``account``, ``instance``,
``amc_workflow_id``, ``sql_query``, ``parameters``) or InputError before it writes anything.
A row is deleted only when nothing uses it; the error lists what does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from scheduler_daemon.db import catalog as db_catalog
from scheduler_daemon.errors import FieldError, InputError
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


# --- accounts ---------------------------------------------------------------------------------


def list_accounts(conn: Connection) -> list[dict[str, Any]]:
    return db_catalog.list_accounts(conn)


def show_account(conn: Connection, reference: str | uuid.UUID) -> dict[str, Any]:
    return db_catalog.list_accounts(conn, [resolve(conn, Kind.ACCOUNT, reference)])[0]


def create_account(conn: Connection, given: Mapping[str, Any]) -> uuid.UUID:
    _check_fields(given, ACCOUNT_FIELDS)
    return db_catalog.insert_account(conn, _account_values(given))


def update_account(
    conn: Connection, reference: str | uuid.UUID, changes: Mapping[str, Any]
) -> uuid.UUID:
    """Change what ``changes`` gives (absent or None: unchanged)."""
    account = resolve(conn, Kind.ACCOUNT, reference)
    current = show_account(conn, account)
    merged = _merge(current, changes, ACCOUNT_FIELDS)
    db_catalog.update_account(conn, account, _account_values(merged))
    return account


def delete_account(conn: Connection, reference: str | uuid.UUID) -> uuid.UUID:
    account = resolve(conn, Kind.ACCOUNT, reference)
    _refuse_if_used(Kind.ACCOUNT, reference, "instance", db_catalog.account_users(conn, account))
    db_catalog.delete_account(conn, account)
    return account


# --- instances --------------------------------------------------------------------------------


def list_instances(conn: Connection) -> list[dict[str, Any]]:
    return db_catalog.list_instances(conn)


def show_instance(conn: Connection, reference: str | uuid.UUID) -> dict[str, Any]:
    return db_catalog.list_instances(conn, [resolve(conn, Kind.INSTANCE, reference)])[0]


def create_instance(conn: Connection, given: Mapping[str, Any]) -> uuid.UUID:
    _check_fields(given, INSTANCE_FIELDS)
    return db_catalog.insert_instance(conn, _instance_values(conn, given))


def update_instance(
    conn: Connection, reference: str | uuid.UUID, changes: Mapping[str, Any]
) -> uuid.UUID:
    instance = resolve(conn, Kind.INSTANCE, reference)
    current = show_instance(conn, instance)
    merged = _merge(current, changes, INSTANCE_FIELDS)
    db_catalog.update_instance(conn, instance, _instance_values(conn, merged))
    return instance


def delete_instance(conn: Connection, reference: str | uuid.UUID) -> uuid.UUID:
    instance = resolve(conn, Kind.INSTANCE, reference)
    _refuse_if_used(Kind.INSTANCE, reference, "workflow", db_catalog.instance_users(conn, instance))
    db_catalog.delete_instance(conn, instance)
    return instance


# --- workflows --------------------------------------------------------------------------------


def list_workflows(conn: Connection) -> list[dict[str, Any]]:
    return db_catalog.list_workflows(conn)


def show_workflow(conn: Connection, reference: str | uuid.UUID) -> dict[str, Any]:
    return db_catalog.list_workflows(conn, [resolve(conn, Kind.WORKFLOW, reference)])[0]


def create_workflow(conn: Connection, given: Mapping[str, Any]) -> uuid.UUID:
    _check_fields(given, WORKFLOW_FIELDS)
    return db_catalog.insert_workflow(conn, _workflow_values(conn, given))


def update_workflow(
    conn: Connection, reference: str | uuid.UUID, changes: Mapping[str, Any]
) -> uuid.UUID:
    workflow = resolve(conn, Kind.WORKFLOW, reference)
    current = show_workflow(conn, workflow)
    merged = _merge(current, changes, WORKFLOW_FIELDS)
    db_catalog.update_workflow(conn, workflow, _workflow_values(conn, merged))
    return workflow


def delete_workflow(conn: Connection, reference: str | uuid.UUID) -> uuid.UUID:
    workflow = resolve(conn, Kind.WORKFLOW, reference)
    _refuse_if_used(Kind.WORKFLOW, reference, "schedule", db_catalog.workflow_users(conn, workflow))
    db_catalog.delete_workflow(conn, workflow)
    return workflow


# --- config as code: ``sync`` creates or updates catalog rows by name ----------------------


@dataclass(frozen=True)
class Kinds:
    """How ``sync`` handles one kind of catalog row."""

    fields: tuple[str, ...]
    values: Callable[[Connection, Mapping[str, Any]], dict[str, Any]]
    rows: Callable[[Connection], list[dict[str, Any]]]
    insert: Callable[[Connection, Mapping[str, Any]], uuid.UUID]
    update: Callable[[Connection, uuid.UUID, Mapping[str, Any]], None]
    # the column a value is stored in, where the listing names it otherwise
    listed_as: Mapping[str, str]


KINDS: Mapping[Kind, Kinds] = {
    Kind.ACCOUNT: Kinds(
        ACCOUNT_FIELDS,
        lambda _conn, given: _account_values(given),
        db_catalog.list_accounts,
        db_catalog.insert_account,
        db_catalog.update_account,
        {},
    ),
    Kind.INSTANCE: Kinds(
        INSTANCE_FIELDS,
        _instance_values,
        db_catalog.list_instances,
        db_catalog.insert_instance,
        db_catalog.update_instance,
        {"account_id": "account"},
    ),
    Kind.WORKFLOW: Kinds(
        WORKFLOW_FIELDS,
        _workflow_values,
        db_catalog.list_workflows,
        db_catalog.insert_workflow,
        db_catalog.update_workflow,
        {"instance_id": "instance"},
    ),
}


def put(
    conn: Connection, kind: Kind, given: Mapping[str, Any]
) -> tuple[str, dict[str, tuple[Any, Any]]]:
    """Create the row named ``given["name"]``, or bring it to ``given``: ("create", {}),
    ("update", {column: (old, new)}) or ("unchanged", {})."""
    how = KINDS[kind]
    _check_fields(given, how.fields)
    values = how.values(conn, given)
    current = next((row for row in how.rows(conn) if row["name"] == values["name"]), None)
    if current is None:
        how.insert(conn, values)
        return "create", {}
    changes = {
        column: (current[how.listed_as.get(column, column)], value)
        for column, value in values.items()
        if current[how.listed_as.get(column, column)] != value
    }
    if changes:
        how.update(conn, current["id"], values)
    return ("update" if changes else "unchanged"), changes


def _merge(
    current: Mapping[str, Any], changes: Mapping[str, Any], fields: tuple[str, ...]
) -> dict[str, Any]:
    """The row as it would be: the given changes over its current values (a reference to
    another row, ``account`` or ``instance``, as that row's id)."""
    _check_fields(changes, fields)
    given = {field: value for field, value in changes.items() if value is not None}
    if not given:
        raise InputError("nothing to update: no change given")
    now_as = {field: current.get(field) for field in fields}
    return {f: str(v) if isinstance(v, uuid.UUID) else v for f, v in now_as.items()} | given


def _refuse_if_used(kind: Kind, reference: object, user: str, users: list[str]) -> None:
    if not users:
        return
    shown = ", ".join(repr(name) for name in users[:_USERS_SHOWN])
    more = f" and {len(users) - _USERS_SHOWN} more" if len(users) > _USERS_SHOWN else ""
    raise InputError(
        f"{kind.value} {reference!r} is still used by {len(users)} {user}(s): {shown}{more}; "
        f"delete or move them first"
    )
