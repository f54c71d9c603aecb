"""One frozen settings object, built once at the CLI edge from one table of settings.

``SETTINGS`` is that table: each setting's name (which makes its environment variable,
``SCHEDULER_POLL_INTERVAL``, and its option, ``--poll-interval``), what it takes, its default
and one line of help. ``run``'s options, their ``--help`` and docs/config.md's table are made
from it.

Where a value comes from, the first that has one wins: the command-line option; the
``SCHEDULER_*`` environment variable; the environment file (``ENV_FILE``, the file the systemd
units read, when it exists; ``SCHEDULER_ENV_FILE`` names another); the default. Nothing else
in the package reads ``os.environ`` or the environment file; the settings are passed down.
"""

from __future__ import annotations

import enum
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import platformdirs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from scheduler_daemon.amc.credentials import AmcCredentials, credentials_from_env
from scheduler_daemon.amc.settings import AmcSettings
from scheduler_daemon.errors import ConfigError, SchedulerError

ENV_PREFIX = "SCHEDULER_"
# The settings file the systemd units name in EnvironmentFile=; every command reads it too.
ENV_FILE = Path("/etc/scheduler-daemon/scheduler-daemon.env")
ENV_FILE_VARIABLE = "SCHEDULER_ENV_FILE"

DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_BATCH_SIZE = 500
DEFAULT_CONCURRENCY = 16
DEFAULT_LEASE = 120.0
DEFAULT_HEARTBEAT_INTERVAL = 10.0
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_HISTORY_RETENTION_DAYS = 90.0
DEFAULT_NOOP_DELAY = 0.0
DEFAULT_METRICS_ADDRESS = "127.0.0.1"
DEFAULT_STATUS_POLL_INTERVAL = 60.0
DEFAULT_STATUS_DEADLINE_HOURS = 24.0
DEFAULT_LOG_LEVEL = "info"
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8080
DEFAULT_MAX_REQUEST_BYTES = 1_048_576
LOG_LEVELS = ("debug", "info", "warning", "error")


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
    """Everything the daemon and its commands are configured with.

    Every field but ``amc`` and ``amc_credentials`` is a row of ``SETTINGS`` with the same
    name; ``amc``'s operator-facing fields are the rows named ``amc_*``.
    """

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
    noop_delay: float = DEFAULT_NOOP_DELAY
    metrics_port: int | None = None
    metrics_address: str = DEFAULT_METRICS_ADDRESS
    history_retention_days: float = DEFAULT_HISTORY_RETENTION_DAYS
    # The amc executor's, passed to it as they are; max_in_flight is also the daemons'
    # instance gate's cap.
    amc: AmcSettings = field(default_factory=AmcSettings)
    status_poll_interval: float = DEFAULT_STATUS_POLL_INTERVAL
    status_deadline_hours: float = DEFAULT_STATUS_DEADLINE_HOURS
    # Read only when the executor is amc, from SCHEDULER_AMC_CLIENT_ID / _CLIENT_SECRET /
    # _REFRESH_TOKEN or their *_FILE variants (systemd credentials).
    amc_credentials: AmcCredentials | None = field(default=None, repr=False)
    log_format: LogFormat = LogFormat.AUTO
    log_level: str = DEFAULT_LOG_LEVEL
    host: str = DEFAULT_API_HOST
    port: int = DEFAULT_API_PORT
    cors_origins: tuple[str, ...] = ()
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES

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


# --- parsers: raw text in, a value out, or ValueError saying what is wrong ---------------


def _parse_database_url(raw: str) -> str:
    try:
        to_sqlalchemy_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"not a valid PostgreSQL URL: {exc}") from None
    return raw


