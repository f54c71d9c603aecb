"""The API against its own OpenAPI document, by Schemathesis: every operation in
/api/v1/openapi.json gets generated requests, valid and invalid, sent in process to the app
with a write token, on a database seeded with a small catalog, schedules and runs; every
answer must be no 5xx, a documented status, the documented media type (problems as
application/problem+json) and a body that matches the documented schema.

One test per operation (``schema.parametrize``). The operations that only read share one
database; each that may change rows gets a fresh one (cloned from a seeded template), so an
operation that deletes or renames the seeded rows cannot hide them from another. Path
parameters, references in bodies, filters and a few values the verbs check are drawn, part
of the time, from the seeded names and ids (Schemathesis dictionaries), so that requests
reach real rows and changes get through, and not only 404s and 422s.

Not here: stateful testing (links between operations). The document declares no links;
Schemathesis 4 can infer some, but its state machine would run every operation's sequences
on one database and take more than this file's time budget (about 25 s on two cores). The
per-resource tests cover create, read, change and delete in sequence.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis import APIOperation
from sqlalchemy import Engine, insert
from starlette.routing import compile_path

from scheduler_daemon.api.app import PREFIX, create_app
from scheduler_daemon.db.engine import make_engine
from scheduler_daemon.db.tables import scheduler_workers
from scheduler_daemon.domain import TokenRole
from tests.helpers import Rows, make_token
from tests.postgres import clone_database, drop_database

# The seeded rows: fixed names and ids, so the generator can name them.
ACME_ID = uuid.UUID("0a0a0a0a-0000-4000-8000-000000000001")
ACME_US_ID = uuid.UUID("0a0a0a0a-0000-4000-8000-000000000002")
SALES_ID = uuid.UUID("0a0a0a0a-0000-4000-8000-000000000003")
RETURNS_ID = uuid.UUID("0a0a0a0a-0000-4000-8000-000000000004")
NIGHTLY_ID = uuid.UUID("0a0a0a0a-0000-4000-8000-000000000010")
HOURLY_ID = uuid.UUID("0a0a0a0a-0000-4000-8000-000000000011")
MONTH_END_ID = uuid.UUID("0a0a0a0a-0000-4000-8000-000000000012")
RUN_IDS = [uuid.UUID(f"0a0a0a0a-0000-4000-8000-0000000001{n:02d}") for n in range(4)]

SCHEDULES = ["nightly", "hourly", "month-end", str(NIGHTLY_ID), str(HOURLY_ID)[:8]]
REFERENCES = ["acme", "acme-us", "sales", "returns", str(SALES_ID), str(ACME_ID)[:8]]
RUNS = [str(run_id) for run_id in RUN_IDS] + [str(RUN_IDS[0])[:8]]
WORKFLOWS = ["sales", "returns", str(RETURNS_ID)]
SPECS = ["0 9 * * MON-FRI", "@daily", "@every 15m", "30 2 * * *"]
ZONES = ["UTC", "Europe/Paris", "America/New_York"]

# What refuses an invalid request: Schemathesis's default list (5xx: not_a_server_error's
# business), and 412.
REFUSALS = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "412",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20250101,
        "suppress-health-check": ["all"],
        "generation": {
            "mode": "all",
            "max-examples": 12,
            "deterministic": True,
            "database": "none",
            # The test sends the token itself: a generated Authorization header would only be
            # replaced by it (and a "missing token" mutation undone). Refusals without a valid
            # token are probed by the ignored_auth check, and checked below.
            "with-security-parameters": False,
        },
        "phases": {
            # Every operation also gets a method its path does not serve (405, with Allow):
            # one such method is enough to check the answer.
            "coverage": {"unexpected-methods": ["OPTIONS"]},
            "stateful": {"enabled": False},
        },
        "checks": {
            # Valid JSON for a field is not a valid value of it: the verbs check the values (an
            # unknown zone, a bad cron: 422) and If-Match the version (a made-up tag: 412).
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "412", "422"]
            },
            # A stale If-Match is refused (412) before the body's values are checked, as RFC
            # 9110 (13.2.1) allows: a refusal all the same, and nothing is written.
            "negative_data_rejection": {"expected-statuses": REFUSALS},
        },
        # /health answers 503 on purpose when a check fails (as it does here: no daemon runs
        # and the seeded runs failed): that is its documented answer, not a server error.
        "operations": [
            {
                "include-name": f"GET {PREFIX}/health",
                "checks": {
                    "not_a_server_error": {"expected-statuses": ["2xx", "4xx", "503"]},
                    "positive_data_acceptance": {"expected-statuses": ["200", "401", "503"]},
                },
            }
        ],
        "dictionaries": {
            "schedules": {"values": SCHEDULES},
            "references": {"values": REFERENCES},
            "runs": {"values": RUNS},
            "workflows": {"values": WORKFLOWS},
            "instances": {"values": ["acme-us", str(ACME_US_ID)]},
            "accounts": {"values": ["acme", str(ACME_ID)]},
            "specs": {"values": SPECS},
            "zones": {"values": ZONES},
            # Values the verbs take, so that changes get through and not only 422s.
            "entity_ids": {"values": ["ENTITYNEW0001", "ENTITYACME01"]},
            "instance_ids": {"values": ["amcnew00001", "amcacme0001"]},
            "grace": {"values": [0, 300]},
            "catchup": {"values": [1, 10]},
            "future": {"values": ["2099-01-01T00:00:00Z", "2099-06-30T12:00:00+02:00"]},
            "any_version": {"values": ["*"]},
        },
        "parameters": {
            "path.schedule": {"dictionary": "schedules", "probability": 0.7},
            "path.reference": {"dictionary": "references", "probability": 0.7},
            "path.run": {"dictionary": "runs", "probability": 0.7},
            "query.schedule": {"dictionary": "schedules", "probability": 0.5},
            "query.workflow": {"dictionary": "workflows", "probability": 0.5},
            "body.workflow": {"dictionary": "workflows", "probability": 0.7},
            "body.instance": {"dictionary": "instances", "probability": 0.7},
            "body.account": {"dictionary": "accounts", "probability": 0.7},
            "body.spec": {"dictionary": "specs", "probability": 0.6},
            "body.expression": {"dictionary": "specs", "probability": 0.6},
            "body.timezone": {"dictionary": "zones", "probability": 0.6},
            "body.account_id": {"dictionary": "entity_ids", "probability": 0.7},
            "body.instance_id": {"dictionary": "instance_ids", "probability": 0.7},
            "body.misfire_grace_seconds": {"dictionary": "grace", "probability": 0.7},
            "body.max_catchup_runs": {"dictionary": "catchup", "probability": 0.7},
            "body.until": {"dictionary": "future", "probability": 0.7},
            "header.if-match": {"dictionary": "any_version", "probability": 0.5},
        },
    }
)

# The document is read from the app itself, over ASGI; this app's engine never connects
# (serving the document needs no database). Each test sends its requests to an app of its own.
schema = schemathesis.openapi.from_asgi(
    f"{PREFIX}/openapi.json",
    create_app(make_engine("postgresql://nobody@localhost:1/no-database")),
    config=CONFIG,
)


@dataclass(frozen=True)
class Served:
    app: FastAPI
    engine: Engine
    headers: dict[str, str]


def seed(rows: Rows) -> None:
    """A catalog with two workflows, three schedules in different states, and runs."""
    now = datetime.now(UTC).replace(microsecond=0)
    account = rows.account(id=ACME_ID, name="acme", account_id="ENTITYACME01")
    instance = rows.instance(account, id=ACME_US_ID, name="acme-us", instance_id="amcacme0001")
    sales = rows.workflow(
        instance, id=SALES_ID, name="sales", amc_workflow_id="sales", parameters={"days": 7}
    )
    rows.workflow(instance, id=RETURNS_ID, name="returns", amc_workflow_id="returns")
    nightly = rows.schedule(
        sales,
        id=NIGHTLY_ID,
        name="nightly",
        cron_expression="30 2 * * *",
        timezone="Europe/Paris",
        enabled=True,
        next_run_at=now + timedelta(hours=6),
        last_run_at=now - timedelta(hours=18),
    )
    rows.schedule(
        sales,
        id=HOURLY_ID,
        name="hourly",
        interval_seconds=3600,
        interval_anchor=now - timedelta(days=1),
        enabled=True,
        paused_at=now - timedelta(hours=1),
        paused_until=now + timedelta(days=1),
        pause_reason="month-end freeze",
        consecutive_failures=2,
        last_error="AMC said no",
    )
    rows.schedule(sales, id=MONTH_END_ID, name="month-end", cron_expression="0 6 L * *")
    day = timedelta(days=1)
    with rows.engine.begin() as conn:
        worker = {"worker_id": "host-1:4242", "hostname": "host-1", "pid": 4242, "version": "1"}
        conn.execute(insert(scheduler_workers).values(**worker))
    rows.run(
        nightly,
        id=RUN_IDS[0],
        scheduled_for=now - day,
        status="succeeded",
        started_at=now - day,
        finished_at=now - day + timedelta(minutes=5),
        attempts=1,
        amc_execution_id="exec-1",
        request={"parameters": {"days": 7}},
    )
    rows.run(
        nightly,
        id=RUN_IDS[1],
        scheduled_for=now - 2 * day,
        status="failed",
        error_message="AMC said no",
        attempts=3,
    )
    rows.run(
        nightly, id=RUN_IDS[2], scheduled_for=now - 3 * day, status="skipped", skip_reason="overlap"
    )
    rows.run(
        nightly,
        id=RUN_IDS[3],
        scheduled_for=now + timedelta(minutes=1),
        trigger="manual",
        status="pending",
        parameters_override={"days": 1},
    )


@dataclass(frozen=True)
class Seeded:
    database: str  # a template, cloned for each test
    token: str  # the secret of a write token in it


@pytest.fixture(scope="module")
def seeded(pg_server: str, template_database: str) -> Iterator[Seeded]:
    """The migrated template with the rows above and a write token, as a template of its
    own: each test's database is then one clone, with no inserts of its own."""
    name = f"sd_contract_{uuid.uuid4().hex[:12]}"
    engine = make_engine(clone_database(pg_server, template_database, name))
    try:
        seed(Rows(engine))
        token = make_token(engine, "contract", TokenRole.WRITE)
    finally:
        engine.dispose()  # nothing may be connected to a template that is cloned
    yield Seeded(name, token)
    drop_database(pg_server, name)


