"""Parsing AMC's answers: flat or wrapped executions, lists, statuses, error details."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler_daemon.amc.errors import AmcProtocolError
from scheduler_daemon.amc.responses import (
    error_details,
    normalize_status,
    parse_execution,
    parse_execution_list,
)

FLAT = {
    "workflowExecutionId": "2b04762b-cbdb-47c7-be39-42a585ecd40e",
    "workflowId": "my-first-workflow",
    "status": "PENDING",
    "createTime": "2023-09-18T22:01:56Z",
}


@pytest.mark.parametrize("payload", [FLAT, {"workflowExecution": FLAT}])
def test_flat_and_wrapped(payload: object) -> None:
    execution = parse_execution(payload, "here")
    assert execution.execution_id == "2b04762b-cbdb-47c7-be39-42a585ecd40e"
    assert execution.workflow_id == "my-first-workflow"
    assert execution.status == "pending"
    assert execution.created_at == datetime(2023, 9, 18, 22, 1, 56, tzinfo=UTC)


@pytest.mark.parametrize(
    "payload", [{}, {"status": "PENDING"}, [], "ok", {"workflowExecution": {}}]
)
def test_no_execution_id_is_a_protocol_error(payload: object) -> None:
    with pytest.raises(
        AmcProtocolError, match=r"^AMC create: AMC's response has no workflowExecutionId"
    ):
        parse_execution(payload, "AMC create")


def test_failure_reason() -> None:
    execution = parse_execution(FLAT | {"status": "FAILED", "statusReason": "too many rows"}, "x")
    assert (execution.status, execution.reason) == ("failed", "too many rows")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("PENDING", "pending"),
        ("RUNNING", "running"),
        ("PUBLISHING", "running"),
        ("SUCCEEDED", "succeeded"),
        ("FAILED", "failed"),
        ("REJECTED", "failed"),
        ("CANCELLED", "cancelled"),
        ("succeeded", "succeeded"),
        ("SOMETHING_NEW", "running"),
        (None, "running"),
    ],
)
def test_status_normalization(raw: str | None, normalized: str) -> None:
    assert normalize_status(raw) == normalized


def test_list_pages() -> None:
    executions, token = parse_execution_list(
        {"executions": [FLAT, {"bad": 1}, {"workflowExecution": FLAT}], "nextToken": "t2"}, "x"
    )
    assert [e.execution_id for e in executions] == [FLAT["workflowExecutionId"]] * 2
    assert token == "t2"
    assert parse_execution_list({"executions": []}, "x") == ([], None)
    with pytest.raises(AmcProtocolError):
        parse_execution_list({"executions": "nope"}, "x")


@pytest.mark.parametrize(
    ("text", "details"),
    [
        ('{"code": "400", "details": "Workflow with ID x does not exist"}', "Workflow with ID x does not exist"),
        ('{"message": "Endpoint request timed out"}', "Endpoint request timed out"),
        ('{"error": "invalid_grant", "error_description": "bad grant"}', "bad grant"),
        ("<html><body><b>Http/1.1 Service Unavailable</b></body> </html>", "Http/1.1 Service Unavailable"),
        ("", "Service Unavailable"),
    ],
)  # fmt: skip
def test_error_details(text: str, details: str) -> None:
    assert error_details(503, text, "Service Unavailable") == details
