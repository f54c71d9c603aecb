"""/api/v1/schedules: the schedules, their runs, history and preview, and what operators do
to them (pause, resume, enable, disable, trigger, delete)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response, status

from scheduler_daemon import history as audit_history
from scheduler_daemon import management
from scheduler_daemon.api import cursors
from scheduler_daemon.api.access import Access, Database, Db, Reader, Writer
from scheduler_daemon.api.routes.common import (
    Cursor,
    Limit,
    RunFilters,
    problem_responses,
    run_page,
)
from scheduler_daemon.api.schemas import (
    HistoryEntry,
    Instant,
    Page,
    PauseRequest,
    Preview,
    Run,
    Schedule,
    ScheduleCreate,
    ScheduleDetail,
    ScheduleFields,
    ScheduleReplace,
    TriggerRequest,
)
from scheduler_daemon.api.versions import require_match, schedule_etag
from scheduler_daemon.references import Kind

if TYPE_CHECKING:
    from sqlalchemy import Connection

router = APIRouter(prefix="/schedules", tags=["schedules"])

Sort = Literal["name", "-name", "next_run_at", "-next_run_at", "created_at", "-created_at"]
IfMatch = Annotated[
    str | None,
    Header(description="The ETag you read: the change is refused (412) if it is stale."),
]
READ = problem_responses(401, 404, 422)
WRITE = problem_responses(401, 403, 404, 409, 412, 422)
WRITE_BODY = problem_responses(401, 403, 404, 409, 412, 422, body=True)


def _tagged(response: Response, schedule: dict[str, Any]) -> dict[str, Any]:
    response.headers["ETag"] = schedule_etag(schedule)
    return schedule


def _definition(body: ScheduleFields) -> dict[str, Any]:
    """The body's fields as the verbs name them (spec → expression)."""
    given = body.model_dump(exclude_unset=True, exclude_none=True, exclude={"enabled"})
    if "spec" in given:
        given["expression"] = given.pop("spec")
    return given


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Schedule,
    responses=problem_responses(401, 403, 404, 409, 422, body=True),
)
def create_schedule(
    body: ScheduleCreate, response: Response, access: Writer, db: Db
) -> dict[str, Any]:
    """Create a schedule (disabled unless ``enabled``: it runs nothing until enabled)."""
    with db.writing(access) as (conn, now, token):
        schedule_id = management.create_schedule(
            conn, now, enabled=body.enabled, user_id=token.name, **_definition(body)
        )
        created = management.get_schedule(conn, schedule_id)
    response.headers["Location"] = f"/api/v1/schedules/{schedule_id}"
    return _tagged(response, created)


