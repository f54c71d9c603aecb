"""The four pages with realistic rows: what each shows, that each is usable at a phone's width
and by keyboard, and that every control has a label. The screenshots in docs/images are taken
here (SCHEDULER_TEST_SCREENSHOTS=1)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, ViewportSize, expect
from sqlalchemy import Engine, text

from scheduler_daemon.db.engine import libpq_url
from scheduler_daemon.db.tables import scheduler_workers
from scheduler_daemon.domain import TokenRole
from scheduler_daemon.timing import parse_spec
from tests.browser.conftest import log_in, screenshot
from tests.helpers import Rows, make_token

PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def live_daemon(engine: Engine) -> Iterator[str]:
    """A worker whose session lock is held by a connection of the test's: live."""
    worker_id = "host-a:4242:1a2b3c"
    with psycopg.connect(libpq_url(engine), autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_advisory_lock(scheduler_worker_lock_key(%s)), pg_backend_pid()",
            (worker_id,),
        ).fetchone()
        assert row is not None
        with engine.begin() as setup:
            setup.execute(
                scheduler_workers.insert().values(
                    worker_id=worker_id,
                    hostname="host-a",
                    pid=4242,
                    version="0.1.0",
                    session_pid=int(row[1]),
                )
            )
        yield worker_id


def seed(rows: Rows, engine: Engine) -> uuid.UUID:
    """A few schedules in the states an operator meets, and a history of runs for one."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    def next_fire(expression: str, timezone: str = "UTC") -> datetime:
        return parse_spec(expression, timezone).next_after(now)

    account = rows.account(name="acme-us", account_id="ENTITY1ACME")
    instance = rows.instance(account, name="amc-us-main", instance_id="amcus1main")
    sales = rows.workflow(instance, name="daily-sales")
    audience = rows.workflow(instance, name="audience-overlap")
    weekday = rows.schedule(
        sales,
        name="sales-weekday-morning",
        cron_expression="0 9 * * 1-5",
        timezone="America/New_York",
        enabled=True,
        next_run_at=next_fire("0 9 * * 1-5", "America/New_York"),
    )
    rows.schedule(
        audience,
        name="audience-every-6h",
        cron_expression=None,
        interval_seconds=6 * 3600,
        enabled=True,
        next_run_at=now + timedelta(hours=2),
    )
    rows.schedule(
        sales,
        name="night-rollup",
        cron_expression="30 2 * * *",
        timezone="America/New_York",
        enabled=True,
        misfire_policy="run_all",
        next_run_at=next_fire("30 2 * * *", "America/New_York"),
    )
    rows.schedule(
        audience,
        name="paused-backfill",
        cron_expression="0 6 1 * *",
        enabled=True,
        paused_at=now - timedelta(days=1),
        pause_reason="waiting for the Q3 data refresh",
        next_run_at=next_fire("0 6 1 * *"),
    )
    rows.schedule(
        sales,
        name="failing-export",
        cron_expression="15 * * * *",
        enabled=True,
        consecutive_failures=3,
        last_error="AMC: query timed out after 3600 s",
        next_run_at=next_fire("15 * * * *"),
    )
    rows.schedule(sales, name="retired-report", cron_expression="0 0 * * 0", enabled=False)
    weekday_spec = parse_spec("0 9 * * 1-5", "America/New_York")
    slots = weekday_spec.fires_after(now - timedelta(days=8), 6)
    past = [slot for slot in slots if slot < now][-4:]
    outcomes: list[tuple[str, dict[str, Any]]] = [
        ("succeeded", {}),
        ("failed", {"error_message": "AMC: Query exceeded the maximum runtime"}),
        ("skipped", {"skip_reason": "misfire", "missed_slots": 2}),
        ("succeeded", {}),
    ]
    for days, (slot, (status, extra)) in enumerate(
        zip(reversed(past), outcomes, strict=True), start=1
    ):
        ran = status != "skipped"
        rows.run(
            weekday,
            scheduled_for=slot,
            status=status,
            started_at=slot + timedelta(seconds=0.4) if ran else None,
            finished_at=slot + timedelta(minutes=7) if ran else None,
            amc_execution_id=f"exec-{days:04d}" if ran else None,
            **extra,
        )
    rows.run(
        weekday,
        scheduled_for=now - timedelta(hours=2),
        trigger="manual",
        status="succeeded",
        started_at=now - timedelta(hours=2) + timedelta(seconds=1.2),
        finished_at=now - timedelta(hours=1, minutes=50),
        amc_execution_id="exec-manual",
        parameters_override={"lookback_days": 3},
    )
    return weekday


def assert_fits(page: Page) -> None:
    """Nothing wider than the screen: tables scroll inside their own box."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    widest = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > window.innerWidth)
            .slice(0, 3).map(el => el.outerHTML.slice(0, 120))"""
    )
    assert overflow <= 0, f"{page.url} is {overflow} px wider than the screen: {widest}"


def assert_labelled(page: Page) -> None:
    """Every visible control has an accessible name."""
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !(el.tagName === 'BUTTON' && el.textContent.trim()))
            .map(el => el.outerHTML)"""
    )
    assert unnamed == []


