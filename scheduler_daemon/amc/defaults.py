"""Default settings of the AMC executor, written once: ``config`` (the operator's settings)
and ``executors.amc`` (``AmcSettings``) both read them from here.

This module imports nothing from the project, so that ``config`` can use it without pulling
in the AMC client and its imports.
"""

from __future__ import annotations

API_URL = "https://advertising-api.amazon.com"
TOKEN_URL = "https://api.amazon.com/auth/o2/token"  # noqa: S105 - a URL
MAX_IN_FLIGHT = 10
SLOT_WAIT = 60.0
CIRCUIT_FAILURES = 5
CIRCUIT_COOL_DOWN = 60.0
REQUEST_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
TOKEN_REFRESH_MARGIN = 60.0
TOKEN_FAILURE_BACKOFF = 300.0
TOKEN_ATTEMPTS = 3
TOKEN_RETRY_WAIT = 0.5
