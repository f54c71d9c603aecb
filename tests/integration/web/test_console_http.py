"""The console's sessions and forms over HTTP (no browser): who gets in, what a forged or
stale form gets, what a read token gets, what reaches the audit trail, and what the pages
never let through (markup in names, redirects to other sites)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, text

from scheduler_daemon import tokens
from scheduler_daemon.api.app import create_app
from scheduler_daemon.domain import TokenRole
from scheduler_daemon.web.session import COOKIE
from tests.helpers import Rows, make_token


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(engine)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as test_client:
        yield test_client


def login_form(client: TestClient) -> str:
    """Open the login form; the CSRF token it carries (its pair is in a cookie)."""
    form = client.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert found is not None
    return found.group(1)


def post_login(client: TestClient, token: str, next_page: str = "/") -> Response:
    csrf = login_form(client)
    response: Response = client.post(
        "/login", data={"token": token, "next": next_page, "csrf_token": csrf}
    )
    return response


def log_in(client: TestClient, token: str) -> str:
    """Log in; the session's CSRF token, as the pages give it to their forms."""
    response = post_login(client, token)
    assert response.status_code == 303
    page = client.get("/")
    assert page.status_code == 200
    found = re.search(r'data-csrf-token="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_logging_in_gives_an_httponly_session_cookie_that_is_not_the_token(
    client: TestClient, engine: Engine
) -> None:
    token = make_token(engine, "alice", TokenRole.WRITE)
    response = post_login(client, token, "/schedules/new")
    assert response.status_code == 303
    assert response.headers["location"] == "/schedules/new"
    [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}=")]
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert token not in cookie
    secret = cookie.split(";")[0].split("=", 1)[1]
    stored = scalar(engine, "SELECT secret_hash FROM console_sessions")
    assert stored == tokens.hash_secret(secret)
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("token", ["", "sdt_not-a-token", "nonsense"])
def test_a_bad_token_gets_the_login_form_again_and_no_session(
    client: TestClient, engine: Engine, token: str
) -> None:
    response = post_login(client, token)
    assert response.status_code == 401
    assert f"{COOKIE}=" not in response.headers.get("set-cookie", "")
    assert 'role="alert"' in response.text
    assert scalar(engine, "SELECT count(*) FROM console_sessions") == 0


