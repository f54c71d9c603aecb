"""The settings of the AMC executor, with their defaults: one table, read by ``config`` (which
parses the operator's values into it) and by ``executors.amc`` (which builds from it).

This module imports nothing from the project, so that ``config`` can hold it without pulling
in the HTTP client and its imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

API_URL = "https://advertising-api.amazon.com"
TOKEN_URL = "https://api.amazon.com/auth/o2/token"  # noqa: S105 - a URL


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    lookup_delay: float = 2.0
    max_list_pages: int = 10
    # Bounds how long one call may hold a dispatcher thread, Retry-After waits included.
    deadline: float = 300.0


@dataclass(frozen=True)
class AmcSettings:
    """Everything the AMC executor is configured with besides the credentials.

    ``max_in_flight`` is the per-instance cap across all daemons: the daemon's instance gate
    (``scheduler_daemon.daemon.instance_gate``) enforces it, the client itself has no cap.
    """

    api_url: str = API_URL
    token_url: str = TOKEN_URL
    max_in_flight: int = 10
    failure_threshold: int = 5
    cool_down: float = 60.0
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    token_refresh_margin: float = 60.0
    token_failure_backoff: float = 300.0
    token_attempts: int = 3
    token_retry_wait: float = 0.5
