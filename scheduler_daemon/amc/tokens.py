"""Login-with-Amazon access tokens: cached, refreshed shortly before they expire, one
refresh at a time per credential (concurrent callers wait and share the result), and a
refused credential remembered for a while instead of asking the token endpoint again. Each
request to the token endpoint is told to the observer (the daemon's metrics)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from scheduler_daemon.amc.credentials import (
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_REFRESH_TOKEN,
    AmcCredentials,
)
from scheduler_daemon.amc.errors import TokenError
from scheduler_daemon.amc.observer import NO_OBSERVER, AmcObserver
from scheduler_daemon.amc.responses import error_details
from scheduler_daemon.amc.secret import Secret, scrub
from scheduler_daemon.clock import Clock

log = structlog.get_logger("scheduler_daemon.amc")

DEFAULT_EXPIRES_IN = 3600
_KEPT_TOKENS = 8


@dataclass(frozen=True)
class _Token:
    value: Secret
    refresh_at: float
    expires_at: float
    after_rejection: bool


@dataclass(frozen=True)
class _Failure:
    message: str
    permanent: bool
    until: float


class _TransientError(Exception):
    """The token endpoint failed in a way worth one more try."""


class TokenProvider:
    """Access tokens for one credential. Thread-safe."""

    def __init__(
        self,
        credentials: AmcCredentials,
        *,
        http: httpx.Client,
        token_url: str,
        clock: Clock,
        refresh_margin: float,
        failure_backoff: float,
        attempts: int,
        retry_wait: float,
        transient_backoff: float = 5.0,
        observer: AmcObserver = NO_OBSERVER,
    ) -> None:
        self._credentials = credentials
        self._http = http
        self._token_url = token_url
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._failure_backoff = failure_backoff
        self._transient_backoff = transient_backoff
        self._attempts = attempts
        self._retry_wait = retry_wait
        self._observer = observer
        self._lock = threading.Lock()
        self._current: _Token | None = None
        self._failure: _Failure | None = None
        # Replaced, never mutated: secrets() reads it without the lock a refresh holds.
        self._issued: tuple[Secret, ...] = ()

    def __repr__(self) -> str:
        return f"TokenProvider(client_id={self.client_id!r}, token_url={self._token_url!r})"

    @property
    def client_id(self) -> str:
        return self._credentials.client_id

    def secrets(self) -> tuple[Secret, ...]:
        """Every secret this provider holds, for scrubbing text that came from outside."""
        return (*self._credentials.secrets(), *self._issued)

    def token(self) -> Secret:
        """A valid access token, refreshed first when it expires within the margin."""
        current = self._current
        if current is not None and self._clock.monotonic() < current.refresh_at:
            return current.value
        with self._lock:
            current = self._current
            if current is not None and self._clock.monotonic() < current.refresh_at:
                return current.value
            try:
                return self._refresh("expiring" if current else "initial", after_rejection=False)
            except TokenError:
                # Refreshing early failed; the old token is still good until it expires.
                if current is not None and self._clock.monotonic() < current.expires_at:
                    return current.value
                raise

    def replace_rejected(self, token: Secret, status: int) -> Secret | None:
        """A token to retry with after AMC refused ``token`` with 401/403, or None when a
        refresh cannot help (a 403 on a token that was itself fetched after a refusal)."""
        with self._lock:
            current = self._current
            if current is not None and current.value != token:
                return current.value
            if status == 403 and current is not None and current.after_rejection:
                return None
            self._current = None  # refused: never hand it out again
            return self._refresh(f"rejected_{status}", after_rejection=True)

    def _refresh(self, reason: str, *, after_rejection: bool) -> Secret:
        now = self._clock.monotonic()
        failure = self._failure
        if failure is not None and now < failure.until:
            raise TokenError(
                f"{failure.message} (not retried for another {failure.until - now:.0f} s)",
                permanent=failure.permanent,
            )
        try:
            value, expires_in = self._request_token()
        except TokenError as exc:
            backoff = self._failure_backoff if exc.permanent else self._transient_backoff
            self._failure = _Failure(str(exc), exc.permanent, self._clock.monotonic() + backoff)
            log.error(
                "amc.token_refresh_failed", error=str(exc), permanent=exc.permanent, backoff=backoff
            )
            self._observer.token_refresh("failed")
            raise
        margin = min(self._refresh_margin, expires_in / 2)
        self._failure = None
        self._issued = (*self._issued[-(_KEPT_TOKENS - 1) :], value)
        self._current = _Token(value, now + expires_in - margin, now + expires_in, after_rejection)
        log.info("amc.token_refreshed", reason=reason, expires_in=expires_in)
        self._observer.token_refresh("refreshed")
        return value

    def _request_token(self) -> tuple[Secret, float]:
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_TransientError),
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=self._retry_wait, max=10 * self._retry_wait)
                + wait_random(0, self._retry_wait),
                before_sleep=self._log_retry,
                reraise=True,
            ):
                with attempt:
                    return self._post_once()
        except _TransientError as exc:
            raise TokenError(f"Login with Amazon is unavailable: {exc}", permanent=False) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("amc.token_retry", attempt=state.attempt_number, wait=wait, error=str(exc))

    def _post_once(self) -> tuple[Secret, float]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._credentials.refresh_token.reveal(),
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret.reveal(),
        }
        try:
            response = self._http.post(
                self._token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.TransportError as exc:
            raise _TransientError(self._scrub(f"{type(exc).__name__}: {exc}")) from None
        if response.status_code == 429 or response.status_code >= 500:
            details = error_details(response.status_code, response.text, response.reason_phrase)
            raise _TransientError(self._scrub(f"HTTP {response.status_code}: {details}"))
        if response.status_code != 200:
            raise self._refusal(response)
        return self._parse(response)

    def _parse(self, response: httpx.Response) -> tuple[Secret, float]:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, Mapping):
            payload = {}
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenError(
                "Login with Amazon answered 200 without an access_token", permanent=False
            )
        try:
            expires_in = float(payload.get("expires_in", DEFAULT_EXPIRES_IN))
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        return Secret(token), max(1.0, expires_in)

    def _refusal(self, response: httpx.Response) -> TokenError:
        try:
            payload = json.loads(response.text)
        except ValueError:
            payload = None
        code = payload.get("error") if isinstance(payload, Mapping) else None
        details = self._scrub(
            error_details(response.status_code, response.text, response.reason_phrase)
        )
        if code == "invalid_grant":
            message = (
                f"Login with Amazon refused the refresh token (invalid_grant: {details}): it "
                f"was revoked or is not valid; authorize the application again and update "
                f"{ENV_REFRESH_TOKEN}"
            )
        elif code in ("invalid_client", "unauthorized_client"):
            message = (
                f"Login with Amazon refused the client credentials ({code}: {details}); "
                f"check {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}"
            )
        else:
            message = (
                f"Login with Amazon refused the token request (HTTP {response.status_code}"
                f"{' ' + code if isinstance(code, str) else ''}: {details}); "
                f"check the token URL {self._token_url}"
            )
        return TokenError(message, permanent=True)

    def _scrub(self, text: str) -> str:
        return scrub(text, self.secrets())
