"""The API's bearer tokens: create one (its secret is shown once and never stored), list them,
revoke one, and tell which token, if any, a request's secret is.

A token is named (unique, like everything an operator names) and has a role: ``read`` may
only read, ``write`` may also change. References are a token's name, id or the start of its
id (``scheduler_daemon.references``), revoked tokens included.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from scheduler_daemon.db import tokens as db_tokens
from scheduler_daemon.domain import TokenRole
from scheduler_daemon.errors import FieldError
from scheduler_daemon.references import Kind, resolve

# Says what a leaked string is (in a log, a repository) and lets a scanner find it.
PREFIX = "sdt_"


@dataclass(frozen=True)
class Token:
    """An active token, as ``authenticate`` finds it: who a request comes from."""

    id: uuid.UUID
    name: str
    role: TokenRole

    def permits(self, needed: TokenRole) -> bool:
        """Whether this token may do what needs ``needed``: write may also read."""
        return self.role is TokenRole.WRITE or needed is TokenRole.READ


def hash_secret(secret: str) -> str:
    """The SHA-256 of a secret, hex: what the table keeps."""
    # A secret is 256 random bits: nobody can guess one from its hash however fast the hash
    # is, so a slow one (bcrypt, argon2: for passwords, which people choose) would only slow
    # every request down.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(conn: Connection, name: str, role: TokenRole | str) -> tuple[dict[str, Any], str]:
    """A new token and its secret, which exists nowhere else: show it now, once. FieldError
    for a blank name or an unknown role; UniqueFieldError when another token has the name."""
    checked_name = _name(name)
    checked_role = _role(role)
    secret = PREFIX + secrets.token_urlsafe(32)
    token_id = db_tokens.insert_token(conn, checked_name, checked_role, hash_secret(secret))
    [created] = db_tokens.list_tokens(conn, [token_id])
    return created, secret


def list_tokens(conn: Connection) -> list[dict[str, Any]]:
    """Every token, revoked ones too, by name (never a secret or its hash)."""
    return db_tokens.list_tokens(conn)


def show_token(conn: Connection, reference: str | uuid.UUID) -> dict[str, Any]:
    [token] = db_tokens.list_tokens(conn, [resolve(conn, Kind.TOKEN, reference)])
    return token


def revoke_token(conn: Connection, reference: str | uuid.UUID) -> uuid.UUID:
    """Revoke the token (its name, id or id prefix): no request is let in with it from the
    moment this transaction commits. A token revoked before stays as it was."""
    token_id = resolve(conn, Kind.TOKEN, reference)
    db_tokens.revoke_token(conn, token_id)
    return token_id


def authenticate(conn: Connection, secret: str) -> Token | None:
    """The active token whose secret this is; None for any other string. Reads only."""
    if not secret.startswith(PREFIX):
        return None
    row = db_tokens.authenticate(conn, hash_secret(secret))
    if row is None:
        return None
    return Token(row["id"], row["name"], TokenRole(row["role"]))


def record_use(conn: Connection, token_id: uuid.UUID) -> None:
    """Note that the token was used now; written at most once a minute per token."""
    db_tokens.record_use(conn, token_id)


def _name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        problem = "missing: it must be" if name is None else f"{name!r} is not"
        raise FieldError("name", name, f"{problem} a non-empty string")
    return name.strip()


def _role(role: object) -> TokenRole:
    roles = [str(known) for known in TokenRole]
    if not isinstance(role, str) or role not in roles:
        raise FieldError("role", role, f"{role!r} is not a role: {' or '.join(roles)}")
    return TokenRole(role)
