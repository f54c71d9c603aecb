"""A fake AMC (and Login with Amazon) on a real HTTP socket on 127.0.0.1, for tests and demos.

    with FakeAmcServer() as amc:
        amc.seed()                          # one account, instance and workflow
        amc.faults.throttle(retry_after=1)  # the next AMC request gets a 429
        ... AmcClient(..., base_url=amc.base_url), TokenProvider(..., token_url=amc.token_url)
        amc.requests(endpoint="create")     # what the client sent (secrets masked)

It serves the calls the real client makes, and no others: the token endpoint, and create,
get, list and cancel (PUT, or DELETE) of workflow executions. It enforces AMC's header and body
validations, runs executions through PENDING → RUNNING → SUCCEEDED on the given clock (seconds
configurable down to ~0.1 s; at most 10 RUNNING per instance, as AMC), injects the faults of
``faults`` and records every request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from scheduler_daemon.amc.credentials import AmcCredentials
from scheduler_daemon.amc.fake.faults import Fault, Faults
from scheduler_daemon.amc.fake.state import (
    FakeAmcState,
    FakeHttpError,
    FakeSettings,
    Script,
)
from scheduler_daemon.amc.secret import MASK, Secret
from scheduler_daemon.clock import Clock, SystemClock

TOKEN_PATH = "/auth/o2/token"  # noqa: S105 - a path
DEFAULT_CLIENT_ID = "amzn1.application-oa2-client.fake0000000000000000000000000000"
DEFAULT_CLIENT_SECRET = "fake-client-secret-0123456789abcdef"  # noqa: S105 - the fake's own
DEFAULT_REFRESH_TOKEN = "Atzr|fake-refresh-token-0123456789abcdef"  # noqa: S105 - the fake's own
DEFAULT_INSTANCE_ID = "amc1alal2aa"
DEFAULT_ACCOUNT_ID = "ENTITY1AA1AA11AAA1"
DEFAULT_MARKETPLACE_ID = "ATVPDKIKX0DER"
DEFAULT_WORKFLOW_ID = "my-first-workflow"
_SECRET_FORM_FIELDS = ("client_secret", "refresh_token", "access_token")
_TOO_MANY = {"code": "429", "details": "Too Many Requests"}
_EXECUTIONS = re.compile(r"^/amc/reporting/([^/]+)/workflowExecutions(?:/([^/]+))?$")


@dataclass
class LoggedRequest:
    """One request as the fake saw it; Authorization and credential fields are masked.
    Logged when it arrives; ``status`` (None: no answer sent) and ``finished`` (monotonic)
    are filled in when it is done."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    endpoint: str
    instance_id: str | None
    fault: str | None
    started: float
    status: int | None = None
    finished: float | None = None


