"""``docs/screenshots.py`` still runs and writes the README's screenshots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "screenshots.py"


def test_screenshot_script_writes_the_pages(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("dashboard.png", "request-detail.png", "person.png", "import-preview.png"):
        shot = tmp_path / name
        assert (
            shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        )
