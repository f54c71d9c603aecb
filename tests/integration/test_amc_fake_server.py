"""The fake AMC itself: AMC's validations, listing, cancel, Login with Amazon, and a request
log without secrets — so tests that trust it are testing against AMC's rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from scheduler_daemon.amc.fake.server import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_INSTANCE_ID,
    DEFAULT_MARKETPLACE_ID,
    DEFAULT_REFRESH_TOKEN,
    FakeAmcServer,
)
from scheduler_daemon.amc.fake.state import Script
from scheduler_daemon.clock import FakeClock, SystemClock

EXECUTIONS = f"/amc/reporting/{DEFAULT_INSTANCE_ID}/workflowExecutions"
BODY = {"workflowId": "wf"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(SystemClock().now())


@pytest.fixture
def amc(clock: FakeClock) -> Iterator[FakeAmcServer]:
    with FakeAmcServer(clock=clock, pending_seconds=1, running_seconds=1) as fake:
        fake.seed(workflows={"wf": ("country",)})
        fake.seed("amc0sandbox", "ENTITYSANDBOX", "ATVPDKIKX0DER", {"wf": ()}, sandbox=True)
        fake.state.add_workflow(
            DEFAULT_INSTANCE_ID, "broken", sql_query="SELECT FORCE_COMPILE_ERROR"
        )
        yield fake


@pytest.fixture
def http(amc: FakeAmcServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=amc.base_url, timeout=5) as client:
        yield client


def token(http: httpx.Client, **form: str) -> str:
    data = {
        "grant_type": "refresh_token",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": DEFAULT_REFRESH_TOKEN,
    } | form
    response = http.post("/auth/o2/token", data=data)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["token_type"] == "bearer"
    assert payload["refresh_token"] == DEFAULT_REFRESH_TOKEN
    assert payload["access_token"].startswith("Atza|")
    return str(payload["access_token"])


@pytest.fixture
def headers(http: httpx.Client) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token(http)}",
        "Amazon-Advertising-API-ClientId": DEFAULT_CLIENT_ID,
        "Amazon-Advertising-API-AdvertiserId": DEFAULT_ACCOUNT_ID,
        "Amazon-Advertising-API-MarketplaceId": DEFAULT_MARKETPLACE_ID,
    }


def error(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()


def test_token_endpoint_errors(http: httpx.Client, amc: FakeAmcServer) -> None:
    base = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
    assert (
        error(http.post("/auth/o2/token", data=base | {"grant_type": "password"}))[1]["error"]
        == "unsupported_grant_type"
    )
    assert error(http.post("/auth/o2/token", data=base))[1]["error"] == "invalid_request"
    wrong = base | {
        "grant_type": "refresh_token",
        "client_secret": "x",
        "refresh_token": DEFAULT_REFRESH_TOKEN,
    }
    assert error(http.post("/auth/o2/token", data=wrong)) == (
        401,
        {"error": "invalid_client", "error_description": "Client authentication failed"},
    )
    amc.revoke_refresh_token()
    revoked = base | {"grant_type": "refresh_token", "refresh_token": DEFAULT_REFRESH_TOKEN}
    status, body = error(http.post("/auth/o2/token", data=revoked))
    assert (status, body["error"]) == (400, "invalid_grant")
    # JSON bodies are accepted too (the official AWS solution sends JSON).
    amc.state.add_refresh_token(DEFAULT_REFRESH_TOKEN, DEFAULT_CLIENT_ID)
    assert http.post("/auth/o2/token", json=revoked).status_code == 200


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Authorization": None}, (401, {"code": "401", "details": "Authentication failed"})),
        ({"Authorization": "Bearer Atza|unknown"}, (401, {"code": "401", "details": "Authentication failed"})),
        ({"Amazon-Advertising-API-ClientId": None}, (400, {"code": "400", "details": "Amazon-Advertising-API-ClientId header is missing"})),
        ({"Amazon-Advertising-API-ClientId": "other"}, (401, {"code": "401", "details": "Authentication failed"})),
        ({"Amazon-Advertising-API-AdvertiserId": None}, (400, {"code": "400", "details": "entityId provided is null"})),
        ({"Amazon-Advertising-API-AdvertiserId": "1234"}, (403, {"code": "403", "details": "Unauthorized request"})),
        ({"Amazon-Advertising-API-AdvertiserId": "ENTITYSANDBOX"}, (403, {"code": "403", "details": "Unauthorized request"})),
        ({"Amazon-Advertising-API-MarketplaceId": None}, (400, {"code": "400", "details": "marketplaceId provided is null"})),
        ({"Amazon-Advertising-API-MarketplaceId": "A1PA6795UKMFR9"}, (403, {"code": "403", "details": "Unauthorized request"})),
    ],
)  # fmt: skip
def test_header_validations(
    http: httpx.Client,
    headers: dict[str, str],
    change: dict[str, str | None],
    expected: tuple[int, Any],
) -> None:
    sent = {k: v for k, v in (headers | change).items() if v is not None}
    assert error(http.post(EXECUTIONS, json=BODY, headers=sent)) == expected


@pytest.mark.parametrize("instance_id", [str(uuid.uuid4()), "amcunknown1", "my-instance"])
def test_a_uuid_or_unknown_instance_is_403(
    http: httpx.Client, headers: dict[str, str], instance_id: str
) -> None:
    response = http.post(
        f"/amc/reporting/{instance_id}/workflowExecutions", json=BODY, headers=headers
    )
    assert error(response) == (403, {"code": "403", "details": "Unauthorized request"})


def test_an_expired_token(http: httpx.Client, headers: dict[str, str], clock: FakeClock) -> None:
    clock.advance(3600)
    assert error(http.post(EXECUTIONS, json=BODY, headers=headers)) == (
        401,
        {"code": "401", "details": "Authentication failed"},
    )


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({}, "workflowId is required if a sqlQuery is not provided"),
        ({"workflowId": "nope"}, "Workflow with ID nope does not exist"),
        ({"workflowId": "wf", "timeWindowType": "YESTERDAY"}, "Invalid timeWindowType 'YESTERDAY'; one of EXPLICIT, MOST_RECENT_DAY, MOST_RECENT_WEEK, CURRENT_MONTH, PREVIOUS_MONTH, ALL"),
        ({"workflowId": "wf", "timeWindowType": "EXPLICIT", "timeWindowStart": "2026-01-01T00:00:00"}, "EXPLICIT needs both timeWindowStart and timeWindowEnd"),
        ({"workflowId": "wf", "timeWindowType": "EXPLICIT", "timeWindowStart": "2026-01-02T00:00:00", "timeWindowEnd": "2026-01-01T00:00:00"}, "timeWindowStart must be before timeWindowEnd"),
        ({"workflowId": "wf", "timeWindowType": "EXPLICIT", "timeWindowStart": "2026-01-01", "timeWindowEnd": "2026-01-02T00:00:00"}, "Invalid timeWindowStart '2026-01-01': expected format yyyy-MM-dd'T'HH:mm:ss"),
        ({"workflowId": "wf", "timeWindowTimeZone": "EST5"}, "Invalid timeWindowTimeZone 'EST5'"),
        ({"workflowId": "wf", "timeWindowStart": "2026-01-01T00:00:00", "timeWindowEnd": "2026-01-02T00:00:00"}, "timeWindowStart and timeWindowEnd are only valid for EXPLICIT"),
        ({"workflowId": "wf", "workflowExecutionTimeoutSeconds": 60}, "workflowExecutionTimeoutSeconds 60 must be between 900 and 86400"),
        ({"workflowId": "wf", "parameterValues": {"region": "EU"}}, "Was unable to compile workflow wf because it was found to be invalid: Filter operation filter_operation referenced an undeclared parameter region."),
        ({"workflowId": "wf", "disableAggregationControls": True}, "disableAggregationControls cannot be used on non-synthetic data"),
        ({"workflowId": "broken"}, "From line 1, column 8 to line 1, column 12: Object 'x' not found"),
    ],
)  # fmt: skip
def test_body_validations(
    http: httpx.Client, headers: dict[str, str], body: dict[str, Any], details: str
) -> None:
    assert error(http.post(EXECUTIONS, json=body, headers=headers)) == (
        400,
        {"code": "400", "details": details},
    )


def test_sandbox_needs_synthetic_data(http: httpx.Client, amc: FakeAmcServer) -> None:
    sandbox_headers = {
        "Authorization": f"Bearer {token(http)}",
        "Amazon-Advertising-API-ClientId": DEFAULT_CLIENT_ID,
        "Amazon-Advertising-API-AdvertiserId": "ENTITYSANDBOX",
        "Amazon-Advertising-API-MarketplaceId": "ATVPDKIKX0DER",
    }
    path = "/amc/reporting/amc0sandbox/workflowExecutions"
    assert http.post(path, json=BODY, headers=sandbox_headers).status_code == 400
    synthetic = BODY | {"requireSyntheticData": True}
    assert http.post(path, json=synthetic, headers=sandbox_headers).status_code == 200


def test_content_type_and_json(http: httpx.Client, headers: dict[str, str]) -> None:
    assert (
        http.post(
            EXECUTIONS, content=b"{}", headers=headers | {"Content-Type": "text/plain"}
        ).status_code
        == 415
    )
    assert error(
        http.post(
            EXECUTIONS, content=b"{nope", headers=headers | {"Content-Type": "application/json"}
        )
    ) == (400, {"code": "400", "details": "Request body is not valid JSON"})
    vendor = {"Content-Type": "application/vnd.amcworkflowexecutions.v1+json"}
    assert (
        http.post(EXECUTIONS, content=b'{"workflowId": "wf"}', headers=headers | vendor).status_code
        == 200
    )
    assert (
        http.post(EXECUTIONS, content=b'{"workflowId": "wf"}', headers=headers).status_code == 200
    )


def test_window_converted_to_utc(http: httpx.Client, headers: dict[str, str]) -> None:
    body = {
        "workflowId": "wf",
        "timeWindowType": "EXPLICIT",
        "timeWindowStart": "2022-09-20T00:00:00",
        "timeWindowEnd": "2022-09-30T00:00:00",
        "timeWindowTimeZone": "America/New_York",
    }
    created = http.post(EXECUTIONS, json=body, headers=headers).json()
    assert created["timeWindowStart"] == "2022-09-20T04:00:00Z"
    assert created["timeWindowStartOriginal"] == "2022-09-20T00:00:00"
    assert created["timeWindowTimeZoneOriginal"] == "America/New_York"
    assert created["status"] == "PENDING"
    uuid.UUID(created["workflowExecutionId"])


def test_listing(http: httpx.Client, headers: dict[str, str], clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(http.post(EXECUTIONS, json=BODY, headers=headers).json()["workflowExecutionId"])
        clock.advance(1)
    assert error(http.get(EXECUTIONS, headers=headers)) == (
        400,
        {"code": "400", "details": "Either workflowId or minCreationTime must be provided"},
    )
    newest_first = http.get(EXECUTIONS, params={"workflowId": "wf"}, headers=headers).json()
    assert [e["workflowExecutionId"] for e in newest_first["executions"]] == ids[::-1]
    seen, params = [], {"workflowId": "wf", "limit": "2", "sortAscending": "true"}
    while True:
        page = http.get(EXECUTIONS, params=params, headers=headers).json()
        seen += [e["workflowExecutionId"] for e in page["executions"]]
        if "nextToken" not in page:
            break
        params["nextToken"] = page["nextToken"]
    assert seen == ids
    assert (
        http.put(f"{EXECUTIONS}/{ids[4]}", json={"status": "CANCELLED"}, headers=headers).json()
        == {}
    )
    listed = http.get(EXECUTIONS, params={"workflowId": "wf"}, headers=headers).json()["executions"]
    assert ids[4] not in [e["workflowExecutionId"] for e in listed]  # CANCELLED hidden by default
    created = http.get(f"{EXECUTIONS}/{ids[3]}", headers=headers).json()["createTime"]
    since = {"minCreationTime": created.rstrip("Z"), "sortAscending": "true"}
    recent = http.get(EXECUTIONS, params=since, headers=headers).json()["executions"]
    assert [e["workflowExecutionId"] for e in recent] == ids[3:4]
    assert (
        http.get(
            EXECUTIONS, params={"workflowId": "wf", "limit": "101"}, headers=headers
        ).status_code
        == 400
    )


def test_cancel(http: httpx.Client, headers: dict[str, str], clock: FakeClock) -> None:
    execution_id = http.post(EXECUTIONS, json=BODY, headers=headers).json()["workflowExecutionId"]
    one = f"{EXECUTIONS}/{execution_id}"
    clock.advance(2)
    assert http.get(one, headers=headers).json()["status"] == "SUCCEEDED"
    assert error(http.put(one, json={"status": "CANCELLED"}, headers=headers)) == (
        400,
        {
            "code": "400",
            "details": f"Workflow execution {execution_id} is SUCCEEDED and cannot be updated",
        },
    )
    other = http.post(EXECUTIONS, json=BODY, headers=headers).json()["workflowExecutionId"]
    assert (
        http.put(f"{EXECUTIONS}/{other}", json={"status": "RUNNING"}, headers=headers).status_code
        == 400
    )
    assert http.delete(f"{EXECUTIONS}/{other}", headers=headers).json() == {}
    assert http.get(f"{EXECUTIONS}/{other}", headers=headers).json()["status"] == "CANCELLED"
    assert http.get(f"{EXECUTIONS}/{uuid.uuid4()}", headers=headers).status_code == 404


def test_stuck_executions(
    http: httpx.Client, headers: dict[str, str], amc: FakeAmcServer, clock: FakeClock
) -> None:
    amc.script("wf", Script(stuck_in="PENDING"))
    execution_id = http.post(EXECUTIONS, json=BODY, headers=headers).json()["workflowExecutionId"]
    clock.advance(3000)  # well past its turn, within the token's hour
    assert http.get(f"{EXECUTIONS}/{execution_id}", headers=headers).json()["status"] == "PENDING"


def test_only_the_clients_calls_are_served(http: httpx.Client, headers: dict[str, str]) -> None:
    for path in (
        f"/amc/reporting/{DEFAULT_INSTANCE_ID}/workflows",
        f"{EXECUTIONS}/some-id/downloadUrls",
        "/amc/accounts",
        "/prod/workflowExecutions",
    ):
        assert http.get(path, headers=headers).status_code == 404, path
    assert error(http.delete(EXECUTIONS, headers=headers)) == (
        405,
        {"code": "405", "details": "Method DELETE not allowed"},
    )


def test_request_log_masks_secrets(
    http: httpx.Client, headers: dict[str, str], amc: FakeAmcServer
) -> None:
    http.post(EXECUTIONS, json=BODY, headers=headers)
    token_request, create = amc.requests()
    assert token_request.body["client_secret"] == token_request.body["refresh_token"] == "***"
    assert create.headers["authorization"] == "Bearer ***"
    assert (create.endpoint, create.instance_id, create.status) == (
        "create",
        DEFAULT_INSTANCE_ID,
        200,
    )


def test_more_requests_to_one_instance_than_it_takes_at_once_are_throttled(
    clock: FakeClock,
) -> None:
    """AMC's per-instance limit of requests in flight: one more is answered 429 at once, with
    a Retry-After, and counted; another instance is not affected."""
    with FakeAmcServer(clock=clock, max_in_flight=2, latency=0.5) as fake:
        fake.seed(workflows={"wf": ()})
        fake.seed("amc2other22", workflows={"wf": ()})
        with httpx.Client(base_url=fake.base_url, timeout=5) as client:
            auth = {
                "Authorization": f"Bearer {token(client)}",
                "Amazon-Advertising-API-ClientId": DEFAULT_CLIENT_ID,
                "Amazon-Advertising-API-AdvertiserId": DEFAULT_ACCOUNT_ID,
                "Amazon-Advertising-API-MarketplaceId": DEFAULT_MARKETPLACE_ID,
            }

            def listing(instance: str) -> httpx.Response:
                return client.get(
                    f"/amc/reporting/{instance}/workflowExecutions",
                    params={"workflowId": "wf"},
                    headers=auth,
                )

            calls = [DEFAULT_INSTANCE_ID] * 3 + ["amc2other22"] * 2
            with ThreadPoolExecutor(len(calls)) as pool:
                answers = list(pool.map(listing, calls))
    statuses = [answer.status_code for answer in answers]
    assert sorted(statuses[:3]) == [200, 200, 429]
    assert statuses[3:] == [200, 200]
    throttled = next(answer for answer in answers if answer.status_code == 429)
    assert throttled.headers["Retry-After"] == "1"
    assert (fake.throttled(DEFAULT_INSTANCE_ID), fake.throttled("amc2other22")) == (1, 0)
