"""The statements on what schedules point at: AMC accounts, instances and saved workflows.

Each function takes a Connection and never commits: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Connection, Row, text

# A reference that reads as a UUID is an id, any other a name; one round trip for both kinds.
SELECT_WORKFLOWS = text(
    """
    SELECT id, name
      FROM workflows
     WHERE id = ANY(CAST(:ids AS uuid[])) OR name = ANY(CAST(:names AS text[]))
    """
)

INSERT_ACCOUNT = text(
    """
    INSERT INTO amc_accounts (account_id, marketplace_id, region, name)
    VALUES (:account_id, :marketplace_id, :region, :name)
    RETURNING id
    """
)

INSERT_INSTANCE = text(
    """
    INSERT INTO amc_instances (instance_id, account_id, name)
    VALUES (:instance_id, :account_id, :name)
    RETURNING id
    """
)

INSERT_WORKFLOW = text(
    """
    INSERT INTO workflows (name, instance_id, amc_workflow_id, sql_query)
    VALUES (:name, :instance_id, :amc_workflow_id, :sql_query)
    RETURNING id
    """
)


def select_workflows(
    conn: Connection, ids: Sequence[uuid.UUID], names: Sequence[str]
) -> list[Row[tuple[uuid.UUID, str]]]:
    """The workflows with one of ``ids`` or one of ``names`` (a name may match several)."""
    return list(conn.execute(SELECT_WORKFLOWS, {"ids": list(ids), "names": list(names)}).all())


def insert_account(
    conn: Connection, account_id: str, marketplace_id: str, region: str, name: str
) -> uuid.UUID:
    row_id: uuid.UUID = conn.execute(
        INSERT_ACCOUNT,
        {
            "account_id": account_id,
            "marketplace_id": marketplace_id,
            "region": region,
            "name": name,
        },
    ).scalar_one()
    return row_id


def insert_instance(
    conn: Connection, instance_id: str, account_id: uuid.UUID, name: str
) -> uuid.UUID:
    row_id: uuid.UUID = conn.execute(
        INSERT_INSTANCE, {"instance_id": instance_id, "account_id": account_id, "name": name}
    ).scalar_one()
    return row_id


def insert_workflow(
    conn: Connection, name: str, instance_id: uuid.UUID, amc_workflow_id: str, sql_query: str
) -> uuid.UUID:
    row_id: uuid.UUID = conn.execute(
        INSERT_WORKFLOW,
        {
            "name": name,
            "instance_id": instance_id,
            "amc_workflow_id": amc_workflow_id,
            "sql_query": sql_query,
        },
    ).scalar_one()
    return row_id
