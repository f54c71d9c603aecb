"""Opaque page cursors: a page's last row's position in the listing's order.

A cursor is the keyset a page starts after, so pages stay right while rows are inserted or
deleted between two requests (no row shown twice, none skipped), and the database reads each
page through an index instead of counting past an offset. Clients must not look inside: the
encoding may change.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from scheduler_daemon.errors import FieldError

Position = TypeVar("Position")
Row = Mapping[str, Any]


def encode(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position, default=str)).decode().rstrip("=")


def decode(cursor: str | None, parse: Callable[[list[Any]], Position]) -> Position | None:
    """The position a cursor holds, as ``parse`` reads the list ``encode`` wrote (None without a
    cursor). Anything ``parse`` cannot read (TypeError, ValueError) is a FieldError naming the
    cursor; ``parse`` may raise a FieldError of its own."""
    if cursor is None:
        return None
    try:
        position = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(position, list):
            raise ValueError(position)
        return parse(position)
    except (ValueError, TypeError, binascii.Error):  # orjson.JSONDecodeError is a ValueError
        raise FieldError(
            "cursor", cursor, f"{cursor!r} is not a cursor from this listing's 'next'"
        ) from None


def page(rows: Sequence[Row], limit: int, position: Callable[[Row], list[Any]]) -> dict[str, Any]:
    """A page of at most ``limit`` of ``rows`` (read with ``limit + 1``, so that one more row
    says whether another page follows) and the cursor of the next, or None on the last."""
    following = encode(position(rows[limit - 1])) if len(rows) > limit else None
    return {"items": list(rows[:limit]), "next": following}
