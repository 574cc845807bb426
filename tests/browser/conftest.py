"""A real browser for the dashboard tests: Debian's chromium driven by Playwright, headless, with a fresh
profile; every request it makes is recorded, and a request to anything but 127.0.0.1 fails the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from app.config import Settings
from tests.browser.harness import OPERATOR, VIEWER, Recorder, Site
from tests.browser.seed import World, add_user, seed_world
from tests.web_server import running_web

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's chromium; a missing one fails (never skips) with how to install it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard's browser tests need Debian's chromium. "
            "Install it with `sudo apt-get install chromium` (CI does so in .ci/run)."
        )
    return CHROMIUM


@pytest.fixture
def web_settings(mongo_uri: str, db_name: str, tmp_path: Path) -> Settings:
    """The service's settings for this test's database."""
    return Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="b" * 40)


@pytest.fixture
def world(sync_db: Any, mongo_uri: str, db_name: str) -> World:
    """The seeded campaigns, account, leads and uncertain send, with an operator and a viewer who can sign in."""
    add_user(mongo_uri, db_name, OPERATOR, "operator")
    add_user(mongo_uri, db_name, VIEWER, "viewer")
    return seed_world(sync_db, datetime.now(UTC))


@pytest.fixture
def browser_context(chromium_path: Path, tmp_path: Path) -> Iterator[BrowserContext]:
    """A headless chromium with a fresh profile in this test's temporary folder."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium_path),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def site(web_settings: Settings, world: World, browser_context: BrowserContext) -> Iterator[Site]:
    """The dashboard under uvicorn on loopback and a browser page on it; afterwards, no request may have left
    127.0.0.1 and no console error (such as a refused script or style) may have been logged."""
    recorder = Recorder()
    browser_context.on("request", lambda request: recorder.requests.append(request.url))
    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    page.on("console", lambda m: recorder.console_errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda dialog: dialog.accept())
    page.set_default_timeout(15_000)
    with running_web(web_settings) as client:
        yield Site(str(client.base_url).rstrip("/"), world, page, recorder)
    assert recorder.requests, "the browser made no request at all"
    assert recorder.foreign() == [], f"requests outside 127.0.0.1: {recorder.foreign()}"
    assert recorder.console_errors == [], f"console errors: {recorder.console_errors}"
