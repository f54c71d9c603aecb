"""/api/v1/runs: every schedule's runs, and one run with its AMC execution."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from scheduler_daemon import management
from scheduler_daemon.api.access import Db, Reader
from scheduler_daemon.api.routes.common import (
    Cursor,
    Limit,
    RunFilters,
    problem_responses,
    run_page,
)
from scheduler_daemon.api.schemas import Page, Run

router = APIRouter(prefix="/runs", tags=["runs"])
READ = problem_responses(401, 404, 422)


@router.get("", response_model=Page[Run], responses=READ)
def list_runs(
    access: Reader,
    db: Db,
    filters: Annotated[RunFilters, Query()],
    schedule: Annotated[str | None, Query(description="A schedule's name or id.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Runs of every schedule (or one), newest slot first, a page at a time."""
    return run_page(db, access, filters, limit, cursor, schedule=schedule)


@router.get("/{run}", response_model=Run, responses=READ)
def get_run(run: str, access: Reader, db: Db) -> dict[str, Any]:
    """One run: its slot, status, the request as sent to AMC and its execution."""
    with db.reading(access) as conn:
        return management.show_run(conn, run)
