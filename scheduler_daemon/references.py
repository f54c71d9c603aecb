"""What an operator's reference names: a row's name, its AMC id (accounts and instances),
its id, or the start of its id (at least 8 hex digits, as git takes a commit's).

Every face resolves its references here, so ``nightly``, ``3f2a9c1e`` and the full UUID work
alike wherever an id goes. A reference that names nothing, or several rows, is a FieldError
that lists the candidates.
"""

from __future__ import annotations

import enum
import string
import uuid

from sqlalchemy import Connection

from scheduler_daemon.db import references as db_references
from scheduler_daemon.errors import FieldError, NotFoundError

MIN_PREFIX = 8
_CANDIDATES_SHOWN = 5


class Kind(enum.StrEnum):
    ACCOUNT = "account"
    INSTANCE = "instance"
    WORKFLOW = "workflow"
    SCHEDULE = "schedule"
    RUN = "run"
    TOKEN = "token"  # noqa: S105 - a kind of row, not a secret


def id_range(reference: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The ids that begin with ``reference`` as (lowest, highest); None when it is not at
    least MIN_PREFIX hex digits (dashes where a UUID has them are allowed)."""
    digits = reference.strip().lower().replace("-", "")
    if not MIN_PREFIX <= len(digits) <= 32 or not set(digits) <= set(string.hexdigits):
        return None
    pad = 32 - len(digits)
    return uuid.UUID(digits + "0" * pad), uuid.UUID(digits + "f" * pad)


def resolve(conn: Connection, kind: Kind, reference: str | uuid.UUID) -> uuid.UUID:
    """The id of the one row of ``kind`` that ``reference`` names."""
    if isinstance(reference, uuid.UUID):
        reference = str(reference)
    rows = db_references.find(
        conn, kind, reference, id_range(reference), limit=_CANDIDATES_SHOWN + 1
    )
    exact = [row for row in rows if str(row["id"]) == reference.lower()]
    if len(exact) == 1:
        return uuid.UUID(str(exact[0]["id"]))
    if len(rows) == 1:
        return uuid.UUID(str(rows[0]["id"]))
    if not rows:
        raise NotFoundError(kind.value, reference, _nothing(kind, reference))
    shown = ", ".join(f"{row['id']} ({row['name']})" for row in rows[:_CANDIDATES_SHOWN])
    more = ", …" if len(rows) > _CANDIDATES_SHOWN else ""
    raise FieldError(
        kind.value,
        reference,
        f"{reference!r} could be any of {shown}{more}: give more of the id",
    )


# Besides a name and an id, what an operator may name a row by.
_AMC_IDS = {Kind.ACCOUNT: "AMC entity id", Kind.INSTANCE: "AMC instance id"}


def _nothing(kind: Kind, reference: str) -> str:
    deleted = " (or it was deleted)" if kind is Kind.SCHEDULE else ""
    span = id_range(reference)
    if span is not None and span[0] == span[1]:
        return f"no {kind.value} has the id {span[0]}{deleted}"
    ways = [] if kind is Kind.RUN else [f"is named {reference!r}"]
    if kind in _AMC_IDS:
        ways.append(f"has the {_AMC_IDS[kind]} {reference!r}")
    if span is not None:
        ways.append(f"has an id starting with {reference!r}")
    if not ways:
        return f"{reference!r} is not a run id (or at least {MIN_PREFIX} of its first hex digits)"
    return f"no {kind.value} {' or '.join(ways)}{deleted}"