def test_without_a_session_pages_send_the_browser_to_log_in(client: TestClient) -> None:
    response = client.get("/schedules/anything?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fschedules%2Fanything%3Fx%3D1"
    partial = client.get("/preview?spec=@daily", headers={"HX-Request": "true"})
    assert partial.headers["HX-Redirect"].startswith("/login")
    assert client.post("/schedules/x/pause").status_code == 303


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:x"])
def test_logging_in_never_redirects_to_another_site(
    client: TestClient, engine: Engine, target: str
) -> None:
    token = make_token(engine, "alice", TokenRole.WRITE)
    response = post_login(client, token, target)
    assert response.headers["location"] == "/"


def test_a_login_posted_without_the_forms_pair_of_csrf_tokens_is_refused(
    client: TestClient, engine: Engine
) -> None:
    """Another site's page cannot log the browser in with a token of its choosing."""
    token = make_token(engine, "mallory", TokenRole.WRITE)
    for forged in ({}, {"csrf_token": "guessed"}):
        client.cookies.clear()
        response = client.post("/login", data={"token": token, **forged})
        assert response.status_code == 403
        assert COOKIE not in response.headers.get("set-cookie", "")
    login_form(client)
    response = client.post("/login", data={"token": token, "csrf_token": "guessed"})
    assert response.status_code == 403
    assert scalar(engine, "SELECT count(*) FROM console_sessions") == 0


def test_a_form_without_the_sessions_csrf_token_changes_nothing(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    schedule_id = rows.schedule(name="nightly", enabled=True)
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    for forged in ({}, {"csrf_token": "guessed"}, {"csrf_token": csrf[:-1]}):
        response = client.post(f"/schedules/{schedule_id}/pause", data={"reason": "x", **forged})
        assert response.status_code == 403
        assert "reload the page" in response.text
    assert scalar(engine, "SELECT paused_at FROM workflow_schedules") is None
    # The same form with the token does it.
    done = client.post(f"/schedules/{schedule_id}/pause", data={"csrf_token": csrf})
    assert done.status_code == 303
    assert scalar(engine, "SELECT paused_at IS NOT NULL FROM workflow_schedules") is True


def test_htmx_requests_may_send_the_csrf_token_as_a_header(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    schedule_id = rows.schedule(name="nightly", enabled=True)
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    response = client.post(
        f"/schedules/{schedule_id}/disable",
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == f"/schedules/{schedule_id}?notice=disabled"
    assert scalar(engine, "SELECT enabled FROM workflow_schedules") is False


def test_a_read_token_can_look_but_not_change(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    schedule_id = rows.schedule(name="nightly", enabled=True)
    csrf = log_in(client, make_token(engine, "viewer", TokenRole.READ))
    assert client.get(f"/schedules/{schedule_id}").status_code == 200
    for action in ("run", "pause", "disable", "delete", "edit"):
        response = client.post(
            f"/schedules/{schedule_id}/{action}", data={"csrf_token": csrf, "name": "x"}
        )
        assert response.status_code == 403, action
        assert "read token" in response.text
    assert client.get("/schedules/new").status_code == 403
    assert client.get(f"/schedules/{schedule_id}/delete").status_code == 403
    assert scalar(engine, "SELECT count(*) FROM schedule_runs") == 0
    assert scalar(engine, "SELECT enabled AND paused_at IS NULL FROM workflow_schedules")


def test_revoking_the_token_or_logging_out_ends_the_session(
    client: TestClient, engine: Engine
) -> None:
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    cookie = client.cookies[COOKIE]
    with engine.begin() as conn:
        tokens.revoke_token(conn, "alice")
    assert client.get("/").status_code == 303

    csrf = log_in(client, make_token(engine, "bob", TokenRole.WRITE))
    cookie = client.cookies[COOKIE]
    response = client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    client.cookies.set(COOKIE, cookie)  # a copy of the cookie kept from before
    assert client.get("/").status_code == 303
    assert (
        scalar(
            engine,
            "SELECT count(*) FROM console_sessions WHERE token_id IN "
            "(SELECT id FROM api_tokens WHERE name = 'bob')",
        )
        == 0
    )


def test_an_expired_session_logs_in_again(client: TestClient, engine: Engine) -> None:
    log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    with engine.begin() as conn:
        conn.execute(text("UPDATE console_sessions SET expires_at = now() - interval '1 second'"))
    assert client.get("/").status_code == 303


def test_the_consoles_changes_are_audited_with_the_tokens_name(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    workflow_id = rows.workflow(name="daily-sales")
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    response = client.post(
        "/schedules/new",
        data={
            "csrf_token": csrf,
            "name": "weekday",
            "workflow": str(workflow_id),
            "spec": "0 9 * * 1-5",
            "timezone": "America/New_York",
            "misfire_policy": "run_once",
            "overlap_policy": "skip",
            "parameters": '{"lookback_days": 7}',
            "enabled": "on",
        },
    )
    assert response.status_code == 303
    schedule_id = uuid.UUID(response.headers["location"].split("/")[2].split("?")[0])
    with engine.connect() as conn:
        row = (
            conn.execute(
                text("SELECT * FROM workflow_schedules WHERE id = :id"), {"id": schedule_id}
            )
            .mappings()
            .one()
        )
        actors = (
            conn.execute(
                text("SELECT DISTINCT actor FROM audit_log WHERE entity_id = :id"),
                {"id": schedule_id},
            )
            .scalars()
            .all()
        )
    assert row["cron_expression"] == "0 9 * * 1-5"
    assert row["misfire_policy"] == "run_once"
    assert row["parameters"] == {"lookback_days": 7}
    assert row["enabled"]
    assert row["next_run_at"] is not None
    assert row["user_id"] == "alice"
    assert actors == ["console:alice"]


def test_an_edit_made_from_a_stale_form_is_refused(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    schedule_id = rows.schedule(name="nightly", cron_expression="0 2 * * *")
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    form = client.get(f"/schedules/{schedule_id}/edit").text
    version = re.search(r'name="version" value="([^"]+)"', form)
    assert version is not None
    # Someone else changes it meanwhile.
    with engine.begin() as conn:
        conn.execute(text("UPDATE workflow_schedules SET cron_expression = '0 3 * * *'"))
    response = client.post(
        f"/schedules/{schedule_id}/edit",
        data={
            "csrf_token": csrf,
            "version": version.group(1).replace("&#34;", '"'),
            "name": "nightly",
            "workflow": str(scalar(engine, "SELECT workflow_id FROM workflow_schedules")),
            "spec": "0 4 * * *",
        },
    )
    assert response.status_code == 422
    assert "someone changed this schedule" in response.text
    assert scalar(engine, "SELECT cron_expression FROM workflow_schedules") == "0 3 * * *"


def test_an_edit_from_a_current_form_saves_every_field(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    schedule_id = rows.schedule(name="nightly", cron_expression="0 2 * * *")
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    form = client.get(f"/schedules/{schedule_id}/edit").text
    version = re.search(r'name="version" value="([^"]+)"', form)
    assert version is not None
    response = client.post(
        f"/schedules/{schedule_id}/edit",
        data={
            "csrf_token": csrf,
            "version": version.group(1).replace("&#34;", '"'),
            "name": "nightly-renamed",
            "workflow": str(scalar(engine, "SELECT workflow_id FROM workflow_schedules")),
            "spec": "@every 6h",
            "timezone": "Europe/Paris",
            "overlap_policy": "allow",
        },
    )
    assert response.status_code == 303
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM workflow_schedules")).mappings().one()
    assert row["name"] == "nightly-renamed"
    assert row["interval_seconds"] == 6 * 3600
    assert row["cron_expression"] is None
    assert row["timezone"] == "Europe/Paris"
    assert row["overlap_policy"] == "allow"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spec", "0 9 * *", "expected 5"),
        ("timezone", "Mars/Olympus", "Mars/Olympus"),
        ("misfire_grace_seconds", "soon", "not a whole number"),
        ("parameters", "[1, 2]", "JSON object"),
        ("parameters", "{oops", "not JSON"),
        ("anchor", "tomorrow", "not a date and time"),
        ("name", "", "required"),
    ],
)
def test_a_mistake_in_the_form_is_shown_beside_its_field_and_nothing_is_saved(
    client: TestClient, engine: Engine, rows: Rows, field: str, value: str, message: str
) -> None:
    workflow_id = rows.workflow(name="daily-sales")
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    data = {
        "csrf_token": csrf,
        "name": "weekday",
        "workflow": str(workflow_id),
        "spec": "@every 1h",
        "timezone": "UTC",
    } | {field: value}
    response = client.post("/schedules/new", data=data)
    assert response.status_code == 422
    shown = re.search(rf'id="{field}-error" role="alert">([^<]*)<', response.text)
    assert shown is not None, response.text
    assert message in shown.group(1).replace("&#39;", "'")
    assert scalar(engine, "SELECT count(*) FROM workflow_schedules") == 0


def test_run_now_with_parameters_that_are_not_json_queues_nothing(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    schedule_id = rows.schedule(name="nightly", enabled=True)
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    response = client.post(
        f"/schedules/{schedule_id}/run", data={"csrf_token": csrf, "parameters": "{x"}
    )
    assert response.status_code == 422
    assert "not JSON" in response.text
    assert scalar(engine, "SELECT count(*) FROM schedule_runs") == 0


def test_deleting_asks_first_then_deletes_softly(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    schedule_id = rows.schedule(name="nightly", enabled=True)
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    question = client.get(f"/schedules/{schedule_id}/delete")
    assert question.status_code == 200
    assert "Delete “nightly”?" in question.text
    assert scalar(engine, "SELECT deleted_at FROM workflow_schedules") is None
    response = client.post(f"/schedules/{schedule_id}/delete", data={"csrf_token": csrf})
    assert response.headers["location"] == "/?notice=deleted"
    assert scalar(engine, "SELECT deleted_at IS NOT NULL FROM workflow_schedules") is True


def test_names_are_shown_as_text_never_as_markup(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    rows.schedule(name='<script>alert("x")</script>', enabled=True)
    log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    page = client.get("/")
    assert '<script>alert("x")</script>' not in page.text
    assert "&lt;script&gt;" in page.text


def test_pages_forbid_foreign_scripts_and_framing(client: TestClient, engine: Engine) -> None:
    log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    for path in ("/", "/login", "/daemons"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_a_schedule_that_is_not_there_gets_a_404_page(client: TestClient, engine: Engine) -> None:
    log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    response = client.get("/schedules/no-such-schedule")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "no-such-schedule" in response.text


def test_the_assets_are_served_from_the_package(client: TestClient) -> None:
    for asset in ("htmx.min.js", "console.js", "console.css"):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 1000


def test_a_filter_naming_no_workflow_says_so_above_an_empty_list(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    rows.schedule(name="nightly")
    log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    page = client.get("/?workflow=no-such-workflow")
    assert page.status_code == 200
    assert 'id="filter-error"' in page.text
    assert "no-such-workflow" in page.text
    assert "nightly" not in page.text


def test_pause_until_is_read_in_the_schedules_own_zone(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    schedule_id = rows.schedule(name="nightly", timezone="America/New_York", enabled=True)
    csrf = log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    response = client.post(
        f"/schedules/{schedule_id}/pause",
        data={"csrf_token": csrf, "reason": "month-end", "until": "2030-07-20T09:00"},
    )
    assert response.status_code == 303
    with engine.connect() as conn:
        row = (
            conn.execute(text("SELECT paused_until, pause_reason FROM workflow_schedules"))
            .mappings()
            .one()
        )
    assert row["paused_until"].isoformat() == "2030-07-20T13:00:00+00:00"
    assert row["pause_reason"] == "month-end"


def test_a_stored_short_interval_is_shown_as_the_daemon_runs_it(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    """The demo's '@every 10s' is shorter than a new schedule may have, yet it runs: its page
    shows its fire times, not an error."""
    schedule_id = rows.schedule(
        name="demo", cron_expression=None, interval_seconds=10, enabled=True
    )
    log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    page = client.get(f"/schedules/{schedule_id}").text
    assert "below the minimum" not in page
    assert page.count("<tr><td>") >= 10
    assert "Every 10 seconds" in page


def test_a_disabled_schedule_shows_no_next_run(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    rows.schedule(name="retired", enabled=False, next_run_at=datetime(2030, 1, 1, 9, tzinfo=UTC))
    log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    listing = client.get("/").text
    assert "2030-01-01" not in listing


def test_a_schedule_a_sync_file_manages_says_so_where_it_is_edited(
    client: TestClient, engine: Engine, rows: Rows
) -> None:
    schedule_id = rows.schedule(name="weekday", config_key="weekday-sales")
    log_in(client, make_token(engine, "alice", TokenRole.WRITE))
    for path in (f"/schedules/{schedule_id}", f"/schedules/{schedule_id}/edit"):
        page = client.get(path).text
        assert 'id="managed"' in page
        assert "weekday-sales" in page
    plain = rows.schedule(name="by-hand")
    assert 'id="managed"' not in client.get(f"/schedules/{plain}").text