@contextlib.contextmanager
def serving(pg_server: str, seeded: Seeded) -> Iterator[Served]:
    """The app on a database of its own, cloned from the seeded one."""
    name = f"sd_test_{uuid.uuid4().hex[:12]}"
    engine = make_engine(clone_database(pg_server, seeded.database, name))
    try:
        yield Served(create_app(engine), engine, {"Authorization": f"Bearer {seeded.token}"})
    finally:
        engine.dispose()
        drop_database(pg_server, name)


@pytest.fixture(scope="module")
def shared(pg_server: str, seeded: Seeded) -> Iterator[Served]:
    """One database for every operation that only reads."""
    with serving(pg_server, seeded) as served:
        yield served


@pytest.fixture
def fresh(pg_server: str, seeded: Seeded) -> Iterator[Served]:
    """A database of its own for each operation that may change rows, so that one deleting
    or renaming the seeded rows cannot hide them from another."""
    with serving(pg_server, seeded) as served:
        yield served


def operations() -> list[APIOperation[Any, Any, Any, Any]]:
    return [operation for methods in schema.values() for operation in methods.values()]


# (Selected by exclusion: with an "operations" entry in the config, Schemathesis 4.32 ORs
# include() with a catch-all filter of its own, so every operation would be selected.)
@schema.exclude(method=["POST", "PUT", "PATCH", "DELETE"]).parametrize()
def test_reads_keep_the_contract(case: schemathesis.Case[Any], shared: Served) -> None:
    case.call_and_validate(app=shared.app, headers=shared.headers)


