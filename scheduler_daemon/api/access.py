"""Who is asking, and the database each request works in.

A request carries a bearer token (``scheduler-daemon tokens create``); a read token may read
everything, a write token may also change it. Each change runs in one transaction that records
the token's name as the actor of the audit trail. The token itself is never logged.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, NamedTuple

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from scheduler_daemon import tokens
from scheduler_daemon.api.problems import ApiError
from scheduler_daemon.db import audit
from scheduler_daemon.db.queries import database_now
from scheduler_daemon.domain import TokenRole

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `scheduler-daemon tokens create --name N --role read|write`.",
)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="scheduler-daemon"'}
# A token's last use is written at most this often per process, not on every request.
_USE_RECORDED_EVERY = 60.0


@dataclass(frozen=True)
class Access:
    """A request's bearer token and whether it asks for a change: checked by ``Database``
    on the connection that then serves the request (one connection, one transaction)."""

    secret: str
    write: bool


class Transaction(NamedTuple):
    conn: Connection
    now: datetime
    token: tokens.Token


def actor(token: tokens.Token) -> str:
    """Who the audit trail says made a request's changes: ``api:`` and the token's name."""
    return f"api:{token.name}"


class Database:
    """The engine, and what every request does with it: authenticate its token, then read or
    change, on one connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._recorded: dict[uuid.UUID, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def reading(self, access: Access) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            self._authenticate(conn, access)
            yield conn

    @contextlib.contextmanager
    def writing(self, access: Access) -> Iterator[Transaction]:
        """One transaction, committed when the block ends without an error, whose changes
        the audit trail records as the token's; "now" is the database's clock."""
        with self.engine.begin() as conn:
            token = self._authenticate(conn, access)
            audit.set_actor(conn, actor(token))
            yield Transaction(conn, self.now(conn), token)

    def now(self, conn: Connection) -> datetime:
        """The database's clock: the one every daemon schedules by."""
        return database_now(conn)

    def _authenticate(self, conn: Connection, access: Access) -> tokens.Token:
        token = tokens.authenticate(conn, access.secret)
        if token is None:
            raise ApiError(401, "the bearer token is not valid (unknown or revoked)", _CHALLENGE)
        if access.write and not token.permits(TokenRole.WRITE):
            raise ApiError(403, f"token {token.name!r} is a read token; this needs a write token")
        if self._use_is_due(token.id):
            self._record_use(token.id)
        return token

    def _record_use(self, token_id: uuid.UUID) -> None:
        """When the token was last used, on a connection of its own: the request's may be
        read-only, and a read-only database still serves reads."""
        try:
            with self.engine.begin() as conn:
                tokens.record_use(conn, token_id)
        except DBAPIError:
            return

    def _use_is_due(self, token_id: uuid.UUID) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._recorded.get(token_id, -_USE_RECORDED_EVERY) < _USE_RECORDED_EVERY:
                return False
            self._recorded[token_id] = now
            return True


# The dependencies below are coroutines, so FastAPI runs them on the event loop instead of
# handing each to its thread pool (a hand-off costs the worker about 0.1 ms of CPU). The
# token is checked by the handler, on the connection that serves the request.


async def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


def _secret(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise ApiError(401, "no bearer token: send 'Authorization: Bearer <token>'", _CHALLENGE)
    return credentials.credentials


async def reader(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Access:
    """A request that reads: any valid token."""
    return Access(_secret(credentials), write=False)


async def writer(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Access:
    """A request that changes something: a write token."""
    return Access(_secret(credentials), write=True)


Db = Annotated[Database, Depends(database)]
Reader = Annotated[Access, Depends(reader)]
Writer = Annotated[Access, Depends(writer)]
