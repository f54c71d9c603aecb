"""The state of the fake AMC server: credentials, accounts, instances, workflows and
executions, with AMC's validations and its execution lifecycle. Thread-safe; no HTTP here."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler_daemon.clock import Clock
from scheduler_daemon.timing.errors import TimingError
from scheduler_daemon.timing.zones import load_zone

TIME_WINDOW_TYPES = (
    "EXPLICIT",
    "MOST_RECENT_DAY",
    "MOST_RECENT_WEEK",
    "CURRENT_MONTH",
    "PREVIOUS_MONTH",
    "ALL",
)
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "REJECTED"})
COMPILE_ERROR_MARKER = "FORCE_COMPILE_ERROR"
DEFAULT_TIMEOUT_SECONDS = 21600
_WALL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_INSTANCE_ID = re.compile(r"^amc[a-z0-9]{8}$")
_ENTITY_ID = re.compile(r"^ENTITY[A-Z0-9]+$")
_UNAUTHORIZED = "Unauthorized request"
MAX_LIST_LIMIT = 100


class FakeHttpError(Exception):
    """An error answer: ``{"code": "<status>", "details": ...}`` unless ``body`` is given."""

    def __init__(
        self,
        status: int,
        details: str = "",
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {details}")
        self.status = status
        self.body = body if body is not None else {"code": str(status), "details": details}
        self.headers = dict(headers or {})


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeInstance:
    instance_id: str
    account_id: str
    sandbox: bool = False


@dataclass
class FakeWorkflow:
    workflow_id: str
    sql_query: str
    input_parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Script:
    """How executions of a workflow end: ``final_status`` (SUCCEEDED, FAILED, REJECTED or any
    string, to test unknown statuses) with ``reason``; or ``stuck_in`` PENDING/RUNNING.
    ``running_seconds`` replaces the server's setting for them (executions that run long)."""

    final_status: str = "SUCCEEDED"
    reason: str | None = None
    stuck_in: str | None = None
    running_seconds: float | None = None


@dataclass
class FakeExecution:
    execution_id: str
    instance_id: str
    workflow_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    fields: dict[str, Any]
    script: Script
    eligible_at: datetime
    finish_at: datetime | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        payload = {
            "workflowExecutionId": self.execution_id,
            "workflowId": self.workflow_id,
            "status": self.status,
            "createTime": utc_text(self.created_at),
            "lastUpdatedTime": utc_text(self.updated_at),
            "expireTime": utc_text(self.created_at + timedelta(hours=24)),
            "waitUntil": utc_text(self.created_at),
            "executionCategory": "AD_HOC",
            "dataGaps": [],
            **self.fields,
        }
        if self.reason is not None:
            payload["statusReason"] = self.reason
        return payload


@dataclass
class FakeSettings:
    pending_seconds: float = 0.1
    running_seconds: float = 0.2
    max_running_per_instance: int = 10
    token_expires_in: int = 3600
    # Answers create and get inside {"workflowExecution": ...}, as AMC's spec has them.
    wrap_responses: bool = False


@dataclass
class _AccessToken:
    client_id: str
    expires_at: float


