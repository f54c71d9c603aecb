"""The statements that find what an operator's reference names: a name, an AMC id, or an id
or the start of one (at least 8 hex digits, as git takes a commit's).

An id prefix is searched as the range of ids that begin with it (``:low`` to ``:high``, NULL
when the reference is not hex), so the primary key's index answers it. Each returns at most
``:limit`` rows, enough to list the candidates of an ambiguous reference.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, TextClause, text

FIND_ACCOUNTS = text(
    """
    SELECT id, name
      FROM amc_accounts
     WHERE name = :reference OR account_id = :reference OR id BETWEEN :low AND :high
     ORDER BY name
     LIMIT :limit
    """
)

FIND_INSTANCES = text(
    """
    SELECT id, name
      FROM amc_instances
     WHERE name = :reference OR instance_id = :reference OR id BETWEEN :low AND :high
     ORDER BY name
     LIMIT :limit
    """
)

FIND_WORKFLOWS = text(
    """
    SELECT id, name
      FROM workflows
     WHERE name = :reference OR id BETWEEN :low AND :high
     ORDER BY name
     LIMIT :limit
    """
)

FIND_SCHEDULES = text(
    """
    SELECT id, name
      FROM workflow_schedules
     WHERE deleted_at IS NULL AND (name = :reference OR id BETWEEN :low AND :high)
     ORDER BY name
     LIMIT :limit
    """
)

# Revoked tokens too: revoking one again, or reading its history, names it.
FIND_TOKENS = text(
    """
    SELECT id, name
      FROM api_tokens
     WHERE name = :reference OR id BETWEEN :low AND :high
     ORDER BY name
     LIMIT :limit
    """
)

# A run has no name: its schedule's and its slot say which it is.
FIND_RUNS = text(
    """
    SELECT r.id, s.name || ' at ' || to_char(r.scheduled_for AT TIME ZONE 'UTC',
                                             'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS name
      FROM schedule_runs r
      JOIN workflow_schedules s ON s.id = r.schedule_id
     WHERE r.id BETWEEN :low AND :high
     ORDER BY r.scheduled_for DESC
     LIMIT :limit
    """
)

FIND: dict[str, TextClause] = {
    "account": FIND_ACCOUNTS,
    "instance": FIND_INSTANCES,
    "workflow": FIND_WORKFLOWS,
    "schedule": FIND_SCHEDULES,
    "run": FIND_RUNS,
    "token": FIND_TOKENS,
}


def find(
    conn: Connection,
    kind: str,
    reference: str,
    id_range: tuple[uuid.UUID, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The rows of ``kind`` the reference may name (id and name of each)."""
    low, high = id_range or (None, None)
    params = {"reference": reference, "low": low, "high": high, "limit": limit}
    return [dict(row) for row in conn.execute(FIND[kind], params).mappings()]
