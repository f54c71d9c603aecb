"""The AMC reporting API over HTTP: create, get, find and cancel workflow executions.

Retries (tenacity): 429 (after Retry-After, else exponential backoff with jitter), 5xx and
network errors. A create request that may have reached AMC (a timeout or reset after
sending, or a 5xx) is sent again only when AMC lists no execution that it could have started;
if it lists any, the call ends in AmcOutcomeUnknownError and the daemon's recovery decides,
knowing what other runs hold: the client never adopts an execution itself. A 401, or a 403
that may come from an expired token, gets one token refresh and one retry. Each instance has
a circuit breaker.

The client has no cap on requests in flight. AMC's per-instance limit holds across all
daemons, so the daemon holds a slot of its instance gate (``daemon.instance_gate``, PostgreSQL
advisory locks) around every call it makes; the client used alone (tests, the demo) is uncapped.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from scheduler_daemon.amc.breaker import CircuitBreakers
from scheduler_daemon.amc.errors import (
    AmcAuthError,
    AmcError,
    AmcNotSentError,
    AmcOutcomeUnknownError,
    AmcProtocolError,
    AmcRejectedError,
    AmcUnavailableError,
)
from scheduler_daemon.amc.observer import NO_OBSERVER, AmcObserver
from scheduler_daemon.amc.responses import (
    TERMINAL,
    Execution,
    error_details,
    parse_execution,
    parse_execution_list,
)
from scheduler_daemon.amc.secret import Secret, scrub
from scheduler_daemon.amc.settings import RetryPolicy
from scheduler_daemon.amc.tokens import TokenProvider
from scheduler_daemon.clock import Clock
from scheduler_daemon.recovery import CREATION_SKEW_MARGIN

log = structlog.get_logger("scheduler_daemon.amc")

_T = TypeVar("_T")

CREATION_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
USER_AGENT = "scheduler-daemon"
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Errors raised before the request left this process: sending again cannot duplicate it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_LIST_PAGE_LIMIT = 100


@dataclass(frozen=True)
class AmcTarget:
    """Where a call goes: the instance (path) and the account it belongs to (headers)."""

    instance_id: str
    advertiser_id: str
    marketplace_id: str


class _RetryableError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _AmbiguousError(_RetryableError):
    """A create request may have been applied although we got no answer."""


class _AuthState:
    refreshed = False


def _walls_equal(left: object, right: object) -> bool:
    return isinstance(left, str) and isinstance(right, str) and left[:19] == right[:19]


def same_request(execution: Execution, body: Mapping[str, Any]) -> bool:
    """Whether ``execution`` could have come from ``body``: same workflow, and the same window
    and parameter values wherever AMC reports them (a field AMC leaves out is no evidence)."""
    if execution.workflow_id != body.get("workflowId"):
        return False
    payload = execution.payload
    for reported, sent in (
        ("timeWindowStartOriginal", "timeWindowStart"),
        ("timeWindowEndOriginal", "timeWindowEnd"),
    ):
        if reported in payload and sent in body and not _walls_equal(payload[reported], body[sent]):
            return False
    zone = payload.get("timeWindowTimeZoneOriginal")
    if (
        isinstance(zone, str)
        and "timeWindowTimeZone" in body
        and zone != body["timeWindowTimeZone"]
    ):
        return False
    reported_values = payload.get("parameterValues")
    if isinstance(reported_values, Mapping):
        sent_values = body.get("parameterValues") or {}
        return {k: str(v) for k, v in reported_values.items()} == dict(sent_values)
    return True


def _check_may_send(may_send: Callable[[], bool] | None, where: str) -> None:
    if may_send is not None and not may_send():
        raise AmcNotSentError(
            f"{where}: not sent: this daemon has not renewed its claims lately "
            "(frozen, or cut off from the database), so another may own the run"
        )


def _segment(value: str, what: str) -> str:
    if not _PATH_SEGMENT.match(value):
        raise AmcError(f"{what} {value!r} is not a valid AMC path segment")
    return value


class AmcClient:
    """Thread-safe; one per process, shared by all dispatcher threads. Every HTTP answer
    (or its absence) and every change of an instance's breaker is told to ``observer``."""

    def __init__(
        self,
        tokens: TokenProvider,
        *,
        http: httpx.Client,
        base_url: str,
        retry: RetryPolicy,
        failure_threshold: int,
        cool_down: float,
        clock: Clock,
        observer: AmcObserver = NO_OBSERVER,
    ) -> None:
        self._tokens = tokens
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._retry = retry
        self._clock = clock
        self._observer = observer
        self._breakers = CircuitBreakers(
            clock.monotonic,
            failure_threshold=failure_threshold,
            cool_down=cool_down,
            observer=observer,
        )

    def __repr__(self) -> str:
        return f"AmcClient(base_url={self._base_url!r})"

    # --- public operations -------------------------------------------------------------

    def create_execution(
        self,
        target: AmcTarget,
        body: Mapping[str, Any],
        *,
        may_send: Callable[[], bool] | None = None,
    ) -> Execution:
        """Start an execution. Raises AmcOutcomeUnknownError when the request may have started
        one: it is then not sent again here. ``may_send`` is asked before every attempt: a
        retry that waited through a freeze must not reach AMC after another daemon took the
        run over and sent it (AmcNotSentError instead)."""
        where = f"AMC create execution of {body.get('workflowId')!r} on {target.instance_id}"
        path = f"{self._instance_path(target)}/workflowExecutions"
        with self._guarded(target):
            since = self._clock.now() - CREATION_SKEW_MARGIN

            def post(auth: _AuthState) -> httpx.Response:
                try:
                    return self._exchange(
                        target, where, "POST", path, auth, body=body, may_send=may_send
                    )
                except _AmbiguousError as exc:
                    self._look_before_resending(target, where, body, since, exc)
                    raise

            answer = self._retried(target, where, post)
            execution = parse_execution(self._json(answer, where), where)
        log.info(
            "amc.execution_created",
            instance_id=target.instance_id,
            workflow_id=execution.workflow_id,
            execution_id=execution.execution_id,
            status=execution.raw_status,
        )
        return execution

    def get_execution(self, target: AmcTarget, execution_id: str) -> Execution:
        where = f"AMC get execution {execution_id} on {target.instance_id}"
        path = self._execution_path(target, execution_id)
        with self._guarded(target):
            return parse_execution(self._call(target, where, "GET", path), where)

    def find_executions(
        self, target: AmcTarget, body: Mapping[str, Any], since: datetime
    ) -> list[Execution]:
        """The executions created since ``since`` that match ``body``, oldest first."""
        where = f"AMC look-up of {body.get('workflowId')!r} on {target.instance_id}"
        with self._guarded(target):
            return self._find(target, where, body, since)

    def cancel_execution(self, target: AmcTarget, execution_id: str) -> bool:
        """Cancel a pending or running execution; False when it had already finished."""
        where = f"AMC cancel execution {execution_id} on {target.instance_id}"
        path = self._execution_path(target, execution_id)
        with self._guarded(target):
            try:
                self._call(target, where, "PUT", path, body={"status": "CANCELLED"})
            except AmcRejectedError as exc:
                if exc.status == 405:  # a server without the PUT form: the guides' DELETE
                    self._call(target, where, "DELETE", path)
                    return True
                if exc.status != 400:
                    raise
                current = parse_execution(self._call(target, where, "GET", path), where)
                if current.status not in TERMINAL:
                    raise
                return False
        log.info(
            "amc.execution_cancelled", instance_id=target.instance_id, execution_id=execution_id
        )
        return True

    # --- building blocks -----------------------------------------------------------------

    def _instance_path(self, target: AmcTarget) -> str:
        instance_id = _segment(target.instance_id, "instance id")
        try:
            uuid.UUID(instance_id)
        except ValueError:
            return f"/amc/reporting/{instance_id}"
        raise AmcError(f"instance id {instance_id!r} is a UUID; AMC needs its own string id")

    def _execution_path(self, target: AmcTarget, execution_id: str) -> str:
        execution_id = _segment(execution_id, "execution id")
        return f"{self._instance_path(target)}/workflowExecutions/{execution_id}"

    @contextmanager
    def _guarded(self, target: AmcTarget) -> Iterator[None]:
        """The instance's breaker around one operation, judged by how it ended."""
        with self._breakers(target.instance_id).guard() as record:
            try:
                yield
            except AmcNotSentError:
                raise  # about this daemon, not the instance: neither a failure nor a success
            except (AmcAuthError, AmcUnavailableError, AmcOutcomeUnknownError) as exc:
                record.failure(str(exc))
                raise
            except (AmcRejectedError, AmcProtocolError):
                record.success()  # the instance answered; the request was at fault
                raise
            record.success()

    def _retrying(self, where: str, target: AmcTarget) -> Retrying:
        backoff = wait_exponential(
            multiplier=self._retry.backoff, max=self._retry.backoff_max
        ) + wait_random(0, self._retry.backoff)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _RetryableError) and exc.retry_after is not None:
                return exc.retry_after
            return float(backoff(state))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "amc.retry",
                instance_id=target.instance_id,
                operation=where,
                attempt=state.attempt_number,
                wait=round(state.next_action.sleep, 3) if state.next_action else None,
                reason=exc.reason if isinstance(exc, _RetryableError) else str(exc),
            )

        return Retrying(
            retry=retry_if_exception_type(_RetryableError),
            stop=stop_after_attempt(self._retry.attempts) | stop_after_delay(self._retry.deadline),
            wait=wait,
            before_sleep=before_sleep,
            reraise=True,
        )

    @staticmethod
    def _gave_up(where: str, exc: _RetryableError, attempts: int) -> AmcUnavailableError:
        return AmcUnavailableError(
            f"{where}: gave up after {attempts} attempts; last: {exc.reason}"
        )

    def _call(
        self,
        target: AmcTarget,
        where: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """A request that may be repeated safely; returns the parsed JSON of the 2xx answer."""
        response = self._retried(
            target,
            where,
            lambda auth: self._exchange(
                target, where, method, path, auth, params=params, body=body, safe=True
            ),
        )
        return self._json(response, where)

    def _retried(self, target: AmcTarget, where: str, exchange: Callable[[_AuthState], _T]) -> _T:
        """``exchange`` until it answers or the retries run out (AmcUnavailableError); the
        token refresh after a 401 happens at most once over all the attempts."""
        auth = _AuthState()
        attempts = 0
        try:
            for attempt in self._retrying(where, target):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return exchange(auth)
        except _RetryableError as exc:
            raise self._gave_up(where, exc, attempts) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self,
        target: AmcTarget,
        where: str,
        method: str,
        path: str,
        auth: _AuthState,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        safe: bool = False,
        may_send: Callable[[], bool] | None = None,
    ) -> httpx.Response:
        """One request, plus one retry with a fresh token after a 401/403; a 2xx or raise.
        ``may_send`` is asked right before each of the two is sent (after any token wait)."""
        token = self._tokens.token()
        _check_may_send(may_send, where)
        response = self._send(target, method, path, token, params=params, body=body, safe=safe)
        if response.status_code in (401, 403) and not auth.refreshed:
            auth.refreshed = True
            replacement = self._tokens.replace_rejected(token, response.status_code)
            if replacement is not None:
                log.info(
                    "amc.auth_retry", instance_id=target.instance_id, status=response.status_code
                )
                _check_may_send(may_send, where)
                response = self._send(
                    target, method, path, replacement, params=params, body=body, safe=safe
                )
        return self._check(response, where, safe)

    def _send(
        self,
        target: AmcTarget,
        method: str,
        path: str,
        token: Secret,
        *,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        safe: bool,
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token.reveal()}",
            "Amazon-Advertising-API-ClientId": self._tokens.client_id,
            "Amazon-Advertising-API-AdvertiserId": target.advertiser_id,
            "Amazon-Advertising-API-MarketplaceId": target.marketplace_id,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        started = time.monotonic()
        try:
            response = self._http.request(
                method, self._base_url + path, params=params, json=body, headers=headers
            )
        except httpx.TransportError as exc:
            reason = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
            self._observer.response("error")
            log.warning(
                "amc.request",
                method=method,
                path=path,
                error=reason,
                instance_id=target.instance_id,
            )
            if safe or isinstance(exc, _NOT_SENT):
                raise _RetryableError(reason) from None
            raise _AmbiguousError(reason) from None
        self._observer.response(str(response.status_code))
        log.log(
            logging.DEBUG if response.is_success else logging.WARNING,
            "amc.request",
            method=method,
            path=path,
            status=response.status_code,
            elapsed_ms=round((time.monotonic() - started) * 1000),
            instance_id=target.instance_id,
        )
        return response

    def _check(self, response: httpx.Response, where: str, safe: bool) -> httpx.Response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        details = self._scrub(error_details(status, response.text, response.reason_phrase))
        if status == 429 or status >= 500:
            retry_after = self._retry_after(response)
            reason = f"HTTP {status}: {details}"
            if retry_after is not None and retry_after > self._retry.max_retry_after:
                raise AmcUnavailableError(
                    f"{where}: {reason}; AMC asks to wait {retry_after:.0f} s (Retry-After), "
                    f"longer than the {self._retry.max_retry_after:.0f} s limit"
                )
            if status == 429 or safe:
                raise _RetryableError(reason, retry_after)
            raise _AmbiguousError(reason, retry_after)
        if status in (401, 403):
            raise AmcAuthError(where, status, details)
        raise AmcRejectedError(where, status, details)

    def _retry_after(self, response: httpx.Response) -> float | None:
        raw = response.headers.get("Retry-After")
        if raw is None:
            return None
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - self._clock.now()).total_seconds())

    def _json(self, response: httpx.Response, where: str) -> Any:
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise AmcProtocolError(
                f"{where}: AMC answered HTTP {response.status_code} with a body that is not JSON"
            ) from None

    def _list(
        self, target: AmcTarget, where: str, workflow_id: str, min_creation_time: datetime
    ) -> list[Execution]:
        """The workflow's executions created since ``min_creation_time`` (cancelled ones
        included), oldest first, across pages (up to ``max_list_pages``)."""
        params = {
            "sortAscending": "true",
            "includeCancelled": "true",
            "limit": str(_LIST_PAGE_LIMIT),
            "workflowId": workflow_id,
            "minCreationTime": min_creation_time.astimezone(UTC).strftime(CREATION_TIME_FORMAT),
            "timeZone": "UTC",
        }
        path = f"{self._instance_path(target)}/workflowExecutions"
        executions: list[Execution] = []
        for _ in range(self._retry.max_list_pages):
            page, next_token = parse_execution_list(
                self._call(target, where, "GET", path, params=params), where
            )
            executions.extend(page)
            if next_token is None:
                break
            params["nextToken"] = next_token
        return executions

    def _find(
        self, target: AmcTarget, where: str, body: Mapping[str, Any], since: datetime
    ) -> list[Execution]:
        workflow_id = body.get("workflowId")
        if not isinstance(workflow_id, str):
            return []
        since = since.replace(microsecond=0)
        return [
            execution
            for execution in self._list(target, where, workflow_id, since)
            if (execution.created_at is None or execution.created_at >= since)
            and same_request(execution, body)
        ]

    def _look_before_resending(
        self,
        target: AmcTarget,
        where: str,
        body: Mapping[str, Any],
        since: datetime,
        exc: _AmbiguousError,
    ) -> None:
        """Return if AMC lists no execution this request could have started (sending it again
        cannot duplicate one); else raise AmcOutcomeUnknownError."""
        log.warning("amc.post_outcome_unknown", instance_id=target.instance_id, reason=exc.reason)
        if self._retry.lookup_delay > 0:  # AMC's list may lag a create by a moment
            time.sleep(self._retry.lookup_delay)
        try:
            found = self._find(target, where, body, since)
        except AmcError as lookup_exc:
            raise AmcOutcomeUnknownError(
                f"{where}: the request may have reached AMC ({exc.reason}) and AMC could not "
                f"be asked whether it started an execution ({lookup_exc}); not sent again, "
                "to avoid a duplicate"
            ) from None
        if found:
            raise AmcOutcomeUnknownError(
                f"{where}: the request may have reached AMC ({exc.reason}) and AMC lists "
                f"{len(found)} execution(s) it could have started; not sent again: the run's "
                "recovery decides which, if any, is its own"
            )

    def _scrub(self, text: str) -> str:
        return scrub(text, self._tokens.secrets())
