"""The audit trail: who changed what, and when (``audit_log``, written by the triggers of
migration 0010 on every change to a schedule, a catalog row or an API token).

The statements here only name the actor of a transaction's changes and read the trail back;
no code writes ``audit_log`` itself.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, text

# Transaction-local: the name goes with the transaction, and a pooled connection that serves
# another face next does not carry it over.
SET_ACTOR = text("SELECT set_config('scheduler.actor', :actor, true)")

# One entity's history, newest first; a page ends before the row :before_id (keyset paging:
# rows written meanwhile neither repeat nor hide one). ix_audit_log_history answers it.
SELECT_HISTORY = text(
    """
    SELECT id, at, actor, action, before, after
      FROM audit_log
     WHERE entity = :entity AND entity_id = :entity_id
       AND id < coalesce(CAST(:before_id AS bigint), 9223372036854775807)
     ORDER BY id DESC
     LIMIT :limit
    """
)

# Whether the trail knows the entity at all (a deleted row's history outlives it).
HAS_HISTORY = text(
    """
    SELECT EXISTS (SELECT 1 FROM audit_log WHERE entity = :entity AND entity_id = :entity_id)
    """
)


def set_actor(conn: Connection, actor: str) -> None:
    """Name who makes this transaction's changes (``cli:alice``, ``api:deploy-bot``): the
    audit rows the triggers write until it ends say so."""
    conn.execute(SET_ACTOR, {"actor": actor})


def select_history(
    conn: Connection,
    entity: str,
    entity_id: uuid.UUID,
    *,
    limit: int,
    before_id: int | None,
) -> list[dict[str, Any]]:
    """The entity's audit rows (id, at, actor, action, before, after), newest first, at most
    ``limit``, those older than ``before_id`` when given."""
    params = {"entity": entity, "entity_id": entity_id, "limit": limit, "before_id": before_id}
    return [dict(row) for row in conn.execute(SELECT_HISTORY, params).mappings()]


def has_history(conn: Connection, entity: str, entity_id: uuid.UUID) -> bool:
    row = conn.execute(HAS_HISTORY, {"entity": entity, "entity_id": entity_id}).scalar_one()
    return bool(row)
