"""One frozen settings object, built once at the CLI edge.

Precedence: CLI option > ``SCHEDULER_*`` environment variable > the default (a DEFAULT_*
constant; the AMC executor's are in ``amc.settings.AmcSettings``, held as ``Settings.amc``).
Nothing else in the package reads ``os.environ``; the settings are passed down.
"""

from __future__ import annotations

import enum
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from scheduler_daemon.amc.credentials import AmcCredentials, credentials_from_env
from scheduler_daemon.amc.settings import AmcSettings
from scheduler_daemon.errors import ConfigError

ENV_PREFIX = "SCHEDULER_"

DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_BATCH_SIZE = 500
DEFAULT_CONCURRENCY = 16
DEFAULT_LEASE = 120.0
DEFAULT_HEARTBEAT_INTERVAL = 10.0
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_HISTORY_RETENTION_DAYS = 90.0


class ExecutorName(enum.StrEnum):
    NOOP = "noop"
    AMC = "amc"


class LogFormat(enum.StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("scheduler-daemon"))


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Settings:
    """Everything the daemon and its commands are configured with."""

    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    worker_id: str = field(default_factory=default_worker_id)
    executor: ExecutorName = ExecutorName.NOOP
    poll_interval: float = DEFAULT_POLL_INTERVAL
    batch_size: int = DEFAULT_BATCH_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    lease: float = DEFAULT_LEASE
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    worker_dead_after: float | None = None
    # A worker whose database session is gone is dead at once; off behind a transaction-mode
    # pooler, where a session proves nothing (heartbeat only).
    session_liveness: bool = True
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    noop_delay: float = 0.0
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    history_retention_days: float = DEFAULT_HISTORY_RETENTION_DAYS
    # The amc executor's, passed to it as they are; max_in_flight is also the daemons'
    # instance gate's cap.
    amc: AmcSettings = field(default_factory=AmcSettings)
    status_poll_interval: float = 60.0
    status_deadline_hours: float = 24.0
    # Read only when the executor is amc, from SCHEDULER_AMC_CLIENT_ID / _CLIENT_SECRET /
    # _REFRESH_TOKEN or their *_FILE variants (systemd credentials).
    amc_credentials: AmcCredentials | None = field(default=None, repr=False)
    log_format: LogFormat = LogFormat.AUTO
    log_level: str = "info"

    @property
    def dead_after(self) -> float:
        """Seconds without a heartbeat after which a worker counts as dead."""
        if self.worker_dead_after is not None:
            return self.worker_dead_after
        return 3 * self.heartbeat_interval


def to_sqlalchemy_url(raw: str) -> URL:
    """Parse a PostgreSQL URL and pin the psycopg 3 driver."""
    url = make_url(raw)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"scheme {url.drivername!r} is not postgresql")
    return url.set(drivername="postgresql+psycopg")