@dataclass
class _Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeAmcServer:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        settings: FakeSettings | None = None,
        latency: float = 0.0,
        jitter: float = 0.0,
        max_in_flight: int | None = None,
        port: int = 0,
        **overrides: Any,
    ) -> None:
        """``overrides`` set FakeSettings fields (e.g. ``pending_seconds=0.1``).
        ``latency``: seconds every AMC request takes before it is handled, give or take up to
        ``jitter`` (uniformly).
        ``max_in_flight``: requests to one instance AMC handles at once; one more is answered
        429 at once (``throttled`` counts them). None: no limit.
        ``port``: 0 picks a free one (see ``base_url``)."""
        settings = settings or FakeSettings()
        for name, value in overrides.items():
            if not hasattr(settings, name):
                raise TypeError(f"unknown fake AMC setting {name!r}")
            setattr(settings, name, value)
        self.clock = clock or SystemClock()
        self.state = FakeAmcState(self.clock, settings)
        self.faults = Faults()
        self.latency = latency
        self.jitter = jitter
        self.in_flight_limit = max_in_flight
        self.port = port
        self._log: list[LoggedRequest] = []
        self._in_flight: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}
        self._throttled: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.state.add_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        self.state.add_refresh_token(DEFAULT_REFRESH_TOKEN, DEFAULT_CLIENT_ID)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeAmcServer:
        handler = _handler_for(self)
        self._server = _QuietServer(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="fake-amc",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeAmcServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake AMC server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    # --- set-up helpers --------------------------------------------------------------------

    @property
    def credentials(self) -> AmcCredentials:
        """The credentials the fake accepts by default."""
        return AmcCredentials(
            DEFAULT_CLIENT_ID, Secret(DEFAULT_CLIENT_SECRET), Secret(DEFAULT_REFRESH_TOKEN)
        )

    def seed(
        self,
        instance_id: str = DEFAULT_INSTANCE_ID,
        account_id: str = DEFAULT_ACCOUNT_ID,
        marketplace_id: str = DEFAULT_MARKETPLACE_ID,
        workflows: Mapping[str, tuple[str, ...]] | None = None,
        *,
        sandbox: bool = False,
    ) -> None:
        """An account, an instance of it and workflows (id → declared input parameters)."""
        self.state.add_account(account_id, marketplace_id)
        self.state.add_instance(instance_id, account_id, sandbox=sandbox)
        for workflow_id, inputs in (workflows or {DEFAULT_WORKFLOW_ID: ()}).items():
            self.state.add_workflow(instance_id, workflow_id, input_parameters=inputs)

    def script(self, workflow_id: str, script: Script) -> None:
        with self.state.lock:
            self.state.scripts[workflow_id] = script

    def revoke_refresh_token(self, refresh_token: str = DEFAULT_REFRESH_TOKEN) -> None:
        self.state.revoke_refresh_token(refresh_token)

    # --- what happened ---------------------------------------------------------------------

    def requests(
        self,
        *,
        endpoint: str | None = None,
        method: str | None = None,
        instance_id: str | None = None,
    ) -> list[LoggedRequest]:
        with self._lock:
            return [
                r
                for r in self._log
                if (endpoint is None or r.endpoint == endpoint)
                and (method is None or r.method == method)
                and (instance_id is None or r.instance_id == instance_id)
            ]

    def executions(
        self, *, instance_id: str | None = None, workflow_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The executions the fake holds, oldest first, as AMC would show them."""
        with self.state.lock:
            self.state.advance()
            return [
                e.to_json()
                for e in sorted(self.state.executions.values(), key=lambda e: e.created_at)
                if (instance_id is None or e.instance_id == instance_id)
                and (workflow_id is None or e.workflow_id == workflow_id)
            ]

    def max_in_flight(self, instance_id: str) -> int:
        """The most requests to the instance the fake ever handled at once."""
        with self._lock:
            return self._max_in_flight.get(instance_id, 0)

    def throttled(self, instance_id: str | None = None) -> int:
        """Requests answered 429 for going over ``max_in_flight`` (to one instance, or all)."""
        with self._lock:
            if instance_id is None:
                return sum(self._throttled.values())
            return self._throttled.get(instance_id, 0)

    # --- request handling (called by the handler threads) ----------------------------------

    def _enter(self, instance_id: str | None) -> bool:
        """Count the request in; False (not counted) when it is one over ``max_in_flight``."""
        if instance_id is None:
            return True
        with self._lock:
            count = self._in_flight.get(instance_id, 0) + 1
            if self.in_flight_limit is not None and count > self.in_flight_limit:
                self._throttled[instance_id] = self._throttled.get(instance_id, 0) + 1
                return False
            self._in_flight[instance_id] = count
            self._max_in_flight[instance_id] = max(self._max_in_flight.get(instance_id, 0), count)
            return True

    def _leave(self, instance_id: str | None) -> None:
        if instance_id is None:
            return
        with self._lock:
            self._in_flight[instance_id] -= 1

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _finish(self, entry: LoggedRequest, status: int | None) -> None:
        with self._lock:
            entry.status, entry.finished = status, time.monotonic()

    def _route(
        self, method: str, path: str, query: Mapping[str, str]
    ) -> tuple[str, str | None, Callable[[Mapping[str, str], Any], _Answer]]:
        """The endpoint name, the instance in the path and the function that answers: only
        the calls AmcClient and TokenProvider make."""
        state = self.state
        if path == TOKEN_PATH and method == "POST":
            return "token", None, lambda _h, body: _Answer(200, state.issue_token(body or {}))
        match = _EXECUTIONS.match(path)
        if match is None:
            return "unknown", None, _not_found(path)
        instance_id, execution_id = match.groups()
        wrap = state.settings.wrap_responses

        def wrapped(payload: dict[str, Any]) -> dict[str, Any]:
            return {"workflowExecution": payload} if wrap else payload

        def cancel(body: Any) -> dict[str, Any]:
            return state.cancel_execution(instance_id, execution_id, body)

        handlers: dict[tuple[str, bool], tuple[str, Callable[[Any], dict[str, Any]]]] = {
            ("POST", False): (
                "create",
                lambda body: wrapped(state.create_execution(instance_id, body)),
            ),
            ("GET", False): ("list", lambda _b: state.list_executions(instance_id, query)),
            ("GET", True): (
                "get",
                lambda _b: wrapped(state.get_execution(instance_id, execution_id)),
            ),
            # PUT {"status": "CANCELLED"} as the API reference has it, DELETE as the guides do:
            # the client falls back to DELETE when PUT is not allowed.
            ("PUT", True): ("cancel", cancel),
            ("DELETE", True): ("cancel", lambda _b: cancel(None)),
        }
        found = handlers.get((method, execution_id is not None))
        if found is None:
            return "unknown", instance_id, _not_allowed(method)
        endpoint, handler = found
        return endpoint, instance_id, self._amc(instance_id, handler)

    def _amc(
        self, instance_id: str, handler: Callable[[Any], dict[str, Any]]
    ) -> Callable[[Mapping[str, str], Any], _Answer]:
        """An AMC endpoint: authenticate the headers, then answer 200 with the handler's JSON."""

        def answer(headers: Mapping[str, str], body: Any) -> _Answer:
            self.state.authenticate(headers, instance_id)
            return _Answer(200, handler(body))

        return answer


def _not_found(path: str) -> Callable[[Mapping[str, str], Any], _Answer]:
    return lambda _h, _b: _Answer(
        404, {"code": "NOT_FOUND", "details": f"Could not find resource for full path: {path}"}
    )


def _not_allowed(method: str) -> Callable[[Mapping[str, str], Any], _Answer]:
    return lambda _h, _b: _Answer(405, {"code": "405", "details": f"Method {method} not allowed"})


def _masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    masked = dict(headers)
    if "authorization" in masked:
        scheme, _, _ = masked["authorization"].partition(" ")
        masked["authorization"] = f"{scheme} {MASK}" if scheme else MASK
    return masked


def _masked_body(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: MASK if k in _SECRET_FORM_FIELDS else v for k, v in body.items()}
    return body


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default 5 drops bursts of connections

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeouts, dropped connections) is part of the tests."""


def _handler_for(fake: FakeAmcServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        server_fake = fake

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_fake: FakeAmcServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake keeps its own request log."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return raw, None
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            return raw, dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
        try:
            return raw, json.loads(raw)
        except ValueError:
            return raw, _Unparsable(raw)

    def _handle(self, method: str) -> None:
        fake = self.server_fake
        started = time.monotonic()
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        headers = {name.lower(): value for name, value in self.headers.items()}
        raw, body = self._read_body()
        endpoint, instance_id, answer_with = fake._route(method, parsed.path, query)
        fault = fake.faults.take(endpoint, instance_id)
        logged_body = raw.decode("utf-8", "replace") if isinstance(body, _Unparsable) else body
        entry = LoggedRequest(
            method=method,
            path=parsed.path,
            query=query,
            headers=_masked_headers(headers),
            body=_masked_body(logged_body),
            endpoint=endpoint,
            instance_id=instance_id,
            fault=fault.kind if fault else None,
            started=started,
        )
        fake._record(entry)
        if not fake._enter(instance_id):
            entry.fault = "in_flight_limit"
            fake._finish(entry, 429)
            self._send(_Answer(429, _TOO_MANY, {"Retry-After": "1"}))
            return
        settled = False

        def settle(status: int | None) -> None:
            # Before the answer is written: a client may send its next request the moment it
            # has read this one, and must not find this one still counted as in flight.
            nonlocal settled
            if not settled:
                settled = True
                fake._leave(instance_id)
                fake._finish(entry, status)

        try:
            if (fake.latency or fake.jitter) and endpoint != "token":
                spread = random.uniform(-fake.jitter, fake.jitter)  # noqa: S311 - not a secret
                time.sleep(max(0.0, fake.latency + spread))
            self._respond(
                fault,
                method=method,
                headers=headers,
                body=body,
                answer_with=answer_with,
                settle=settle,
            )
        finally:
            settle(None)

    def _respond(
        self,
        fault: Fault | None,
        *,
        method: str,
        headers: Mapping[str, str],
        body: Any,
        answer_with: Callable[[Mapping[str, str], Any], _Answer],
        settle: Callable[[int | None], None],
    ) -> None:
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            answer = _Answer(fault.status, _echo(fault.body, headers, body), dict(fault.headers))
        else:
            answer = self._answer(method, headers, body, answer_with)
        if fault is not None and fault.kind == "lose_response":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        settle(answer.status)
        self._send(answer)

    def _answer(
        self,
        method: str,
        headers: Mapping[str, str],
        body: Any,
        answer_with: Callable[[Mapping[str, str], Any], _Answer],
    ) -> _Answer:
        if isinstance(body, _Unparsable):
            return _Answer(400, {"code": "400", "details": "Request body is not valid JSON"})
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if method in ("POST", "PUT") and content_type not in (
            "",
            "application/json",
            "application/x-www-form-urlencoded",
            "application/vnd.amcworkflowexecutions.v1+json",
        ):
            return _Answer(
                415, {"code": "415", "details": f"Unsupported Media Type {content_type}"}
            )
        try:
            return answer_with(headers, body)
        except FakeHttpError as exc:
            return _Answer(exc.status, exc.body, exc.headers)

    def _send(self, answer: _Answer) -> None:
        headers = dict(answer.headers)
        if isinstance(answer.body, str):
            content = answer.body.encode()
            headers.setdefault(
                "Content-Type",
                "text/html" if answer.body.lstrip().startswith("<html") else "text/plain",
            )
        else:
            content = json.dumps(answer.body).encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            self.send_response(answer.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:
            self.close_connection = True  # the client gave up waiting (a timeout test)


@dataclass(frozen=True)
class _Unparsable:
    raw: bytes


def _echo(body: Any, headers: Mapping[str, str], request_body: Any) -> Any:
    """Fill a fault body's ``{authorization}``/``{refresh_token}``/``{client_secret}``."""
    if not isinstance(body, str | dict):
        return body
    form = request_body if isinstance(request_body, dict) else {}
    values = {
        "authorization": headers.get("authorization", ""),
        "refresh_token": str(form.get("refresh_token", "")),
        "client_secret": str(form.get("client_secret", "")),
    }
    text = json.dumps(body) if isinstance(body, dict) else body
    for name, value in values.items():
        text = text.replace("{" + name + "}", value.replace('"', '\\"'))
    return json.loads(text) if isinstance(body, dict) else text


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a seeded fake on loopback until interrupted, for demos:
    ``python -m scheduler_daemon.amc.fake.server --port 8765 --workflow daily-spend``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--instance", default=DEFAULT_INSTANCE_ID)
    parser.add_argument("--account", default=DEFAULT_ACCOUNT_ID)
    parser.add_argument("--marketplace", default=DEFAULT_MARKETPLACE_ID)
    parser.add_argument(
        "--workflow",
        action="append",
        help="workflow id, optionally with input parameters: 'daily-spend:country,channel'",
    )
    parser.add_argument("--pending-seconds", type=float, default=5.0)
    parser.add_argument("--running-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    workflows = {}
    for spec in args.workflow or [DEFAULT_WORKFLOW_ID]:
        name, _, inputs = spec.partition(":")
        workflows[name] = tuple(p for p in inputs.split(",") if p)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fake = FakeAmcServer(
        port=args.port,
        pending_seconds=args.pending_seconds,
        running_seconds=args.running_seconds,
    )
    fake.seed(args.instance, args.account, args.marketplace, workflows)
    with fake:
        sys.stdout.write(
            f"fake AMC on {fake.base_url} (token URL {fake.token_url}); its own credentials:\n"
            f"SCHEDULER_AMC_CLIENT_ID={DEFAULT_CLIENT_ID}\n"
            f"SCHEDULER_AMC_CLIENT_SECRET={DEFAULT_CLIENT_SECRET}\n"
            f"SCHEDULER_AMC_REFRESH_TOKEN='{DEFAULT_REFRESH_TOKEN}'\n"
        )
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
