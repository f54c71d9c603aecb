"""The API's composition root: one FastAPI application over an engine the caller built.

``serve`` builds the engine from the same settings as every command and hands it here; tests
hand theirs. The application never claims or dispatches a run: daemons do that, and API
processes scale apart from them.
"""

from __future__ import annotations

import time
import uuid

import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler_daemon import __version__
from scheduler_daemon.api import problems
from scheduler_daemon.api.access import Database
from scheduler_daemon.api.routes import catalog, runs, schedules, system
from scheduler_daemon.config import DEFAULT_MAX_REQUEST_BYTES
from scheduler_daemon.health import Thresholds
from scheduler_daemon.web import app as web

PREFIX = "/api/v1"
log = structlog.get_logger("scheduler_daemon.api")


def create_app(
    engine: Engine,
    *,
    cors_origins: tuple[str, ...] = (),
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    thresholds: Thresholds | None = None,
    console: bool = True,
) -> FastAPI:
    """The API under /api/v1 and, with ``console``, the web console at /."""
    app = FastAPI(
        title="scheduler-daemon",
        version=__version__,
        summary="Schedules of Amazon Marketing Cloud workflows, their runs and their catalog.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.database = Database(engine)
    app.state.thresholds = thresholds or Thresholds()
    problems.install(app)
    for router in (schedules.router, runs.router, catalog.router, system.router):
        app.include_router(router, prefix=PREFIX)
    if console:
        web.install(app, engine)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match"],
            expose_headers=["ETag", "Location"],
        )
    app.add_middleware(BodyLimit, max_bytes=max_request_bytes)
    app.add_middleware(RequestLog)
    return app


class BodyLimit:
    """Refuse a request body over ``max_bytes`` with 413, by its Content-Length or, when it
    has none (chunked), as soon as more than that arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0
        refused = False

        async def limited() -> Message:
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes and not refused:
                refused = True
                await self._refuse(scope, receive, send)
                return {"type": "http.disconnect"}  # the application stops reading
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:  # the application's own answer to the "disconnect" goes nowhere
                await send(message)

        await self.app(scope, limited, unless_refused)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problems.problem(
            413,
            f"the request body is larger than {self.max_bytes} bytes, the most this takes",
            request=Request(scope),
        )
        await response(scope, receive, send)


class RequestLog:
    """One log line per request: method, path, status, duration and a request id (also sent
    back as X-Request-Id). Headers are never logged: the bearer token is one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                request_id=request_id,
            )
