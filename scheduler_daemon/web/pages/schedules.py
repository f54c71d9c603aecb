"""The schedules list, a schedule's page, and what an operator does from it: run now, pause,
resume, enable, disable, delete."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from scheduler_daemon import catalog, management
from scheduler_daemon import history as audit_history
from scheduler_daemon.api import cursors
from scheduler_daemon.errors import FieldError, InputError
from scheduler_daemon.references import Kind
from scheduler_daemon.timing import clock_changes
from scheduler_daemon.web import forms, views
from scheduler_daemon.web.rendering import PageRoute, redirect, render
from scheduler_daemon.web.session import CSRF_FIELD, Console, ForbiddenError, Page

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Connection

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
RUNS_SHOWN = 25
HISTORY_SHOWN = 20
Sort = Literal["name", "-name", "next_run_at", "-next_run_at", "created_at", "-created_at"]
StateFilter = Literal["", "enabled", "disabled", "paused", "failing"]
_STATE_FILTERS: Mapping[str, dict[str, bool]] = {
    "": {},
    "enabled": {"enabled": True, "paused": False},
    "disabled": {"enabled": False},
    "paused": {"paused": True},
    "failing": {"failing": True},
}
NOTICES = {
    "created": "Schedule created.",
    "saved": "Changes saved.",
    "triggered": "Run queued: a daemon picks it up within its poll interval.",
    "paused": "Paused.",
    "resumed": "Resumed from the next slot.",
    "enabled": "Enabled from the next slot.",
    "disabled": "Disabled.",
    "deleted": "Schedule deleted (kept with its runs for the record).",
}


def console(request: Request) -> Console:
    shown: Console = request.app.state.console
    return shown


def writer(page: Page) -> Page:
    """The page, for a session that may change what it shows (a form, a confirmation)."""
    if not page.session.can_write:
        raise ForbiddenError(
            f"token {page.session.token.name!r} is a read token: it cannot change anything"
        )
    return page


@router.get("/")
def schedules_page(
    request: Request,
    *,
    q: str = "",
    workflow: str = "",
    state: StateFilter = "",
    sort: Sort = "name",
    cursor: str | None = None,
    notice: str = "",
) -> Response:
    with console(request).reading(request) as page:
        try:
            listing = _listing(page, q=q, workflow=workflow, state=state, sort=sort, cursor=cursor)
            problem = ""
        except InputError as exc:  # a workflow that is not there, a cursor from elsewhere
            listing, problem = {"items": [], "next": None}, str(exc)
        workers = management.list_workers(page.conn)
        live = sum(worker["state"] == "live" for worker in workers)
        last = management.last_runs(page.conn, [row["id"] for row in listing["items"]])
        rows = [
            {
                **schedule,
                "last_run": last.get(schedule["id"]),
                "badges": views.badges(schedule),
                "warnings": views.warnings(schedule, page.now, live),
                "description": management.describe_spec(schedule["spec"], schedule["timezone"]),
            }
            for schedule in listing["items"]
        ]
        workflows = [row["name"] for row in catalog.workflow_choices(page.conn)]
    template = "_schedule_rows.html" if request.headers.get("HX-Target") == "listing" else None
    return render(
        request,
        template or "schedules.html",
        page,
        rows=rows,
        next_cursor=listing["next"],
        filters={"q": q, "workflow": workflow, "state": state, "sort": sort},
        problem=problem,
        workflows=workflows,
        live_daemons=live,
        notice=NOTICES.get(notice, ""),
        lateness=views.lateness,
        outcome=views.run_outcome,
    )


def _listing(
    page: Page, *, q: str, workflow: str, state: str, sort: str, cursor: str | None
) -> dict[str, Any]:
    rows = management.list_schedules(
        page.conn,
        workflow=workflow.strip() or None,
        name_contains=q.strip() or None,
        order=sort.removeprefix("-"),
        descending=sort.startswith("-"),
        after=cursors.schedules_after(cursor, sort),
        limit=PAGE_SIZE + 1,
        **_STATE_FILTERS[state],
    )
    return cursors.schedules_page(rows, PAGE_SIZE, sort, management.schedule_sort_key)


@router.get("/schedules/{schedule}")
def schedule_page(
    request: Request,
    schedule: str,
    runs: Annotated[str | None, Query(alias="runs_after")] = None,
    notice: str = "",
) -> Response:
    with console(request).reading(request) as page:
        shown = management.show_schedule(page.conn, schedule, page.now, upcoming=0)
        timeline = management.list_runs(
            page.conn,
            schedule=shown["id"],
            after=cursors.runs_after(runs),
            limit=RUNS_SHOWN + 1,
        )
        changes = audit_history.history(page.conn, Kind.SCHEDULE, shown["id"], limit=HISTORY_SHOWN)
    upcoming = _upcoming(shown, page.now)
    listing = cursors.runs_page(timeline, RUNS_SHOWN)
    return render(
        request,
        "schedule.html",
        page,
        schedule=shown,
        badges=views.badges(shown),
        description=management.describe_spec(shown["spec"], shown["timezone"]),
        upcoming=upcoming,
        runs=[{**run, "outcome": views.run_outcome(run)} for run in listing["items"]],
        runs_next=listing["next"],
        history=[{**entry, "changes": views.changes(entry)} for entry in changes],
        notice=NOTICES.get(notice, ""),
        lateness=views.lateness,
        duration=views.duration,
        misfire_help=views.MISFIRE_HELP,
        overlap_help=views.OVERLAP_HELP,
    )


def _upcoming(schedule: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The next 10 fire times with DST notes, and the zone's next clock changes; nothing for a
    schedule that is deleted or whose spec cannot be scheduled (its page says so)."""
    if schedule["state"] == "deleted":
        return {"fires": [], "changes": [], "problem": None}
    spec, zone, anchor = schedule["spec"], schedule["timezone"], schedule["interval_anchor"]
    try:
        shown = management.preview_spec(spec, zone, now, 10, anchor, stored=True)
    except FieldError as exc:
        return {"fires": [], "changes": [], "problem": exc.message}
    return {
        "fires": shown["fires"],
        "changes": clock_changes(spec, zone, now, anchor=anchor),
        "timezone": zone,
        "problem": None,
    }


