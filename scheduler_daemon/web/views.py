"""What the console shows of a schedule, a run and a change, beyond the verbs' objects: its
state in words, its warnings, a run's place on the timeline. Pure: every input is passed in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler_daemon.domain import MisfirePolicy, OverlapPolicy
from scheduler_daemon.timing import dst_warnings

# The warnings look this far ahead for a clock change.
DST_WARNING_DAYS = 30

MISFIRE_HELP = {
    MisfirePolicy.SKIP: "Slots missed while no daemon could run them are recorded as skipped.",
    MisfirePolicy.RUN_ONCE: "After an outage, run the latest missed slot once; skip the rest.",
    MisfirePolicy.RUN_ALL: "After an outage, run every missed slot (up to the catch-up limit).",
}
OVERLAP_HELP = {
    OverlapPolicy.SKIP: "While the previous run is unfinished, a new slot is skipped.",
    OverlapPolicy.ALLOW: "A new slot runs even while the previous run is unfinished.",
}

# A change's columns as the console's form names them.
FIELD_LABELS = {
    "cron_expression": "spec",
    "interval_seconds": "spec (interval, seconds)",
    "interval_anchor": "anchor",
    "workflow_id": "workflow",
    "user_id": "owner",
    "config_key": "sync key",
    "paused_at": "paused at",
    "paused_until": "paused until",
    "pause_reason": "pause reason",
    "deleted_at": "deleted at",
    "misfire_policy": "misfire policy",
    "overlap_policy": "overlap policy",
    "misfire_grace_seconds": "misfire grace (s)",
    "max_catchup_runs": "catch-up limit",
}


@dataclass(frozen=True)
class Badge:
    label: str
    tone: str  # ok, info, warn, bad, muted
    title: str = ""


def badges(schedule: Mapping[str, Any]) -> list[Badge]:
    """The schedule's state as the list shows it: enabled or disabled, paused (and why, and
    until when), auto-paused, quarantined, failing, running, due."""
    shown: list[Badge] = []
    reason = schedule.get("pause_reason") or ""
    state = schedule["state"]
    if state == "deleted":
        shown.append(Badge("deleted", "muted"))
    elif not schedule["enabled"]:
        shown.append(Badge("disabled", "muted"))
    elif reason.startswith("quarantined:"):
        shown.append(Badge("quarantined", "bad", reason.removeprefix("quarantined:").strip()))
    elif reason.startswith("auto-paused"):
        shown.append(Badge("auto-paused", "bad", reason))
    elif schedule.get("paused_at") is not None:
        until = schedule.get("paused_until")
        title = reason + (f" (until {until:%Y-%m-%d %H:%M} UTC)" if until else "")
        shown.append(Badge("paused", "warn", title.strip()))
    elif state == "running":
        shown.append(Badge("running", "info"))
    elif state == "due":
        shown.append(Badge("due", "warn", "its slot is past and no daemon has claimed it yet"))
    else:
        shown.append(Badge("enabled", "ok"))
    failures = schedule.get("consecutive_failures") or 0
    if failures:
        shown.append(Badge(f"failing ×{failures}", "bad", schedule.get("last_error") or ""))
    return shown


def warnings(schedule: Mapping[str, Any], now: datetime, live_daemons: int) -> list[str]:
    """What may go wrong with the schedule soon, for the list: missed slots about to be
    dropped, a clock change in the next 30 days that skips or repeats one of its times, no
    live daemon to run it."""
    found: list[str] = []
    active = schedule["enabled"] and schedule.get("paused_at") is None
    if active and not live_daemons:
        found.append("no live daemon: nothing runs it")
    next_run = schedule.get("next_run_at")
    grace = timedelta(seconds=schedule.get("misfire_grace_seconds") or 0)
    overdue = next_run is not None and next_run + grace < now
    if (
        active
        and schedule["misfire_policy"] == MisfirePolicy.SKIP
        and (overdue or not live_daemons)
    ):
        found.append("misfire policy skip: the slots it misses are dropped, not run later")
    if schedule["state"] != "deleted":
        found.extend(dst_warnings(schedule["spec"], schedule["timezone"], now, DST_WARNING_DAYS))
    return found


def lateness(run: Mapping[str, Any]) -> float | None:
    started = run.get("started_at")
    return None if started is None else (started - run["scheduled_for"]).total_seconds()


def duration(run: Mapping[str, Any]) -> float | None:
    started, finished = run.get("started_at"), run.get("finished_at")
    return None if started is None or finished is None else (finished - started).total_seconds()


def run_outcome(run: Mapping[str, Any]) -> Badge:
    """A slot on the timeline: ran, skipped and why, failed and with what error, manual."""
    status = run["status"]
    if status == "skipped":
        reason = run.get("skip_reason") or "skipped"
        missed = run.get("missed_slots")
        title = f"{missed} slots missed" if missed and missed > 1 else ""
        return Badge(f"skipped: {reason}", "muted", title)
    tone = {"succeeded": "ok", "failed": "bad", "cancelled": "muted"}.get(status, "info")
    return Badge(status, tone, run.get("error") or "")


def changes(entry: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A history entry's changes as (label, before, after), each value as an operator writes
    it: JSON for objects, lists and booleans, a time in UTC to the second."""
    return [
        (FIELD_LABELS.get(field, field), shown(change["before"]), shown(change["after"]))
        for field, change in entry["changes"].items()
    ]


def shown(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is None or "T" not in value:
            return value
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return json.dumps(value, sort_keys=True)
