"""/api/v1/accounts, /instances, /workflows: the catalog the schedules run on, as the CLI's
``accounts``, ``instances`` and ``workflows`` commands manage it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from scheduler_daemon import catalog
from scheduler_daemon.api.access import Db, Reader, Writer
from scheduler_daemon.api.routes.common import problem_responses
from scheduler_daemon.api.routes.schedules import IfMatch
from scheduler_daemon.api.schemas import (
    Account,
    AccountCreate,
    AccountFields,
    Instance,
    InstanceCreate,
    InstanceFields,
    Page,
    Workflow,
    WorkflowCreate,
    WorkflowFields,
)
from scheduler_daemon.api.versions import etag, require_match
from scheduler_daemon.references import Kind

router = APIRouter(tags=["catalog"])
READ = problem_responses(401, 404, 422)
WRITE = problem_responses(401, 403, 404, 409, 412, 422)


def _add_routes(
    kind: Kind,
    path: str,
    shown: type[BaseModel],
    created: type[BaseModel],
    changed: type[BaseModel],
) -> None:
    """The five endpoints of one kind of catalog row."""
    noun = kind.value

    def list_rows(access: Reader, db: Db) -> dict[str, Any]:
        with db.reading(access) as conn:
            return {"items": catalog.list_rows(conn, kind), "next": None}

    def get_row(reference: str, response: Response, access: Reader, db: Db) -> dict[str, Any]:
        with db.reading(access) as conn:
            row = catalog.show(conn, kind, reference)
        response.headers["ETag"] = etag(row)
        return row

    def create_row(body: BaseModel, response: Response, access: Writer, db: Db) -> dict[str, Any]:
        with db.writing(access) as (conn, _now, _token):
            row_id = catalog.create(conn, kind, body.model_dump(exclude_none=True))
            row = catalog.show(conn, kind, row_id)
        response.headers["Location"] = f"/api/v1/{path}/{row_id}"
        response.headers["ETag"] = etag(row)
        return row

    def update_row(
        reference: str,
        body: BaseModel,
        response: Response,
        access: Writer,
        db: Db,
        if_match: IfMatch = None,
    ) -> dict[str, Any]:
        with db.writing(access) as (conn, _now, _token):
            require_match(if_match, etag(catalog.show(conn, kind, reference, lock=True)))
            changes = body.model_dump(exclude_unset=True)
            row_id = catalog.update(conn, kind, reference, changes)
            row = catalog.show(conn, kind, row_id)
        response.headers["ETag"] = etag(row)
        return row

    def delete_row(reference: str, access: Writer, db: Db, if_match: IfMatch = None) -> Response:
        with db.writing(access) as (conn, _now, _token):
            require_match(if_match, etag(catalog.show(conn, kind, reference, lock=True)))
            catalog.delete(conn, kind, reference)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    # The body's model differs by kind; FastAPI reads it from the annotation, which is only
    # known here (the module's own annotations are strings, resolved in its globals).
    create_row.__annotations__["body"] = created
    update_row.__annotations__["body"] = changed
    one = f"/{path}/{{reference}}"
    router.add_api_route(
        f"/{path}",
        list_rows,
        methods=["GET"],
        response_model=Page[shown],  # type: ignore[valid-type]
        responses=READ,
        summary=f"List {path}",
        operation_id=f"list_{path}",
    )
    router.add_api_route(
        f"/{path}",
        create_row,
        methods=["POST"],
        status_code=status.HTTP_201_CREATED,
        response_model=shown,
        responses=problem_responses(401, 403, 404, 409, 422, body=True),
        summary=f"Create a {noun}",
        operation_id=f"create_{noun}",
    )
    router.add_api_route(
        one,
        get_row,
        methods=["GET"],
        response_model=shown,
        responses=READ,
        summary=f"Get a {noun} (by name, id or id prefix)",
        operation_id=f"get_{noun}",
    )
    router.add_api_route(
        one,
        update_row,
        methods=["PATCH"],
        response_model=shown,
        responses=problem_responses(401, 403, 404, 409, 412, 422, body=True),
        summary=f"Change a {noun}'s fields",
        operation_id=f"update_{noun}",
    )
    router.add_api_route(
        one,
        delete_row,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=WRITE,
        summary=f"Delete a {noun} no schedule or workflow uses",
        operation_id=f"delete_{noun}",
    )


_add_routes(Kind.ACCOUNT, "accounts", Account, AccountCreate, AccountFields)
_add_routes(Kind.INSTANCE, "instances", Instance, InstanceCreate, InstanceFields)
_add_routes(Kind.WORKFLOW, "workflows", Workflow, WorkflowCreate, WorkflowFields)
