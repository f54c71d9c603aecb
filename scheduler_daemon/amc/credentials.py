"""Login-with-Amazon credentials and where they come from: environment variables or files.

Each value may be given directly (``SCHEDULER_AMC_CLIENT_SECRET``) or as a file to read
(``SCHEDULER_AMC_CLIENT_SECRET_FILE``), which is how systemd credentials
(``LoadCredential=`` → ``%d/...``) and container secrets reach a process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scheduler_daemon.amc.secret import Secret
from scheduler_daemon.errors import ConfigError, SchedulerError

ENV_CLIENT_ID = "SCHEDULER_AMC_CLIENT_ID"
ENV_CLIENT_SECRET = "SCHEDULER_AMC_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_REFRESH_TOKEN = "SCHEDULER_AMC_REFRESH_TOKEN"  # noqa: S105 - a variable name, not a secret
FILE_SUFFIX = "_FILE"


@dataclass(frozen=True)
class AmcCredentials:
    """One Login-with-Amazon application and the refresh token a user granted it."""

    client_id: str
    client_secret: Secret = field(repr=False)
    refresh_token: Secret = field(repr=False)

    def secrets(self) -> tuple[Secret, ...]:
        return (self.client_secret, self.refresh_token)


class CredentialsError(ConfigError):
    """A credential variable is missing, doubled or unreadable. The message never holds a value."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.value = None
        SchedulerError.__init__(self, f"{source}: {problem}")


def _read(env: Mapping[str, str], name: str) -> str:
    file_name = name + FILE_SUFFIX
    direct, path = env.get(name), env.get(file_name)
    if direct is not None and path is not None:
        raise CredentialsError(name, f"set either {name} or {file_name}, not both")
    if path is not None:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CredentialsError(
                file_name, f"cannot read {path!r}: {exc.strerror or type(exc).__name__}"
            ) from None
        except UnicodeDecodeError:
            raise CredentialsError(file_name, f"{path!r} is not UTF-8 text") from None
        if not value:
            raise CredentialsError(file_name, f"{path!r} is empty")
        return value
    if direct is None:
        raise CredentialsError(name, f"is not set (nor {file_name})")
    if not direct.strip():
        raise CredentialsError(name, "is empty")
    return direct.strip()


def credentials_from_env(env: Mapping[str, str]) -> AmcCredentials:
    """Read the three credentials from ``env`` (a mapping such as ``os.environ``)."""
    return AmcCredentials(
        client_id=_read(env, ENV_CLIENT_ID),
        client_secret=Secret(_read(env, ENV_CLIENT_SECRET)),
        refresh_token=Secret(_read(env, ENV_REFRESH_TOKEN)),
    )
