"""structlog set-up: JSON lines for machines, coloured console lines for people."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, TextIO

import structlog

from scheduler_daemon.config import LogFormat

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# Field names whose values never reach a log line, wherever they appear.
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


_METHOD_LEVELS = _LEVELS | {
    "warn": logging.WARNING,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}

LogTap = Callable[[Mapping[str, Any]], None]


def _tap_then_filter(taps: Sequence[LogTap], level: int) -> structlog.typing.Processor:
    """Show every event to the taps (metrics), then drop those below the log level."""

    def processor(
        _: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for tap in taps:
            tap(event_dict)
        if _METHOD_LEVELS.get(method, logging.INFO) < level:
            raise structlog.DropEvent
        return event_dict

    return processor


def configure_logging(
    log_format: LogFormat,
    level: str = "info",
    stream: TextIO | None = None,
    taps: Sequence[LogTap] = (),
) -> None:
    """``taps`` see every event, debug ones included, before the level filter."""
    stream = stream or sys.stdout
    fmt = log_format
    if fmt is LogFormat.AUTO:
        fmt = LogFormat.CONSOLE if stream.isatty() else LogFormat.JSON
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    # Without taps the bound logger filters by level itself, which is cheaper.
    filter_level = logging.DEBUG if taps else _LEVELS[level]
    tapping = [_tap_then_filter(taps, _LEVELS[level])] if taps else []
    structlog.configure(
        processors=[
            *tapping,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secrets,
            structlog.processors.dict_tracebacks
            if fmt is LogFormat.JSON
            else structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(filter_level),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
