"""docs/plugins.md documents every hook and argument, and its tutorial's code runs and passes."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from azorus_connect import hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
_HEADING = re.compile(r"^### (azorus_\w+)\((.*?)\)\s*$", re.M)


def _hooks() -> dict[str, list[str]]:
    """Every hook in hookspecs.py with its argument names, in order."""
    return {
        name: list(inspect.signature(fn).parameters)
        for name, fn in vars(hookspecs).items()
        if name.startswith("azorus_") and hasattr(fn, "azorus_connect_spec")
    }


def _sections(text: str) -> dict[str, tuple[list[str], str]]:
    """``### azorus_x(a, b)`` sections of the hook reference: name -> (arguments, body)."""
    marks = list(_HEADING.finditer(text))
    out = {}
    for n, mark in enumerate(marks):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
        next_heading = re.search(r"^#{1,3} ", text[mark.end() : end], re.M)
        body = (
            text[mark.end() : mark.end() + next_heading.start()] if next_heading else text[mark.end() : end]
        )
        args = [a.strip() for a in mark[2].split(",") if a.strip()]
        out[mark[1]] = (args, body)
    return out


def test_every_hook_and_argument_is_documented() -> None:
    hooks = _hooks()
    assert len(hooks) >= 13, hooks
    sections = _sections(DOC.read_text(encoding="utf-8"))
    undocumented, stale = sorted(set(hooks) - set(sections)), sorted(set(sections) - set(hooks))
    assert not undocumented and not stale, f"undocumented: {undocumented}; no such hook: {stale}"
    for name, args in hooks.items():
        documented, body = sections[name]
        assert documented == args, f"{name}: heading lists {documented}, the hook takes {args}"
        assert len(body.split()) >= 12, f"{name}: say what it is for"
        for arg in args:
            assert re.search(rf"^- `{arg}`: \S", body, re.M), f"{name}: argument {arg!r} is not described"


def _tutorial_files() -> dict[str, str]:
    """The tutorial's code blocks, by the ``# file:`` each starts with (blocks for one file are joined)."""
    files: dict[str, str] = {}
    for lang, code in _BLOCK.findall(DOC.read_text(encoding="utf-8")):
        if lang not in ("python", "toml"):
            continue
        first, _, rest = code.partition("\n")
        assert first.startswith("# file: "), f"a {lang} block does not say which file it is: {first!r}"
        name = first.removeprefix("# file: ").strip()
        files[name] = files.get(name, "") + rest
    return files


def test_tutorial_blocks_name_their_files() -> None:
    assert set(_tutorial_files()) == {
        "pyproject.toml",
        "azorus_open_day/__init__.py",
        "azorus.toml",
        "tests/test_open_day.py",
    }


def test_tutorial_code_runs_and_its_tests_pass(tmp_path: Path) -> None:
    for name, code in _tutorial_files().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")
    lint = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--quiet",
            "--isolated",
            "--select",
            "E,F,W,B,UP,SIM",
            "--line-length",
            "110",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "-rs", "tests"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert re.search(r"\b7 passed, 4 skipped\b", summary), run.stdout[-2000:]

    # The tutorial's pyproject makes a real distribution the hub finds through its entry point.
    site = tmp_path / "site"
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
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "azorus_connect", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=site,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert listed.returncode == 0, listed.stderr
    open_day = next(p for p in json.loads(listed.stdout) if p["name"] == "open_day")
    assert open_day["connector_types"] == ["open_day"] and not open_day["error"]
    assert open_day["hooks"] == ["azorus_receive", "azorus_register_connector_types"]


@pytest.mark.parametrize("hook", sorted(_hooks()))
def test_hook_has_a_one_line_docstring(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert doc and len(doc.splitlines()[0]) > 20, hook
