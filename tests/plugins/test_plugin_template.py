"""``azorus-connect plugin new NAME`` makes a plugin that installs, is found and keeps the contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from azorus_connect.scaffold import PluginNames, plugin_group


def test_names_are_derived_from_the_plugin_name() -> None:
    names = PluginNames.from_name("north-star_sis")
    assert (names.distribution, names.package, names.type_name) == (
        "azorus-north-star-sis",
        "azorus_north_star_sis",
        "north_star_sis",
    )
    assert (names.class_prefix, names.env_prefix, names.title) == (
        "NorthStarSis",
        "NORTH_STAR_SIS",
        "North Star SIS",
    )


@pytest.mark.parametrize("bad", ["Acme", "2sis", "acme--sis", "acme sis", "azorus-acme", "", "acme-"])
def test_bad_names_are_refused_with_a_reason(bad: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(plugin_group, ["new", bad, "-d", str(tmp_path / "out")])
    assert result.exit_code != 0 and "plugin name" in result.output
    assert not (tmp_path / "out").exists()


def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("precious")
    result = CliRunner().invoke(plugin_group, ["new", "acme-sis", "-d", str(tmp_path / "mine")])
    assert result.exit_code != 0 and "already exists" in result.output
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["keep.txt"]


def test_generated_plugin_is_found_by_entry_point_and_passes_the_contract_suite(tmp_path: Path) -> None:
    target = tmp_path / "azorus-acme-sis"
    made = subprocess.run(
        [sys.executable, "-m", "azorus_connect", "plugin", "new", "acme-sis", "--directory", str(target)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "connector type 'acme_sis'" in made.stdout
    assert (target / "azorus_acme_sis" / "hooks.py").is_file() and not list(target.rglob("*.jinja"))

    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--quiet", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    site = tmp_path / "site"  # a real pip install, kept out of the shared environment
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.metadata as m; "
            "print([e.value for e in m.entry_points(group='azorus_connect') if e.name == 'acme_sis'])",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert listed.stdout.strip() == "['azorus_acme_sis']", listed.stdout + listed.stderr

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(target / "tests")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=target,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "9 passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
