"""``azorus-connect demo --exit`` runs the whole SITS scenario from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


@pytest.mark.slow
def test_demo_runs_end_to_end_and_exits(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "azorus_connect", "demo", "--exit", "--dir", str(folder), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "TOT 1  HTTP 201  1-reference-tables.xml" in out
    assert "list course: BA History (UBAHIS01), BSc Computer Science (UBSCCS01)" in out
    assert "CAP 24001234/01 (MST 0000123456) -> application #1 created" in out
    assert "TOT 3  HTTP 200" in out and "person #1 unchanged" in out
    assert "HTTP 201, MST 0000900001" in out
    assert "'mst': '0000900001'" in out and "0 (no echo)" in out
    assert "/admin/requests" in out and "Demo finished." in out
    for secret_file in ("stutalk-password", "rws-password"):
        secret = (folder / secret_file).read_text().strip()
        assert secret not in out and secret not in done.stderr
        assert (folder / secret_file).stat().st_mode & 0o077 == 0
    engine = create_engine(f"sqlite:///{folder / 'azorus-demo.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM request_log")).scalar_one() == 4
        assert conn.execute(text("SELECT count(*) FROM person")).scalar_one() == 3
    engine.dispose()