def test_the_four_pages_show_what_operators_look_for(
    page: Page,
    console_url: str,
    engine: Engine,
    rows: Rows,
    live_daemon: str,
    tmp_path: Path,
) -> None:
    weekday = seed(rows, engine)
    log_in(page, console_url, make_token(engine, "alice", TokenRole.WRITE))

    listing = page.locator("#listing")
    expect(listing).to_contain_text("At 09:00, Monday to Friday (America/New_York)")
    expect(listing).to_contain_text("Every 6 hours")
    expect(listing.locator(".badge", has_text="paused")).to_be_visible()
    expect(listing).to_contain_text("waiting for the Q3 data refresh")
    expect(listing.locator(".badge", has_text="failing ×3")).to_be_visible()
    expect(listing.locator(".badge", has_text="disabled")).to_be_visible()
    expect(page.get_by_text("No live daemon")).to_have_count(0)
    assert_labelled(page)
    screenshot(page, "console-schedules", tmp_path)

    page.goto(f"{console_url}/schedules/{weekday}")
    timeline = page.locator("table.timeline")
    expect(timeline).to_contain_text("skipped: misfire")
    expect(timeline).to_contain_text("2 slots missed")
    expect(timeline).to_contain_text("AMC: Query exceeded the maximum runtime")
    expect(timeline).to_contain_text("exec-manual")
    expect(page.locator("table.fires tbody tr")).to_have_count(10)
    expect(page.locator(".changes")).to_contain_text("clocks go")
    expect(page.get_by_role("heading", name="Statistics")).to_be_visible()
    assert_labelled(page)
    screenshot(page, "console-schedule", tmp_path)

    page.goto(f"{console_url}/schedules/{weekday}/edit")
    expect(page.get_by_label("Repeat")).to_have_value("weekdays")
    expect(page.locator("#preview")).to_contain_text("Monday to Friday")
    assert_labelled(page)

    page.goto(f"{console_url}/daemons")
    expect(page.locator("table.workers")).to_contain_text(live_daemon)
    expect(page.locator("table.workers .badge", has_text="live")).to_be_visible()
    expect(page.locator("table.checks")).to_contain_text("workers")
    expect(page.locator("table.checks")).to_contain_text("failures")
    screenshot(page, "console-daemons", tmp_path)

    page.set_viewport_size(PHONE)
    for path in ("/", f"/schedules/{weekday}", f"/schedules/{weekday}/edit", "/daemons"):
        page.goto(console_url + path)
        assert_fits(page)


def test_no_live_daemon_is_said_on_the_list_and_beside_each_schedule_it_stops(
    page: Page, console_url: str, engine: Engine, rows: Rows
) -> None:
    rows.schedule(name="lonely", enabled=True, next_run_at=datetime.now(UTC) + timedelta(hours=1))
    log_in(page, console_url, make_token(engine, "alice", TokenRole.WRITE))
    expect(page.get_by_role("alert")).to_contain_text("No live daemon")
    expect(page.locator("#listing")).to_contain_text("no live daemon: nothing runs it")
    expect(page.locator("#listing")).to_contain_text("misfire policy skip")


def test_the_console_works_from_the_keyboard(
    page: Page, console_url: str, engine: Engine, rows: Rows
) -> None:
    rows.schedule(name="keyboard-target", enabled=True)
    page.goto(console_url + "/login")
    page.keyboard.type(make_token(engine, "alice", TokenRole.WRITE))  # the field has focus
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Schedules")).to_be_visible()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "keyboard-target":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="keyboard-target")).to_be_visible()


def test_the_list_pages_through_many_schedules(
    page: Page, console_url: str, engine: Engine, rows: Rows
) -> None:
    rows.schedules(120)
    log_in(page, console_url, make_token(engine, "alice", TokenRole.WRITE))
    seen: list[str] = []
    while True:
        seen += page.locator("#listing tbody td:first-child a").all_inner_texts()
        following = page.get_by_role("link", name="Next 50 →")
        if not following.count():
            break
        following.click()
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM workflow_schedules ORDER BY name")).scalars()
        assert seen == list(names)
