"""Fixtures for the plugin-author kit: the example plugin pip-installed for real, and its fake SIS."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from azorus_example_sis.server import ExampleSis

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = ROOT / "contrib" / "azorus-example-sis"
EXAMPLE_DIST = "azorus-example-sis"
SIS_KEY = "example-sis-test-key"


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    """Run this interpreter's pip; a failure shows pip's own output."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"pip {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="package")
def example_sis_installed() -> Iterator[importlib.metadata.Distribution]:
    """The example plugin, pip-installed (editable) into this environment like any third party's.

    The running interpreter picks it up without a restart.  If it was not installed before, it is
    uninstalled after this folder's tests, so the rest of the suite sees the usual plugins.
    """
    was_installed = _installed(EXAMPLE_DIST)
    pip("install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(EXAMPLE_DIR))
    importlib.invalidate_caches()
    if importlib.util.find_spec("azorus_example_sis") is None:
        site.addsitedir(sysconfig.get_paths()["purelib"])  # runs the editable install's new .pth hook
    yield importlib.metadata.distribution(EXAMPLE_DIST)
    if not was_installed:
        pip("uninstall", "--quiet", "--yes", EXAMPLE_DIST)
        importlib.invalidate_caches()


@pytest.fixture
def example_sis(example_sis_installed: importlib.metadata.Distribution) -> Iterator[ExampleSis]:
    """A running Example SIS with two students."""
    from azorus_example_sis.server import ExampleSis

    with ExampleSis(SIS_KEY) as sis:
        sis.state.put_student(
            {
                "given_name": "Ada",
                "family_name": "Lovelace",
                "email": "ada@example.ac.uk",
                "birth_date": "2006-12-10",
                "nationality": "GB",
            }
        )
        sis.state.put_student({"given_name": "Alan", "family_name": "Turing", "email": "alan@example.ac.uk"})
        yield sis
