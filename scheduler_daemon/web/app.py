"""The console's composition root: its pages and assets, added to the API's application so
that one ``serve`` process serves both (the pages at ``/``, the API under ``/api/v1``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from scheduler_daemon.web.pages import edit, schedules, system
from scheduler_daemon.web.rendering import HERE
from scheduler_daemon.web.session import Console


def install(app: FastAPI, engine: Engine) -> None:
    app.state.console = Console(engine)
    # /schedules/new before /schedules/{schedule}, which would take "new" for a name.
    for router in (edit.router, schedules.router, system.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
