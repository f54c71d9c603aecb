"""The metrics count what the AMC client reports (the logging tests are in test_log.py)."""

from __future__ import annotations

from scheduler_daemon.amc.observer import AmcObserver
from scheduler_daemon.metrics import Metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_metrics_count_what_the_amc_layer_tells_them() -> None:
    metrics = Metrics()
    observer: AmcObserver = metrics  # the daemon hands its metrics to the amc executor
    for status in ("200", "200", "429", "error"):
        observer.response(status)
    observer.token_refresh("refreshed")
    observer.token_refresh("failed")
    observer.circuit("amc1", "open")
    observer.circuit("amc2", "half_open")
    assert sample(metrics, "scheduler_amc_http_responses_total", status="200") == 2
    assert sample(metrics, "scheduler_amc_http_responses_total", status="429") == 1
    assert sample(metrics, "scheduler_amc_http_responses_total", status="error") == 1
    assert sample(metrics, "scheduler_amc_token_refreshes_total", outcome="refreshed") == 1
    assert sample(metrics, "scheduler_amc_token_refreshes_total", outcome="failed") == 1
    assert sample(metrics, "scheduler_amc_circuit_state", instance_id="amc1") == 2
    assert sample(metrics, "scheduler_amc_circuit_state", instance_id="amc2") == 1
    observer.circuit("amc1", "closed")
    assert sample(metrics, "scheduler_amc_circuit_state", instance_id="amc1") == 0