@dataclass
class FakeAmcState:
    clock: Clock
    settings: FakeSettings = field(default_factory=FakeSettings)
    clients: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    access_tokens: dict[str, _AccessToken] = field(default_factory=dict)
    issued_tokens: list[str] = field(default_factory=list)
    accounts: dict[str, str] = field(default_factory=dict)
    instances: dict[str, FakeInstance] = field(default_factory=dict)
    workflows: dict[tuple[str, str], FakeWorkflow] = field(default_factory=dict)
    executions: dict[str, FakeExecution] = field(default_factory=dict)
    scripts: dict[str, Script] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    # --- set-up ----------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.clients[client_id] = client_secret

    def add_refresh_token(self, refresh_token: str, client_id: str) -> None:
        with self.lock:
            self.refresh_tokens[refresh_token] = client_id
            self.revoked.discard(refresh_token)

    def revoke_refresh_token(self, refresh_token: str) -> None:
        with self.lock:
            self.revoked.add(refresh_token)

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def add_account(self, account_id: str, marketplace_id: str) -> None:
        with self.lock:
            self.accounts[account_id] = marketplace_id

    def add_instance(self, instance_id: str, account_id: str, *, sandbox: bool = False) -> None:
        with self.lock:
            if account_id not in self.accounts:
                raise ValueError(f"unknown account {account_id!r}; add it first")
            self.instances[instance_id] = FakeInstance(instance_id, account_id, sandbox)

    def add_workflow(
        self,
        instance_id: str,
        workflow_id: str,
        *,
        sql_query: str = "SELECT 1",
        input_parameters: tuple[str, ...] = (),
    ) -> None:
        with self.lock:
            if instance_id not in self.instances:
                raise ValueError(f"unknown instance {instance_id!r}; add it first")
            self.workflows[(instance_id, workflow_id)] = FakeWorkflow(
                workflow_id, sql_query, tuple(input_parameters)
            )

    # --- Login with Amazon -----------------------------------------------------------------

    def issue_token(self, form: Mapping[str, str]) -> dict[str, Any]:
        def refuse(status: int, error: str, description: str) -> FakeHttpError:
            return FakeHttpError(status, body={"error": error, "error_description": description})

        grant_type = form.get("grant_type")
        if not grant_type:
            raise refuse(
                400, "invalid_request", "The request is missing a required parameter : grant_type"
            )
        if grant_type != "refresh_token":
            raise refuse(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        client_id = form.get("client_id", "")
        with self.lock:
            if self.clients.get(client_id) != form.get("client_secret") or not client_id:
                raise refuse(401, "invalid_client", "Client authentication failed")
            refresh_token = form.get("refresh_token", "")
            if self.refresh_tokens.get(refresh_token) != client_id or refresh_token in self.revoked:
                raise refuse(
                    400,
                    "invalid_grant",
                    "The request has an invalid grant parameter : refresh_token",
                )
            token = "Atza|" + secrets.token_urlsafe(24)
            expires_in = self.settings.token_expires_in
            self.issued_tokens.append(token)
            self.access_tokens[token] = _AccessToken(client_id, self.clock.monotonic() + expires_in)
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": expires_in,
            "refresh_token": refresh_token,
        }

    # --- authentication of AMC calls -------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str], instance_id: str) -> None:
        """Check the headers of a call to the instance, in AMC's documented order."""
        authorization = headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            raise FakeHttpError(401, "Authentication failed")
        with self.lock:
            token = self.access_tokens.get(authorization[len("Bearer ") :])
            if token is None or self.clock.monotonic() >= token.expires_at:
                raise FakeHttpError(401, "Authentication failed")
            client_id = headers.get("amazon-advertising-api-clientid")
            if not client_id:
                raise FakeHttpError(400, "Amazon-Advertising-API-ClientId header is missing")
            if client_id != token.client_id:
                raise FakeHttpError(401, "Authentication failed")
            account_id = headers.get("amazon-advertising-api-advertiserid")
            if not account_id:
                raise FakeHttpError(400, "entityId provided is null")
            marketplace_id = headers.get("amazon-advertising-api-marketplaceid")
            if not marketplace_id:
                raise FakeHttpError(400, "marketplaceId provided is null")
            if not _ENTITY_ID.match(account_id) or account_id not in self.accounts:
                raise FakeHttpError(403, _UNAUTHORIZED)
            if self.accounts[account_id] != marketplace_id:
                raise FakeHttpError(403, _UNAUTHORIZED)
            instance = self.instances.get(instance_id)
            if (
                not _INSTANCE_ID.match(instance_id)
                or instance is None
                or instance.account_id != account_id
            ):
                raise FakeHttpError(403, _UNAUTHORIZED)

    # --- executions ------------------------------------------------------------------------

    def _wall(self, body: Mapping[str, Any], name: str) -> str:
        value = body.get(name)
        if not isinstance(value, str):
            raise FakeHttpError(400, f"{name} must be a string of the form yyyy-MM-dd'T'HH:mm:ss")
        if _WALL.match(value):
            return value
        raise FakeHttpError(400, f"Invalid {name} {value!r}: expected format yyyy-MM-dd'T'HH:mm:ss")

    def _window(self, body: Mapping[str, Any]) -> dict[str, Any]:
        kind = body.get("timeWindowType", "MOST_RECENT_DAY")
        if kind not in TIME_WINDOW_TYPES:
            raise FakeHttpError(
                400, f"Invalid timeWindowType {kind!r}; one of {', '.join(TIME_WINDOW_TYPES)}"
            )
        zone_name = body.get("timeWindowTimeZone", "UTC")
        try:
            if not isinstance(zone_name, str):
                raise TimingError("not a string")
            zone = load_zone(zone_name)
        except TimingError:
            raise FakeHttpError(400, f"Invalid timeWindowTimeZone {zone_name!r}") from None
        fields: dict[str, Any] = {"timeWindowTimeZoneOriginal": zone.name}
        has_bounds = "timeWindowStart" in body or "timeWindowEnd" in body
        if kind != "EXPLICIT":
            if has_bounds:
                raise FakeHttpError(
                    400, "timeWindowStart and timeWindowEnd are only valid for EXPLICIT"
                )
            return fields
        if "timeWindowStart" not in body or "timeWindowEnd" not in body:
            raise FakeHttpError(400, "EXPLICIT needs both timeWindowStart and timeWindowEnd")
        start, end = self._wall(body, "timeWindowStart"), self._wall(body, "timeWindowEnd")
        instants = []
        for wall in (start, end):
            seconds = int(datetime.fromisoformat(wall).replace(tzinfo=UTC).timestamp())
            instants.append(datetime.fromtimestamp(zone.resolve(seconds).instant, UTC))
        if instants[0] >= instants[1]:
            raise FakeHttpError(400, "timeWindowStart must be before timeWindowEnd")
        fields |= {
            "timeWindowStart": utc_text(instants[0]),
            "timeWindowEnd": utc_text(instants[1]),
            "timeWindowStartOriginal": start,
            "timeWindowEndOriginal": end,
        }
        return fields

    def _workflow_of(self, instance_id: str, body: Mapping[str, Any]) -> FakeWorkflow:
        workflow_id = body.get("workflowId")
        if not isinstance(workflow_id, str) or not workflow_id:
            raise FakeHttpError(400, "workflowId is required if a sqlQuery is not provided")
        workflow = self.workflows.get((instance_id, workflow_id))
        if workflow is None:
            raise FakeHttpError(400, f"Workflow with ID {workflow_id} does not exist")
        return workflow

    def _check_body(
        self, instance: FakeInstance, workflow: FakeWorkflow, body: Mapping[str, Any]
    ) -> None:
        timeout = body.get("workflowExecutionTimeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
        try:
            timeout_value = int(timeout)
        except (TypeError, ValueError):
            timeout_value = -1
        if isinstance(timeout, bool) or not 900 <= timeout_value <= 86400:
            raise FakeHttpError(
                400, f"workflowExecutionTimeoutSeconds {timeout!r} must be between 900 and 86400"
            )
        values = body.get("parameterValues", {})
        if not isinstance(values, Mapping):
            raise FakeHttpError(400, "parameterValues must be a map of strings")
        for name in values:
            if name not in workflow.input_parameters:
                raise FakeHttpError(
                    400,
                    f"Was unable to compile workflow {workflow.workflow_id} because it was found "
                    f"to be invalid: Filter operation filter_operation referenced an undeclared "
                    f"parameter {name}.",
                )
        synthetic = body.get("requireSyntheticData") is True
        if instance.sandbox and not synthetic:
            raise FakeHttpError(400, "requireSyntheticData must be true on a sandbox instance")
        if body.get("disableAggregationControls") is True and not synthetic:
            raise FakeHttpError(
                400, "disableAggregationControls cannot be used on non-synthetic data"
            )
        if COMPILE_ERROR_MARKER in workflow.sql_query:
            raise FakeHttpError(
                400, "From line 1, column 8 to line 1, column 12: Object 'x' not found"
            )

    def create_execution(self, instance_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise FakeHttpError(400, "Request body must be a JSON object")
        with self.lock:
            instance = self.instances[instance_id]
            workflow = self._workflow_of(instance_id, body)
            fields = self._window(body)
            self._check_body(instance, workflow, body)
            now = self.clock.now()
            values = {str(k): str(v) for k, v in body.get("parameterValues", {}).items()}
            fields |= {
                "parameterValues": values,
                "workflowExecutionTimeoutSeconds": int(
                    body.get("workflowExecutionTimeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
                ),
                "requireSyntheticData": body.get("requireSyntheticData") is True,
                "disableAggregationControls": body.get("disableAggregationControls") is True,
            }
            script = self.scripts.get(workflow.workflow_id, Script())
            execution = FakeExecution(
                execution_id=str(uuid.uuid4()),
                instance_id=instance_id,
                workflow_id=workflow.workflow_id,
                status="PENDING",
                created_at=now,
                updated_at=now,
                fields=fields,
                script=script,
                eligible_at=now + timedelta(seconds=self.settings.pending_seconds),
            )
            if body.get("dryRun") is True:
                execution.status = "SUCCEEDED"
            self.executions[execution.execution_id] = execution
            return execution.to_json()

    def advance(self) -> None:
        """Move executions through PENDING → RUNNING → final, in time order, honouring the
        running cap per instance (extra executions wait in PENDING)."""
        with self.lock:
            now = self.clock.now()
            floor = datetime.min.replace(tzinfo=UTC)
            # One pass over every execution ever made; the loop then reads only those still
            # moving (a soak makes thousands, and every request advances them).
            moving = [e for e in self.executions.values() if e.status in ("PENDING", "RUNNING")]
            while True:
                running = [e for e in moving if e.status == "RUNNING"]
                finishing = [e for e in running if e.finish_at is not None and e.finish_at <= now]
                event = min(finishing, key=lambda e: e.finish_at or now, default=None)
                starter = self._next_start(moving, running, now)
                if starter is not None and (
                    event is None or max(starter.eligible_at, floor) < (event.finish_at or now)
                ):
                    floor = max(starter.eligible_at, floor)
                    starter.status, starter.updated_at = "RUNNING", floor
                    if starter.script.stuck_in != "RUNNING":
                        seconds = starter.script.running_seconds
                        if seconds is None:
                            seconds = self.settings.running_seconds
                        starter.finish_at = floor + timedelta(seconds=seconds)
                    continue
                if event is None:
                    return
                assert event.finish_at is not None
                floor = max(event.finish_at, floor)
                event.status, event.updated_at = event.script.final_status, event.finish_at
                event.reason = event.script.reason
                event.finish_at = None

    def _next_start(
        self, moving: list[FakeExecution], running: list[FakeExecution], now: datetime
    ) -> FakeExecution | None:
        by_instance: dict[str, int] = {}
        for execution in running:
            by_instance[execution.instance_id] = by_instance.get(execution.instance_id, 0) + 1
        pending = sorted(
            (
                e
                for e in moving
                if e.status == "PENDING" and e.eligible_at <= now and e.script.stuck_in != "PENDING"
            ),
            key=lambda e: (e.eligible_at, e.created_at),
        )
        for execution in pending:
            if by_instance.get(execution.instance_id, 0) < self.settings.max_running_per_instance:
                return execution
        return None

    def _execution(self, instance_id: str, execution_id: str) -> FakeExecution:
        execution = self.executions.get(execution_id)
        if execution is None or execution.instance_id != instance_id:
            raise FakeHttpError(404, f"Workflow execution with ID {execution_id} not found")
        return execution

    def get_execution(self, instance_id: str, execution_id: str) -> dict[str, Any]:
        with self.lock:
            self.advance()
            return self._execution(instance_id, execution_id).to_json()

    def _min_creation_time(self, query: Mapping[str, str]) -> datetime | None:
        name = "minCreationTime"
        if name not in query:
            return None
        wall = self._wall(query, name)
        zone_name = query.get("timeZone", "UTC")
        try:
            zone = load_zone(zone_name)
        except TimingError:
            raise FakeHttpError(400, f"Invalid timeZone {zone_name!r}") from None
        seconds = int(datetime.fromisoformat(wall).replace(tzinfo=UTC).timestamp())
        return datetime.fromtimestamp(zone.resolve(seconds).instant, UTC)

    def list_executions(self, instance_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        workflow_id = query.get("workflowId")
        if workflow_id is None and "minCreationTime" not in query:
            raise FakeHttpError(400, "Either workflowId or minCreationTime must be provided")
        low = self._min_creation_time(query)
        try:
            limit = int(query.get("limit", MAX_LIST_LIMIT))
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise FakeHttpError(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
        include_cancelled = query.get("includeCancelled", "false").lower() == "true"
        ascending = query.get("sortAscending", "false").lower() == "true"
        offset = _decode_page_token(query.get("nextToken"))
        with self.lock:
            self.advance()
            found = [
                e
                for e in self.executions.values()
                if e.instance_id == instance_id
                and (workflow_id is None or e.workflow_id == workflow_id)
                and (low is None or e.created_at >= low)
                and (include_cancelled or e.status != "CANCELLED")
            ]
            found.sort(key=lambda e: (e.created_at, e.execution_id), reverse=not ascending)
            page = found[offset : offset + limit]
            payload: dict[str, Any] = {"executions": [e.to_json() for e in page]}
            if offset + limit < len(found):
                payload["nextToken"] = _encode_page_token(offset + limit)
            return payload

    def cancel_execution(self, instance_id: str, execution_id: str, body: Any) -> dict[str, Any]:
        if body is not None and (
            not isinstance(body, Mapping) or body.get("status") != "CANCELLED"
        ):
            raise FakeHttpError(400, "Only an update of status to CANCELLED is supported")
        with self.lock:
            self.advance()
            execution = self._execution(instance_id, execution_id)
            if execution.status in TERMINAL_STATUSES:
                raise FakeHttpError(
                    400,
                    f"Workflow execution {execution_id} is {execution.status} and cannot be "
                    "updated",
                )
            execution.status, execution.updated_at = "CANCELLED", self.clock.now()
            execution.finish_at = None
            return {}


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _decode_page_token(token: str | None) -> int:
    if token is None:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
    except (ValueError, KeyError, TypeError):
        raise FakeHttpError(400, "Invalid nextToken") from None
    if not isinstance(offset, int) or offset < 0:
        raise FakeHttpError(400, "Invalid nextToken")
    return offset
