"""Logging set-up: secrets redacted, debug lines free at info level, every line whole and once."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

import pytest
import structlog

from scheduler_daemon.config import LogFormat
from scheduler_daemon.log import configure_logging


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def json_lines(stream: io.BytesIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_secrets_are_redacted_and_lines_below_the_level_left_out() -> None:
    stream = io.BytesIO()
    configure_logging(LogFormat.JSON, "info", stream=stream)
    log = structlog.get_logger("t")
    log.debug("quiet", refresh_token="Atzr|x")
    log.info("loud", client_secret="s3cr3t", token="t0k", Authorization="Bearer b", n=1)
    log.error("bad")
    lines = json_lines(stream)
    assert [line["event"] for line in lines] == ["loud", "bad"]
    assert lines[0]["client_secret"] == lines[0]["token"] == lines[0]["Authorization"] == "***"
    assert lines[0]["n"] == 1
    assert b"s3cr3t" not in stream.getvalue()
    assert b"Atzr" not in stream.getvalue()


class Counted:
    """Counts each time the log pipeline looks at it: repr, str or orjson's fallback."""

    looked_at = 0

    def __repr__(self) -> str:
        Counted.looked_at += 1
        return "Counted()"

    __str__ = __repr__


@pytest.mark.parametrize(("level", "looked_at"), [("info", 0), ("debug", 1)])
def test_a_debug_line_at_info_level_is_never_built(level: str, looked_at: int) -> None:
    stream = io.BytesIO()
    configure_logging(LogFormat.JSON, level, stream=stream)
    calls: list[str] = []

    def counting(_: Any, method: str, event_dict: Any) -> Any:
        calls.append(method)
        return event_dict

    config = structlog.get_config()
    structlog.configure(processors=[counting, *config["processors"]])
    Counted.looked_at = 0
    structlog.get_logger("t").debug("quiet", value=Counted())
    assert Counted.looked_at == looked_at
    assert calls == ["debug"] * looked_at
    assert len(json_lines(stream)) == looked_at


def test_json_lines_carry_level_and_utc_timestamp() -> None:
    stream = io.BytesIO()
    configure_logging(LogFormat.JSON, "debug", stream=stream)
    log = structlog.get_logger("t")
    log.warn("a", when=datetime(2026, 3, 1, tzinfo=UTC), other=Counted())
    log.debug("b")
    lines = json_lines(stream)
    assert [line["level"] for line in lines] == ["warning", "debug"]
    assert [line["event"] for line in lines] == ["a", "b"]
    stamp = datetime.fromisoformat(lines[0]["timestamp"])
    assert lines[0]["timestamp"].endswith("Z")
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert lines[0]["when"] == "2026-03-01T00:00:00Z"
    assert lines[0]["other"] == "Counted()"  # what orjson cannot serialise is repr'd


def test_a_traceback_is_logged_as_data_without_the_frames_local_variables() -> None:
    stream = io.BytesIO()
    configure_logging(LogFormat.JSON, "info", stream=stream)
    refresh = "Atzr|do-not-log-me"
    try:
        raise RuntimeError(f"refresh failed after {len(refresh)} characters")
    except RuntimeError:
        structlog.get_logger("t").exception("token.refresh_failed")
    [line] = json_lines(stream)
    assert line["level"] == "error"
    [exception] = line["exception"]
    assert exception["exc_type"] == "RuntimeError"
    assert exception["frames"], "the traceback's frames are logged"
    assert b"do-not-log-me" not in stream.getvalue()


def test_json_to_a_text_stream_goes_to_its_byte_buffer() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stream.write("printed first\n")
    configure_logging(LogFormat.JSON, "info", stream=stream)
    structlog.get_logger("t").info("hello")
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    first, line = buffer.getvalue().splitlines()
    assert first == b"printed first"
    assert json.loads(line)["event"] == "hello"
    with pytest.raises(TypeError, match="no byte buffer"):
        configure_logging(LogFormat.JSON, "info", stream=io.StringIO())


def test_console_lines_are_text_with_secrets_redacted() -> None:
    stream = io.StringIO()
    configure_logging(LogFormat.CONSOLE, "info", stream=stream)
    log = structlog.get_logger("t")
    log.debug("quiet")
    log.info("loud", password="hunter2")
    [line] = stream.getvalue().splitlines()
    assert "loud" in line
    assert "hunter2" not in line


THREADS, LINES = 8, 500
LONG = 70_000  # far past PIPE_BUF (4096), past a pipe's 64 KiB and the socket's send buffer


def padding(thread: int, n: int) -> str:
    # Long lines; lines under PIPE_BUF but longer than a socket sends at once; short ones.
    length = LONG if n % 25 == 0 else 3000 + n if n % 5 == 0 else 20 + n % 100
    return chr(ord("a") + thread) * length


def log_from_threads_and_read(writer: BinaryIO, read: Callable[[], bytes]) -> bytes:
    """Log THREADS × LINES lines at once through ``writer`` while a thread reads the other end."""
    received = bytearray()

    def reader() -> None:
        while chunk := read():
            received.extend(chunk)

    reading = threading.Thread(target=reader)
    reading.start()
    configure_logging(LogFormat.JSON, "info", stream=writer)
    start = threading.Barrier(THREADS)

    def log_many(thread: int) -> None:
        log = structlog.get_logger("t").bind(thread=thread)
        start.wait()
        for n in range(LINES):
            log.info("line", n=n, padding=padding(thread, n))

    threads = [threading.Thread(target=log_many, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    reading.join()
    return bytes(received)


def assert_every_line_whole_and_once(received: bytes) -> None:
    seen: dict[tuple[int, int], int] = {}
    for raw in received.splitlines():
        line = json.loads(raw)  # a line cut or spliced into another is no longer JSON
        key = (line["thread"], line["n"])
        assert line["padding"] == padding(*key), f"line {key} arrived altered"
        seen[key] = seen.get(key, 0) + 1
    assert seen == {(t, n): 1 for t in range(THREADS) for n in range(LINES)}


def test_lines_from_many_threads_through_a_pipe_arrive_whole_and_once() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb", buffering=0) as reading:
        received = log_from_threads_and_read(
            os.fdopen(write_fd, "wb"), lambda: reading.read(65536) or b""
        )
    assert_every_line_whole_and_once(received)


@pytest.mark.parametrize("short_writes", [False, True], ids=["blocking", "short-writes"])
def test_lines_from_many_threads_through_a_stream_socket_arrive_whole_and_once(
    short_writes: bool,
) -> None:
    """journald and PM2 read stdout from a stream socket, where PIPE_BUF promises nothing.

    With a send buffer of a few KiB, the kernel splits every long line. With a timeout, Python
    makes the socket non-blocking underneath, and each send(2) takes only what fits: the
    writer must carry on from where the kernel stopped."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the least: 4608 bytes
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    if short_writes:
        ours.settimeout(60)
    writer = ours.makefile("wb")
    ours.close()  # the socket closes with its writer: the reader then sees the end
    with theirs:
        received = log_from_threads_and_read(writer, lambda: theirs.recv(65536))
    assert_every_line_whole_and_once(received)
