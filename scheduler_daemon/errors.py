"""Exception hierarchy: every error the daemon raises on purpose derives from SchedulerError.

Each subclass builds its own one-line message, naming the offending value, so the CLI can
print it as it is (exit code 2) and logs can carry it without a traceback.
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Base class for the errors scheduler-daemon raises on purpose."""


class InputError(SchedulerError):
    """Bad input from an operator or a file; nothing was changed."""


class FieldError(InputError):
    """One field of the input is bad. ``field`` is the name the domain gives it (a schedule's
    attribute: ``cron``, ``timezone``, ``anchor``, ...); ``message`` names the value and never
    a face's spelling of the field, which each face (CLI option, TOML key, JSON field) adds."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFoundError(FieldError):
    """The reference in ``field`` names no row (the API answers 404)."""


class ConflictError(InputError):
    """The request is well formed but the rows as they stand refuse it: a name another row
    already has, a row still in use, a run in another state (the API answers 409)."""


class UniqueFieldError(FieldError, ConflictError):
    """Another row already has this value of a unique field."""


class ConfigError(SchedulerError):
    """A configuration value (environment variable or CLI option) is invalid."""

    def __init__(self, source: str, value: object, problem: str) -> None:
        self.source = source
        self.value = value
        super().__init__(f"{source}={value!r}: {problem}")


class DatabaseUnavailableError(SchedulerError):
    """The database cannot be reached."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"cannot connect to the database at {url}: {reason}")


class SchemaOutOfDateError(SchedulerError):
    """The database schema is not at the migration head."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"the database schema is at revision {current or 'none'}, the code needs {head}: "
            "run 'scheduler-daemon migrate'"
        )


class SchemaAheadError(SchedulerError):
    """The database schema is at a revision this code does not know: a newer scheduler-daemon
    migrated it. This one can neither use nor migrate it (not a SchemaOutOfDateError, whose
    remedy, ``migrate``, cannot help): the package must be upgraded."""

    def __init__(self, current: str, head: str, version: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"the database is newer than this scheduler-daemon ({version}): its schema is at "
            f"revision {current}, which this version does not know (its newest is {head}); "
            "upgrade the scheduler-daemon package"
        )


class OutcomeUnknownError(SchedulerError):
    """An executor's ``submit`` may have started an execution, and the remote side cannot say
    whether it did. The run must stay ``dispatching`` so that its recovery finds out: recording
    it as failed could lose an execution, sending it again could start a second."""
