"""``docs/screenshots.py`` still runs and writes the README's screenshots."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "screenshots.py"


def test_screenshot_script_writes_the_pages(tmp_path, capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    assert main(["--out", str(tmp_path)]) == 0
    for name in ("dashboard.png", "request-detail.png", "person.png"):
        shot = tmp_path / name
        assert (
            shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        )
    out = capsys.readouterr().out
    assert ("import-preview.png" in out) or ("no import wizard" in out)
