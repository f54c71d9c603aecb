"""Templates, and the route class every console page goes through.

A page's errors become pages, not problem details: no session sends the browser to the login
form (an htmx request gets ``HX-Redirect``), a reference that names nothing gets a 404 page,
a refused change a 403 page, an unavailable database a 503 page. Nothing internal reaches the
browser.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DBAPIError

from scheduler_daemon.db.engine import database_condition
from scheduler_daemon.errors import (
    DatabaseUnavailableError,
    InputError,
    NotFoundError,
    SchemaAheadError,
    SchemaOutOfDateError,
)
from scheduler_daemon.timing import TimingError
from scheduler_daemon.timing.zones import load_zone
from scheduler_daemon.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    ForbiddenError,
    NotLoggedInError,
    Page,
)

log = structlog.get_logger("scheduler_daemon.web")

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# The console runs its own scripts and styles only, and is never framed by another site.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def utc(moment: datetime | None) -> str:
    """2027-03-15 13:00 UTC"""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC").replace(":00 UTC", " UTC")


def local(moment: datetime | str | None, abbreviation: str | None = None) -> str:
    """2027-03-15 09:00 EDT, or 2027-03-15 09:00 -04:00 without the zone's abbreviation: the
    time as the schedule's zone shows it."""
    if moment is None:
        return "—"
    shown = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    text = shown.strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00")
    offset = shown.utcoffset()
    if abbreviation is None and offset is not None:
        sign = "-" if offset.total_seconds() < 0 else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        abbreviation = "UTC" if not minutes else f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return f"{text} {abbreviation or ''}".strip()


def in_zone(moment: datetime | str | None, timezone: str) -> str:
    """2027-03-15 09:00 EDT: an instant as the clocks of ``timezone`` show it."""
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    try:
        shown = load_zone(timezone).localize_datetime(moment)
    except TimingError:
        return utc(moment)
    return local(shown, shown.tzname())


def seconds(value: float | timedelta | None) -> str:
    """0.4 s, 12 s, 3 min 5 s, 2 h 10 min"""
    if value is None:
        return "—"
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if abs(value) < 10:
        return f"{value:.1f} s"
    whole = round(value)
    if abs(whole) < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %".replace(".0 %", " %")


templates.env.filters.update(
    utc=utc, local=local, in_zone=in_zone, seconds=seconds, percent=percent
)
templates.env.globals.update(CSRF_FIELD=CSRF_FIELD, CSRF_HEADER=CSRF_HEADER)


def render(
    request: Request,
    template: str,
    page: Page | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    values = {"session": None if page is None else page.session, "now": None, **context}
    if page is not None:
        values["now"] = page.now
    response = templates.TemplateResponse(request, template, values, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(url: str, request: Request) -> Response:
    """After a change: the browser loads ``url`` (303: as a GET); htmx is told to go there."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _error_page(request: Request, status: int, message: str) -> Response:
    if request.headers.get("HX-Request"):
        return Response(
            message, status_code=status, media_type="text/plain", headers=SECURITY_HEADERS
        )
    return render(request, "error.html", None, status=status, status_code=status, message=message)


def _login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = "/login" if target == "/" else f"/login?next={quote(target, safe='')}"
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


_UNAVAILABLE = (DatabaseUnavailableError, SchemaOutOfDateError, SchemaAheadError)


class PageRoute(APIRoute):
    """Every console route: its errors answered as pages (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NotLoggedInError:
                return _login(request)
            except ForbiddenError as exc:
                return _error_page(request, 403, str(exc))
            except RequestValidationError as exc:
                wrong = "; ".join(
                    f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}"
                    for error in exc.errors()
                )
                return _error_page(request, 422, wrong or "the request is not valid")
            except NotFoundError as exc:
                return _error_page(request, 404, str(exc))
            except InputError as exc:
                return _error_page(request, 422, str(exc))
            except _UNAVAILABLE as exc:
                return _error_page(request, 503, str(exc))
            except DBAPIError as exc:
                condition = database_condition(exc)
                if condition is None:
                    raise
                return _error_page(request, 503, f"the database did not answer: {condition}")

        return route
