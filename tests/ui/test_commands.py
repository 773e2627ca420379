"""``azorus-connect admin ...``: users and API tokens made on the command line work on the web."""

from __future__ import annotations

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from azorus_connect import Hub
from azorus_connect.admin.tables import admin_user, api_token
from azorus_connect.cli import cli
from azorus_connect.web.app import create_app

from .conftest import csrf_from


def run(args, database_url, config, stdin=None):
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "--database-url", database_url, *args],
        input=stdin,
        catch_exceptions=False,
    )
    return result


def test_create_user_and_token_then_use_them(tmp_path, azorus_database_url, azorus_plugins):
    config = tmp_path / "azorus.toml"
    config.write_text("[hub]\n", encoding="utf-8")
    made = run(
        ["admin", "create-user", "grace", "--role", "admin", "--password-stdin"],
        azorus_database_url,
        config,
        stdin="a long enough password\n",
    )
    assert made.exit_code == 0, made.output
    assert "a long enough password" not in made.output
    again = run(
        ["admin", "create-user", "grace", "--password-stdin"],
        azorus_database_url,
        config,
        stdin="another password!\n",
    )
    assert again.exit_code != 0 and "already exists" in again.output
    short = run(
        ["admin", "create-user", "hal", "--password-stdin"], azorus_database_url, config, stdin="short\n"
    )
    assert short.exit_code != 0 and "at least 10" in short.output

    token_run = run(["admin", "create-token", "portal"], azorus_database_url, config)
    assert token_run.exit_code == 0, token_run.output
    token = token_run.output.strip().splitlines()[-1]
    assert token.startswith("azc_")
    listed = run(["admin", "tokens"], azorus_database_url, config)
    assert "portal" in listed.output and token not in listed.output

    hub = Hub.open(config, database_url=azorus_database_url, plugins=azorus_plugins)
    try:
        with hub.store.read() as conn:
            assert conn.execute(select(admin_user.c.role)).scalar_one() == "admin"
            assert token not in conn.execute(select(api_token.c.token_hash)).scalar_one()
        with TestClient(create_app(hub)) as client:
            assert (
                client.get("/api/reference-lists", headers={"Authorization": f"Bearer {token}"}).status_code
                == 200
            )
            page = client.get("/admin/sign-in")
            form = {
                "username": "grace",
                "password": "a long enough password",
                "csrf_token": csrf_from(page.text),
            }
            assert client.post("/admin/sign-in", data=form, follow_redirects=False).status_code == 303
            assert client.get("/admin/tokens").status_code == 200
        revoked = run(["admin", "revoke-token", "1"], azorus_database_url, config)
        assert revoked.exit_code == 0, revoked.output
        with TestClient(create_app(hub)) as client:
            assert (
                client.get("/api/reference-lists", headers={"Authorization": f"Bearer {token}"}).status_code
                == 401
            )
    finally:
        hub.close()
