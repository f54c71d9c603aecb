"""The statements on the web console's sessions (``console_sessions``).

A session is stored by the SHA-256 of its cookie's secret, and honoured only while it has not
expired and its token is not revoked. Each function takes a Connection and never commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

# Expired sessions go when a new one opens: the table holds only sessions that can be used.
DELETE_EXPIRED = text("DELETE FROM console_sessions WHERE expires_at <= now()")

INSERT_SESSION = text(
    """
    INSERT INTO console_sessions (secret_hash, token_id, csrf_token, expires_at)
    VALUES (:secret_hash, :token_id, :csrf_token, now() + make_interval(secs => :seconds))
    """
)

# The session and its token, while both are good.
FIND_SESSION = text(
    """
    SELECT t.id, t.name, t.role, s.csrf_token
      FROM console_sessions s
      JOIN api_tokens t ON t.id = s.token_id
     WHERE s.secret_hash = :secret_hash
       AND s.expires_at > now()
       AND t.revoked_at IS NULL
    """
)

DELETE_SESSION = text("DELETE FROM console_sessions WHERE secret_hash = :secret_hash")


def insert_session(
    conn: Connection, secret_hash: str, token_id: object, csrf_token: str, seconds: float
) -> None:
    conn.execute(DELETE_EXPIRED)
    conn.execute(
        INSERT_SESSION,
        {
            "secret_hash": secret_hash,
            "token_id": token_id,
            "csrf_token": csrf_token,
            "seconds": seconds,
        },
    )


def find_session(conn: Connection, secret_hash: str) -> dict[str, Any] | None:
    row = conn.execute(FIND_SESSION, {"secret_hash": secret_hash}).mappings().first()
    return None if row is None else dict(row)


def delete_session(conn: Connection, secret_hash: str) -> None:
    conn.execute(DELETE_SESSION, {"secret_hash": secret_hash})