@schema.exclude(method="GET").parametrize()
def test_changes_keep_the_contract(case: schemathesis.Case[Any], fresh: Served) -> None:
    case.call_and_validate(app=fresh.app, headers=fresh.headers)


# A valid body for each operation that requires one (the others take none, or {}), so that
# the token is all that a refusal can be about.
BODIES: dict[str, dict[str, Any]] = {
    "POST /api/v1/schedules": {"name": "new", "workflow": "sales", "spec": "@daily"},
    "PUT /api/v1/schedules/{schedule}": {"name": "nightly", "workflow": "sales", "spec": "@daily"},
    "POST /api/v1/accounts": {"name": "new", "account_id": "ENTITYNEW0001"},
    "POST /api/v1/instances": {"name": "new", "instance_id": "amcnew00001", "account": "acme"},
    "POST /api/v1/workflows": {"name": "new", "instance": "acme-us", "amc_workflow_id": "new"},
    "POST /api/v1/preview": {"expression": "@daily"},
}


@pytest.mark.parametrize("role", [None, TokenRole.READ])
def test_refusals_are_documented(fresh: Served, role: TokenRole | None) -> None:
    """Without a token every operation answers 401, and with a read token every change 403
    (the fuzzing above always sends a write token): documented, as problems."""
    headers = (
        {} if role is None else {"Authorization": f"Bearer {make_token(fresh.engine, 'r', role)}"}
    )
    path_parameters = {"schedule": "nightly", "reference": "sales", "run": str(RUN_IDS[0])}
    for operation in operations():
        parameters = {p.name: path_parameters[p.name] for p in operation.path_parameters}
        case = operation.Case(path_parameters=parameters, headers=headers)
        if "requestBody" in operation.definition.raw:
            case.body = BODIES.get(operation.label, {})
            case.media_type = "application/json"
        response = case.call_and_validate(app=fresh.app)
        if role is None:
            assert response.status_code == 401, operation.label
        elif "403" in operation.definition.raw["responses"]:  # it changes something
            assert response.status_code == 403, operation.label
        else:
            assert response.status_code not in {401, 403}, operation.label


