"""What the AMC layer reports as it works, for the daemon's metrics: told by direct calls
from the client, the token provider and the circuit breakers, never through the log."""

from __future__ import annotations

from typing import Literal, Protocol

CircuitState = Literal["closed", "half_open", "open"]
TokenRefreshOutcome = Literal["refreshed", "failed"]


class AmcObserver(Protocol):
    """Called on the caller's thread, some calls under a breaker's lock: must be quick and
    must not call back into the AMC layer."""

    def response(self, status: str) -> None:
        """AMC answered one HTTP request with ``status`` (its code), or ``error``: none came."""

    def token_refresh(self, outcome: TokenRefreshOutcome) -> None:
        """Login with Amazon was asked for an access token."""

    def circuit(self, instance_id: str, state: CircuitState) -> None:
        """The instance's circuit breaker changed state."""


class NoObserver:
    """Reports nowhere: the client used alone (tests, the demo, tools)."""

    def response(self, status: str) -> None:
        pass

    def token_refresh(self, outcome: TokenRefreshOutcome) -> None:
        pass

    def circuit(self, instance_id: str, state: CircuitState) -> None:
        pass


NO_OBSERVER: AmcObserver = NoObserver()
