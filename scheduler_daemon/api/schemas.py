"""The API's bodies, as Pydantic models: what clients send and what they get back.

A response model has the fields the verbs' objects have (docs/json.md describes each, and
tests/integration/api hold the two equal). A request model checks only what JSON itself can
say (types, required fields): the values are checked by the verbs, as for the CLI and
``sync``, so each face gives the same message for the same mistake.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.config import JsonDict

from scheduler_daemon.domain import MisfirePolicy, OverlapPolicy

Item = TypeVar("Item")


def _seconds(value: object) -> object:
    return value.total_seconds() if isinstance(value, timedelta) else value


# A duration, as docs/json.md gives it: seconds (the database's intervals included).
Seconds = Annotated[float, BeforeValidator(_seconds)]

MISFIRE: JsonDict = {"enum": [policy.value for policy in MisfirePolicy]}
OVERLAP: JsonDict = {"enum": [policy.value for policy in OverlapPolicy]}


def _iso_8601(value: object) -> object:
    """Refuse a number: Pydantic would read it (or a numeric string, as a query sends one) as
    Unix time, where the document says, and clients mean, an ISO 8601 date-time."""
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        raise ValueError("not an ISO 8601 date-time with its UTC offset, e.g. 2025-01-01T09:00Z")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# A date-time a client sends: ISO 8601 with its UTC offset, never a number.
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]


class Strict(BaseModel):
    """A request body: a field the model does not know is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next: str | None = Field(
        description="The cursor of the next page (pass it as ?cursor=), or null on the last."
    )


# --- problems ---------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str = Field(description="The field as the request spells it.")
    value: Any = Field(default=None, description="The value given.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, sent as application/problem+json."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] = Field(default_factory=list)


# --- schedules --------------------------------------------------------------------------------


class ScheduleFields(Strict):
    """What a schedule's definition holds; null (or absent) leaves a field as it is."""

    name: str | None = None
    workflow: str | None = Field(default=None, description="A workflow's name or id.")
    spec: str | None = Field(
        default=None, description="A cron expression, an alias (@daily) or @every 15m."
    )
    timezone: str | None = Field(default=None, description="An IANA zone, e.g. Europe/Paris.")
    anchor: Instant | None = Field(
        default=None, description="An interval's first slot (with its UTC offset)."
    )
    misfire_policy: str | None = Field(default=None, json_schema_extra=MISFIRE)
    overlap_policy: str | None = Field(default=None, json_schema_extra=OVERLAP)
    misfire_grace_seconds: int | None = None
    max_catchup_runs: int | None = None
    parameters: dict[str, Any] | None = None


class ScheduleCreate(ScheduleFields):
    name: str
    workflow: str = Field(description="A workflow's name or id.")
    spec: str = Field(description="A cron expression, an alias (@daily) or @every 15m.")
    enabled: bool = Field(default=False, description="Start scheduling it at once.")


class ScheduleReplace(ScheduleFields):
    """The whole definition: what is left out takes its default (timezone UTC, …)."""

    name: str
    workflow: str = Field(description="A workflow's name or id.")
    spec: str = Field(description="A cron expression, an alias (@daily) or @every 15m.")


class PauseRequest(Strict):
    reason: str | None = None
    until: Instant | None = Field(
        default=None, description="When it resumes by itself (with its UTC offset)."
    )


class TriggerRequest(Strict):
    at: Instant | None = Field(default=None, description="The slot to run (default: now).")
    parameters: dict[str, Any] | None = Field(
        default=None, description="Overrides of the workflow's and schedule's parameters."
    )


class Schedule(BaseModel):
    id: uuid.UUID
    name: str
    workflow: str
    workflow_id: uuid.UUID
    spec: str
    timezone: str
    state: str
    next_run_at: AwareDatetime | None
    next_run_local: str | None
    last_run_at: AwareDatetime | None
    last_run_local: str | None
    interval_anchor: AwareDatetime | None
    enabled: bool
    misfire_policy: str
    misfire_grace_seconds: int
    max_catchup_runs: int
    overlap_policy: str
    parameters: dict[str, Any]
    last_run_status: str | None
    running_on: str | None
    paused_at: AwareDatetime | None
    paused_until: AwareDatetime | None
    pause_reason: str | None
    consecutive_failures: int
    last_error: str | None
    config_key: str | None = Field(
        description="Set when a `sync` file manages the schedule (that entry's key): the next "
        "sync of that file puts back any change to its definition made here."
    )
    created_at: datetime
    updated_at: datetime


class Percentiles(BaseModel):
    p50: float | None
    p95: float | None