Form = Mapping[str, Any]
Change = Callable[["Connection", uuid.UUID, "datetime", Form], None]


async def _act(request: Request, schedule: str, done: str, change: Change) -> Response:
    """Apply ``change`` to the locked schedule in one transaction, then show its page."""
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}

    def apply() -> uuid.UUID:
        with console(request).writing(request, values.get(CSRF_FIELD)) as page:
            current = management.get_schedule(page.conn, schedule, lock=True)
            change(page.conn, current["id"], page.now, values | {"timezone": current["timezone"]})
            schedule_id: uuid.UUID = current["id"]
            return schedule_id

    try:
        schedule_id = await run_in_threadpool(apply)
    except InputError as exc:
        return await run_in_threadpool(_refused, request, schedule, exc)
    return redirect(f"/schedules/{schedule_id}?notice={done}", request)


def _refused(request: Request, schedule: str, exc: InputError) -> Response:
    """The schedule's page again, with why the action changed nothing."""
    errors = forms.Errors()
    errors.add_error(exc)
    with console(request).reading(request) as page:
        shown = management.get_schedule(page.conn, schedule)
    message = "; ".join(f"{name}: {text}" for name, text in errors.by_field.items())
    url = f"/schedules/{shown['id']}"
    return render(
        request, "error.html", page, status=422, status_code=422, message=message, back=url
    )


def _checked(errors: forms.Errors) -> None:
    if errors:
        name, message = next(iter(errors.by_field.items()))
        raise FieldError(name, None, message)


def _run_now(conn: Connection, schedule_id: uuid.UUID, now: datetime, form: Form) -> None:
    errors = forms.Errors()
    overrides = forms.json_object(form, "parameters", errors)
    _checked(errors)
    management.trigger(conn, schedule_id, now, None, overrides or {})


def _pause(conn: Connection, schedule_id: uuid.UUID, now: datetime, form: Form) -> None:
    errors = forms.Errors()
    until = forms.local_instant(form, "until", form["timezone"], errors)
    _checked(errors)
    management.pause(conn, schedule_id, now, until, forms.text(form, "reason") or None)


def _resume(conn: Connection, schedule_id: uuid.UUID, now: datetime, _form: Form) -> None:
    management.resume(conn, schedule_id, now)


def _enable(conn: Connection, schedule_id: uuid.UUID, now: datetime, _form: Form) -> None:
    management.set_enabled(conn, schedule_id, now, True)


def _disable(conn: Connection, schedule_id: uuid.UUID, now: datetime, _form: Form) -> None:
    management.set_enabled(conn, schedule_id, now, False)


# action: (the notice shown after it, the change)
ACTIONS: Mapping[str, tuple[str, Change]] = {
    "run": ("triggered", _run_now),
    "pause": ("paused", _pause),
    "resume": ("resumed", _resume),
    "enable": ("enabled", _enable),
    "disable": ("disabled", _disable),
}


@router.get("/schedules/{schedule}/delete")
def confirm_delete(request: Request, schedule: str) -> Response:
    with console(request).reading(request) as page:
        writer(page)
        shown = management.get_schedule(page.conn, schedule)
    return render(request, "delete.html", page, schedule=shown)


@router.post("/schedules/{schedule}/delete")
async def delete(request: Request, schedule: str) -> Response:
    form = await request.form()
    csrf_token = form.get(CSRF_FIELD)

    def apply() -> None:
        sent = csrf_token if isinstance(csrf_token, str) else None
        with console(request).writing(request, sent) as page:
            current = management.get_schedule(page.conn, schedule, lock=True)
            management.delete(page.conn, current["id"], hard=False)

    await run_in_threadpool(apply)
    return redirect("/?notice=deleted", request)


@router.post("/schedules/{schedule}/{action}")
async def act(
    request: Request,
    schedule: str,
    action: Literal["run", "pause", "resume", "enable", "disable"],
) -> Response:
    """Run now, pause, resume, enable or disable, from the schedule's page."""
    done, change = ACTIONS[action]
    return await _act(request, schedule, done, change)
