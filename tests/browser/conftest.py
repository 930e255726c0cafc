"""The observer page in a real browser: Debian's Chromium driven by Playwright, against a daemon,
its embedded server and its gateway running on a thread of the test process.

Run with ``make test-browser`` (it installs Chromium and the ``browser`` extra); ``make test``
leaves this folder out. Every test gets a fresh page (its own browser context, so its own
cookie jar) and ends by checking that the page logged no console error and saw no failed
request; a screenshot of each page is kept in ``tests/browser/artifacts/``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from playwright.sync_api import Request as BrowserRequest
from playwright.sync_api import Response as BrowserResponse

from streamvisor.mockapi import MockAPIConfig
from streamvisor.testing import GatewayThread, gateway_thread

#: Debian's Chromium (Playwright's own browser download does not work here).
CHROMIUM = Path(os.environ.get("STREAMVISOR_CHROMIUM", "/usr/bin/chromium"))
#: Flags that let it start headless as root on a machine without internet access: without the
#: background-networking ones it stalls on refused connections to Google's services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: Playwright's timeout (ms) for a locator's expectation.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test-browser` installs it (apt)")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    """One daemon for the whole suite. Tokens are paced (a chat takes about a second, so the
    page shows it streaming) and background responses stay queued for a second and a half
    (so a cancel from the page wins)."""
    mockapi = MockAPIConfig(token_delay=0.015, queue_delay=1.5, poll_after_ms=20)
    with gateway_thread(tmp_path_factory.mktemp("daemon"), mockapi=mockapi) as daemon:
        yield daemon


#: A request of the page's event streams cut by a navigation.
_CUT_STREAM = r"request failed: GET \S+/events\?topic=\S+ net::ERR_ABORTED"


class Observer:
    """A browser page on the observer, and what went wrong on it (console errors, page
    errors, failed requests, HTTP errors)."""

    def __init__(self, page: Page, running: GatewayThread) -> None:
        self.page = page
        self.running = running
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _request_failed(self, request: BrowserRequest) -> None:
        self.problems.append(f"request failed: {request.method} {request.url} {request.failure}")

    def _response(self, response: BrowserResponse) -> None:
        if response.status >= 400:
            self.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )

    def open(self) -> None:
        """Load the page as the daemon's printed URL does (``/?token=``: sets the cookie)."""
        self.page.goto(f"{self.running.url}/?token={self.running.token}")
        # Loaded: the tree's first poll has answered.
        self.page.locator("#tree li").first.wait_for(timeout=TIMEOUT_MS)

    def reload(self) -> None:
        """Reload the page. Its event streams are cut by the navigation (``ERR_ABORTED``):
        those are the reload's doing, not failures of the page."""
        before = len(self.problems)
        self.page.reload()
        self.page.locator("#tree li").first.wait_for(timeout=TIMEOUT_MS)
        self.problems[before:] = [
            p for p in self.problems[before:] if not re.fullmatch(_CUT_STREAM, p)
        ]

    def eval(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        """No console error or warning, no uncaught exception, no failed or refused request."""
        assert self.problems == []


@pytest.fixture
def observer(
    browser: Browser, running: GatewayThread, request: pytest.FixtureRequest
) -> Iterator[Observer]:
    """A fresh page on the observer at 1,280 px; a screenshot of it is kept when the test ends,
    and the test fails if the page logged an error or saw a failed request."""
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = Observer(page, running)
    watched.open()
    try:
        yield watched
        problems = list(watched.problems)  # before closing aborts the page's event streams
    finally:
        try:
            watched.screenshot(request.node.name)
        finally:
            context.close()
    assert problems == [], "the page had problems"


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll ``predicate`` (a check outside the page, e.g. the daemon's state) until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.05)