def _positive_number(unit: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number of {unit}") from None
        if not value > 0 or value == float("inf"):
            raise ValueError(f"must be a positive number of {unit}")
        return value

    return parse


def _non_negative_number(unit: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number of {unit}") from None
        if not 0 <= value < float("inf"):
            raise ValueError(f"must be zero or a positive number of {unit}")
        return value

    return parse


def _parse_http_url(raw: str) -> str:
    if not raw.startswith(("https://", "http://")) or len(raw) < 10:
        raise ValueError("must be an http(s) URL")
    return raw.rstrip("/")


def _parse_positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _parse_port(raw: str) -> int:
    port = _parse_positive_int(raw)
    if port > 65535:
        raise ValueError("must be a TCP port number (1-65535)")
    return port


def _parse_origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip() for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
    return origins


def _parse_non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _parse_directory(raw: str) -> Path:
    return Path(_parse_non_empty(raw)).expanduser()


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
    if raw.lower() not in LOG_LEVELS:
        raise ValueError(f"must be one of: {', '.join(LOG_LEVELS)}")
    return raw.lower()


# --- the table ------------------------------------------------------------------------------

Scope = Literal["root", "run", "serve"]


@dataclass(frozen=True)
class Setting:
    """One setting: ``SCHEDULER_<NAME>``, ``--<name>``, what it takes and its default."""

    name: str
    # What the option takes, as ``--help`` shows it: SECONDS, INTEGER, noop|amc, ...
    metavar: str
    parse: Callable[[str], Any]
    # The value when nothing sets it (None: unset); ``default_text`` describes a computed one.
    default: object
    help: str
    default_text: str | None = None
    # For a setting with a fixed set of values: the values, in the order --help lists them.
    choices: tuple[str, ...] = ()
    # Where the value goes: a field of Settings (the name), or of Settings.amc (this field).
    amc_field: str | None = None
    # "root": an option of every command (before the command's name); "run": of ``run``;
    # "serve": of ``serve`` (the API).
    scope: Scope = "run"

    @property
    def env_var(self) -> str:
        return env_var(self.name)

    @property
    def option(self) -> str:
        return option_name(self.name)

    @property
    def shown_default(self) -> str:
        """The default as ``--help`` and the docs show it."""
        if self.default_text is not None:
            return self.default_text
        return show_value(self.default)

    def option_help(self) -> str:
        return f"{self.help} [env: {self.env_var}; default: {self.shown_default}]"


def show_value(value: object) -> str:
    """A setting's value as an operator writes it: 60 not 60.0, on not True, unset not None."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _choices(values: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """The metavar (noop|amc) and the choices of a setting with a fixed set of values."""
    listed = tuple(values)
    return "|".join(listed), listed


_AMC_DEFAULTS = AmcSettings()
_SECONDS = _positive_number("seconds")
_EXECUTORS = _choices(member.value for member in ExecutorName)
_LOG_FORMATS = _choices(member.value for member in LogFormat)
_SWITCH = _choices(("on", "off"))
_LEVELS = _choices(LOG_LEVELS)

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        "URL",
        _parse_database_url,
        None,
        "PostgreSQL URL, e.g. postgresql://user:pass@host/db.",
        default_text="unset (the embedded database)",
        scope="root",
    ),
    Setting(
        "data_dir",
        "DIR",
        _parse_directory,
        None,
        "Where the embedded database lives.",
        default_text="the platform's user data directory",
        scope="root",
    ),
    Setting(
        "worker_id",
        "ID",
        _parse_non_empty,
        None,
        "This daemon's identity in scheduler_workers; unique to each process.",
        default_text="host:pid:random",
    ),
    Setting(
        "executor",
        _EXECUTORS[0],
        _enum_parser(ExecutorName),
        ExecutorName.NOOP,
        "What runs a slot: amc (Amazon Marketing Cloud) or noop (records only).",
        choices=_EXECUTORS[1],
    ),
    Setting(
        "poll_interval",
        "SECONDS",
        _SECONDS,
        DEFAULT_POLL_INTERVAL,
        "The safety-net tick when nothing is due sooner.",
    ),
    Setting(
        "batch_size",
        "INTEGER",
        _parse_positive_int,
        DEFAULT_BATCH_SIZE,
        "Schedules claimed per transaction.",
    ),
    Setting(
        "concurrency",
        "INTEGER",
        _parse_positive_int,
        DEFAULT_CONCURRENCY,
        "Dispatches in flight per daemon.",
    ),
    Setting(
        "lease",
        "SECONDS",
        _SECONDS,
        DEFAULT_LEASE,
        "How long a claim lives without a heartbeat renewing it.",
    ),
    Setting(
        "heartbeat_interval",
        "SECONDS",
        _SECONDS,
        DEFAULT_HEARTBEAT_INTERVAL,
        "Time between heartbeats; also the longest sleep between ticks.",
    ),
    Setting(
        "worker_dead_after",
        "SECONDS",
        _SECONDS,
        None,
        "Time without a heartbeat before a worker counts as dead.",
        default_text="3 × heartbeat interval",
    ),
    Setting(
        "session_liveness",
        _SWITCH[0],
        _parse_switch,
        True,
        "on: a daemon whose database session ends is dead at once; off behind a "
        "transaction-mode pooler (heartbeat only).",
        choices=_SWITCH[1],
    ),
    Setting(
        "max_consecutive_failures",
        "INTEGER",
        _parse_positive_int,
        DEFAULT_MAX_CONSECUTIVE_FAILURES,
        "Failures in a row that pause a schedule.",
    ),
    Setting(
        "shutdown_grace",
        "SECONDS",
        _SECONDS,
        DEFAULT_SHUTDOWN_GRACE,
        "Time in-flight dispatches get to finish on SIGTERM.",
    ),
    Setting(
        "noop_delay",
        "SECONDS",
        _non_negative_number("seconds"),
        DEFAULT_NOOP_DELAY,
        "Time the noop executor takes per run (demos, benchmarks).",
    ),
    Setting(
        "metrics_port",
        "PORT",
        _parse_port,
        None,
        "Serve Prometheus metrics on this port.",
        default_text="unset (no metrics)",
    ),
    Setting(
        "metrics_address",
        "ADDRESS",
        _parse_non_empty,
        DEFAULT_METRICS_ADDRESS,
        "Where the metrics listen; 0.0.0.0 for every interface.",
    ),
    Setting(
        "history_retention_days",
        "DAYS",
        _non_negative_number("days"),
        DEFAULT_HISTORY_RETENTION_DAYS,
        "Finished runs older than this are pruned by the daemon; 0 keeps all.",
    ),
    Setting(
        "amc_api_url",
        "URL",
        _parse_http_url,
        _AMC_DEFAULTS.api_url,
        "The AMC API endpoint.",
        amc_field="api_url",
    ),
    Setting(
        "amc_token_url",
        "URL",
        _parse_http_url,
        _AMC_DEFAULTS.token_url,
        "The Login-with-Amazon token endpoint.",
        amc_field="token_url",
    ),
    Setting(
        "amc_max_in_flight",
        "INTEGER",
        _parse_positive_int,
        _AMC_DEFAULTS.max_in_flight,
        "Requests in flight per AMC instance, across all daemons.",
        amc_field="max_in_flight",
    ),
    Setting(
        "amc_circuit_failures",
        "INTEGER",
        _parse_positive_int,
        _AMC_DEFAULTS.failure_threshold,
        "Failures in a row that open an AMC instance's circuit.",
        amc_field="failure_threshold",
    ),
    Setting(
        "amc_circuit_cool_down",
        "SECONDS",
        _SECONDS,
        _AMC_DEFAULTS.cool_down,
        "Time an open circuit waits before it probes the instance again.",
        amc_field="cool_down",
    ),
    Setting(
        "amc_request_timeout",
        "SECONDS",
        _SECONDS,
        _AMC_DEFAULTS.request_timeout,
        "Time one HTTP request to AMC may take.",
        amc_field="request_timeout",
    ),
    Setting(
        "status_poll_interval",
        "SECONDS",
        _SECONDS,
        DEFAULT_STATUS_POLL_INTERVAL,
        "Time between status checks of an execution, the first that long after its creation"
        " (backing off).",
    ),
    Setting(
        "status_deadline_hours",
        "HOURS",
        _positive_number("hours"),
        DEFAULT_STATUS_DEADLINE_HOURS,
        "An execution with no final status by then fails its run.",
    ),
    Setting(
        "log_format",
        _LOG_FORMATS[0],
        _enum_parser(LogFormat),
        LogFormat.AUTO,
        "How log lines look; auto is json unless stdout is a terminal.",
        choices=_LOG_FORMATS[1],
    ),
    Setting(
        "log_level",
        _LEVELS[0],
        _parse_log_level,
        DEFAULT_LOG_LEVEL,
        "The lowest level logged.",
        choices=_LEVELS[1],
    ),
    Setting(
        "host",
        "ADDRESS",
        _parse_non_empty,
        DEFAULT_API_HOST,
        "The address the API listens on; 0.0.0.0 exposes it to every network.",
        scope="serve",
    ),
    Setting("port", "PORT", _parse_port, DEFAULT_API_PORT, "The API's TCP port.", scope="serve"),
    Setting(
        "cors_origins",
        "ORIGINS",
        _parse_origins,
        None,
        "Comma-separated origins whose browser pages may call the API (CORS).",
        default_text="none (CORS off)",
        scope="serve",
    ),
    Setting(
        "max_request_bytes",
        "BYTES",
        _parse_positive_int,
        DEFAULT_MAX_REQUEST_BYTES,
        "The largest request body the API reads; larger ones get 413.",
        scope="serve",
    ),
)


def settings_of(scope: Scope) -> tuple[Setting, ...]:
    """The settings that are options of ``run`` ("run"), of ``serve`` ("serve") or of every
    command ("root")."""
    return tuple(setting for setting in SETTINGS if setting.scope == scope)


def run_settings() -> tuple[Setting, ...]:
    """The settings that are options of ``run`` (the others are options of every command)."""
    return settings_of("run")


def env_var(name: str) -> str:
    """The environment variable that sets the setting ``name`` (a row of the table)."""
    return ENV_PREFIX + name.upper()


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def settings_markdown() -> str:
    """docs/config.md's table of settings (tests/unit/test_settings_table.py holds them equal)."""
    lines = ["| variable | option | takes | default | meaning |", "|---|---|---|---|---|"]
    for setting in SETTINGS:
        where = "every command" if setting.scope == "root" else f"`{setting.scope}`"
        takes = setting.metavar.replace("|", "\\|")  # a | would end the table's cell
        default = setting.default_text or f"`{setting.shown_default}`"
        lines.append(
            f"| `{setting.env_var}` | `{setting.option}` ({where}) | `{takes}` "
            f"| {default} | {setting.help} |"
        )
    return "\n".join(lines) + "\n"


# --- where the values come from ------------------------------------------------------------


class EnvFileError(ConfigError):
    """The environment file cannot be read, or one of its lines is not KEY=VALUE."""

    def __init__(self, where: str, problem: str) -> None:
        self.source = where
        self.value = None
        SchedulerError.__init__(self, f"{where}: {problem}")


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from."""

    kind: Literal["option", "environment", "env_file", "default"]
    # The option or variable that set it (empty for a default).
    name: str = ""
    # For the environment file: PATH:LINE.
    location: str | None = None

    def describe(self) -> str:
        if self.kind == "option":
            return f"option {self.name}"
        if self.kind == "environment":
            return f"environment variable {self.name}"
        if self.kind == "env_file":
            return f"{self.name} in {self.location}"
        return "default"

    def as_json(self) -> dict[str, str | None]:
        return {"from": self.kind, "name": self.name or None, "location": self.location}


@dataclass(frozen=True)
class EnvFile:
    """An environment file that was read: its variables, each with the line it is on."""

    path: Path
    # How the file was chosen: "SCHEDULER_ENV_FILE", or "default" (ENV_FILE, it exists).
    chosen_by: str
    lines: Mapping[str, tuple[str, int]]


@dataclass(frozen=True)
class Environment:
    """What the settings are read from besides the options: the process environment, and the
    environment file under it (a variable set and not empty in the process wins)."""

    variables: Mapping[str, str]
    file: EnvFile | None = None
    # The file that was looked for when none was read (ENV_FILE, absent), for reports.
    looked_for: Path | None = None

    def lookup(self, variable: str) -> tuple[str, Source] | None:
        """The variable's value and where it is set, or None when unset (or empty)."""
        value = self.variables.get(variable)
        if value:
            return value, Source("environment", variable)
        if self.file is not None and variable in self.file.lines:
            value, line = self.file.lines[variable]
            if value:
                return value, Source("env_file", variable, f"{self.file.path}:{line}")
        return None

    def merged(self) -> dict[str, str]:
        """One mapping, the file under the process environment (for the AMC credentials)."""
        values = dict(self.variables)
        if self.file is not None:
            for variable, (value, _) in self.file.lines.items():
                if not values.get(variable):
                    values[variable] = value
        return values


DEFAULT = Source("default")


@dataclass(frozen=True)
class Configuration:
    """The settings, and for each row of the table where its value came from."""

    settings: Settings
    sources: Mapping[str, Source]
    environment: Environment


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env_file(text: str, path: Path | str) -> dict[str, tuple[str, int]]:
    """systemd's EnvironmentFile= syntax, the simple part of it: KEY=VALUE lines, comments
    (# or ;) and blank lines, a value optionally in single or double quotes. Anything else is
    an EnvFileError naming the file and the line."""
    values: dict[str, tuple[str, int]] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        where = f"{path}:{number}"
        key, equals, value = line.partition("=")
        key = key.strip()
        # The line itself is never quoted back: it may hold a password.
        if not equals:
            raise EnvFileError(where, "expected KEY=VALUE, found no '='")
        if not _KEY.fullmatch(key):
            raise EnvFileError(
                where, f"{key!r} is not a variable name (letters, digits and _; no 'export')"
            )
        values[key] = (_unquote(value.strip(), where), number)
    return values


def _unquote(raw: str, where: str) -> str:
    """A value as systemd reads it: quotes start only where a value (or a quoted part)
    begins; inside double quotes a backslash escapes one of \\ " $ `; outside quotes it
    escapes any character; within single quotes nothing is special."""
    out: list[str] = []
    state = "start"  # "start" of a part, in a "bare" value, in a "'" or a '"' quote
    chars = iter(raw)
    for char in chars:
        if state in ("start", "bare") and char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise EnvFileError(
                    where, "a line ending in a backslash (continuation) is not supported"
                )
            out.append(escaped)
            state = "bare"
        elif state == "start" and char in "'\"":
            state = char
        elif state == "start" and char.isspace():
            continue
        elif state in ("start", "bare"):
            out.append(char)
            state = "bare"
        elif char == state:
            state = "start"
        elif state == '"' and char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                break
            out.append(escaped if escaped in '\\"$`' else "\\" + escaped)
        else:
            out.append(char)
    if state in ("'", '"'):
        raise EnvFileError(where, f"unterminated {state} quote")
    return "".join(out)


def read_environment(
    environ: Mapping[str, str] | None = None, *, default_file: Path = ENV_FILE
) -> Environment:
    """The process environment and the environment file: the one ``SCHEDULER_ENV_FILE``
    names (it must exist), else ``default_file`` when it exists."""
    environ = os.environ if environ is None else environ
    named = environ.get(ENV_FILE_VARIABLE)
    if named:
        path, chosen_by = Path(named).expanduser(), ENV_FILE_VARIABLE
        if not path.exists():
            raise ConfigError(ENV_FILE_VARIABLE, named, "no such file")
    elif default_file.exists():
        path, chosen_by = default_file, "default"
    else:
        return Environment(dict(environ), looked_for=default_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        hint = f" (run as a user who may read it, or set {ENV_FILE_VARIABLE}=/dev/null)"
        raise EnvFileError(
            str(path), f"cannot read the environment file: {exc.strerror or exc}{hint}"
        ) from None
    except UnicodeDecodeError:
        raise EnvFileError(str(path), "the environment file is not UTF-8 text") from None
    return Environment(dict(environ), EnvFile(path, chosen_by, parse_env_file(text, path)))


def load_settings(
    options: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from CLI ``options`` (None means "not given") over ``env``.

    ``env`` None: the process environment and the environment file (``read_environment``).
    Raises ConfigError naming the variable or option and its value.
    """
    environment = read_environment() if env is None else Environment(env)
    return load_configuration(options, environment).settings


def load_configuration(
    options: Mapping[str, object] | None, environment: Environment
) -> Configuration:
    """The settings and where each came from; raises ConfigError naming the option, the
    variable (and the environment file's line) that holds a bad value."""
    options = options or {}
    values: dict[str, Any] = {}
    amc: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for setting in SETTINGS:
        found = _take(setting, options, environment)
        if found is None:
            sources[setting.name] = DEFAULT
            continue
        value, sources[setting.name] = found
        if setting.amc_field is None:
            values[setting.name] = value
        else:
            amc[setting.amc_field] = value
    values["amc"] = AmcSettings(**amc)
    if values.get("executor") is ExecutorName.AMC:
        values["amc_credentials"] = credentials_from_env(environment.merged())
    settings = Settings(**values)
    if settings.dead_after <= settings.heartbeat_interval:
        raise ConfigError(
            _named(sources["worker_dead_after"]),
            settings.dead_after,
            f"must be longer than the heartbeat interval ({settings.heartbeat_interval}s)",
        )
    return Configuration(settings, sources, environment)


def _take(
    setting: Setting, options: Mapping[str, object], environment: Environment
) -> tuple[Any, Source] | None:
    """The setting's value from its option, else its variable, and where it came from."""
    given = options.get(setting.name)
    if given is not None:
        source = Source("option", setting.option)
        return _apply(setting.parse, source, str(given)), source
    found = environment.lookup(setting.env_var)
    if found is None:
        return None
    raw, source = found
    return _apply(setting.parse, source, raw), source


def _named(source: Source) -> str:
    """How an error names the place a value came from."""
    if source.kind == "env_file":
        return f"{source.location}: {source.name}"
    return source.name


def _apply(parse: Callable[[str], Any], source: Source, raw: str) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(_named(source), raw, str(exc)) from None
