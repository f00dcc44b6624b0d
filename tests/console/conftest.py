"""Console fixtures: one headless Chromium per session (Debian's, driven by Playwright),
a fresh browser context per test, and the gateway stack under test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from tests.console.support import Stack, start_stack
from tests.gateway.support import Spawn

CHROMIUM = os.environ.get("MCP_TEST_CHROMIUM", "/usr/bin/chromium")
# What a root, offline sandbox needs. Playwright adds --headless and gives every
# launch a fresh temporary user-data-dir of its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-browser.sh (installs Debian's chromium)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        await chromium.close()


class Watched:
    """A browser page plus what it reported: console messages and dialogs (alert() would mean injected script)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._on_console)
        page.on("dialog", self._on_dialog)

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"{message.type}: {message.text}")

    async def _on_dialog(self, dialog: object) -> None:
        self.dialogs.append(str(getattr(dialog, "message", "")))
        await dialog.dismiss()  # type: ignore[attr-defined]

    def csp_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m]


NewPage = Callable[[], Awaitable[Watched]]


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[NewPage]:
    """Pages in fresh browser contexts (own cookies), closed at teardown."""
    contexts: list[BrowserContext] = []

    async def make() -> Watched:
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return Watched(await context.new_page())

    yield make
    for context in contexts:
        await context.close()


@pytest.fixture
def stack(pg_dsn: str, spawn: Spawn, tmp_path: Path) -> Stack:
    """A real gateway on real PostgreSQL, with the feature server and a hostile server as upstreams."""
    return start_stack(spawn, tmp_path, pg_dsn)
