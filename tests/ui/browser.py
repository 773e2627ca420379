"""Browser-test plumbing: Debian's chromium driven by Playwright, pages that record console errors."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Browser, Page, Playwright, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")


def wait_for(condition: Any, *, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition()`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def launch(playwright: Playwright) -> Browser:
    """Debian's chromium, headless, driven by Playwright over CDP."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--disable-gpu"])


@dataclass
class ConsoleLog:
    """Console errors and uncaught exceptions seen by one page."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        def on_console(msg: Any) -> None:
            if msg.type == "error":
                self.errors.append(f"{page.url}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        return page

    def allow(self, expected: str) -> None:
        """Take out the errors an intended refusal logs (e.g. "status of 403"); at least one must be there."""
        kept = [e for e in self.errors if expected not in e]
        assert len(kept) < len(self.errors), (
            f"expected a console error containing {expected!r}: {self.errors}"
        )
        self.errors[:] = kept


__all__ = ["CHROMIUM", "ConsoleLog", "launch", "sync_playwright", "wait_for"]
