"""/api/v1/accounts, /instances, /workflows: the catalog's CRUD, as the CLI has it."""

from __future__ import annotations

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
