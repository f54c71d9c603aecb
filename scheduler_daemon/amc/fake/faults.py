"""Fault injection for the fake AMC server: what the next matching requests suffer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["status", "drop", "lose_response", "slow"]
# Endpoint names of the fake; None in a fault means "any AMC endpoint" (never the token one).
ENDPOINTS = ("token", "create", "get", "list", "cancel")


@dataclass(eq=False)
class Fault:
    """``status``: answer ``status``/``body``/``headers`` without doing anything.
    ``drop``: close the connection without doing anything.
    ``lose_response``: do the work (e.g. create the execution), then close without answering.
    ``slow``: do the work, then wait ``delay`` seconds before answering.

    A body string may quote ``{authorization}``, ``{refresh_token}`` or ``{client_secret}``
    from the request, to test that echoed secrets are masked."""

    kind: FaultKind
    endpoint: str | None = None
    instance_id: str | None = None
    times: int | None = 1
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hits: int = 0

    def matches(self, endpoint: str, instance_id: str | None) -> bool:
        if self.endpoint is None:
            if endpoint == "token":
                return False
        elif self.endpoint != endpoint:
            return False
        return self.instance_id is None or self.instance_id == instance_id


class Faults:
    """The active faults, first added first served. Thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        kind: FaultKind,
        *,
        endpoint: str | None = None,
        instance_id: str | None = None,
        times: int | None = 1,
        status: int = 500,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Add a fault for the next ``times`` matching requests (None: until removed)."""
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        fault = Fault(kind, endpoint, instance_id, times, status, body, dict(headers or {}), delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def throttle(self, retry_after: float | str | None = 1, **match: Any) -> Fault:
        """429; with a Retry-After header unless ``retry_after`` is None."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        body = {"code": "429", "details": "Too Many Requests"}
        return self.add("status", status=429, body=body, headers=headers, **match)

    def server_error(self, status: int = 500, **match: Any) -> Fault:
        """5xx as AMC sends it: JSON, except 503 (HTML, as observed) and 504 (API Gateway)."""
        body: Any
        if status == 503:
            body = "<html><body><b>Http/1.1 Service Unavailable</b></body> </html>"
        elif status == 504:
            body = {"message": "Endpoint request timed out"}
        else:
            body = {"code": str(status), "details": "Internal Server Error"}
        return self.add("status", status=status, body=body, **match)

    def expired_token(self, status: int = 401, **match: Any) -> Fault:
        """The access token is refused as expired (AMC docs: may be 401 or 403)."""
        details = "Authentication failed" if status == 401 else "Unauthorized request"
        return self.add(
            "status", status=status, body={"code": str(status), "details": details}, **match
        )

    def drop(self, **match: Any) -> Fault:
        return self.add("drop", **match)

    def lose_response(self, **match: Any) -> Fault:
        return self.add("lose_response", **match)

    def slow(self, delay: float, **match: Any) -> Fault:
        return self.add("slow", delay=delay, **match)

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str, instance_id: str | None) -> Fault | None:
        """The fault this request suffers, counted against its ``times``."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(endpoint, instance_id):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None
