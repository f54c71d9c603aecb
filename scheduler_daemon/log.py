"""structlog set-up: JSON lines for machines, coloured console lines for people."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, BinaryIO, TextIO, cast

import orjson
import structlog
import structlog.tracebacks

from scheduler_daemon.config import LogFormat

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# Field names whose values never reach a log line, whatever their case.
SECRET_KEYS = frozenset(
    {
        "password",
        "refresh_token",
        "access_token",
        "client_secret",
        "authorization",
        "token",
        "secret",
    }
)


def _redact_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in event_dict:
        if key.lower() in SECRET_KEYS:
            event_dict[key] = "***"
    return event_dict


def _binary(stream: TextIO | BinaryIO) -> BinaryIO:
    """The bytes under a text stream (``sys.stdout.buffer``), or the stream itself."""
    buffer: BinaryIO | None = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()  # whatever was printed before goes out first
        return buffer
    if isinstance(stream, io.TextIOBase):  # io.StringIO
        raise TypeError(f"JSON logs are bytes: {stream!r} has no byte buffer to write them to")
    return cast(BinaryIO, stream)


def configure_logging(
    log_format: LogFormat, level: str = "info", stream: TextIO | BinaryIO | None = None
) -> None:
    """Log to ``stream`` (stdout by default); JSON goes to a text stream's byte buffer."""
    stream = stream or sys.stdout
    fmt = log_format
    if fmt is LogFormat.AUTO:
        fmt = LogFormat.CONSOLE if stream.isatty() else LogFormat.JSON
    common: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    logger_factory: structlog.BytesLoggerFactory | structlog.WriteLoggerFactory
    if fmt is LogFormat.JSON:
        rendering: list[structlog.typing.Processor] = [
            # Tracebacks as data, without the frames' local variables: those can hold a secret.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            # orjson's default= is structlog's: the repr of what it cannot serialise.
            structlog.processors.JSONRenderer(
                serializer=orjson.dumps, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
            ),
        ]
        logger_factory = structlog.BytesLoggerFactory(_binary(stream))
    else:
        if isinstance(stream, io.RawIOBase | io.BufferedIOBase):
            raise TypeError(f"console logs are text: {stream!r} is a byte stream")
        rendering = [
            structlog.processors.format_exc_info,
            # Tracebacks without the frames' local variables, as in JSON: those can hold a
            # secret (a request's bearer token, an AMC client secret).
            structlog.dev.ConsoleRenderer(
                colors=stream.isatty(),
                exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
            ),
        ]
        logger_factory = structlog.WriteLoggerFactory(cast(TextIO, stream))
    structlog.configure(
        processors=[*common, *rendering],
        # Below the level, a log method does nothing: no event dict, no processor runs.
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
