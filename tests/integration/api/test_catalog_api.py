"""/api/v1/accounts, /instances, /workflows: the catalog's CRUD, as the CLI has it."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, text

from scheduler_daemon import catalog
from scheduler_daemon.api.versions import etag
from scheduler_daemon.references import Kind
from tests.acceptance.daemons import wait_until
from tests.integration.api.conftest import Api


def test_the_catalog_is_built_and_read_through_the_api(api: Api) -> None:
    account = api.post("/accounts", json={"name": "acme", "account_id": "ENTITY1", "region": "NA"})
    assert account.status_code == 201, account.text
    instance = api.post(
        "/instances", json={"name": "acme-us", "instance_id": "amcabc123", "account": "acme"}
    )
    assert instance.status_code == 201, instance.text
    workflow = api.post(
        "/workflows",
        json={
            "name": "sales",
            "instance": "acme-us",
            "amc_workflow_id": "wf-1",
            "parameters": {"days": 7},
        },
    )
    assert workflow.status_code == 201, workflow.text

    assert api.get("/instances/acme-us").json()["account_name"] == "acme"
    assert api.get("/workflows/sales").json()["instance_name"] == "acme-us"
    assert [row["name"] for row in api.get("/accounts").json()["items"]] == ["acme"]
    assert api.get(account.headers["Location"].removeprefix("/api/v1")).json()["name"] == "acme"


def test_catalog_changes_honour_if_match_and_refuse_what_is_in_use(api: Api) -> None:
    api.post("/accounts", json={"name": "acme", "account_id": "ENTITY1"})
    api.post("/instances", json={"name": "acme-us", "instance_id": "amcabc123", "account": "acme"})
    tag = api.get("/accounts/acme").headers["ETag"]

    renamed = api.patch("/accounts/acme", json={"region": "EU"}, headers={"If-Match": tag})
    assert renamed.status_code == 200
    assert renamed.json()["region"] == "EU"
    stale = api.patch("/accounts/acme", json={"region": "FE"}, headers={"If-Match": tag})
    assert stale.status_code == 412
    assert api.get("/accounts/acme").json()["region"] == "EU"

    in_use = api.delete("/accounts/acme")
    assert in_use.status_code == 409
    assert "acme-us" in in_use.json()["detail"]

    duplicate = api.post(
        "/instances", json={"name": "acme-us", "instance_id": "amcother", "account": "acme"}
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"][0]["field"] == "name"

    assert api.delete("/instances/acme-us").status_code == 204
    assert api.delete("/accounts/acme").status_code == 204
    assert api.get("/accounts/acme").status_code == 404


def test_a_bad_catalog_field_is_a_problem_naming_it(api: Api) -> None:
    blank = api.post("/accounts", json={"name": " ", "account_id": "ENTITY1"})
    assert blank.status_code == 422
    assert blank.json()["errors"][0]["field"] == "name"
    unknown = api.post("/instances", json={"name": "x", "instance_id": "amc1", "account": "nobody"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "account"


def test_a_locked_read_makes_a_second_editor_wait_and_see_the_first_change(engine: Engine) -> None:
    """What If-Match is checked against is read under the row's lock: a second editor's read
    waits for the first editor's change to commit, then sees it (its stale tag gets 412)."""
    with engine.begin() as conn:
        catalog.create(conn, Kind.ACCOUNT, {"name": "acme", "account_id": "ENTITY1"})
    seen: list[dict[str, Any]] = []

    def second_editor() -> None:
        with engine.begin() as conn:
            seen.append(catalog.show(conn, Kind.ACCOUNT, "acme", lock=True))

    with engine.begin() as first:
        before = catalog.show(first, Kind.ACCOUNT, "acme", lock=True)
        thread = threading.Thread(target=second_editor)
        thread.start()
        wait_until(lambda: waiting_for_a_lock(engine) == 1, 10, "the second editor to wait")
        catalog.update(first, Kind.ACCOUNT, "acme", {"region": "EU"})
    thread.join(10)

    assert before["region"] is None
    assert [row["region"] for row in seen] == ["EU"]
    assert etag(seen[0]) != etag(before)


def waiting_for_a_lock(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
        )
