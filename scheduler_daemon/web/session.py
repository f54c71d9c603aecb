"""Who is at the console, and the database each page works in.

A browser logs in with an API token and gets a session (``scheduler_daemon.sessions``) whose
secret is its HttpOnly cookie. A page that only reads needs a session; a change also needs a
write token and the session's CSRF token, sent back by every form (a hidden field) and every
partial request (a header). Each change runs in one transaction that the audit trail records
as ``console:`` and the token's name.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from fastapi import Request
from sqlalchemy import Connection, Engine

from scheduler_daemon import sessions
from scheduler_daemon.db import audit
from scheduler_daemon.db.queries import database_now

COOKIE = "sd_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class NotLoggedInError(Exception):
    """No session, or one that expired or whose token was revoked: log in again."""


class ForbiddenError(Exception):
    """The session may not do this: a read token asked for a change, or the CSRF token is
    missing or wrong."""


class Page(NamedTuple):
    conn: Connection
    now: datetime
    session: sessions.Session


def actor(session: sessions.Session) -> str:
    return f"console:{session.token.name}"


class Console:
    """The engine, and how every page uses it: find the session, then read or change."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def reading(self, request: Request) -> Iterator[Page]:
        with self.engine.connect() as conn:
            session = self._session(conn, request)
            yield Page(conn, database_now(conn), session)

    @contextlib.contextmanager
    def writing(
        self, request: Request, csrf_token: str | None, *, change: bool = True
    ) -> Iterator[Page]:
        """One transaction, committed when the block ends without an error. ``change``: it
        changes what operators manage, so it needs a write token (logging out does not)."""
        with self.engine.begin() as conn:
            session = self._session(conn, request)
            sent = csrf_token or request.headers.get(CSRF_HEADER) or ""
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                raise ForbiddenError(
                    "this form is out of date (its security token does not match your "
                    "session): reload the page and try again"
                )
            if change and not session.can_write:
                raise ForbiddenError(
                    f"token {session.token.name!r} is a read token: it cannot change anything"
                )
            audit.set_actor(conn, actor(session))
            yield Page(conn, database_now(conn), session)

    def _session(self, conn: Connection, request: Request) -> sessions.Session:
        secret = request.cookies.get(COOKIE)
        session = None if not secret else sessions.find_session(conn, secret)
        if session is None:
            raise NotLoggedInError
        return session
