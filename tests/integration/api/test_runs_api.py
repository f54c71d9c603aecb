"""/api/v1/runs: the run history of every schedule, filtered and paged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.helpers import Rows
from tests.integration.api.conftest import Api

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_runs_are_filtered_by_schedule_status_trigger_and_time(api: Api, rows: Rows) -> None:
    workflow = rows.workflow(name="sales")
    first = rows.schedule(workflow, name="first")
    second = rows.schedule(workflow, name="second")
    rows.run(first, status="succeeded", scheduled_for=T0)
    rows.run(first, status="failed", scheduled_for=T0 + timedelta(hours=1))
    rows.run(second, status="succeeded", scheduled_for=T0 + timedelta(hours=2), trigger="manual")

    def slots(**params: str) -> list[str]:
        response = api.get("/runs", params=params)
        assert response.status_code == 200, response.text
        return [run["scheduled_for"] for run in response.json()["items"]]

    assert len(slots()) == 3
    assert len(slots(schedule="first")) == 2
    assert len(slots(status="failed")) == 1
    assert len(slots(trigger="manual")) == 1
    since, until = (
        (T0 + timedelta(minutes=30)).isoformat(),
        (T0 + timedelta(minutes=90)).isoformat(),
    )
    assert slots(since=since, until=until) == ["2026-11-02T10:00:00Z"]
    assert api.get("/runs", params={"status": "exploded"}).status_code == 422
    assert api.get("/runs", params={"since": "2026-11-02T09:00:00"}).status_code == 422  # no offset


def test_a_run_shows_its_request_and_execution(api: Api, rows: Rows) -> None:
    schedule = rows.schedule(name="nightly")
    run_id = rows.run(
        schedule,
        status="dispatched",
        scheduled_for=T0,
        amc_execution_id="exec-42",
        request={"timeWindowStart": "2026-11-01T00:00:00"},
    )
    shown = api.get(f"/runs/{run_id}").json()
    assert shown["amc_execution_id"] == "exec-42"
    assert shown["request"] == {"timeWindowStart": "2026-11-01T00:00:00"}
    assert api.get(f"/runs/{str(run_id)[:8]}").json()["id"] == str(run_id)
    assert api.get(f"/runs/{uuid.uuid4()}").status_code == 404


def test_run_pages_stay_right_while_runs_are_inserted(api: Api, rows: Rows) -> None:
    schedule = rows.schedule(name="nightly")
    before = {
        str(rows.run(schedule, status="succeeded", scheduled_for=T0 + timedelta(minutes=n)))
        for n in range(9)
    }
    seen: list[str] = []
    page = api.get("/runs", params={"limit": 2}).json()
    seen += [run["id"] for run in page["items"]]
    n = 0
    while page["next"] is not None:
        # a newer slot (before the position) and an older one (after it)
        rows.run(schedule, status="pending", scheduled_for=T0 + timedelta(days=1, minutes=n))
        rows.run(schedule, status="pending", scheduled_for=T0 - timedelta(days=1, minutes=n))
        n += 1
        page = api.get("/runs", params={"limit": 2, "cursor": page["next"]}).json()
        seen += [run["id"] for run in page["items"]]
    assert len(seen) == len(set(seen))
    assert before <= set(seen)
