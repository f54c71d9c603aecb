"""The create-execution body built from merged run parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler_daemon.amc.body import ParameterError, build_request_body, merge_parameters
from scheduler_daemon.amc.windows import WindowError

SLOT = datetime(2026, 3, 10, 13, tzinfo=UTC)  # 09:00 in New York (EDT)
NY = "America/New_York"


def test_a_saved_workflow_without_parameters_is_just_its_id() -> None:
    assert build_request_body("wf-1", {}, SLOT, NY) == {"workflowId": "wf-1"}


def test_window_flags_timeout_and_parameter_values() -> None:
    parameters = {
        "time_window": {"kind": "previous_days", "days": 7, "end_offset_days": 2},
        "timeout_seconds": 3600,
        "require_synthetic_data": True,
        "dry_run": False,
        "report_date": "{window_last_date}",
        "label": "run for {slot_date} at {slot}",
        "country": "US",
        "limit": 10,
        "ratio": 0.5,
        "include_returns": True,
    }
    assert build_request_body("wf-1", parameters, SLOT, NY) == {
        "workflowId": "wf-1",
        "timeWindowType": "EXPLICIT",
        "timeWindowStart": "2026-03-01T00:00:00",
        "timeWindowEnd": "2026-03-08T00:00:00",
        "timeWindowTimeZone": NY,
        "workflowExecutionTimeoutSeconds": 3600,
        "requireSyntheticData": True,
        "dryRun": False,
        "parameterValues": {
            "country": "US",
            "include_returns": "true",
            "label": "run for 2026-03-10 at 2026-03-10T09:00:00",
            "limit": "10",
            "ratio": "0.5",
            "report_date": "2026-03-07",
        },
    }


def test_merge_order_and_null_removes_a_default() -> None:
    merged = merge_parameters(
        {"country": "US", "time_window": {"kind": "previous_days", "days": 1}, "a": 1},
        {"country": "DE", "b": 2},
        {"b": 3, "time_window": None},
    )
    assert merged == {"country": "DE", "a": 1, "b": 3}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"report_date": "{window_end_date}"}, "report_date='{window_end_date}': {window_end_date} needs a time_window parameter"),
        ({"label": "{tomorrow}"}, "label='{tomorrow}': unknown placeholder {tomorrow} (known: {slot}, {slot_date}"),
        ({"time_windw": {"kind": "previous_days", "days": 1}}, "time_windw={'kind': 'previous_days', 'days': 1}: a workflow parameter must be a string, number or boolean (AMC parameterValues are strings); did you mean 'time_window'?"),
        ({"ids": [1, 2]}, "ids=[1, 2]: a workflow parameter must be a string"),
        ({"timeout_seconds": 60}, "timeout_seconds=60: must be a whole number of seconds from 900 to 86400"),
        ({"timeout_seconds": "3600"}, "timeout_seconds='3600': must be a whole number"),
        ({"dry_run": "yes"}, "dry_run='yes': must be true or false"),
    ],
)  # fmt: skip
def test_bad_parameters_name_the_key_and_value(parameters: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError) as caught:
        build_request_body("wf-1", parameters, SLOT, NY)
    assert str(caught.value).startswith(message)


def test_bad_window_is_a_window_error() -> None:
    with pytest.raises(WindowError, match=r"^time_window.days=0: "):
        build_request_body("wf-1", {"time_window": {"kind": "previous_days", "days": 0}}, SLOT, NY)


@pytest.mark.parametrize("workflow_id", ["", "my workflow", "wf/../x", "wf?x=1"])
def test_workflow_ids_are_checked(workflow_id: str) -> None:
    with pytest.raises(ParameterError, match="AMC workflow ids are letters, digits"):
        build_request_body(workflow_id, {}, SLOT, NY)


def test_the_body_depends_only_on_slot_zone_and_parameters() -> None:
    parameters = {"time_window": {"kind": "previous_month"}, "d": "{window_start_date}"}
    first = build_request_body("wf-1", parameters, SLOT, NY)
    assert build_request_body("wf-1", dict(parameters), SLOT, NY) == first
    assert build_request_body("wf-1", parameters, SLOT, "Asia/Tokyo") != first