@router.get("", response_model=Page[Schedule], responses=READ)
def list_schedules(
    access: Reader,
    db: Db,
    workflow: Annotated[str | None, Query(description="A workflow's name or id.")] = None,
    enabled: bool | None = None,
    paused: bool | None = None,
    failing: Annotated[
        bool | None, Query(description="Whose last run failed (consecutive failures).")
    ] = None,
    q: Annotated[str | None, Query(description="Names containing this text.")] = None,
    sort: Annotated[Sort, Query(description="The order; a leading '-' reverses it.")] = "name",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Schedules that match every filter given, a page at a time."""
    with db.reading(access) as conn:
        rows = management.list_schedules(
            conn,
            workflow=workflow,
            enabled=enabled,
            paused=paused,
            failing=failing,
            name_contains=q,
            order=sort.removeprefix("-"),
            descending=sort.startswith("-"),
            after=cursors.schedules_after(cursor, sort),
            limit=limit + 1,
        )
    return cursors.schedules_page(rows, limit, sort, management.schedule_sort_key)


@router.get("/{schedule}", response_model=ScheduleDetail, responses=READ)
def get_schedule(schedule: str, response: Response, access: Reader, db: Db) -> dict[str, Any]:
    """A schedule with its statistics, next 10 fire times and newest runs; its ETag."""
    with db.reading(access) as conn:
        now = db.now(conn)
        shown = management.show_schedule(conn, schedule, now, upcoming=10)
    return _tagged(response, shown)


Change = Callable[["Connection", uuid.UUID, datetime], object]


def _change(
    db: Database, access: Access, schedule: str, if_match: str | None, change: Change
) -> dict[str, Any]:
    """Run ``change(conn, schedule_id, now)`` on the locked schedule once its version matches;
    the schedule as it then is."""
    with db.writing(access) as (conn, now, _token):
        current = management.get_schedule(conn, schedule, lock=True)
        require_match(if_match, schedule_etag(current))
        change(conn, current["id"], now)
        return management.get_schedule(conn, current["id"])


@router.put("/{schedule}", response_model=Schedule, responses=WRITE_BODY)
def replace_schedule(
    schedule: str,
    body: ScheduleReplace,
    response: Response,
    access: Writer,
    db: Db,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    """Replace the definition; what the body leaves out takes its default."""
    definition = {**management.DEFINITION_DEFAULTS, **_definition(body)}

    def change(conn: Connection, schedule_id: uuid.UUID, now: datetime) -> None:
        management.update_schedule(conn, schedule_id, now, **definition)

    return _tagged(response, _change(db, access, schedule, if_match, change))


@router.patch("/{schedule}", response_model=Schedule, responses=WRITE_BODY)
def update_schedule(
    schedule: str,
    body: ScheduleFields,
    response: Response,
    access: Writer,
    db: Db,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    """Change the fields given; a new spec or zone starts from the next slot after now."""
    given = _definition(body)

    def change(conn: Connection, schedule_id: uuid.UUID, now: datetime) -> None:
        management.update_schedule(conn, schedule_id, now, **given)

    return _tagged(response, _change(db, access, schedule, if_match, change))


@router.delete(
    "/{schedule}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=WRITE
)
def delete_schedule(
    schedule: str,
    access: Writer,
    db: Db,
    hard: Annotated[
        bool, Query(description="Delete the row and its run history for good.")
    ] = False,
    if_match: IfMatch = None,
) -> Response:
    """Delete: kept with its runs for the record (soft) unless ``hard``."""

    with db.writing(access) as (conn, _now, _token):
        current = management.get_schedule(conn, schedule, lock=True)
        require_match(if_match, schedule_etag(current))
        management.delete(conn, current["id"], hard=hard)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{schedule}/pause", response_model=Schedule, responses=WRITE_BODY)
def pause_schedule(
    schedule: str,
    response: Response,
    access: Writer,
    db: Db,
    body: PauseRequest | None = None,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    """Pause until resumed, or until ``until``; the slots of the pause are not replayed."""
    request = body or PauseRequest()

    def change(conn: Connection, schedule_id: uuid.UUID, now: datetime) -> None:
        management.pause(conn, schedule_id, now, request.until, request.reason)

    return _tagged(response, _change(db, access, schedule, if_match, change))


@router.post("/{schedule}/resume", response_model=Schedule, responses=WRITE)
def resume_schedule(
    schedule: str, response: Response, access: Writer, db: Db, if_match: IfMatch = None
) -> dict[str, Any]:
    """Resume from the next slot after now (resuming a schedule not paused changes nothing)."""

    def change(conn: Connection, schedule_id: uuid.UUID, now: datetime) -> None:
        management.resume(conn, schedule_id, now)

    return _tagged(response, _change(db, access, schedule, if_match, change))


@router.post("/{schedule}/enable", response_model=Schedule, responses=WRITE)
def enable_schedule(
    schedule: str, response: Response, access: Writer, db: Db, if_match: IfMatch = None
) -> dict[str, Any]:
    """Start scheduling from the next slot after now (past slots are not replayed)."""

    def change(conn: Connection, schedule_id: uuid.UUID, now: datetime) -> None:
        management.set_enabled(conn, schedule_id, now, True)

    return _tagged(response, _change(db, access, schedule, if_match, change))


@router.post("/{schedule}/disable", response_model=Schedule, responses=WRITE)
def disable_schedule(
    schedule: str, response: Response, access: Writer, db: Db, if_match: IfMatch = None
) -> dict[str, Any]:
    """Stop scheduling; the history stays."""

    def change(conn: Connection, schedule_id: uuid.UUID, now: datetime) -> None:
        management.set_enabled(conn, schedule_id, now, False)

    return _tagged(response, _change(db, access, schedule, if_match, change))


@router.post(
    "/{schedule}/trigger",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Run,
    responses=problem_responses(401, 403, 404, 422, body=True),
)
def trigger_schedule(
    schedule: str,
    response: Response,
    access: Writer,
    db: Db,
    body: TriggerRequest | None = None,
) -> dict[str, Any]:
    """Queue a manual run (now, or at ``at``) with optional parameter overrides; the next
    scheduled slot stays where it is. A daemon runs it."""
    request = body or TriggerRequest()
    with db.writing(access) as (conn, now, _token):
        run_id = management.trigger(conn, schedule, now, request.at, request.parameters or {})
        run = management.show_run(conn, run_id)
    response.headers["Location"] = f"/api/v1/runs/{run_id}"
    return run


@router.get("/{schedule}/runs", response_model=Page[Run], responses=READ)
def schedule_runs(
    schedule: str,
    access: Reader,
    db: Db,
    filters: Annotated[RunFilters, Query()],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """The schedule's runs, newest slot first: skipped slots too, with why they were skipped."""
    return run_page(db, access, filters, limit, cursor, schedule=schedule)


@router.get("/{schedule}/history", response_model=Page[HistoryEntry], responses=READ)
def schedule_history(
    schedule: str, access: Reader, db: Db, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """Every change to the schedule, newest first: who, what, when, before and after."""

    def before(position: list[Any]) -> int:
        (entry_id,) = position
        if not isinstance(entry_id, int):
            raise TypeError(entry_id)
        return entry_id

    with db.reading(access) as conn:
        entries = audit_history.history(
            conn, Kind.SCHEDULE, schedule, limit=limit + 1, before=cursors.decode(cursor, before)
        )
    return cursors.page(entries, limit, lambda last: [last["id"]])


@router.get("/{schedule}/preview", response_model=Preview, responses=READ)
def preview_schedule(
    schedule: str,
    access: Reader,
    db: Db,
    count: Annotated[int, Query(ge=1, le=1000)] = 10,
    after: Instant | None = None,
) -> dict[str, Any]:
    """The schedule's next fire times, with what daylight-saving changes do to them."""
    with db.reading(access) as conn:
        shown = management.get_schedule(conn, schedule)
        start = after or db.now(conn)
    return management.preview_spec(
        shown["spec"], shown["timezone"], start, count, shown["interval_anchor"], stored=True
    )
