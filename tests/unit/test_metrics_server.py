"""The metrics endpoint: /metrics only, on loopback unless told otherwise."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from scheduler_daemon.config import Settings
from scheduler_daemon.metrics import Metrics


@pytest.fixture
def served() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics()
    server = metrics.serve(0)
    yield metrics, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_metrics_listen_on_loopback_by_default() -> None:
    assert Settings().metrics_address == "127.0.0.1"
    server = Metrics().serve(0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_are_served_at_metrics(served: tuple[Metrics, str]) -> None:
    metrics, base = served
    metrics.count_run("succeeded", "scheduled")
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:  # noqa: S310
        body = response.read().decode()
    assert response.status == 200
    assert 'scheduler_runs_total{outcome="succeeded",trigger="scheduled"} 1.0' in body


@pytest.mark.parametrize("path", ["/", "/metrics/", "/favicon.ico", "/metricsx"])
def test_any_other_path_is_not_found(served: tuple[Metrics, str], path: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(served[1] + path, timeout=5)  # noqa: S310
    assert raised.value.code == 404
    assert b"/metrics" in raised.value.read()
