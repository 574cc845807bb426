"""What the browser tests share: the recorder of the browser's requests, the site under test, signing in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page

from tests.browser.seed import PASSWORD, World

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
OPERATOR = "olga@example.com"
VIEWER = "vic@example.com"


@dataclass
class Recorder:
    """Every URL the browser asked for, and the console errors (a CSP refusal shows up there)."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def foreign(self) -> list[str]:
        """Requests to anything but 127.0.0.1 (data:, blob: and about: URLs leave the browser for nowhere)."""
        local = ("data", "blob", "about")
        return [u for u in self.requests if urlsplit(u).scheme not in local and urlsplit(u).hostname != "127.0.0.1"]


@dataclass
class Site:
    """The running dashboard: its base URL, the seeded world and a browser page."""

    base: str
    world: World
    page: Page
    recorder: Recorder

    def url(self, path: str) -> str:
        """The absolute URL of `path`."""
        return self.base + path

    def screenshot(self, name: str) -> Path:
        """Save the page as tests/artifacts/<name>.png (CI keeps the folder)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(target), full_page=True)
        return target


def sign_in(site: Site, email: str, path: str = "/dashboard") -> None:
    """Open `path`, which asks to sign in, fill the login form and land back on `path`."""
    site.page.goto(site.url(path))
    assert "/login" in site.page.url
    site.page.fill("#email", email)
    site.page.fill("#password", PASSWORD)
    site.page.click("button[type=submit]")
    site.page.wait_for_url(site.url(path))
