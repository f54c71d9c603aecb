"""What several resources' endpoints share: paging parameters, run listings, error docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel

from scheduler_daemon import management
from scheduler_daemon.api import cursors
from scheduler_daemon.api.access import Access, Database
from scheduler_daemon.api.problems import MEDIA_TYPE
from scheduler_daemon.api.schemas import Instant, Problem
from scheduler_daemon.domain import RunStatus

MAX_PAGE = 500
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page (≤ {MAX_PAGE}).")]
Cursor = Annotated[
    str | None, Query(description="The 'next' of the previous page; absent for the first.")
]

_DESCRIPTIONS = {
    400: "The body is not UTF-8 text, so not JSON.",
    401: "No valid bearer token.",
    403: "A read token asked for a change.",
    404: "Nothing has that name or id.",
    409: "The rows as they stand refuse it (a name taken, a row in use).",
    412: "If-Match is not the current version.",
    413: "The body is larger than the server takes.",
    422: "A field or parameter is not valid; the problem names it.",
    503: "The database is unavailable.",
}


def problem_responses(*statuses: int, body: bool = False) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entries of the problems an endpoint may answer with; ``body`` for one that
    reads a request body (which may be unreadable, 400, or too large, 413)."""
    if body:
        statuses = tuple(sorted({*statuses, 400, 413}))
    return {
        code: {
            "description": _DESCRIPTIONS[code],
            "model": Problem,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in (*statuses, 503)
    }


class RunFilters(BaseModel):
    status: RunStatus | None = None
    trigger: Literal["scheduled", "manual"] | None = None
    since: Instant | None = None
    until: Instant | None = None


def run_page(
    db: Database,
    access: Access,
    filters: RunFilters,
    limit: int,
    cursor: str | None,
    *,
    schedule: str | None = None,
) -> dict[str, Any]:
    """A page of runs, newest slot first."""
    with db.reading(access) as conn:
        rows = management.list_runs(
            conn,
            schedule=schedule,
            status=filters.status,
            trigger=filters.trigger,
            since=filters.since,
            until=filters.until,
            after=cursors.runs_after(cursor),
            limit=limit + 1,
        )
    return cursors.runs_page(rows, limit)
