"""Logging set-up: secrets redacted, taps see debug events that the log does not show,
and the metrics count what the AMC client reports."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import structlog

from scheduler_daemon.config import LogFormat
from scheduler_daemon.log import configure_logging, lines_together
from scheduler_daemon.metrics import Metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_taps_see_everything_the_log_shows_its_level_only() -> None:
    stream = io.StringIO()
    seen: list[str] = []
    configure_logging(
        LogFormat.JSON, "info", stream=stream, taps=[lambda e: seen.append(e["event"])]
    )
    try:
        log = structlog.get_logger("t")
        log.debug("quiet", refresh_token="Atzr|x")
        log.info("loud", client_secret="s3cr3t", token="t0k")
        log.error("bad")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert seen == ["quiet", "loud", "bad"]
    assert [line["event"] for line in lines] == ["loud", "bad"]
    assert lines[0]["client_secret"] == "***"
    assert lines[0]["token"] == "***"
    assert "s3cr3t" not in stream.getvalue()


def test_metrics_count_amc_events() -> None:
    metrics = Metrics()
    for event in (
        {"event": "amc.request", "status": 200},
        {"event": "amc.request", "status": 200},
        {"event": "amc.request", "status": 429},
        {"event": "amc.request", "error": "ConnectError"},
        {"event": "amc.token_refreshed"},
        {"event": "amc.token_refresh_failed"},
        {"event": "amc.circuit_opened", "instance_id": "amc1"},
        {"event": "amc.circuit_half_open", "instance_id": "amc2"},
        {"event": "run.finished"},
    ):
        metrics.observe_log_event(event)
    assert sample(metrics, "scheduler_amc_http_responses_total", status="200") == 2
    assert sample(metrics, "scheduler_amc_http_responses_total", status="429") == 1
    assert sample(metrics, "scheduler_amc_http_responses_total", status="error") == 1
    assert sample(metrics, "scheduler_amc_token_refreshes_total", outcome="refreshed") == 1
    assert sample(metrics, "scheduler_amc_token_refreshes_total", outcome="failed") == 1
    assert sample(metrics, "scheduler_amc_circuit_state", instance_id="amc1") == 2
    assert sample(metrics, "scheduler_amc_circuit_state", instance_id="amc2") == 1
    metrics.observe_log_event({"event": "amc.circuit_closed", "instance_id": "amc1"})
    assert sample(metrics, "scheduler_amc_circuit_state", instance_id="amc1") == 0


def test_lines_from_many_threads_arrive_whole_even_past_pipe_buf(tmp_path: Path) -> None:
    """The JSON writer gives each line to the kernel in one write, without a lock: lines of
    concurrent threads must still never interleave, long ones (tracebacks) included."""
    path = tmp_path / "log.jsonl"
    with path.open("w") as stream:
        configure_logging(LogFormat.JSON, "info", stream=stream)
        try:

            def log_many(thread: int) -> None:
                log = structlog.get_logger("t").bind(thread=thread)
                for n in range(300):
                    padding = "x" * (6000 if n % 50 == 0 else 10)
                    log.info("line", n=n, padding=padding)

            threads = [threading.Thread(target=log_many, args=(t,)) for t in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            structlog.reset_defaults()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 8 * 300
    assert {(line["thread"], line["n"]) for line in lines} == {
        (t, n) for t in range(8) for n in range(300)
    }
    assert all(len(line["padding"]) in (6000, 10) for line in lines)


def test_a_stream_without_a_file_descriptor_still_gets_every_line() -> None:
    stream = io.StringIO()
    configure_logging(LogFormat.JSON, "info", stream=stream)
    try:
        structlog.get_logger("t").info("hello", when=datetime(2026, 3, 1, tzinfo=UTC))
    finally:
        structlog.reset_defaults()
    [line] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert line["event"] == "hello"
    assert line["when"] == "2026-03-01T00:00:00Z"


def test_lines_logged_together_are_written_at_the_end_of_the_block_and_arrive_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.jsonl"
    with path.open("w") as stream:
        configure_logging(LogFormat.JSON, "info", stream=stream)
        try:
            log = structlog.get_logger("t")
            with lines_together():
                for n in range(100):
                    log.info("run.finished", n=n, padding="y" * (5000 if n == 40 else 100))
                with lines_together():  # an inner block leaves them to the outer one
                    log.info("inner")
                held_size = path.stat().st_size
            log.info("after")
        finally:
            structlog.reset_defaults()
    assert held_size == 0
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line.get("n") for line in lines[:100]] == list(range(100))
    assert [line["event"] for line in lines[100:]] == ["inner", "after"]


def test_a_traceback_is_logged_as_data_without_the_frames_local_variables() -> None:
    stream = io.StringIO()
    configure_logging(LogFormat.JSON, "info", stream=stream)
    try:
        refresh = "Atzr|do-not-log-me"
        try:
            raise RuntimeError(f"refresh failed after {len(refresh)} characters")
        except RuntimeError:
            structlog.get_logger("t").exception("token.refresh_failed")
    finally:
        structlog.reset_defaults()
    [line] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert line["level"] == "error"
    [exception] = line["exception"]
    assert exception["exc_type"] == "RuntimeError"
    assert exception["frames"], "the traceback's frames are logged"
    assert "do-not-log-me" not in stream.getvalue()


def test_json_lines_carry_level_and_utc_timestamp() -> None:
    stream = io.StringIO()
    configure_logging(LogFormat.JSON, "debug", stream=stream)
    try:
        log = structlog.get_logger("t")
        log.warn("a")
        log.debug("b")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["level"] for line in lines] == ["warning", "debug"]
    stamp = datetime.fromisoformat(lines[0]["timestamp"])
    assert lines[0]["timestamp"].endswith("Z")
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
