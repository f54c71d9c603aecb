"""Who may do what, and the defaults a production API needs: tokens (401, 403), revocation,
no token in the logs, bounded bodies, CORS off unless configured, no stack trace out."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from scheduler_daemon import management, tokens
from scheduler_daemon.api.app import create_app
from scheduler_daemon.config import LogFormat
from scheduler_daemon.domain import TokenRole
from scheduler_daemon.log import configure_logging
from tests.helpers import Rows, make_token
from tests.integration.api.conftest import Api

PROBLEM = "application/problem+json"


def test_no_token_or_a_bad_one_is_401_with_a_challenge(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dTpw"}):
        response = client.get("/api/v1/schedules", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_read_token_reads_and_may_not_write(reader: Api, rows: Rows) -> None:
    rows.workflow(name="sales")
    assert reader.get("/schedules").status_code == 200
    refused = reader.post("/schedules", json={"name": "n", "workflow": "sales", "spec": "@daily"})
    assert refused.status_code == 403
    assert "read token" in refused.json()["detail"]
    assert reader.get("/schedules").json()["items"] == []


def test_a_revoked_token_is_refused(api: Api, engine: Engine) -> None:
    assert api.get("/schedules").status_code == 200
    with engine.begin() as conn:
        tokens.revoke_token(conn, "ops-bot")
    assert api.get("/schedules").status_code == 401


def test_tokens_never_reach_the_logs(engine: Engine, client: TestClient, rows: Rows) -> None:
    stream = io.BytesIO()
    configure_logging(LogFormat.JSON, "debug", stream)
    try:
        secret = make_token(engine, "logged", TokenRole.WRITE)
        rows.workflow(name="sales")
        headers = {"Authorization": f"Bearer {secret}"}
        client.post(
            "/api/v1/schedules",
            json={"name": "n", "workflow": "sales", "spec": "@daily"},
            headers=headers,
        )
        client.get("/api/v1/schedules/n", headers=headers)
        client.get("/api/v1/schedules", headers={"Authorization": "Bearer wrong-secret"})
    finally:
        structlog.reset_defaults()
    logged = stream.getvalue().decode()
    lines = [json.loads(line) for line in logged.splitlines()]
    assert [line["status"] for line in lines if line.get("event") == "request"] == [201, 200, 401]
    assert secret not in logged
    assert "wrong-secret" not in logged


def test_a_body_over_the_limit_is_413(engine: Engine, api: Api) -> None:
    with TestClient(create_app(engine, max_request_bytes=1000)) as small:
        response = small.post(
            "/api/v1/preview", json={"expression": "x" * 2000}, headers=api.headers
        )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM


def test_cors_is_off_unless_origins_are_configured(engine: Engine) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    with TestClient(create_app(engine)) as closed:
        assert (
            "access-control-allow-origin"
            not in closed.options("/api/v1/schedules", headers=preflight).headers
        )
    with TestClient(create_app(engine, cors_origins=("https://app.example.com",))) as open_:
        answer = open_.options("/api/v1/schedules", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://app.example.com"


def test_an_internal_error_shows_no_stack_trace(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("internal detail /srv/secret/path")

    monkeypatch.setattr(management, "overview", broken)
    response = api.get("/stats")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "secret" not in response.text
    assert "Traceback" not in response.text


def test_the_openapi_document_and_the_docs_need_no_token(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert {"/api/v1/schedules", "/api/v1/schedules/{schedule}/history", "/api/v1/preview"} <= set(
        paths
    )
    assert client.get("/api/docs").status_code == 200


def test_a_body_that_is_not_a_json_object_says_what_to_send(api: Api) -> None:
    not_json = api.post(
        "/preview", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["errors"][0]["field"] == "body"
    assert "not JSON" in not_json.json()["detail"]
    form = api.post(
        "/preview",
        content=b"expression=@daily",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 422
    assert "Content-Type: application/json" in form.json()["detail"]
    when = api.get("/runs", params={"since": "yesterday"})
    assert when.status_code == 422
    assert "ISO 8601" in when.json()["detail"]
