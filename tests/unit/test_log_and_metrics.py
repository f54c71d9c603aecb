"""Logging set-up: secrets redacted, taps see debug events that the log does not show,
and the metrics count what the AMC client reports."""

from __future__ import annotations

import io
import json

import structlog

from scheduler_daemon.config import LogFormat
from scheduler_daemon.log import configure_logging
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
