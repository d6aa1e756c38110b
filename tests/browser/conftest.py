"""Fixtures for the browser tests: the app served by waitress on a free port, a headless Chromium, a page.

Chromium is Debian's (/usr/bin/chromium); Playwright never downloads a browser here.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, make_operator

CHROMIUM = "/usr/bin/chromium"
# The background-networking flags matter: without them this closed network refuses Chromium's connections.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (Debian package `chromium`); browser tests skipped")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


# Per module, not per session: Playwright's sync API keeps an asyncio loop running in this thread
# while it lives, and later tests that call asyncio.run() would find it.
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page in a fresh browser context (no cookies) for each test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(10_000)
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture
def login(page, live_server, host):
    """Logs the page in through the form: `login("cashier")` makes the operator unless create=False."""

    def _login(role: str, username: str | None = None, password: str = PASSWORD, *, create: bool = True):
        username = username or f"{role}_web"
        if create:
            make_operator(host, username, role, password)
        page.goto(live_server("/login"))
        page.fill("#username", username)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("button[type=submit]")
        return page

    return _login
