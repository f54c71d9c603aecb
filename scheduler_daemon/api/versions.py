"""Optimistic concurrency: a resource's version as an ETag, and If-Match checked against it.

A schedule's version covers what an operator sets (its definition and its state: enabled,
paused), not what the daemons change on every slot (next run, locks, counters), so a tag stays
valid while the schedule runs and goes stale the moment someone else edits it. A change that
comes with If-Match is checked under the row's lock, in the change's own transaction, so two
operators who read the same version cannot both write: the second gets 412.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from scheduler_daemon.api.problems import ApiError

SCHEDULE_VERSIONED = (
    "name",
    "workflow_id",
    "spec",
    "timezone",
    "interval_anchor",
    "enabled",
    "misfire_policy",
    "overlap_policy",
    "misfire_grace_seconds",
    "max_catchup_runs",
    "parameters",
    "paused_at",
    "paused_until",
    "pause_reason",
)
# A catalog row's version is all of it but its counts of users and its timestamps.
_UNVERSIONED = {"instances", "workflows", "schedules", "created_at", "updated_at"}


def etag(values: Mapping[str, Any], fields: Iterable[str] | None = None) -> str:
    chosen = fields if fields is not None else sorted(set(values) - _UNVERSIONED)
    content = orjson.dumps(
        [values.get(field) for field in chosen], default=str, option=orjson.OPT_UTC_Z
    )
    return '"' + hashlib.sha256(content).hexdigest()[:20] + '"'


def schedule_etag(schedule: Mapping[str, Any]) -> str:
    return etag(schedule, SCHEDULE_VERSIONED)


def require_match(if_match: str | None, current: str) -> None:
    """Raise 412 unless If-Match is absent, ``*``, or lists the current tag (weak or not)."""
    if if_match is None:
        return
    tags = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" in tags or current in tags:
        return
    raise ApiError(
        412,
        f"If-Match {if_match} is not the current version ({current}): someone changed it "
        "since you read it; read it again and reapply your change",
        {"ETag": current},
    )
