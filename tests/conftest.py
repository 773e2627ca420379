"""Shared test set-up. The ``azorus_connect`` pytest plugin (fixtures ``make_hub``, ``hub``,
``hub_client``, ``live_hub``) is registered by the package's entry point."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium per module (Playwright's sync API allows one driver at a time in a process)."""
    from tests.ui.browser import launch, sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()
