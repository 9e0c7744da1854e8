"""Browser tests: Debian's Chromium driven by Playwright against the real app.

`site` serves the app on its configured port (so the signed URLs it hands out point back at it);
`browser` is a headless Chromium started for the test; `Site.page` opens a page, signed in as a
test user if asked, that fails the test on any console error (a script blocked by the
Content-Security-Policy shows up there) and saves a screenshot under the test's temp dir.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    async_playwright,
)

from tests.fixtures.config import MakeConfig
from tests.gallery_support import Gallery, StartGallery
from videoforge.auth.sessions import SESSION_COOKIE

ROOT = Path(__file__).resolve().parent.parent
AXE_SOURCE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def chromium_path() -> str:
    path = shutil.which("chromium")
    assert path, "chromium is missing: `make services` installs Debian's package"
    return path


@pytest.fixture(name="browser")
async def browser_fixture() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Site:
    """The app as a browser sees it."""

    gallery: Gallery
    browser: Browser
    screenshots: Path
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Where each console error came from: "Failed to load resource" alone names nothing.
    error_sources: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gallery.config.server.base_url

    async def page(self, user: str | None = None, viewport: dict[str, int] | None = None) -> Page:
        """A fresh browser context (own cookies), signed in as `user` through the cookie."""
        context = await self.browser.new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
        self.contexts.append(context)
        if user is not None:
            token = self.gallery.authenticator.issue(user, admin=user == "root")
            await context.add_cookies(
                [{"name": SESSION_COOKIE, "value": token, "url": self.url, "httpOnly": True}]
            )
        page = await context.new_page()
        page.on(
            "console",
            lambda m: m.type == "error" and self.log_error(m.text, m.location.get("url", "")),
        )
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda exc: self.log_error(str(exc), ""))
        return page

    async def screenshot(self, page: Page, name: str) -> Path:
        """Save the whole page as `name.png` under the test's temp dir."""
        path = self.screenshots / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    def log_error(self, text: str, source: str) -> None:
        self.errors.append(text)
        self.error_sources.append(source)

    def assert_no_console_errors(self) -> None:
        assert self.errors == [], list(zip(self.errors, self.error_sources, strict=True))

    def assert_no_foreign_requests(self) -> None:
        """No page asked anything of an origin other than the app's own (a CDN's, say)."""
        origin = urlsplit(self.url)
        foreign = [
            url
            for url in self.requests
            if urlsplit(url)[:2] != origin[:2] and not url.startswith(("data:", "blob:"))
        ]
        assert foreign == [], foreign

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


StartSite = Callable[..., Awaitable[Site]]


@pytest.fixture(name="start_site")
async def start_site_fixture(
    start_gallery: StartGallery, make_config: MakeConfig, browser: Browser, tmp_path: Path
) -> AsyncIterator[StartSite]:
    """Serve the site on a test config with these sections (`make_config`'s keywords)."""
    sites: list[Site] = []

    async def start(**sections: Any) -> Site:
        gallery = await start_gallery(make_config(**sections))
        screenshots = tmp_path / "screenshots"
        screenshots.mkdir(exist_ok=True)
        sites.append(Site(gallery, browser, screenshots))
        return sites[-1]

    try:
        yield start
    finally:
        for site in sites:
            await site.close()


@pytest.fixture(name="site")
async def site_fixture(start_site: StartSite) -> Site:
    return await start_site(queue={"poll_interval": 0.2})


async def axe_violations(page: Page, rules: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run axe-core (WCAG 2 A and AA rules, labels and colour contrast among them) on the page.

    The script is evaluated through the DevTools protocol, which the page's CSP does not govern.
    """
    await page.evaluate(AXE_SOURCE.read_text(encoding="utf-8"))
    options: dict[str, Any] = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa"]}}
    if rules:
        options = {"runOnly": {"type": "rule", "values": list(rules)}}
    result = await page.evaluate("options => axe.run(document, options)", options)
    violations: list[dict[str, Any]] = result["violations"]
    return [
        {
            "id": v["id"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]],
        }
        for v in violations
    ]
