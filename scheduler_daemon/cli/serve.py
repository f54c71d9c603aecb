"""``scheduler-daemon serve``: the web console and the REST API on uvicorn."""

from __future__ import annotations

import signal
import socket

import click
import uvicorn

from scheduler_daemon.api.app import PREFIX, create_app
from scheduler_daemon.cli.common import CliState, ensure_schema, open_database, setting_options
from scheduler_daemon.errors import ConfigError
from scheduler_daemon.log import configure_logging

# Connections the API's worker threads share (anyio runs each request in one of 40 threads;
# a request holds one connection at a time, for a few milliseconds).
POOL_SIZE = 10


@click.command("serve")
@setting_options("serve")
@click.pass_obj
def serve_command(state: CliState, /, **options: str | None) -> None:
    """Serve the web console at / and the REST API under /api/v1 (docs at /api/docs).

    Both need a token ('tokens create'): the console logs in with one. It never runs a
    schedule: run daemons ('run') beside it. SIGTERM or Ctrl-C stops it gracefully.
    """
    settings = state.settings(**options)
    # Every listing planned for its filters: see db.engine._plan_each_time.
    with open_database(settings, pool_size=POOL_SIZE, custom_plans=True) as engine:
        ensure_schema(engine, settings)
        listener = _listen(settings.host, settings.port)
        configure_logging(settings.log_format, settings.log_level)
        app = create_app(
            engine,
            cors_origins=settings.cors_origins,
            max_request_bytes=settings.max_request_bytes,
        )
        config = uvicorn.Config(
            app, log_config=None, access_log=False, server_header=False, lifespan="off"
        )
        shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
        base = f"http://{shown_host}:{settings.port}"
        click.echo(
            f"scheduler-daemon console on {base}/, API on {base}{PREFIX} (docs: {base}/api/docs)",
            err=True,
        )
        # uvicorn stops gracefully on SIGTERM or Ctrl-C, then raises the signal again for the
        # handler that was there before it; these let the command end normally (exit 0).
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, lambda *_: None)
        with listener:
            uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before uvicorn starts, so that a port in use or an address
    this host does not have is one line, not a log of uvicorn's."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        listener = socket.socket(family, kind, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(address)
            listener.listen(2048)
        except OSError:
            listener.close()
            raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            "--host/--port", f"{host}:{port}", f"cannot listen there: {reason}"
        ) from None
    listener.set_inheritable(True)
    return listener
