"""What an operator does in the console, in a real browser: log in, build a schedule with the
cron builder while the preview follows, save it and find it, run it now, pause and resume it,
see a typo refused inline, and see no write action with a read token."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import Engine, text

from scheduler_daemon.domain import TokenRole
from tests.browser.conftest import log_in, screenshot
from tests.helpers import Rows, make_token


def _schedule_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM workflow_schedules")).scalar_one())


def test_an_operator_builds_saves_runs_pauses_and_resumes_a_schedule(
    page: Page, console_url: str, engine: Engine, rows: Rows, tmp_path: Path
) -> None:
    workflow_id = rows.workflow(name="daily-sales")
    log_in(page, console_url, make_token(engine, "alice", TokenRole.WRITE))
    expect(page.get_by_role("heading", name="Schedules")).to_be_visible()

    page.get_by_role("link", name="New schedule").click()
    page.get_by_label("Name", exact=True).fill("weekday-sales")
    page.get_by_label("Workflow").select_option(str(workflow_id))
    page.get_by_label("Repeat").select_option("daily")
    page.get_by_label("At (in the schedule's zone)").fill("09:00")
    page.get_by_label("Repeat").select_option("weekdays")
    expression = page.get_by_label("Expression")
    expect(expression).to_have_value("0 9 * * 1-5")
    page.get_by_label("Time zone").fill("America/New_York")
    preview = page.locator("#preview")
    # The preview follows the builder before anything is saved: the words, and what the
    # March clock change does to a 09:00 New York schedule.
    expect(preview).to_contain_text("At 09:00, Monday to Friday (America/New_York)")
    expect(preview).to_contain_text(re.compile(r"\d{4}-03-\d\d: clocks go forward 1 hour"))
    expect(preview).to_contain_text("EDT")
    assert _schedule_count(engine) == 0
    screenshot(page, "console-form", tmp_path)

    page.get_by_role("button", name="Create schedule").click()
    expect(page.get_by_role("status")).to_contain_text("Schedule created")
    expect(page.get_by_role("heading", name="weekday-sales")).to_be_visible()

    page.get_by_role("navigation").get_by_role("link", name="Schedules").click()
    page.get_by_label("Name contains").fill("weekday")
    listing = page.locator("#listing")
    expect(listing.get_by_role("link", name="weekday-sales")).to_be_visible()
    expect(listing).to_contain_text("At 09:00, Monday to Friday (America/New_York)")
    expect(listing).to_contain_text("0 9 * * 1-5")
    listing.get_by_role("link", name="weekday-sales").click()

    page.get_by_label("Parameter overrides (JSON, optional)").fill('{"lookback_days": 3}')
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("status")).to_contain_text("Run queued")
    runs = page.locator("table.timeline")
    expect(runs).to_contain_text("manual")
    expect(runs).to_contain_text("pending")
    expect(runs).to_contain_text('"lookback_days": 3')

    page.get_by_label("Reason").fill("upstream data late")
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("Paused")
    expect(page.locator(".banner.warn")).to_contain_text("upstream data late")
    expect(page.locator("ol.history")).to_contain_text("pause by console:alice")

    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text("Resumed")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    with engine.connect() as conn:
        paused_at = conn.execute(
            text("SELECT paused_at FROM workflow_schedules WHERE name = 'weekday-sales'")
        ).scalar_one()
    assert paused_at is None


def test_a_bad_cron_typed_by_hand_is_refused_inline_and_nothing_is_saved(
    page: Page, console_url: str, engine: Engine, rows: Rows
) -> None:
    workflow_id = rows.workflow(name="daily-sales")
    log_in(page, console_url, make_token(engine, "alice", TokenRole.WRITE))
    page.goto(console_url + "/schedules/new")
    page.get_by_label("Name", exact=True).fill("typo")
    page.get_by_label("Workflow").select_option(str(workflow_id))
    page.get_by_label("Expression").fill("0 25 * * *")
    # The preview says it at once...
    expect(page.locator("#preview-error")).to_contain_text("hour field '25'")
    expect(page.get_by_label("Repeat")).to_have_value("custom")
    # ...and saving shows the API's message beside the field, with what was typed kept.
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#form-errors")).to_contain_text("Nothing was saved")
    expect(page.locator("#spec-error")).to_contain_text("hour")
    expect(page.get_by_label("Expression")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Expression")).to_have_value("0 25 * * *")
    expect(page.get_by_label("Name", exact=True)).to_have_value("typo")
    assert _schedule_count(engine) == 0


def test_the_builder_reads_back_an_expression_edited_by_hand(
    page: Page, console_url: str, engine: Engine, rows: Rows
) -> None:
    rows.workflow(name="daily-sales")
    log_in(page, console_url, make_token(engine, "alice", TokenRole.WRITE))
    page.goto(console_url + "/schedules/new")
    expression = page.get_by_label("Expression")
    expression.fill("30 8 * * 1,3")
    expect(page.get_by_label("Repeat")).to_have_value("weekly")
    expect(page.get_by_label("At (in the schedule's zone)")).to_have_value("08:30")
    expect(page.get_by_role("checkbox", name="Mon")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Wed")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Fri")).not_to_be_checked()
    expression.fill("@every 90m")
    expect(page.get_by_label("Repeat")).to_have_value("interval")
    expression.fill("15 4 L * *")
    expect(page.get_by_label("Repeat")).to_have_value("monthly-last")
    expect(page.locator("#preview")).to_contain_text("last day of the month")
    # And back: the builder writes what it shows.
    page.get_by_label("Repeat").select_option("minutes")
    page.get_by_label("Every how many minutes").fill("20")
    expect(expression).to_have_value("*/20 * * * *")
    expect(page.locator("#preview")).to_contain_text("Every 20 minutes")


def test_a_read_token_sees_no_write_action(
    page: Page, console_url: str, engine: Engine, rows: Rows
) -> None:
    rows.schedule(name="nightly", enabled=True)
    log_in(page, console_url, make_token(engine, "viewer", TokenRole.READ))
    expect(page.get_by_role("link", name="nightly")).to_be_visible()
    expect(page.get_by_role("link", name="New schedule")).to_have_count(0)
    page.get_by_role("link", name="nightly").click()
    expect(page.get_by_role("heading", name="nightly")).to_be_visible()
    for action in ("Run now", "Pause", "Resume", "Disable", "Enable"):
        expect(page.get_by_role("button", name=action)).to_have_count(0)
    for action in ("Edit", "Delete…"):
        expect(page.get_by_role("link", name=action)).to_have_count(0)
    # Typing the address of a form does not help: the server refuses it too.
    page.goto(console_url + "/schedules/nightly/edit")
    expect(page.get_by_role("alert")).to_contain_text("read token")
