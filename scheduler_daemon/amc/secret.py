"""Secrets that cannot leak by accident: their repr and str are ``***``."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable

MASK = "***"

# Login-with-Amazon tokens start with Atza| (access) or Atzr| (refresh); whatever a remote
# error body echoes back, such a token is masked even when we never held it.
_LWA_TOKEN = re.compile(r"Atz[ar]\|[^\s\"',;&]+")
_MIN_SCRUB_LENGTH = 4


class Secret:
    """A secret string. Only ``reveal()`` gives the value; everything else prints ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")


def scrub(text: str, secrets: Iterable[Secret | str] = ()) -> str:
    """``text`` with every known secret value and every LwA-looking token masked."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if len(value) >= _MIN_SCRUB_LENGTH:
            text = text.replace(value, MASK)
    return _LWA_TOKEN.sub(MASK, text)
