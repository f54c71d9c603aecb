"""Logging in and out, and the daemons and health page."""

from __future__ import annotations

import contextlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from scheduler_daemon import management, sessions
from scheduler_daemon.health import check
from scheduler_daemon.web.pages.schedules import console
from scheduler_daemon.web.rendering import SECURITY_HEADERS, PageRoute, render
from scheduler_daemon.web.session import COOKIE, CSRF_FIELD, NotLoggedInError

LOGIN_CSRF_COOKIE = "sd_login_csrf"

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this site only, never another site."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _login_form(request: Request, target: str, error: str | None, status: int = 200) -> Response:
    """The login form. It has no session to take a CSRF token from, so it sends one in a
    cookie of its own and in the form (double submit): a form posted from another site
    carries no such pair, and cannot log the browser in with someone else's token."""
    login_csrf = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        None,
        status=status,
        next=_safe_next(target),
        error=error,
        login_csrf=login_csrf,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        login_csrf,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/login",
    )
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return _login_form(request, next or "/", None)


@router.post("/login")
async def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf_token.encode(), expected.encode()):
        message = "This login form is out of date: log in again."
        return _login_form(request, next, message, status=403)

    def open_session() -> tuple[str, sessions.Session] | None:
        with console(request).engine.begin() as conn:
            return sessions.open_session(conn, token)

    opened = await run_in_threadpool(open_session) if token.strip() else None
    if opened is None:
        message = (
            "That token is not valid (unknown or revoked)."
            if token.strip()
            else "Paste a token from 'scheduler-daemon tokens create'."
        )
        return _login_form(request, next, message, status=401)
    secret, _session = opened
    response = RedirectResponse(_safe_next(next), status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    response.set_cookie(
        COOKIE,
        secret,
        max_age=sessions.SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    secret = request.cookies.get(COOKIE)

    def close() -> None:
        csrf_token = form.get(CSRF_FIELD)
        with console(request).writing(
            request, csrf_token if isinstance(csrf_token, str) else None, change=False
        ) as page:
            if secret:
                sessions.close_session(page.conn, secret)

    with contextlib.suppress(NotLoggedInError):  # logged out already: the cookie goes anyway
        await run_in_threadpool(close)
    response = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/daemons")
def daemons_page(request: Request) -> Response:
    with console(request).reading(request) as page:
        workers = management.list_workers(page.conn)
        overview = management.overview(page.conn)
    report = check(console(request).engine, request.app.state.thresholds)
    return render(
        request,
        "daemons.html",
        page,
        workers=workers,
        overview=overview,
        report=report,
    )
