"""The one error type the timing package raises on purpose."""

from __future__ import annotations

from scheduler_daemon.errors import SchedulerError


class TimingError(SchedulerError):
    """A schedule expression, time zone or time argument is invalid, or never yields a fire time.

    The message names the offending field and value, so it can be shown to a user as it is.
    """
