"""/api/v1/preview, /workers, /health, /stats."""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.helpers import Rows
from tests.integration.api.conftest import Api


def test_preview_gives_fire_times_dst_notes_and_words(api: Api) -> None:
    response = api.post(
        "/preview",
        json={
            "expression": "30 2 * * *",
            "timezone": "America/New_York",
            "after": "2027-03-12T12:00:00Z",
            "count": 3,
        },
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["description"] == "At 02:30, every day (America/New_York)"
    notes = [fire["note"] for fire in preview["fires"]]
    assert notes[0] is None
    assert notes[1] is not None
    assert [fire["zone_abbreviation"] for fire in preview["fires"]] == ["EST", "EDT", "EDT"]


def test_preview_names_a_bad_field(api: Api) -> None:
    for body, field in [
        ({"expression": "61 * * * *"}, "expression"),
        ({"expression": "@daily", "timezone": "Nowhere/Land"}, "timezone"),
        ({"expression": "@daily", "count": 0}, "count"),
        ({"expression": "@daily", "after": "2027-01-01T00:00:00"}, "after"),
    ]:
        response = api.post("/preview", json=body)
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] == field, body


def test_health_is_200_when_healthy_and_503_listing_problems(
    api: Api, engine: Engine, rows: Rows
) -> None:
    unhealthy = api.get("/health")
    assert unhealthy.status_code == 503
    assert [problem["check"] for problem in unhealthy.json()["problems"]] == ["workers"]

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduler_workers (worker_id, hostname, pid, version) VALUES ('w', 'h', 1, 'v')"
            )
        )
    rows.schedule(enabled=True, next_run_at=text("now() + interval '1 hour'"))
    healthy = api.get("/health")
    assert healthy.status_code == 200, healthy.text
    assert healthy.json()["healthy"] is True

    workers = api.get("/workers").json()["items"]
    assert [(worker["worker_id"], worker["state"]) for worker in workers] == [("w", "live")]


def test_stats_overview(api: Api, rows: Rows) -> None:
    workflow = rows.workflow(name="sales")
    rows.schedule(workflow, enabled=True, next_run_at=text("now() - interval '1 hour'"))
    rows.schedule(workflow)
    overview = api.get("/stats").json()
    assert overview["schedules"] == {"due": 1, "disabled": 1}
    assert overview["due_not_claimed"] == 1
    assert overview["live_workers"] == 0


def test_a_schedules_preview_uses_its_own_spec_and_zone(api: Api, rows: Rows) -> None:
    rows.schedule(
        rows.workflow(name="sales"),
        name="early",
        cron_expression="30 2 * * *",
        timezone="America/New_York",
    )
    response = api.get(
        "/schedules/early/preview", params={"after": "2027-03-12T12:00:00Z", "count": 2}
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert (preview["expression"], preview["timezone"]) == ("30 2 * * *", "America/New_York")
    assert [fire["note"] is None for fire in preview["fires"]] == [True, False]
    assert api.get("/schedules/nowhere/preview").status_code == 404
