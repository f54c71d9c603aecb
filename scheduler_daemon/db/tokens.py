"""The statements on the API's bearer tokens (``api_tokens``).

A token is stored as the SHA-256 of its secret (``token_hash``), which no statement here ever
returns. Each function takes a Connection and never commits: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, text

from scheduler_daemon.db.constraints import unique_fields

# created_by: whoever the audit trail names for this transaction (scheduler_daemon_actor()).
INSERT_TOKEN = text(
    """
    INSERT INTO api_tokens (name, role, token_hash, created_by)
    VALUES (:name, :role, :token_hash, scheduler_daemon_actor())
    RETURNING id
    """
)

# Every token, revoked ones too, by name; or those of :ids.
LIST_TOKENS = text(
    """
    SELECT id, name, role, created_at, created_by, last_used_at, revoked_at
      FROM api_tokens
     WHERE id = ANY(CAST(:ids AS uuid[])) OR CAST(:ids AS uuid[]) IS NULL
     ORDER BY name
    """
)

# A token already revoked keeps the time it was first revoked.
REVOKE_TOKEN = text(
    """
    UPDATE api_tokens SET revoked_at = now()
     WHERE id = :id AND revoked_at IS NULL
    """
)

# A read only: authenticating a request writes nothing (record_use does, now and then).
AUTHENTICATE = text(
    """
    SELECT id, name, role
      FROM api_tokens
     WHERE token_hash = :token_hash AND revoked_at IS NULL
    """
)

# At most one write a minute per token, however busy the API is.
RECORD_USE = text(
    """
    UPDATE api_tokens SET last_used_at = now()
     WHERE id = :id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
    """
)


def insert_token(conn: Connection, name: str, role: str, token_hash: str) -> uuid.UUID:
    """The new token's id; UniqueFieldError when another token has the name."""
    with unique_fields():
        token_id: uuid.UUID = conn.execute(
            INSERT_TOKEN, {"name": name, "role": role, "token_hash": token_hash}
        ).scalar_one()
    return token_id


def list_tokens(conn: Connection, ids: list[uuid.UUID] | None = None) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(LIST_TOKENS, {"ids": ids}).mappings()]


def revoke_token(conn: Connection, token_id: uuid.UUID) -> None:
    conn.execute(REVOKE_TOKEN, {"id": token_id})


def authenticate(conn: Connection, token_hash: str) -> dict[str, Any] | None:
    row = conn.execute(AUTHENTICATE, {"token_hash": token_hash}).mappings().first()
    return None if row is None else dict(row)


def record_use(conn: Connection, token_id: uuid.UUID) -> None:
    conn.execute(RECORD_USE, {"id": token_id})