class Statistics(BaseModel):
    succeeded: int
    failed: int
    success_rate: float | None
    mean_duration_seconds: float | None
    last_7_days: dict[str, int] = Field(description="Runs by status, slots of the last 7 days.")
    last_30_days: dict[str, int]
    success_rate_30_days: float | None
    lateness_seconds: Percentiles = Field(description="Slot to start, last 30 days.")
    duration_seconds: Percentiles = Field(description="Start to end, last 30 days.")
    consecutive_failures: int


class FireTime(BaseModel):
    utc: datetime
    local: str | None


class Run(BaseModel):
    id: uuid.UUID
    schedule: str
    schedule_id: uuid.UUID
    scheduled_for: datetime
    scheduled_for_local: str | None
    trigger: str
    status: str
    skip_reason: str | None
    missed_slots: int | None
    worker_id: str | None
    attempts: int
    amc_execution_id: str | None
    execution_status: str | None
    claimed_at: AwareDatetime | None
    started_at: AwareDatetime | None
    finished_at: AwareDatetime | None
    error: str | None
    parameters_override: dict[str, Any] | None
    request: dict[str, Any] | None
    correlation_id: uuid.UUID | None
    created_at: datetime


class ScheduleDetail(Schedule):
    statistics: Statistics
    next_fire_times: list[FireTime]
    recent_runs: list[Run]


class HistoryEntry(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="api:TOKEN-NAME, cli:USER, sync:USER, daemon or sql:ROLE.")
    action: str
    changes: dict[str, Any] = Field(description="Each changed field: {before, after}.")


# --- the catalog ------------------------------------------------------------------------------


class AccountFields(Strict):
    name: str | None = None
    account_id: str | None = Field(default=None, description="The AMC entity id.")
    marketplace_id: str | None = None
    region: str | None = None


class AccountCreate(AccountFields):
    account_id: str = Field(description="The AMC entity id.")


class Account(BaseModel):
    id: uuid.UUID
    name: str
    account_id: str
    marketplace_id: str | None
    region: str | None
    instances: int
    created_at: datetime


class InstanceFields(Strict):
    name: str | None = None
    instance_id: str | None = Field(default=None, description="AMC's id of the instance.")
    account: str | None = Field(default=None, description="An account's name or id.")


class InstanceCreate(InstanceFields):
    instance_id: str = Field(description="AMC's id of the instance.")
    account: str = Field(description="An account's name or id.")


class Instance(BaseModel):
    id: uuid.UUID
    name: str
    instance_id: str
    account: uuid.UUID
    account_name: str
    workflows: int
    created_at: datetime


class WorkflowFields(Strict):
    name: str | None = None
    instance: str | None = Field(default=None, description="An instance's name or id.")
    amc_workflow_id: str | None = None
    sql_query: str | None = None
    parameters: dict[str, Any] | None = None


class WorkflowCreate(WorkflowFields):
    name: str
    instance: str = Field(description="An instance's name or id.")
    amc_workflow_id: str


class Workflow(BaseModel):
    id: uuid.UUID
    name: str
    instance: uuid.UUID
    instance_name: str
    amc_workflow_id: str
    sql_query: str | None
    parameters: dict[str, Any]
    schedules: int
    created_at: datetime
    updated_at: datetime


# --- the system -------------------------------------------------------------------------------


class PreviewRequest(Strict):
    expression: str = Field(description="A cron expression, an alias (@daily) or @every 15m.")
    timezone: str = "UTC"
    count: int = Field(default=10, ge=1, le=1000)
    after: Instant | None = Field(default=None, description="Start after (default: now).")
    anchor: Instant | None = None


class PreviewFire(BaseModel):
    local: str
    utc: str
    zone_abbreviation: str | None
    note: str | None = Field(description="What a daylight-saving change does to this slot.")


class Preview(BaseModel):
    expression: str
    timezone: str
    description: str = Field(description="The spec in words.")
    fires: list[PreviewFire]
    warnings: list[str]


class Worker(BaseModel):
    worker_id: str
    hostname: str | None
    pid: int | None
    version: str | None
    state: str
    dead_because: str | None
    heartbeat_at: AwareDatetime | None
    heartbeat_age: Seconds | None
    clock_skew_seconds: Seconds | None
    locks_held: int
    started_at: AwareDatetime | None
    stopped_at: AwareDatetime | None
    session_pid: int | None


class HealthProblem(BaseModel):
    check: str
    severity: Literal["ok", "warning", "critical", "unknown"]
    message: str


class Health(BaseModel):
    healthy: bool
    status: Literal["ok", "warning", "critical", "unknown"]
    problems: list[HealthProblem]
    facts: dict[str, Any]


class Overview(BaseModel):
    schedules: dict[str, int] = Field(description="Schedules (not deleted) by state.")
    runs_last_24_hours: dict[str, int] = Field(description="Runs by status, slots of 24 h.")
    live_workers: int
    due_not_claimed: int = Field(description="Enabled schedules whose slot is past.")
    unresolved_runs: int
