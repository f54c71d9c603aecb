"""The API in process (Starlette's TestClient: real HTTP semantics, no socket) on a real
PostgreSQL database of the test's own, with a write and a read token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from scheduler_daemon.api.app import create_app
from scheduler_daemon.domain import TokenRole
from tests.helpers import make_token


class Api:
    """A client that sends a token: ``api.get(path)`` as the writer, ``api.as_reader``."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        headers = {**self.headers, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def api(engine: Engine, client: TestClient) -> Api:
    return Api(client, make_token(engine, "ops-bot", TokenRole.WRITE))


@pytest.fixture
def reader(engine: Engine, client: TestClient) -> Api:
    return Api(client, make_token(engine, "dashboard", TokenRole.READ))
