"""Fixtures of the panel's browser tests: Debian's chromium driven by Playwright (one
browser for this package, a fresh context per page), and a shop (shop.py) whose processes end
with the test.

Chromium missing: the tests skip, except in CI (`CI` or `PDVSYNC_REQUIRE_CHROMIUM=1`), where
they fail, as PostgreSQL's and HAProxy's do; `.ci/run` installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .panel import PanelPage
from .shop import DESKTOP, Shop, chromium_binary, launch_browser, new_context

REQUIRED = os.environ.get("PDVSYNC_REQUIRE_CHROMIUM") == "1" or os.environ.get(
    "CI", ""
).lower() in ("1", "true", "yes")


# Package scope, not session: Playwright's sync API keeps an event loop running in the main
# thread while it is open, and the suites after this one use asyncio.run().
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if chromium_binary() is None:
        if REQUIRED:
            pytest.fail("chromium is required here (apt-get install chromium; .ci/run does)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = launch_browser(playwright)
        yield instance
        instance.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """`new_page(base_url, viewport=DESKTOP, **context_args)` -> a PanelPage in a fresh
    browser context (its own cookies); every context is closed at the end of the test."""
    contexts: list[Any] = []

    def make(
        base_url: str, viewport: dict[str, int] | None = None, **context_args: Any
    ) -> PanelPage:
        context = new_context(browser, base_url, viewport or DESKTOP, **context_args)
        contexts.append(context)
        return PanelPage(context.new_page(), base_url)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path)
    yield s
    s.close()
