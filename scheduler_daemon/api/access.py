"""Who is asking, and the database each request works in.

A request carries a bearer token (``scheduler-daemon tokens create``); a read token may read
everything, a write token may also change it. Each change runs in one transaction that records
the token's name as the actor of the audit trail. The token itself is never logged.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

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
class Principal:
    """The token a request came with: its name is the actor the audit trail records."""

    token_id: object
    name: str
    can_write: bool

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


class Database:
    """The engine and what every request does with it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._recorded: dict[object, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def writing(self, principal: Principal) -> Iterator[tuple[Connection, datetime]]:
        """One transaction, committed when the block ends without an error; "now" is the
        database's clock."""
        with self.engine.begin() as conn:
            audit.set_actor(conn, principal.actor)
            yield conn, self.now(conn)

    def now(self, conn: Connection) -> datetime:
        """The database's clock: the one every daemon schedules by."""
        return database_now(conn)

    def authenticate(self, secret: str) -> Principal | None:
        with self.engine.connect() as conn:
            token = tokens.authenticate(conn, secret)
            if token is None:
                return None
            if self._use_is_due(token.id):
                try:
                    tokens.record_use(conn, token.id)
                    conn.commit()
                except DBAPIError:  # a read-only database still serves reads
                    conn.rollback()
        return Principal(token.id, token.name, token.permits(TokenRole.WRITE))

    def _use_is_due(self, token_id: object) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._recorded.get(token_id, -_USE_RECORDED_EVERY) < _USE_RECORDED_EVERY:
                return False
            self._recorded[token_id] = now
            return True


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


def reader(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    db: Annotated[Database, Depends(database)],
) -> Principal:
    """The principal of a request that may read: any valid token."""
    if credentials is None:
        raise ApiError(401, "no bearer token: send 'Authorization: Bearer <token>'", _CHALLENGE)
    principal = db.authenticate(credentials.credentials)
    if principal is None:
        raise ApiError(401, "the bearer token is not valid (unknown or revoked)", _CHALLENGE)
    return principal


def writer(principal: Annotated[Principal, Depends(reader)]) -> Principal:
    """The principal of a request that changes something: a write token."""
    if not principal.can_write:
        raise ApiError(403, f"token {principal.name!r} is a read token; this needs a write token")
    return principal


Db = Annotated[Database, Depends(database)]
Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
