"""The system Chromium driven by Playwright: a real browser for the page tests, and nothing downloaded.

Chromium comes from Debian (`tests/sysdeps.py` installs it on first use); Playwright only drives it
(`executable_path`), so `playwright install` is never needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO
from tests.sysdeps import ensure_apt

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
# LLM_GATEWAY_TEST_SCREENSHOTS=docs/img refreshes the README's screenshots; otherwise they go to a temp dir
SCREENSHOTS = os.environ.get("LLM_GATEWAY_TEST_SCREENSHOTS", "")


# module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread while it is
# open, and every later test calling asyncio.run() would fail with "cannot be called from a running event loop"
@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    from playwright.sync_api import sync_playwright

    executable = ensure_apt("chromium")
    with sync_playwright() as pw:
        # launch() gives every run a fresh temporary profile (user-data dir)
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class RequestLog:
    """Every request a page made, to prove that nothing but the server was contacted."""

    def __init__(self, page) -> None:
        self.urls: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))

    def other_hosts(self, base_url: str) -> list[str]:
        own = urlsplit(base_url).netloc
        return [u for u in self.urls if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != own]


@pytest.fixture
def open_page(browser) -> Iterator:
    """open_page(url, viewport=None) -> (page, RequestLog); each page gets a fresh browser context."""
    contexts = []

    def open_(url: str, viewport: dict | None = None):
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        log = RequestLog(page)
        page.goto(url)
        return page, log

    yield open_
    for context in contexts:
        context.close()


def screenshot(page, name: str, tmp_path: Path) -> Path:
    folder = REPO / SCREENSHOTS if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path
