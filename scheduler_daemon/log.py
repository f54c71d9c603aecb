"""structlog set-up: JSON lines for machines, coloured console lines for people."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import select
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

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


def _is_secret(key: str) -> bool:
    """Whether a field name names a secret, whatever its case; remembered per name."""
    secret = _SECRET_NAMES.get(key)
    if secret is None:
        secret = key.lower() in SECRET_KEYS
        if len(_SECRET_NAMES) < 4096:  # field names are few; this bounds a pathological caller
            _SECRET_NAMES[key] = secret
    return secret


_SECRET_NAMES: dict[str, bool] = {}


def _redact_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in event_dict:
        if _is_secret(key):
            event_dict[key] = "***"
    return event_dict


# Tracebacks as data, without the frames' local variables: those can hold a token or a secret.
_format_exception = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def _render_json(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> bytes:
    """Level, UTC timestamp, redaction, traceback and JSON in one step.

    The same fields as structlog's add_log_level, TimeStamper(fmt="iso", utc=True),
    dict_tracebacks and JSONRenderer, at half their cost: the daemon writes three lines per
    run, and in a burst the separate processors cost more than the database work of a slot.
    orjson formats the datetime itself ("…Z")."""
    event_dict = structlog.processors.add_log_level(logger, method, event_dict)
    event_dict["timestamp"] = datetime.now(UTC)
    event_dict = _redact_secrets(logger, method, event_dict)
    if "exc_info" in event_dict:
        event_dict = _format_exception(logger, method, event_dict)
    return _orjson_dumps(event_dict)


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


_held = threading.local()


@contextlib.contextmanager
def lines_together() -> Iterator[None]:
    """Hold this thread's log lines until the block ends, then write them in as few writes as
    keep every line whole: for loops that log one line per run of a batch."""
    if getattr(_held, "lines", None) is not None:  # nested: the outer block writes them
        yield
        return
    held: dict[LineWriter, list[bytes]] = {}
    _held.lines = held
    try:
        yield
    finally:
        _held.lines = None
        for writer, lines in held.items():
            writer.write_lines(lines)


class LineWriter:
    """A structlog logger that hands each rendered line to the kernel in one ``write(2)``.

    structlog's WriteLogger locks, writes and flushes for every line. With dispatch threads
    logging three lines per run, that lock cost more CPU than rendering the lines did. One
    write of a whole line needs no lock: the kernel keeps it together, on a pipe up to
    PIPE_BUF bytes. A longer line (a traceback) takes the lock, so those never interleave
    with each other. A stream with no file descriptor (tests) is written under the lock.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        try:
            self._fd: int | None = stream.fileno()
        except (io.UnsupportedOperation, AttributeError, ValueError):
            self._fd = None
        else:
            stream.flush()  # whatever was printed before goes out first

    def msg(self, message: str | bytes) -> None:
        line = message.encode() if isinstance(message, str) else message
        held: dict[LineWriter, list[bytes]] | None = getattr(_held, "lines", None)
        if held is not None:
            held.setdefault(self, []).append(line + b"\n")
        else:
            self.write_lines([line + b"\n"])

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """Write whole lines, several per write(2) as long as they fit in PIPE_BUF."""
        if self._fd is None:
            with self._lock:
                self._stream.write(b"".join(lines).decode())
                self._stream.flush()
            return
        group: list[bytes] = []
        size = 0
        for line in lines:
            if size + len(line) > select.PIPE_BUF and group:
                self._write(b"".join(group))
                group, size = [], 0
            group.append(line)
            size += len(line)
        if group:
            self._write(b"".join(group))

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        if len(data) <= select.PIPE_BUF and os.write(self._fd, data) == len(data):
            return
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def _orjson_dumps(value: Any, **options: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z, **options)


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
    writer = LineWriter(stream)
    # Without taps the bound logger filters by level itself, which is cheaper.
    filter_level = logging.DEBUG if taps else _LEVELS[level]
    tapping = [_tap_then_filter(taps, _LEVELS[level])] if taps else []
    rendering: list[structlog.typing.Processor] = (
        [_render_json]
        if fmt is LogFormat.JSON
        else [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secrets,
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=stream.isatty()),
        ]
    )
    structlog.configure(
        processors=[*tapping, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(filter_level),
        logger_factory=lambda *_: writer,
        cache_logger_on_first_use=True,
    )
