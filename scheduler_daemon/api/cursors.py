"""Opaque page cursors: a page's last row's position in the listing's order.

A cursor is the keyset a page starts after, so pages stay right while rows are inserted or
deleted between two requests (no row shown twice, none skipped), and the database reads each
page through an index instead of counting past an offset. Clients must not look inside: the
encoding may change.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from scheduler_daemon.errors import FieldError


def encode(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode(cursor: str, size: int) -> list[Any]:
    """The position ``encode`` wrote, a list of ``size`` values; FieldError otherwise."""
    try:
        position = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        position = None
    if not isinstance(position, list) or len(position) != size:
        raise FieldError("cursor", cursor, f"{cursor!r} is not a cursor from this listing's 'next'")
    return position
