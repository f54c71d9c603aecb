"""Opaque page cursors: a page's last row's position in the listing's order.

A cursor is the keyset a page starts after, so pages stay right while rows are inserted or
deleted between two requests (no row shown twice, none skipped), and the database reads each
page through an index instead of counting past an offset. Clients must not look inside: the
encoding may change.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
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


# The listings' positions, for every face that pages through them (the API, the console).


def schedules_after(cursor: str | None, sort: str) -> tuple[str, uuid.UUID] | None:
    """Where a page of schedules listed by ``sort`` ('name', '-next_run_at', …) starts."""

    def after(position: list[Any]) -> tuple[str, uuid.UUID]:
        given_sort, key, row_id = position
        if given_sort != sort:
            raise FieldError("cursor", cursor, f"this cursor is for sort={given_sort}, not {sort}")
        return str(key), uuid.UUID(str(row_id))

    return decode(cursor, after)


def schedules_page(
    rows: Sequence[Row], limit: int, sort: str, key: Callable[[Row, str], str]
) -> dict[str, Any]:
    """A page of schedules listed by ``sort``; ``key`` is the listing's sort key of a row."""
    order = sort.removeprefix("-")
    return page(rows, limit, lambda last: [sort, key(last, order), last["id"]])


def runs_after(cursor: str | None) -> tuple[datetime, datetime, uuid.UUID] | None:
    """Where a page of runs (newest slot first) starts."""

    def after(position: list[Any]) -> tuple[datetime, datetime, uuid.UUID]:
        slot, created, run_id = position
        return datetime.fromisoformat(slot), datetime.fromisoformat(created), uuid.UUID(str(run_id))

    return decode(cursor, after)


def runs_page(rows: Sequence[Row], limit: int) -> dict[str, Any]:
    return page(rows, limit, lambda last: [last["scheduled_for"], last["created_at"], last["id"]])
