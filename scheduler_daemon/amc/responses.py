"""AMC's JSON into typed values: executions (flat or wrapped), lists, error details."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from scheduler_daemon.amc.errors import AmcProtocolError

NormalizedStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
TERMINAL: frozenset[NormalizedStatus] = frozenset({"succeeded", "failed", "cancelled"})

_STATUSES: dict[str, NormalizedStatus] = {
    "PENDING": "pending",
    "RUNNING": "running",
    # Legacy statuses seen by the official AWS solution: PUBLISHING still works, REJECTED failed.
    "PUBLISHING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "REJECTED": "failed",
    "CANCELLED": "cancelled",
}
_REASON_KEYS = ("statusReason", "message", "details", "messageSubject")
_ERROR_KEYS = ("details", "message", "error_description", "statusReason", "error", "code")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
MAX_DETAILS = 500


def normalize_status(raw: str | None) -> NormalizedStatus:
    """AMC's status in our five words; an unknown status is still running (keep polling)."""
    return _STATUSES.get((raw or "").upper(), "running")


def parse_time(raw: object) -> datetime | None:
    """``2023-09-18T22:01:56Z`` (or without Z, read as UTC) → aware UTC datetime."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class Execution:
    """One workflow execution as AMC reports it."""

    execution_id: str
    workflow_id: str | None
    raw_status: str | None
    created_at: datetime | None
    reason: str | None
    payload: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def status(self) -> NormalizedStatus:
        return normalize_status(self.raw_status)


def _unwrap(payload: object) -> object:
    # The spec wraps the object in {"workflowExecution": ...}; the docs and clients see it flat.
    if isinstance(payload, Mapping) and isinstance(payload.get("workflowExecution"), Mapping):
        return payload["workflowExecution"]
    return payload


def _execution(item: Mapping[str, Any]) -> Execution | None:
    execution_id = item.get("workflowExecutionId")
    if not isinstance(execution_id, str) or not execution_id:
        return None
    reason = next(
        (str(item[key]) for key in _REASON_KEYS if isinstance(item.get(key), str) and item[key]),
        None,
    )
    raw_status = item.get("status")
    workflow_id = item.get("workflowId")
    return Execution(
        execution_id=execution_id,
        workflow_id=workflow_id if isinstance(workflow_id, str) else None,
        raw_status=raw_status if isinstance(raw_status, str) else None,
        created_at=parse_time(item.get("createTime")),
        reason=reason,
        payload=item,
    )


def _any_execution(payload: object) -> Execution | None:
    item = _unwrap(payload)
    return _execution(item) if isinstance(item, Mapping) else None


def parse_execution(payload: object, where: str) -> Execution:
    """One execution from a create/get response; AmcProtocolError if it names no id."""
    item = _unwrap(payload)
    execution = _any_execution(payload)
    if execution is None:
        keys = sorted(item)[:10] if isinstance(item, Mapping) else type(item).__name__
        raise AmcProtocolError(f"{where}: AMC's response has no workflowExecutionId (got {keys})")
    return execution


def parse_execution_list(payload: object, where: str) -> tuple[list[Execution], str | None]:
    """The executions of one list page and the token of the next page, if any."""
    if not isinstance(payload, Mapping):
        raise AmcProtocolError(f"{where}: AMC's list response is not an object")
    items = payload.get("executions", payload.get("workflowExecutions", []))
    if not isinstance(items, list):
        raise AmcProtocolError(f"{where}: AMC's list response has no list of executions")
    executions = [execution for item in items if (execution := _any_execution(item)) is not None]
    next_token = payload.get("nextToken")
    return executions, next_token if isinstance(next_token, str) and next_token else None


def error_details(status: int, text: str, reason_phrase: str = "") -> str:
    """The human part of an error body: JSON ``details``/``message``/..., else plain text
    (HTML tags stripped), else the reason phrase."""
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        for key in _ERROR_KEYS:
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                return _clip(value)
    plain = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return _clip(plain) if plain else (reason_phrase or f"HTTP {status}")


def _clip(text: str) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= MAX_DETAILS else text[: MAX_DETAILS - 3] + "..."
