"""The claim protocol's types and statuses. Pure: imports nothing of the database, the daemon
or the faces, so that policies, recovery and resolution can be read and tested alone.

The enums are the one list of each kind of value: the tables' CHECK constraints are built from
them, and a test holds every status the SQL names to them.
"""

from __future__ import annotations

import enum
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class RunStatus(enum.StrEnum):
    """Where a run is. pending: a manual run waiting for a daemon; claimed: owned, nothing sent
    yet; dispatching: the executor call may have reached AMC; dispatched: AMC accepted it and
    the status sync follows it; unresolved: recovery could not tell which execution, if any,
    the run's call started (final, nothing resent: an operator decides)."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DISPATCHING = "dispatching"
    DISPATCHED = "dispatched"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    UNRESOLVED = "unresolved"


# A run another run of its schedule overlaps with (a pending manual run has not started).
IN_PROGRESS_RUN_STATUSES = (RunStatus.CLAIMED, RunStatus.DISPATCHING, RunStatus.DISPATCHED)
UNFINISHED_RUN_STATUSES = (RunStatus.PENDING, *IN_PROGRESS_RUN_STATUSES)


class RunTrigger(enum.StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


class SkipReason(enum.StrEnum):
    MISFIRE = "misfire"
    OVERLAP = "overlap"
    QUARANTINED = "quarantined"


class ExecutionStatus(enum.StrEnum):
    """An AMC execution's status as we record it (AMC's own word is kept beside it)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


class MisfirePolicy(enum.StrEnum):
    SKIP = "skip"
    RUN_ONCE = "run_once"
    RUN_ALL = "run_all"


class OverlapPolicy(enum.StrEnum):
    SKIP = "skip"
    ALLOW = "allow"


class TokenRole(enum.StrEnum):
    """What an API token may do: read, or read and change."""

    READ = "read"
    WRITE = "write"


class AuditEntity(enum.StrEnum):
    """What an audit_log row is about (the references' kinds that change)."""

    ACCOUNT = "account"
    INSTANCE = "instance"
    WORKFLOW = "workflow"
    SCHEDULE = "schedule"
    TOKEN = "token"  # noqa: S105 - a kind of row, not a secret


class AuditAction(enum.StrEnum):
    """What an audit_log row says was done. A schedule's change of only its enabled flag (a
    quarantine lifted or set with it) is enable or disable; of only its pause, pause or
    resume; a soft delete is delete; trigger: a manual run was queued."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    PAUSE = "pause"
    RESUME = "resume"
    ENABLE = "enable"
    DISABLE = "disable"
    TRIGGER = "trigger"
    REVOKE = "revoke"


@dataclass(frozen=True)
class DueSchedule:
    """A due schedule as the claim reads it."""

    id: uuid.UUID
    workflow_id: uuid.UUID
    cron_expression: str | None
    interval_seconds: int | None
    interval_anchor: datetime | None
    timezone: str
    next_run_at: datetime
    last_run_at: datetime | None
    misfire_policy: str
    misfire_grace_seconds: int
    max_catchup_runs: int
    overlap_policy: str
    has_unfinished_run: bool


@dataclass(frozen=True)
class ScheduleDecision:
    """What a claim writes to one schedule row."""

    schedule_id: uuid.UUID
    old_last_run_at: datetime | None
    last_run_at: datetime | None
    next_run_at: datetime
    take_lock: bool


@dataclass(frozen=True)
class NewRun:
    """A run row a claim inserts: claimed (to dispatch) or skipped (with its reason)."""

    schedule_id: uuid.UUID
    workflow_id: uuid.UUID
    scheduled_for: datetime
    status: RunStatus
    skip_reason: SkipReason | None = None
    missed_slots: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class ClaimedRun:
    """A run this worker owns, under the claim's fencing token."""

    id: uuid.UUID
    schedule_id: uuid.UUID
    workflow_id: uuid.UUID
    scheduled_for: datetime
    trigger: str
    status: str
    fencing_token: int
    correlation_id: uuid.UUID
    parameters_override: dict[str, Any] | None = None

    @functools.cached_property
    def log_fields(self) -> dict[str, str]:
        """What every log line about this run carries (built once: a run logs three)."""
        return run_log_fields(
            self.id, self.schedule_id, self.scheduled_for, self.correlation_id, self.trigger
        )


def run_log_fields(
    run_id: uuid.UUID,
    schedule_id: uuid.UUID,
    scheduled_for: datetime,
    correlation_id: uuid.UUID,
    trigger: str,
) -> dict[str, str]:
    """The fields every log line about a run carries, whichever path it is on."""
    return {
        "run_id": str(run_id),
        "schedule_id": str(schedule_id),
        "scheduled_for": scheduled_for.isoformat(),
        "correlation_id": str(correlation_id),
        "trigger": trigger,
    }


@dataclass(frozen=True)
class RunContext:
    """What an executor needs to know about a run besides the run itself: its workflow, the
    schedule's parameters and zone, the AMC instance and account. A field is None when the row
    behind it is missing (a workflow deleted, an instance without its account)."""

    workflow_id: uuid.UUID | None
    workflow_name: str | None
    amc_workflow_id: str | None
    workflow_parameters: dict[str, Any] | None
    schedule_parameters: dict[str, Any] | None
    timezone: str | None
    amc_instance_id: str | None
    amc_entity_id: str | None
    marketplace_id: str | None
    region: str | None


@dataclass(frozen=True)
class Outcome:
    """What to record for one dispatched run; ``release`` frees the schedule's lock. (The
    request it sent was stored when it was marked ``dispatching``.)"""

    run: ClaimedRun
    status: RunStatus
    amc_execution_id: str | None
    error_message: str | None
    release: bool
