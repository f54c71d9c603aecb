"""The web console's sessions: a browser logs in with an API token and keeps only a session.

The session's secret lives in the browser's cookie and nowhere else (the database keeps its
hash), so the token a person typed is not kept by the browser. Each session has its own CSRF
token, which every form and partial request of the console sends back. A session lasts
``SESSION_SECONDS`` and ends at once when its browser logs out or its token is revoked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Connection

from scheduler_daemon import tokens
from scheduler_daemon.db import sessions as db_sessions
from scheduler_daemon.domain import TokenRole

SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Session:
    """A logged-in browser: the token it logged in with, and its CSRF token."""

    token: tokens.Token
    csrf_token: str

    @property
    def can_write(self) -> bool:
        return self.token.permits(TokenRole.WRITE)


def open_session(conn: Connection, token_secret: str) -> tuple[str, Session] | None:
    """A new session for a valid token: its cookie secret and the session; None when the
    token is unknown or revoked."""
    token = tokens.authenticate(conn, token_secret.strip())
    if token is None:
        return None
    secret = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    db_sessions.insert_session(
        conn, tokens.hash_secret(secret), token.id, csrf_token, SESSION_SECONDS
    )
    return secret, Session(token, csrf_token)


def find_session(conn: Connection, secret: str) -> Session | None:
    """The session whose cookie secret this is, while it lasts and its token is active."""
    row = db_sessions.find_session(conn, tokens.hash_secret(secret))
    if row is None:
        return None
    token = tokens.Token(row["id"], row["name"], TokenRole(row["role"]))
    return Session(token, row["csrf_token"])


def close_session(conn: Connection, secret: str) -> None:
    """Log the browser out: its cookie is worth nothing from now on."""
    db_sessions.delete_session(conn, tokens.hash_secret(secret))
