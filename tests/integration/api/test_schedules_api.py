"""/api/v1/schedules through HTTP on a real database: what a client of the API relies on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from scheduler_daemon.cli import main
from tests.helpers import Rows
from tests.integration.api.conftest import Api

PROBLEM = "application/problem+json"


def create(api: Api, name: str = "nightly", **fields: Any) -> dict[str, Any]:
    body = {"name": name, "workflow": "sales", "spec": "0 9 * * 1-5", **fields}
    response = api.post("/schedules", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def sales(rows: Rows) -> uuid.UUID:
    return rows.workflow(name="sales")


@pytest.mark.usefixtures("sales")
def test_a_created_schedule_is_where_location_says_with_its_version(api: Api) -> None:
    response = api.post(
        "/schedules",
        json={
            "name": "nightly",
            "workflow": "sales",
            "spec": "0 9 * * 1-5",
            "timezone": "America/New_York",
        },
    )
    assert response.status_code == 201
    created = response.json()
    assert created["enabled"] is False
    assert created["next_run_at"] is None
    got = api.get(response.headers["Location"].removeprefix("/api/v1"))
    assert got.status_code == 200
    assert got.json()["id"] == created["id"]
    assert got.headers["ETag"] == response.headers["ETag"]
    # by name, by id and by the id's first 8 hex digits, as in the CLI
    for reference in ("nightly", created["id"], created["id"][:8]):
        assert api.get(f"/schedules/{reference}").json()["id"] == created["id"]


@pytest.mark.usefixtures("sales")
def test_a_schedule_shows_statistics_and_its_next_ten_fire_times(
    api: Api, rows: Rows, engine: Engine
) -> None:
    created = create(api, enabled=True, timezone="America/New_York")
    schedule_id = uuid.UUID(created["id"])
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
    for minutes, status, late, took in [
        (60, "succeeded", 2, 30),
        (120, "failed", 4, 10),
        (180, "succeeded", 6, 50),
    ]:
        slot = now - timedelta(minutes=minutes)
        rows.run(
            schedule_id,
            status=status,
            scheduled_for=slot,
            started_at=slot + timedelta(seconds=late),
            finished_at=slot + timedelta(seconds=late + took),
        )
    rows.run(
        schedule_id, status="skipped", skip_reason="misfire", scheduled_for=now - timedelta(days=10)
    )

    shown = api.get("/schedules/nightly").json()

    stats = shown["statistics"]
    assert (stats["succeeded"], stats["failed"]) == (2, 1)
    assert stats["last_7_days"] == {"succeeded": 2, "failed": 1}
    assert stats["last_30_days"] == {"succeeded": 2, "failed": 1, "skipped": 1}
    assert stats["success_rate_30_days"] == pytest.approx(2 / 3, abs=1e-4)
    assert stats["lateness_seconds"]["p50"] == pytest.approx(4)
    assert stats["duration_seconds"]["p50"] == pytest.approx(30)
    assert len(shown["next_fire_times"]) == 10
    assert all(fire["local"].endswith(("-05:00", "-04:00")) for fire in shown["next_fire_times"])


@pytest.mark.usefixtures("sales")
@pytest.mark.parametrize(
    ("body", "field", "value", "cli"),
    [
        ({"spec": "0 99 * * *"}, "spec", "0 99 * * *", ["--cron", "0 99 * * *"]),
        ({"timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus", ["--tz", "Mars/Olympus"]),
    ],
)
def test_a_bad_field_is_a_problem_naming_it_with_the_clis_message(
    api: Api,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    body: dict[str, Any],
    field: str,
    value: str,
    cli: list[str],
) -> None:
    response = api.post(
        "/schedules", json={"name": "bad", "workflow": "sales", "spec": "0 9 * * *", **body}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    (error,) = response.json()["errors"]
    assert (error["field"], error["value"]) == (field, value)

    args = [
        "schedules",
        "create",
        "--name",
        "bad",
        "--workflow",
        "sales",
        "--cron",
        "0 9 * * *",
        *cli,
    ]
    with pytest.raises(SystemExit) as exited:
        main(["--database-url", database_url, *args])
    assert exited.value.code == 2
    assert error["message"] in capsys.readouterr().err  # the same check, the same words
    assert api.get("/schedules").json()["items"] == []  # nothing was saved


@pytest.mark.usefixtures("sales")
def test_unknown_fields_duplicate_names_and_missing_workflows_are_refused(api: Api) -> None:
    create(api)
    unknown = api.post(
        "/schedules", json={"name": "x", "workflow": "sales", "spec": "@daily", "cron": "x"}
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "cron"

    taken = api.post("/schedules", json={"name": "nightly", "workflow": "sales", "spec": "@daily"})
    assert taken.status_code == 409
    assert taken.json()["errors"][0] == {
        "field": "name",
        "value": "nightly",
        "message": "another schedule already has the name 'nightly'",
    }

    policy = api.post(
        "/schedules",
        json={"name": "z", "workflow": "sales", "spec": "@daily", "overlap_policy": "queue"},
    )
    assert policy.status_code == 422
    assert policy.json()["errors"][0] == {
        "field": "overlap_policy",
        "value": "queue",
        "message": "'queue' is not one of skip, allow",
    }

    nowhere = api.post("/schedules", json={"name": "y", "workflow": "nope", "spec": "@daily"})
    assert nowhere.status_code == 422  # the body names nothing; the resource exists
    assert nowhere.json()["errors"][0]["field"] == "workflow"

    missing = api.get("/schedules/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert "nope" in missing.json()["detail"]


@pytest.mark.usefixtures("sales")
def test_a_stale_if_match_is_refused_and_changes_nothing(api: Api) -> None:
    create(api)
    first_read = api.get("/schedules/nightly").headers["ETag"]
    second_read = api.get("/schedules/nightly").headers["ETag"]
    assert first_read == second_read

    mine = api.patch(
        "/schedules/nightly", json={"spec": "0 10 * * *"}, headers={"If-Match": first_read}
    )
    assert mine.status_code == 200
    assert mine.headers["ETag"] != first_read

    theirs = api.patch(
        "/schedules/nightly", json={"spec": "0 11 * * *"}, headers={"If-Match": second_read}
    )
    assert theirs.status_code == 412
    assert theirs.headers["content-type"] == PROBLEM
    assert theirs.headers["ETag"] == mine.headers["ETag"]
    assert api.get("/schedules/nightly").json()["spec"] == "0 10 * * *"

    for method, path in [
        ("DELETE", "/schedules/nightly"),
        ("POST", "/schedules/nightly/pause"),
        ("PUT", "/schedules/nightly"),
    ]:
        body = (
            {"name": "nightly", "workflow": "sales", "spec": "@daily"} if method == "PUT" else None
        )
        stale = api.request(method, path, json=body, headers={"If-Match": first_read})
        assert stale.status_code == 412, (method, path)
    assert api.get("/schedules/nightly").json()["state"] == "disabled"


@pytest.mark.usefixtures("sales")
def test_a_version_survives_the_daemons_own_writes(api: Api, engine: Engine) -> None:
    """What the daemons change on every slot (next run, locks) is not an edit: a tag read
    before a slot ran still applies after it."""
    create(api, enabled=True)
    tag = api.get("/schedules/nightly").headers["ETag"]
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE workflow_schedules SET next_run_at = next_run_at + interval '1 day', "
                "last_run_at = now(), locked_by = 'w1', locked_at = now(), updated_at = now()"
            )
        )
    assert (
        api.patch(
            "/schedules/nightly", json={"max_catchup_runs": 3}, headers={"If-Match": tag}
        ).status_code
        == 200
    )


@pytest.mark.usefixtures("sales")
def test_put_replaces_the_definition_and_patch_changes_only_what_it_gives(
    api: Api, rows: Rows
) -> None:
    create(api, misfire_policy="run_all", timezone="Europe/Paris", parameters={"days": 7})
    patched = api.patch("/schedules/nightly", json={"parameters": {"days": 30}}).json()
    assert (patched["misfire_policy"], patched["timezone"], patched["parameters"]) == (
        "run_all",
        "Europe/Paris",
        {"days": 30},
    )

    rows.workflow(name="marketing")
    replaced = api.put(
        "/schedules/nightly", json={"name": "weekly", "workflow": "marketing", "spec": "@weekly"}
    )
    assert replaced.status_code == 200
    shown = replaced.json()
    assert (shown["name"], shown["workflow"], shown["spec"]) == ("weekly", "marketing", "@weekly")
    assert (shown["misfire_policy"], shown["timezone"], shown["parameters"]) == ("skip", "UTC", {})

    assert api.patch("/schedules/weekly", json={}).status_code == 422  # nothing to change


@pytest.mark.usefixtures("sales")
def test_pause_resume_enable_disable(api: Api) -> None:
    create(api)
    enabled = api.post("/schedules/nightly/enable").json()
    assert enabled["enabled"]
    assert enabled["next_run_at"] is not None

    until = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    paused = api.post(
        "/schedules/nightly/pause", json={"reason": "quarter close", "until": until}
    ).json()
    assert (paused["state"], paused["pause_reason"]) == ("paused", "quarter close")
    assert paused["paused_until"] is not None

    past = api.post("/schedules/nightly/pause", json={"until": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422
    assert past.json()["errors"][0]["field"] == "until"

    resumed = api.post("/schedules/nightly/resume").json()
    assert resumed["paused_at"] is None
    assert resumed["state"] in {"scheduled", "due"}

    disabled = api.post("/schedules/nightly/disable").json()
    assert (disabled["enabled"], disabled["state"]) == (False, "disabled")


@pytest.mark.usefixtures("sales")
def test_trigger_queues_a_manual_run_and_leaves_the_next_slot(api: Api) -> None:
    before = create(api, enabled=True)
    response = api.post("/schedules/nightly/trigger", json={"parameters": {"days": 3}})
    assert response.status_code == 202
    run = response.json()
    assert (run["trigger"], run["status"], run["parameters_override"]) == (
        "manual",
        "pending",
        {"days": 3},
    )
    assert api.get(response.headers["Location"].removeprefix("/api/v1")).json()["id"] == run["id"]
    assert api.get("/schedules/nightly").json()["next_run_at"] == before["next_run_at"]
    listed = api.get("/schedules/nightly/runs").json()["items"]
    assert [item["id"] for item in listed] == [run["id"]]


@pytest.mark.usefixtures("sales")
def test_a_schedules_runs_include_skipped_slots_and_why(api: Api, rows: Rows) -> None:
    schedule_id = uuid.UUID(create(api)["id"])
    rows.run(
        schedule_id,
        status="skipped",
        skip_reason="overlap",
        scheduled_for=datetime(2026, 1, 2, tzinfo=UTC),
    )
    rows.run(schedule_id, status="succeeded", scheduled_for=datetime(2026, 1, 1, tzinfo=UTC))
    listed = api.get("/schedules/nightly/runs").json()["items"]
    assert [(run["status"], run["skip_reason"]) for run in listed] == [
        ("skipped", "overlap"),
        ("succeeded", None),
    ]
    only_skipped = api.get("/schedules/nightly/runs", params={"status": "skipped"}).json()["items"]
    assert len(only_skipped) == 1


@pytest.mark.usefixtures("sales")
def test_soft_delete_keeps_the_runs_and_hard_delete_removes_them(
    api: Api, rows: Rows, engine: Engine
) -> None:
    kept = uuid.UUID(create(api, "kept")["id"])
    gone = uuid.UUID(create(api, "gone")["id"])
    for schedule_id in (kept, gone):
        rows.run(schedule_id, status="succeeded", scheduled_for=datetime(2026, 1, 1, tzinfo=UTC))

    assert api.delete("/schedules/kept").status_code == 204
    assert api.delete("/schedules/gone", params={"hard": "true"}).status_code == 204

    assert api.get("/schedules/kept").status_code == 404
    assert api.get("/schedules/gone").status_code == 404
    with engine.connect() as conn:
        runs: dict[uuid.UUID, int] = dict(
            conn.execute(text("SELECT schedule_id, count(*) FROM schedule_runs GROUP BY 1")).all()
        )
        kept_row = conn.execute(
            text("SELECT deleted_at FROM workflow_schedules WHERE id = :id"), {"id": kept}
        ).one()
    assert runs == {kept: 1}
    assert kept_row.deleted_at is not None
    # a soft-deleted schedule frees its name
    assert (
        api.post(
            "/schedules", json={"name": "kept", "workflow": "sales", "spec": "@daily"}
        ).status_code
        == 201
    )


@pytest.mark.usefixtures("sales")
def test_the_history_says_who_changed_what(api: Api) -> None:
    create(api)
    api.patch("/schedules/nightly", json={"spec": "0 10 * * *"})
    api.post("/schedules/nightly/pause", json={"reason": "audit"})

    entries = api.get("/schedules/nightly/history").json()["items"]

    assert [entry["action"] for entry in entries] == ["pause", "update", "create"]
    assert {entry["actor"] for entry in entries} == {"api:ops-bot"}
    assert entries[1]["changes"]["cron_expression"] == {
        "before": "0 9 * * 1-5",
        "after": "0 10 * * *",
    }
    first = api.get("/schedules/nightly/history", params={"limit": 2}).json()
    rest = api.get(
        "/schedules/nightly/history", params={"limit": 2, "cursor": first["next"]}
    ).json()
    assert [entry["action"] for entry in first["items"] + rest["items"]] == [
        "pause",
        "update",
        "create",
    ]
    assert rest["next"] is None


@pytest.mark.usefixtures("sales")
def test_filters_and_sorting(api: Api, engine: Engine) -> None:
    create(api, "a-daily", spec="@daily", enabled=True)
    create(api, "b-hourly", spec="@hourly", enabled=True)
    create(api, "c-off", spec="@weekly")
    api.post("/schedules/b-hourly/pause")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE workflow_schedules SET consecutive_failures = 2 WHERE name = 'a-daily'")
        )

    def names(**params: Any) -> list[str]:
        response = api.get("/schedules", params=params)
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["items"]]

    assert names() == ["a-daily", "b-hourly", "c-off"]
    assert names(sort="-name") == ["c-off", "b-hourly", "a-daily"]
    assert names(enabled="true") == ["a-daily", "b-hourly"]
    assert names(enabled="false") == ["c-off"]
    assert names(paused="true") == ["b-hourly"]
    assert names(failing="true") == ["a-daily"]
    assert names(q="HOUR") == ["b-hourly"]
    assert names(q="%") == []  # literal text, not a pattern
    assert names(workflow="sales", sort="next_run_at") == ["b-hourly", "a-daily", "c-off"]
    assert api.get("/schedules", params={"sort": "color"}).status_code == 422
    assert api.get("/schedules", params={"limit": 501}).status_code == 422


@pytest.mark.usefixtures("sales")
@pytest.mark.parametrize("sort", ["name", "-name", "next_run_at", "-created_at"])
def test_pages_stay_right_while_schedules_are_inserted(
    api: Api, rows: Rows, sales: uuid.UUID, sort: str
) -> None:
    """Keyset pages: a schedule inserted between two requests never makes the next page repeat
    or skip one that was there before."""
    for n in range(10):
        create(api, f"s{n:02d}", spec=f"{n} * * * *", enabled=n % 2 == 0)
    before = {item["name"] for item in api.get("/schedules", params={"limit": 500}).json()["items"]}

    seen: list[str] = []
    page = api.get("/schedules", params={"limit": 3, "sort": sort}).json()
    seen += [item["name"] for item in page["items"]]
    inserted = 0
    while page["next"] is not None:
        # names sorting before and after every page's position
        rows.schedule(sales, name=f"a-new-{inserted}")
        rows.schedule(sales, name=f"z-new-{inserted}")
        inserted += 1
        page = api.get(
            "/schedules", params={"limit": 3, "sort": sort, "cursor": page["next"]}
        ).json()
        seen += [item["name"] for item in page["items"]]

    assert len(seen) == len(set(seen)), "a schedule was listed twice"
    assert before <= set(seen), f"skipped: {before - set(seen)}"


@pytest.mark.usefixtures("sales")
def test_a_cursor_from_elsewhere_is_a_problem(api: Api) -> None:
    create(api)
    for cursor in ("garbage", "W10", "WyJuYW1lIiwgMV0"):
        response = api.get("/schedules", params={"cursor": cursor})
        assert response.status_code == 422, cursor
        assert response.json()["errors"][0]["field"] == "cursor"


@pytest.mark.usefixtures("sales")
def test_deleting_a_schedule_cancels_the_runs_it_queued(api: Api) -> None:
    create(api, enabled=True)
    queued = api.post("/schedules/nightly/trigger").json()
    assert api.delete("/schedules/nightly").status_code == 204
    run = api.get(f"/runs/{queued['id']}").json()
    assert run["status"] == "cancelled"  # no daemon claims it: the claim takes pending runs
    assert "deleted" in run["error"]
