from __future__ import annotations

import ast
import importlib.metadata
import json
import logging
from pathlib import Path

import pytest

import azorus_connect
from azorus_connect.config import load_config
from azorus_connect.exceptions import ConfigError, PluginError
from azorus_connect.plugins import PluginHost
from azorus_connect.redaction import MASK, Secret

from . import echo_plugin

ROOT = Path(__file__).resolve().parents[2]


def _fake_entry_points(monkeypatch, extra):
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        found = list(real(**kw))
        if kw.get("group") == "azorus_connect":
            found += extra
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_core_never_imports_a_plugin():
    plugin_modules = {"azorus_sits", "azorus_csv_import", "azorus_example_sis"}
    for ep in importlib.metadata.entry_points(group="azorus_connect"):
        plugin_modules.add(ep.value.split(":")[0].split(".")[0])
    offenders = []
    for path in (ROOT / "azorus_connect").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in plugin_modules
            ]
    assert offenders == []


def test_public_api_is_exported():
    for name in azorus_connect.__all__:
        assert hasattr(azorus_connect, name), name
    assert {"Hub", "Person", "hookimpl", "ConnectorType", "SendOutcome", "Secret"} <= set(
        azorus_connect.__all__
    )


def test_bundled_plugins_load_through_entry_points():
    host = PluginHost.load()
    names = {i.name for i in host.infos if not i.builtin}
    assert {"sits", "csv_import"} <= names
    assert all(i.error is None for i in host.infos)


def test_broken_plugin_is_reported_and_skipped(monkeypatch, caplog):
    broken = importlib.metadata.EntryPoint("broken", "azorus_no_such_module", "azorus_connect")
    _fake_entry_points(monkeypatch, [broken])
    with caplog.at_level(logging.ERROR):
        host = PluginHost.load()
    info = next(i for i in host.infos if i.name == "broken")
    assert info.error and "azorus_no_such_module" in info.error
    assert "broken failed to load" in caplog.text
    monkeypatch.setenv("AZORUS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken"):
        PluginHost.load()


def test_allow_and_block_lists(monkeypatch):
    monkeypatch.setenv("AZORUS_PLUGINS", "sits")
    assert {i.name for i in PluginHost.load().infos if not i.builtin} == {"sits"}
    monkeypatch.delenv("AZORUS_PLUGINS")
    monkeypatch.setenv("AZORUS_DISABLE_PLUGINS", "sits")
    assert "sits" not in {i.name for i in PluginHost.load().infos}


def test_plugin_api_version_mismatch_is_refused(monkeypatch):
    class Future:
        AZORUS_PLUGIN_API = 99

    monkeypatch.setitem(__import__("sys").modules, "azorus_future_plugin", Future)
    ep = importlib.metadata.EntryPoint("future", "azorus_future_plugin", "azorus_connect")
    _fake_entry_points(monkeypatch, [ep])
    info = next(i for i in PluginHost.load().infos if i.name == "future")
    assert "plugin API 99" in (info.error or "")


def test_secret_never_shows_itself(monkeypatch):
    monkeypatch.setenv("SOME_SECRET", "hunter2")
    s = Secret.from_reference({"env": "SOME_SECRET"})
    assert s.reveal() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert s.source == "env:SOME_SECRET"
    with pytest.raises(ValueError, match="by reference only"):
        Secret.from_reference("hunter2")


def test_secret_from_file_and_redacted_config(tmp_path, monkeypatch):
    (tmp_path / "token.txt").write_text("file-secret\n")
    host = PluginHost.load(extra=[echo_plugin])
    cfg = load_config(
        {"connections": {"e": {"type": "echo", "settings": {"token": {"file": "token.txt"}}}}},
        host,
        base_dir=tmp_path,
    )
    assert cfg.connections["e"].settings.token.reveal() == "file-secret"
    shown = json.dumps(cfg.redacted())
    assert "file-secret" not in shown and MASK in shown


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[connections.e]\ntype = "nope"\n', "connections.e.type", "unknown connector type"),
        (
            '[connections.e]\ntype = "echo"\npoll_interval = -1\n',
            "connections.e.poll_interval",
            "greater than 0",
        ),
        (
            '[connections.e]\ntype = "echo"\n[connections.e.settings]\ntoken = "plain"\n',
            "connections.e.settings.token",
            "by reference only",
        ),
        (
            '[connections.e]\ntype = "echo"\n[connections.e.settings]\ntoken = { env = "AZ_UNSET_VAR" }\n',
            "connections.e.settings.token",
            "AZ_UNSET_VAR is not set",
        ),
        (
            '[connections.e]\ntype = "echo"\n[connections.e.mapping.person.fields]\nFIRST = "frist_name"\n',
            "connections.e.mapping",
            "unknown target 'frist_name'",
        ),
        ("[hubb]\n", "hubb", "unknown section"),
        ("not = [toml\n", None, "not valid TOML"),
    ],
)
def test_config_errors_name_file_key_and_problem(tmp_path, text, key, problem):
    path = tmp_path / "azorus.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, PluginHost.load(extra=[echo_plugin]))
    err = info.value
    assert err.file == str(path) and problem in err.problem
    if key:
        assert err.key == key and key in str(err)


def test_missing_explicit_config_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", PluginHost.load())
