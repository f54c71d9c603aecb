"""The console in a real browser: headless Chromium from the Debian package (never a browser
download), driven by Playwright, against the real application served by uvicorn on a port of
its own, over a real PostgreSQL database of each test's own.

Where no Chromium is installed the tests skip and say so; CI installs it (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from sqlalchemy import Engine

from scheduler_daemon.api.app import create_app

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Without these Chromium keeps calling Google's hosts, which a closed network refuses.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"


def chromium_path() -> str | None:
    given = os.environ.get("SCHEDULER_TEST_CHROMIUM")
    if given:
        return given
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        reason = "no Chromium installed (apt-get install chromium); .ci/run installs it"
        if os.environ.get("SCHEDULER_TEST_REQUIRE_BROWSER"):
            pytest.fail(reason + ", and SCHEDULER_TEST_REQUIRE_BROWSER says these tests must run")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test's thread is not the main one
        pass


@pytest.fixture
def console_url(engine: Engine) -> Iterator[str]:
    """The app (API and console) served on a free port of 127.0.0.1."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(engine), log_level="warning", lifespan="off")
    server = Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the console's server did not start")
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def page(browser: Browser, console_url: str) -> Iterator[Page]:
    """A fresh browser context's page; closed before the server stops (``console_url``)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on(
        "console",
        lambda message: errors.append(message.text) if _script_error(message) else None,
    )
    yield opened
    context.close()
    assert not errors, f"the page reported errors: {errors}"


def _script_error(message: ConsoleMessage) -> bool:
    """An error of the page's own (a script, a refused script or style), not the browser's
    note that a page it loaded answered 4xx, which the tests provoke on purpose."""
    expected = "Failed to load resource: the server responded with a status of 4"
    return message.type == "error" and not message.text.startswith(expected)


def log_in(page: Page, base: str, token: str) -> None:
    page.goto(base + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A screenshot of the whole page: under docs/images when SCHEDULER_TEST_SCREENSHOTS is
    set (how the README's pictures are made), else in the test's own directory."""
    folder = SCREENSHOTS if os.environ.get("SCHEDULER_TEST_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
