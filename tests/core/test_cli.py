from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from azorus_connect.testing.fixtures import free_port


def run(args, cwd, env=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "azorus_connect", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for var in ("AZORUS_CONFIG", "AZORUS_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_init_writes_config_and_database(workdir):
    out = run(["init"], workdir).stdout
    assert (
        "wrote azorus.toml" in out and (workdir / "azorus.toml").exists() and (workdir / "azorus.db").exists()
    )
    again = run(["init"], workdir).stdout
    assert "wrote" not in again and "database ready" in again


def test_plugins_json_lists_bundled_plugins_with_hooks(workdir):
    data = json.loads(run(["plugins", "--json"], workdir).stdout)
    by_name = {p["name"]: p for p in data}
    assert {"sits", "csv_import"} <= set(by_name)
    assert "azorus_register_connector_types" in by_name["sits"]["hooks"]
    assert "sits" in by_name["sits"]["connector_types"]
    assert all(p["version"] for p in data)


def test_config_error_is_one_clear_line(workdir):
    (workdir / "azorus.toml").write_text('[connections.x]\ntype = "nope"\n')
    proc = run(["connections"], workdir, check=False)
    assert proc.returncode == 2
    assert "azorus.toml: connections.x.type: unknown connector type 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def _wait_healthy(url, proc, verify=True):
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            r = requests.get(url, timeout=2, verify=verify)
            if r.status_code == 200:
                return r
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"server did not become healthy: {last!r}")


@pytest.mark.slow
def test_serve_answers_healthz_and_stops_on_sigterm(workdir):
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "azorus_connect", "serve", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            r = _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            assert r.json()["status"] == "ok"
            assert requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).json()["info"]["title"]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate"
)
def test_serve_with_tls(workdir):
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azorus_connect",
            "serve",
            "--port",
            str(port),
            "--no-worker",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            r = _wait_healthy(f"https://127.0.0.1:{port}/healthz", proc, verify=str(cert))
            assert r.json()["status"] == "ok"
            with pytest.raises(requests.exceptions.SSLError):
                requests.get(f"https://127.0.0.1:{port}/healthz", timeout=5)  # untrusted without the cert
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_log_and_outbox_commands(workdir):
    (workdir / "azorus.toml").write_text("")
    run(["init", "--no-write-config"], workdir)
    out = run(["log", "--identifier", "0000123", "--json"], workdir).stdout
    assert json.loads(out) == []
    proc = run(["outbox", "retry", "12345"], workdir, check=False)
    assert proc.returncode != 0 and "not parked" in proc.stderr
    assert Path(workdir / "azorus.db").exists()


def test_log_finds_a_request_by_identifier(tmp_path, monkeypatch, echo_plugins, make_hub, hub_client):
    from click.testing import CliRunner

    from azorus_connect import cli as cli_module

    from .conftest import echo_config

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    from azorus_connect.store.db import Store

    store = Store(url)
    store.migrate()
    store.dispose()
    hub = make_hub(echo_config(), plugins=echo_plugins, database_url=url)
    client = hub_client(hub)
    body = json.dumps({"records": [{"entity": "person", "fields": {"MST": "0000777"}}]})
    assert client.post("/inbound/left", content=body).status_code == 201
    assert client.post("/inbound/left", content="nope").status_code == 400
    (tmp_path / "azorus.toml").write_text('[connections.left]\ntype = "echo"\n')
    monkeypatch.setattr(cli_module, "_PLUGINS", echo_plugins)
    runner = CliRunner()
    args = ["--config", str(tmp_path / "azorus.toml"), "--database-url", url, "log", "--json"]
    found = json.loads(runner.invoke(cli_module.cli, [*args, "--identifier", "0000777"]).output)
    assert [r["status_code"] for r in found] == [201]
    failed = json.loads(runner.invoke(cli_module.cli, [*args, "--status", "failed"]).output)
    assert [r["status_code"] for r in failed] == [400]
    bad = runner.invoke(cli_module.cli, [*args, "--status", "teapot"])
    assert bad.exit_code == 2 and "status" in bad.output
