"""The form that creates or edits a schedule, and its live preview."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pytz
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from scheduler_daemon import catalog, management
from scheduler_daemon.api.versions import schedule_etag
from scheduler_daemon.errors import FieldError, InputError
from scheduler_daemon.timing import clock_changes
from scheduler_daemon.web import forms, views
from scheduler_daemon.web.pages.schedules import console, writer
from scheduler_daemon.web.rendering import PageRoute, redirect, render
from scheduler_daemon.web.session import CSRF_FIELD, Page

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PREVIEW_COUNT = 10
ZONES = tuple(pytz.common_timezones)


def _form_page(
    request: Request,
    page: Page,
    values: Mapping[str, Any],
    errors: forms.Errors,
    *,
    schedule: Mapping[str, Any] | None,
    status: int = 200,
) -> Response:
    workflows = catalog.workflow_choices(page.conn)
    return render(
        request,
        "form.html",
        page,
        status=status,
        values=values,
        errors=errors.by_field,
        schedule=schedule,
        workflows=workflows,
        zones=ZONES,
        misfire_help=views.MISFIRE_HELP,
        overlap_help=views.OVERLAP_HELP,
        preview=_preview(values, page),
    )


def _values_of(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """A stored schedule as its form shows it."""
    anchor = schedule["interval_anchor"]
    parameters = schedule["parameters"]
    return {
        "name": schedule["name"],
        "workflow": str(schedule["workflow_id"]),
        "spec": schedule["spec"],
        "timezone": schedule["timezone"],
        "anchor": "" if anchor is None else anchor.isoformat(),
        "misfire_policy": schedule["misfire_policy"],
        "overlap_policy": schedule["overlap_policy"],
        "misfire_grace_seconds": str(schedule["misfire_grace_seconds"]),
        "max_catchup_runs": str(schedule["max_catchup_runs"]),
        "parameters": "" if not parameters else _json(parameters),
        "version": schedule_etag(schedule),
    }


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


_NEW = {
    **{key: str(value) for key, value in management.DEFINITION_DEFAULTS.items()},
    "spec": "0 9 * * 1-5",
    "parameters": "",
}


@router.get("/schedules/new")
def new_schedule(request: Request) -> Response:
    with console(request).reading(request) as page:
        writer(page)
        return _form_page(request, page, _NEW, forms.Errors(), schedule=None)


@router.get("/schedules/{schedule}/edit")
def edit_schedule(request: Request, schedule: str) -> Response:
    with console(request).reading(request) as page:
        writer(page)
        shown = management.get_schedule(page.conn, schedule)
        return _form_page(request, page, _values_of(shown), forms.Errors(), schedule=shown)


async def _submitted(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


class _InvalidFormError(Exception):
    """The form's own reading found mistakes: nothing is written."""


Write = Callable[[Page, dict[str, Any], forms.Errors], uuid.UUID]


def _save(request: Request, values: Mapping[str, str], write: Write) -> uuid.UUID | forms.Errors:
    """``write(page, definition, errors)`` in one transaction, unless the form or the verbs
    find mistakes: then nothing is written and the mistakes are returned, by field."""
    errors = forms.Errors()
    definition = forms.schedule_definition(values, errors)
    try:
        with console(request).writing(request, values.get(CSRF_FIELD)) as page:
            saved = write(page, definition, errors)
            if errors:
                raise _InvalidFormError
            return saved
    except InputError as exc:
        errors.add_error(exc)
    except _InvalidFormError:
        pass
    return errors


@router.post("/schedules/new")
async def create_schedule(request: Request) -> Response:
    values = await _submitted(request)

    def write(page: Page, definition: dict[str, Any], errors: forms.Errors) -> uuid.UUID:
        if errors:
            raise _InvalidFormError
        return management.create_schedule(
            page.conn,
            page.now,
            enabled="enabled" in values,
            user_id=page.session.token.name,
            **definition,
        )

    saved = await run_in_threadpool(_save, request, values, write)
    return await _saved_or_form(request, values, saved, None, "created")


@router.post("/schedules/{schedule}/edit")
async def update_schedule(request: Request, schedule: str) -> Response:
    values = await _submitted(request)

    def write(page: Page, definition: dict[str, Any], errors: forms.Errors) -> uuid.UUID:
        current = management.get_schedule(page.conn, schedule, lock=True)
        if values.get("version") != schedule_etag(current):
            errors.add(
                "form",
                "someone changed this schedule since you opened the form: open it again to "
                "see their change, then reapply yours",
            )
        if errors:
            raise _InvalidFormError
        full = {**management.DEFINITION_DEFAULTS, **definition}
        return management.update_schedule(page.conn, current["id"], page.now, **full)

    saved = await run_in_threadpool(_save, request, values, write)
    return await _saved_or_form(request, values, saved, schedule, "saved")


async def _saved_or_form(
    request: Request,
    values: Mapping[str, Any],
    outcome: uuid.UUID | forms.Errors,
    schedule: str | None,
    done: str,
) -> Response:
    """The schedule's page once saved; else the form again, as typed, with its mistakes."""
    if isinstance(outcome, uuid.UUID):
        return redirect(f"/schedules/{outcome}?notice={done}", request)

    def again() -> Response:
        with console(request).reading(request) as page:
            shown = None if schedule is None else management.get_schedule(page.conn, schedule)
            return _form_page(request, page, values, outcome, schedule=shown, status=422)

    return await run_in_threadpool(again)


@router.get("/preview")
def preview(request: Request, spec: str = "", timezone: str = "UTC", anchor: str = "") -> Response:
    """The form's live preview: fire times, the spec in words, warnings, clock changes."""
    with console(request).reading(request) as page:
        values = {"spec": spec, "timezone": timezone, "anchor": anchor}
        return render(request, "_preview.html", page, preview=_preview(values, page))


def _preview(values: Mapping[str, Any], page: Page) -> dict[str, Any]:
    errors = forms.Errors()
    spec = forms.text(values, "spec")
    timezone = forms.text(values, "timezone") or "UTC"
    if not spec:
        return {"error": "Write a spec, or build one above, to see when it runs."}
    anchor = forms.schedule_definition({**values, "name": "-", "workflow": "-"}, errors).get(
        "anchor"
    )
    try:
        if errors:
            raise FieldError("anchor", None, errors.by_field.get("anchor", "not valid"))
        shown = management.preview_spec(spec, timezone, page.now, PREVIEW_COUNT, anchor)
    except FieldError as exc:
        errors.add_error(exc)
        field, message = next(iter(errors.by_field.items()))
        return {"error": f"{field}: {message}"}
    return shown | {"changes": clock_changes(spec, timezone, page.now, anchor=anchor)}