def mask_url(url: str | URL) -> str:
    """The URL with its password hidden, safe for logs and output."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def _parse_database_url(raw: str) -> str:
    try:
        to_sqlalchemy_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"not a valid PostgreSQL URL: {exc}") from None
    return raw


def _parse_positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def _parse_non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise ValueError("must be zero or a positive number of seconds")
    return value


def _parse_http_url(raw: str) -> str:
    if not raw.startswith(("https://", "http://")) or len(raw) < 10:
        raise ValueError("must be an http(s) URL")
    return raw.rstrip("/")


def _parse_port(raw: str) -> int:
    port = _parse_positive_int(raw)
    if port > 65535:
        raise ValueError("must be a TCP port number (1-65535)")
    return port


def _parse_positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _parse_non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _enum_parser(enum_type: type[enum.StrEnum]) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            return enum_type(raw.lower())
        except ValueError:
            allowed = ", ".join(member.value for member in enum_type)
            raise ValueError(f"must be one of: {allowed}") from None

    return parse


def _parse_switch(raw: str) -> bool:
    words = {"on": True, "true": True, "1": True, "yes": True}
    words |= {"off": False, "false": False, "0": False, "no": False}
    if raw.lower() not in words:
        raise ValueError("must be on or off")
    return words[raw.lower()]


def _parse_log_level(raw: str) -> str:
    levels = ("debug", "info", "warning", "error")
    if raw.lower() not in levels:
        raise ValueError(f"must be one of: {', '.join(levels)}")
    return raw.lower()


_PARSERS: dict[str, Callable[[str], Any]] = {
    "database_url": _parse_database_url,
    "data_dir": lambda raw: Path(_parse_non_empty(raw)).expanduser(),
    "worker_id": _parse_non_empty,
    "executor": _enum_parser(ExecutorName),
    "poll_interval": _parse_positive_float,
    "batch_size": _parse_positive_int,
    "concurrency": _parse_positive_int,
    "lease": _parse_positive_float,
    "heartbeat_interval": _parse_positive_float,
    "worker_dead_after": _parse_positive_float,
    "session_liveness": _parse_switch,
    "max_consecutive_failures": _parse_positive_int,
    "shutdown_grace": _parse_positive_float,
    "noop_delay": _parse_non_negative_float,
    "metrics_port": _parse_port,
    "metrics_address": _parse_non_empty,
    "history_retention_days": _parse_non_negative_float,
    "status_poll_interval": _parse_positive_float,
    "status_deadline_hours": _parse_positive_float,
    "log_format": _enum_parser(LogFormat),
    "log_level": _parse_log_level,
}

# The settings held in ``Settings.amc``: the name that makes their variable and option
# (amc_max_in_flight: SCHEDULER_AMC_MAX_IN_FLIGHT, --amc-max-in-flight), the AmcSettings
# field each sets, and its parser.
_AMC_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "amc_api_url": ("api_url", _parse_http_url),
    "amc_token_url": ("token_url", _parse_http_url),
    "amc_max_in_flight": ("max_in_flight", _parse_positive_int),
    "amc_circuit_failures": ("failure_threshold", _parse_positive_int),
    "amc_circuit_cool_down": ("cool_down", _parse_positive_float),
    "amc_request_timeout": ("request_timeout", _parse_positive_float),
}


def env_var(name: str) -> str:
    """The environment variable that sets the setting ``name`` (a key of the tables)."""
    return ENV_PREFIX + name.upper()


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def load_settings(
    options: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from CLI ``options`` (None means "not given") over ``env``.

    Raises ConfigError naming the variable or option and its value.
    """
    env = os.environ if env is None else env
    options = options or {}
    values: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        _take(values, name, name, parse, options=options, env=env)
    amc: dict[str, Any] = {}
    for name, (amc_field, parse) in _AMC_PARSERS.items():
        _take(amc, amc_field, name, parse, options=options, env=env)
    values["amc"] = AmcSettings(**amc)
    if values.get("executor") is ExecutorName.AMC:
        values["amc_credentials"] = credentials_from_env(env)
    settings = Settings(**values)
    if settings.dead_after <= settings.heartbeat_interval:
        raise ConfigError(
            env_var("worker_dead_after"),
            settings.dead_after,
            f"must be longer than the heartbeat interval ({settings.heartbeat_interval}s)",
        )
    return settings


def _take(
    values: dict[str, Any],
    key: str,
    name: str,
    parse: Callable[[str], Any],
    *,
    options: Mapping[str, object],
    env: Mapping[str, str],
) -> None:
    """``values[key]`` from the option ``name``, else its variable, when either is given."""
    raw_env = env.get(env_var(name))
    if raw_env is not None and raw_env != "":
        values[key] = _apply(parse, env_var(name), raw_env)
    given = options.get(name)
    if given is not None:
        values[key] = _apply(parse, option_name(name), str(given))


def _apply(parse: Callable[[str], Any], source: str, raw: str) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(source, raw, str(exc)) from None
