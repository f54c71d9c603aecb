"""Prometheus metrics of one daemon process, in a registry of its own. The AMC layer's are
told by direct calls: ``Metrics`` is the executor's ``AmcObserver``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from scheduler_daemon.amc.observer import CircuitState, TokenRefreshOutcome

_LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


_CIRCUIT_STATES: dict[CircuitState, int] = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "scheduler_runs", "Run decisions and outcomes.", ["outcome", "trigger"], registry=r
        )
        self.lateness = Histogram(
            "scheduler_run_lateness_seconds",
            "Dispatch time minus scheduled slot, for scheduled runs.",
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.claims_lost = Counter(
            "scheduler_claims_lost",
            "Writes refused because another worker now owns the run (fencing).",
            registry=r,
        )
        self.tick_duration = Histogram(
            "scheduler_tick_duration_seconds",
            "Wall time of one tick.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.due_backlog = Gauge(
            "scheduler_due_backlog",
            "Due schedules not yet claimed, counted at each heartbeat (capped at 10,000).",
            registry=r,
        )
        self.status_checks_overdue = Gauge(
            "scheduler_status_checks_overdue",
            "Running executions whose status check is more than one status poll interval"
            " overdue, counted at each heartbeat (capped at 10,000; amc executor only).",
            registry=r,
        )
        self.locks_reaped = Counter(
            "scheduler_locks_reaped", "Locks taken over from dead or expired owners.", registry=r
        )
        self.quarantined = Counter(
            "scheduler_schedules_quarantined", "Schedules this daemon quarantined.", registry=r
        )
        self.auto_paused = Counter(
            "scheduler_schedules_auto_paused",
            "Schedules paused after consecutive failures.",
            registry=r,
        )
        self.paused = Gauge(
            "scheduler_schedules_paused", "Schedules currently paused (any reason).", registry=r
        )
        self.executor_latency = Histogram(
            "scheduler_executor_call_seconds",
            "Executor call latency.",
            ["executor", "outcome"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.database_available = Gauge(
            "scheduler_database_available", "1 while the database answers, else 0.", registry=r
        )
        self.database_available.set(1)
        self.amc_responses = Counter(
            "scheduler_amc_http_responses",
            "AMC API responses by HTTP status ('error' when no response came).",
            ["status"],
            registry=r,
        )
        self.token_refreshes = Counter(
            "scheduler_amc_token_refreshes",
            "Login-with-Amazon token refreshes.",
            ["outcome"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "scheduler_amc_circuit_state",
            "Circuit breaker per AMC instance: 0 closed, 1 half-open, 2 open.",
            ["instance_id"],
            registry=r,
        )

        self._children: dict[tuple[Any, ...], Any] = {}

    def count_run(self, outcome: str, trigger: str) -> None:
        self._child(self.runs, outcome, trigger).inc()

    def observe_executor_call(self, executor: str, outcome: str, seconds: float) -> None:
        self._child(self.executor_latency, executor, outcome).observe(seconds)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: the daemon counts every run, and labels()
        validates and locks on each call."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # --- AmcObserver ------------------------------------------------------------------------

    def response(self, status: str) -> None:
        self._child(self.amc_responses, status).inc()

    def token_refresh(self, outcome: TokenRefreshOutcome) -> None:
        self._child(self.token_refreshes, outcome).inc()

    def circuit(self, instance_id: str, state: CircuitState) -> None:
        self._child(self.circuit_state, instance_id).set(_CIRCUIT_STATES[state])

    def serve(self, port: int, address: str = "127.0.0.1") -> WSGIServer:
        """Serve ``/metrics`` (and nothing else: 404) on ``address``:``port`` from a thread;
        returns the server (its ``server_address`` says the port when ``port`` is 0)."""
        metrics_app = make_wsgi_app(self.registry)

        def only_metrics(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != METRICS_PATH:
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                return [f"not found: the metrics are at {METRICS_PATH}\n".encode()]
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]

        server = make_server(
            address, port, only_metrics, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server


METRICS_PATH = "/metrics"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Scrapes are not logged: the daemon's log is for its runs."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
