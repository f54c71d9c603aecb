"""/api/v1/preview, /workers, /health, /stats: what forms and dashboards ask besides the
resources."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from scheduler_daemon import management
from scheduler_daemon.api.access import Db, Reader
from scheduler_daemon.api.routes.common import problem_responses
from scheduler_daemon.api.schemas import Health, Overview, Page, Preview, PreviewRequest, Worker
from scheduler_daemon.errors import FieldError
from scheduler_daemon.health import check

router = APIRouter(tags=["system"])


@router.post("/preview", response_model=Preview, responses=problem_responses(401, 422, body=True))
def preview(body: PreviewRequest, access: Reader, db: Db) -> dict[str, Any]:
    """The next fire times of a spec before it is saved: each with what daylight-saving
    changes do to it, the spec in words, and warnings (for forms)."""
    with db.reading(access) as conn:
        after = body.after or db.now(conn)
    try:
        return management.preview_spec(
            body.expression, body.timezone, after, body.count, body.anchor
        )
    except FieldError as exc:
        field = "expression" if exc.field == "cron" else exc.field
        raise FieldError(field, exc.value, exc.message) from None


@router.get("/workers", response_model=Page[Worker], responses=problem_responses(401))
def workers(access: Reader, db: Db) -> dict[str, Any]:
    """The daemons, live first: heartbeat age, clock skew, locks held."""
    with db.reading(access) as conn:
        return {"items": management.list_workers(conn), "next": None}


@router.get(
    "/health",
    response_model=Health,
    responses={
        **problem_responses(401),
        503: {"model": Health, "description": "Not healthy: the problems say why."},
    },
)
def health(request: Request, access: Reader, db: Db) -> JSONResponse:
    """The checks of ``scheduler-daemon health``: 200 when healthy, 503 listing the problems."""
    with db.reading(access):
        pass  # the token is checked; the checks read on connections of their own
    report = check(db.engine, request.app.state.thresholds)
    body = Health.model_validate(report.as_dict()).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if report.healthy else 503)


@router.get("/stats", response_model=Overview, responses=problem_responses(401))
def stats(access: Reader, db: Db) -> dict[str, Any]:
    """Schedules by state, the last day's runs by status, and what needs an eye."""
    with db.reading(access) as conn:
        return management.overview(conn)