# Defects the fuzzing found once, kept as plain requests: the seed above need not find them
# again. Each answer must also be one the document gives the operation, as a problem.
REGRESSIONS = [
    # FastAPI named only the first route's methods: POST, where /schedules serves GET too.
    ("OPTIONS", "/schedules", {}, 405),
    # A number was read as Unix time (1970), where the document says an ISO 8601 date-time.
    ("GET", "/runs", {"params": {"until": "0.5"}}, 422),
    ("POST", "/schedules/nightly/trigger", {"json": {"at": 1700000000}}, 422),
    # A body that is not UTF-8 was an undocumented 400.
    (
        "POST",
        "/preview",
        {"content": b'{"expression": "\xff"}', "headers": {"Content-Type": "application/json"}},
        400,
    ),
    # A NUL character, which PostgreSQL cannot store, was a 500 wherever it reached it.
    ("GET", "/schedules/a%00b", {}, 422),
    ("GET", "/schedules", {"params": {"q": "a\x00b"}}, 422),
    ("POST", "/accounts", {"json": {"name": "a\x00b", "account_id": "ENTITYNUL1"}}, 422),
    ("PATCH", "/workflows/sales", {"json": {"parameters": {"days": "\x00"}}}, 422),
]


@pytest.mark.parametrize(("method", "path", "request_kwargs", "status"), REGRESSIONS)
def test_regressions(
    fresh: Served, method: str, path: str, request_kwargs: dict[str, Any], status: int
) -> None:
    with TestClient(fresh.app, raise_server_exceptions=False) as client:
        kwargs = dict(request_kwargs)
        headers = {**fresh.headers, **kwargs.pop("headers", {})}
        response = client.request(method, PREFIX + path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if status == 405:
        assert response.headers["allow"] == "GET, POST"
        return
    template = next(
        t for t in schema.raw_schema["paths"] if compile_path(t)[0].match(response.url.path)
    )
    assert str(status) in schema.raw_schema["paths"][template][method.lower()]["responses"]
