"""Errors of the AMC layer. Every message is one line, names the instance and operation,
and has been scrubbed of secrets before it was built."""

from __future__ import annotations

from scheduler_daemon.errors import OutcomeUnknownError, SchedulerError


class AmcError(SchedulerError):
    """Something went wrong talking to AMC or Login with Amazon."""


class AmcRejectedError(AmcError):
    """AMC answered with a 4xx: the request itself is wrong; sending it again will not help."""

    def __init__(self, where: str, status: int, details: str) -> None:
        self.status = status
        self.details = details
        super().__init__(f"{where}: AMC refused the request (HTTP {status}): {details}")


class AmcAuthError(AmcRejectedError):
    """AMC refused our credentials (401/403) even after one token refresh."""

    def __init__(self, where: str, status: int, details: str) -> None:
        super().__init__(where, status, details)
        hint = (
            "check the instance id and the account's entity id (AdvertiserId header)"
            if status == 403
            else "check the Login-with-Amazon application and its grant"
        )
        self.args = (f"{self.args[0]} (after one token refresh; {hint})",)


class AmcUnavailableError(AmcError):
    """AMC kept failing (5xx, 429, network) until the retries ran out."""


class AmcOutcomeUnknownError(AmcError, OutcomeUnknownError):
    """A create request may have reached AMC, and whether it started an execution cannot be
    told here (AMC cannot be asked, or lists executions this request could have started).

    Sending it again could start a duplicate, so nothing is sent: the run is left to the
    daemon's recovery, which decides knowing what every run holds.
    """


class AmcNotSentError(AmcOutcomeUnknownError):
    """A create was not (re)sent because this daemon could not show that it still owns the
    run: it has not renewed its claims for too long (it was frozen, or cut off from the
    database), so another daemon may have taken the run over and sent it itself. An earlier
    attempt of the call may still have reached AMC: the run's recovery decides."""


class AmcProtocolError(AmcError):
    """AMC answered 2xx with something we cannot use (no JSON, no execution id)."""


class CircuitOpenError(AmcError):
    """The instance failed too often in a row; calls fail fast until the cool-down ends."""


class InstanceBusyError(AmcError):
    """Too many requests to one instance are in flight across the daemons; no slot of the
    instance gate (``scheduler_daemon.daemon.instance_gate``) freed in time."""


class TokenError(AmcError):
    """Login with Amazon gave no access token. ``permanent``: the credentials themselves
    were refused (revoked grant, wrong client), so only an operator can fix it."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        self.permanent = permanent
        super().__init__(message)
