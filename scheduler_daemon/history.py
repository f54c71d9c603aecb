"""Who changed what, and when: a schedule's, a catalog row's or a token's history of changes,
as the database's audit trail recorded it (docs/sql.md, "The audit trail"); and the name a
command run from a shell gives its changes.

Every change is recorded by the database itself, whichever way it was made; a face only names
who makes its transaction's changes (``scheduler_daemon.db.audit.set_actor``).
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from scheduler_daemon.db import audit as db_audit
from scheduler_daemon.domain import AuditEntity
from scheduler_daemon.errors import FieldError, InputError, NotFoundError
from scheduler_daemon.references import Kind, resolve

AUDITED = frozenset(Kind(entity) for entity in AuditEntity)
MAX_LIMIT = 1000


def os_actor(face: str) -> str:
    """``face:user``, the user being who runs this process (``cli:alice``, ``sync:deploy``)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment, no passwd entry
        user = str(os.getuid())
    return f"{face}:{user}"


def history(
    conn: Connection,
    kind: Kind,
    reference: str | uuid.UUID,
    *,
    limit: int = 50,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """The changes of the row ``reference`` names, newest first: at most ``limit``, those
    older than the entry ``before`` (an entry's id) when given, for the next page. Each is
    ``{id, at, actor, action, changes: {field: {before, after}}}``.

    A row that is gone (a deleted schedule, a deleted catalog row) is named by its whole id:
    its history outlives it."""
    if kind not in AUDITED:
        raise InputError(f"a {kind.value} has no history of changes")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise FieldError("limit", limit, f"{limit!r} is not a whole number from 1 to {MAX_LIMIT}")
    if before is not None and (isinstance(before, bool) or not isinstance(before, int)):
        raise FieldError("before", before, f"{before!r} is not a history entry's id")
    entity_id = _entity_id(conn, kind, reference)
    rows = db_audit.select_history(conn, kind.value, entity_id, limit=limit, before_id=before)
    return [entry(row) for row in rows]


def entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """An audit row as a history entry: each field that changed, before and after (null on
    the side where it had no value: before a create, after a delete). A create records every
    field, those without a value too: they did not change."""
    before = row["before"] or {}
    after = row["after"] or {}
    changes = {
        field: {"before": before.get(field), "after": after.get(field)}
        for field in sorted(before.keys() | after.keys())
        if before.get(field) is not None or after.get(field) is not None
    }
    return {
        "id": row["id"],
        "at": row["at"],
        "actor": row["actor"],
        "action": row["action"],
        "changes": changes,
    }


def _entity_id(conn: Connection, kind: Kind, reference: str | uuid.UUID) -> uuid.UUID:
    try:
        return resolve(conn, kind, reference)
    except NotFoundError:
        gone = _whole_id(reference)
        if gone is None or not db_audit.has_history(conn, kind.value, gone):
            raise
        return gone


def _whole_id(reference: str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(reference, uuid.UUID):
        return reference
    try:
        return uuid.UUID(reference.strip())
    except ValueError:
        return None
