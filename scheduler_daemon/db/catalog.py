"""The statements on what schedules point at: AMC accounts, instances and saved workflows.

Each function takes a Connection and never commits: the caller owns the transaction. A name
(or AMC id) another row already has is refused by the database's unique constraints; the
functions that write turn that refusal into a FieldError naming the field and the value.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from scheduler_daemon.db.constraints import unique_fields
from scheduler_daemon.errors import InputError

# --- accounts ---------------------------------------------------------------------------------

LIST_ACCOUNTS = text(
    """
    SELECT a.id, a.name, a.account_id, a.marketplace_id, a.region, a.created_at,
           (SELECT count(*) FROM amc_instances i WHERE i.account_id = a.id) AS instances
      FROM amc_accounts a
     WHERE a.id = ANY(CAST(:ids AS uuid[])) OR CAST(:ids AS uuid[]) IS NULL
     ORDER BY a.name
    """
)

INSERT_ACCOUNT = text(
    """
    INSERT INTO amc_accounts (account_id, marketplace_id, region, name)
    VALUES (:account_id, :marketplace_id, :region, :name)
    RETURNING id
    """
)

UPDATE_ACCOUNT = text(
    """
    UPDATE amc_accounts
       SET name = :name, account_id = :account_id, marketplace_id = :marketplace_id,
           region = :region
     WHERE id = :id
    """
)

DELETE_ACCOUNT = text("DELETE FROM amc_accounts WHERE id = :id")

# A change decided from what a client read (the API's If-Match) holds the row until it commits.
LOCK_ACCOUNT = text("SELECT id FROM amc_accounts WHERE id = :id FOR UPDATE")

# What keeps an account: its instances.
ACCOUNT_USERS = text("SELECT name FROM amc_instances WHERE account_id = :id ORDER BY name")

# --- instances --------------------------------------------------------------------------------

LIST_INSTANCES = text(
    """
    SELECT i.id, i.name, i.instance_id, i.account_id AS account, a.name AS account_name,
           i.created_at,
           (SELECT count(*) FROM workflows w WHERE w.instance_id = i.id) AS workflows
      FROM amc_instances i
      JOIN amc_accounts a ON a.id = i.account_id
     WHERE i.id = ANY(CAST(:ids AS uuid[])) OR CAST(:ids AS uuid[]) IS NULL
     ORDER BY i.name
    """
)

INSERT_INSTANCE = text(
    """
    INSERT INTO amc_instances (instance_id, account_id, name)
    VALUES (:instance_id, :account_id, :name)
    RETURNING id
    """
)

UPDATE_INSTANCE = text(
    """
    UPDATE amc_instances
       SET name = :name, instance_id = :instance_id, account_id = :account_id
     WHERE id = :id
    """
)

DELETE_INSTANCE = text("DELETE FROM amc_instances WHERE id = :id")

LOCK_INSTANCE = text("SELECT id FROM amc_instances WHERE id = :id FOR UPDATE")

# What keeps an instance: its workflows.
INSTANCE_USERS = text("SELECT name FROM workflows WHERE instance_id = :id ORDER BY name")

# --- workflows --------------------------------------------------------------------------------

LIST_WORKFLOWS = text(
    """
    SELECT w.id, w.name, w.instance_id AS instance, i.name AS instance_name,
           w.amc_workflow_id, w.sql_query, w.parameters, w.created_at, w.updated_at,
           (SELECT count(*) FROM workflow_schedules s
             WHERE s.workflow_id = w.id AND s.deleted_at IS NULL) AS schedules
      FROM workflows w
      JOIN amc_instances i ON i.id = w.instance_id
     WHERE w.id = ANY(CAST(:ids AS uuid[])) OR CAST(:ids AS uuid[]) IS NULL
     ORDER BY w.name
    """
)

INSERT_WORKFLOW = text(
    """
    INSERT INTO workflows (name, instance_id, amc_workflow_id, sql_query, parameters)
    VALUES (:name, :instance_id, :amc_workflow_id, :sql_query, :parameters)
    RETURNING id
    """
).bindparams(bindparam("parameters", type_=JSONB))

UPDATE_WORKFLOW = text(
    """
    UPDATE workflows
       SET name = :name, instance_id = :instance_id, amc_workflow_id = :amc_workflow_id,
           sql_query = :sql_query, parameters = :parameters, updated_at = now()
     WHERE id = :id
    """
).bindparams(bindparam("parameters", type_=JSONB))

DELETE_WORKFLOW = text("DELETE FROM workflows WHERE id = :id")

LOCK_WORKFLOW = text("SELECT id FROM workflows WHERE id = :id FOR UPDATE")

# What keeps a workflow: its schedules (a deleted one's too, for its run history) and the
# runs and executions recorded against it.
WORKFLOW_USERS = text(
    """
    SELECT name || CASE WHEN deleted_at IS NULL THEN '' ELSE ' (deleted)' END
      FROM workflow_schedules
     WHERE workflow_id = :id
     ORDER BY deleted_at NULLS FIRST, name
    """
)

# A reference that reads as a UUID is an id, any other a name; one round trip for both kinds.
SELECT_WORKFLOWS = text(
    """
    SELECT id, name
      FROM workflows
     WHERE id = ANY(CAST(:ids AS uuid[])) OR name = ANY(CAST(:names AS text[]))
    """
)


# What a form offers to pick from: each workflow's id, name and instance, without the counts
# LIST_WORKFLOWS makes (which read every schedule).
WORKFLOW_CHOICES = text(
    """
    SELECT w.id, w.name, i.name AS instance_name
      FROM workflows w
      JOIN amc_instances i ON i.id = w.instance_id
     ORDER BY w.name
    """
)


def workflow_choices(conn: Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(WORKFLOW_CHOICES).mappings()]


def _list(
    conn: Connection, statement: TextClause, ids: Sequence[uuid.UUID] | None
) -> list[dict[str, Any]]:
    rows = conn.execute(statement, {"ids": None if ids is None else list(ids)}).mappings()
    return [dict(row) for row in rows]


def _names(conn: Connection, statement: TextClause, row_id: uuid.UUID) -> list[str]:
    return list(conn.execute(statement, {"id": row_id}).scalars())


def list_accounts(conn: Connection, ids: Sequence[uuid.UUID] | None = None) -> list[dict[str, Any]]:
    """Every account (or those with ``ids``), by name, with how many instances each has."""
    return _list(conn, LIST_ACCOUNTS, ids)


def insert_account(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    """``values``: name, account_id, marketplace_id, region."""
    with unique_fields():
        row_id: uuid.UUID = conn.execute(INSERT_ACCOUNT, dict(values)).scalar_one()
    return row_id


def update_account(conn: Connection, account: uuid.UUID, values: Mapping[str, Any]) -> None:
    with unique_fields():
        conn.execute(UPDATE_ACCOUNT, {**values, "id": account})


def account_users(conn: Connection, account: uuid.UUID) -> list[str]:
    """The names of the instances that keep the account from being deleted."""
    return _names(conn, ACCOUNT_USERS, account)


def lock_account(conn: Connection, account: uuid.UUID) -> None:
    conn.execute(LOCK_ACCOUNT, {"id": account})


def delete_account(conn: Connection, account: uuid.UUID) -> None:
    conn.execute(DELETE_ACCOUNT, {"id": account})


def list_instances(
    conn: Connection, ids: Sequence[uuid.UUID] | None = None
) -> list[dict[str, Any]]:
    """Every instance (or those with ``ids``), by name, with its account and workflow count."""
    return _list(conn, LIST_INSTANCES, ids)


def insert_instance(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    """``values``: name, instance_id, account_id (our account row's id)."""
    with unique_fields():
        row_id: uuid.UUID = conn.execute(INSERT_INSTANCE, dict(values)).scalar_one()
    return row_id


def update_instance(conn: Connection, instance: uuid.UUID, values: Mapping[str, Any]) -> None:
    with unique_fields():
        conn.execute(UPDATE_INSTANCE, {**values, "id": instance})


def instance_users(conn: Connection, instance: uuid.UUID) -> list[str]:
    """The names of the workflows that keep the instance from being deleted."""
    return _names(conn, INSTANCE_USERS, instance)


def lock_instance(conn: Connection, instance: uuid.UUID) -> None:
    conn.execute(LOCK_INSTANCE, {"id": instance})


def delete_instance(conn: Connection, instance: uuid.UUID) -> None:
    conn.execute(DELETE_INSTANCE, {"id": instance})


def list_workflows(
    conn: Connection, ids: Sequence[uuid.UUID] | None = None
) -> list[dict[str, Any]]:
    """Every workflow (or those with ``ids``), by name, with its instance and schedule count."""
    return _list(conn, LIST_WORKFLOWS, ids)


def insert_workflow(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    """``values``: name, instance_id (our instance row's id), amc_workflow_id, sql_query,
    parameters."""
    with unique_fields():
        row_id: uuid.UUID = conn.execute(INSERT_WORKFLOW, dict(values)).scalar_one()
    return row_id


def update_workflow(conn: Connection, workflow: uuid.UUID, values: Mapping[str, Any]) -> None:
    with unique_fields():
        conn.execute(UPDATE_WORKFLOW, {**values, "id": workflow})


def workflow_users(conn: Connection, workflow: uuid.UUID) -> list[str]:
    """The names of the schedules (deleted ones marked) that keep the workflow."""
    return _names(conn, WORKFLOW_USERS, workflow)


def lock_workflow(conn: Connection, workflow: uuid.UUID) -> None:
    conn.execute(LOCK_WORKFLOW, {"id": workflow})


def delete_workflow(conn: Connection, workflow: uuid.UUID) -> None:
    """Refused (InputError) while AMC executions of the workflow are on record."""
    try:
        conn.execute(DELETE_WORKFLOW, {"id": workflow})
    except IntegrityError:
        raise InputError(
            f"workflow {workflow} has AMC executions on record; it is kept for their history"
        ) from None


def select_workflows(
    conn: Connection, ids: Sequence[uuid.UUID], names: Sequence[str]
) -> list[Row[tuple[uuid.UUID, str]]]:
    """The workflows with one of ``ids`` or one of ``names``."""
    return list(conn.execute(SELECT_WORKFLOWS, {"ids": list(ids), "names": list(names)}).all())
