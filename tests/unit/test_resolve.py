"""resolve(): workflow → AMC instance → account, and the request body, before any HTTP call."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler_daemon.domain import ClaimedRun, RunContext
from scheduler_daemon.resolve import ResolutionError, resolve

SLOT = datetime(2026, 3, 9, 13, tzinfo=UTC)  # 09:00 in New York, the day after spring forward
WORKFLOW_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def run(
    trigger: str = "scheduled",
    scheduled_for: datetime = SLOT,
    parameters_override: dict[str, Any] | None = None,
) -> ClaimedRun:
    return ClaimedRun(
        id=uuid.uuid4(),
        schedule_id=uuid.uuid4(),
        workflow_id=WORKFLOW_ID,
        scheduled_for=scheduled_for,
        trigger=trigger,
        status="claimed",
        fencing_token=1,
        correlation_id=uuid.uuid4(),
        parameters_override=parameters_override,
    )


def context(**overrides: Any) -> RunContext:
    fields: dict[str, Any] = {
        "workflow_id": WORKFLOW_ID,
        "workflow_name": "daily spend",
        "amc_workflow_id": "daily-spend",
        "workflow_parameters": {"time_window": {"kind": "previous_days", "days": 1}},
        "schedule_parameters": {"country": "US"},
        "timezone": "America/New_York",
        "amc_instance_id": "amc1alal2aa",
        "amc_entity_id": "ENTITY1AA1AA11AAA1",
        "marketplace_id": "ATVPDKIKX0DER",
        "region": "NA",
    }
    return RunContext(**(fields | overrides))


def test_resolves_ids_headers_and_body() -> None:
    request = resolve(run(), context())
    assert (request.amc_instance_id, request.amc_entity_id, request.marketplace_id) == (
        "amc1alal2aa",
        "ENTITY1AA1AA11AAA1",
        "ATVPDKIKX0DER",
    )
    assert request.amc_workflow_id == "daily-spend"
    assert request.timezone == "America/New_York"
    assert (request.workflow_name, request.region) == ("daily spend", "NA")
    assert request.body == {
        "workflowId": "daily-spend",
        "timeWindowType": "EXPLICIT",
        "timeWindowStart": "2026-03-08T00:00:00",
        "timeWindowEnd": "2026-03-09T00:00:00",
        "timeWindowTimeZone": "America/New_York",
        "parameterValues": {"country": "US"},
    }


def test_manual_and_scheduled_runs_of_one_slot_make_identical_requests() -> None:
    scheduled = resolve(run("scheduled"), context())
    manual = resolve(run("manual"), context())
    assert manual.body == scheduled.body
    assert manual.parameters == scheduled.parameters


def test_merge_order_workflow_then_schedule_then_manual_override() -> None:
    request = resolve(
        run("manual", parameters_override={"country": "DE", "time_window": None}),
        context(
            workflow_parameters={
                "country": "FR",
                "channel": "dsp",
                "time_window": {"kind": "previous_month"},
            },
            schedule_parameters={"country": "US"},
        ),
    )
    assert request.body == {
        "workflowId": "daily-spend",
        "parameterValues": {"channel": "dsp", "country": "DE"},
    }


def test_a_missing_zone_is_utc() -> None:
    request = resolve(run(), context(timezone=None))
    assert request.body["timeWindowTimeZone"] == "UTC"
    assert request.body["timeWindowStart"] == "2026-03-08T00:00:00"


NAME = f"workflow 'daily spend' ({WORKFLOW_ID})"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"amc_instance_id": None}, f"{NAME}: its AMC instance is missing"),
        ({"amc_instance_id": "6f1c3e0a-1b2c-4d5e-8f90-123456789abc"}, f"{NAME}: AMC instance id '6f1c3e0a-1b2c-4d5e-8f90-123456789abc' is a UUID; AMC needs its own string id"),
        ({"amc_instance_id": "../amc1alal2aa"}, f"{NAME}: AMC instance id '../amc1alal2aa' is not an AMC instance id"),
        ({"amc_entity_id": None}, f"{NAME}: the AMC account (entity id) of instance 'amc1alal2aa' is missing"),
        ({"amc_entity_id": "1234567890"}, f"{NAME}: entity id '1234567890' of instance 'amc1alal2aa' does not look like an AMC account id"),
        ({"marketplace_id": None}, f"{NAME}: the marketplace of AMC account 'ENTITY1AA1AA11AAA1' is missing"),
        ({"marketplace_id": ""}, f"{NAME}: the marketplace of AMC account"),
        ({"amc_workflow_id": None}, f"{NAME}: its AMC workflow id (amc_workflow_id) is missing"),
        ({"timezone": "Mars/Olympus"}, f"{NAME}: parameter timezone='Mars/Olympus': unknown time zone"),
        ({"schedule_parameters": {"time_window": {"kind": "previous_days", "days": -3}}}, f"{NAME}: parameter time_window.days=-3: must be a whole number from 1 to 3660"),
        ({"schedule_parameters": {"ids": [1]}}, f"{NAME}: parameter ids=[1]: a workflow parameter must be"),
    ],
)  # fmt: skip
def test_resolution_errors_name_the_workflow_and_the_problem(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve(run(), context(**overrides))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_missing_workflow() -> None:
    with pytest.raises(ResolutionError, match=f"its workflow {WORKFLOW_ID} does not exist"):
        resolve(run(), None)


def test_an_unusual_entity_id_may_be_allowed() -> None:
    request = resolve(run(), context(amc_entity_id="A1B2C3"), require_entity_prefix=False)
    assert request.amc_entity_id == "A1B2C3"


def test_an_unusual_instance_id_only_warns() -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        request = resolve(run(), context(amc_instance_id="amc-instance01"))
    assert request.amc_instance_id == "amc-instance01"
    assert [e["event"] for e in logs] == ["amc.instance_id_unusual"]
