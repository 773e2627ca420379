"""pytest fixtures for testing the hub and its plugins (registered as the ``azorus_connect`` pytest plugin).

- ``make_hub(config)``: a temporary hub with a fresh, migrated database (SQLite file, or PostgreSQL
  when ``AZORUS_TEST_DATABASE_URL`` names a server: each test gets its own database).
- ``hub``: ``make_hub({})``.
- ``hub_client(hub)``: an HTTP test client (``fastapi.testclient.TestClient``) for the hub's web app.
- ``live_hub(hub)``: the web app served by uvicorn on a free local port; returns its base URL.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ..hub import Hub
from ..plugins import PluginHost
from ..store.db import Store

__all__ = ["TEST_DATABASE_ENV", "free_port"]

TEST_DATABASE_ENV = "AZORUS_TEST_DATABASE_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Databases:
    """Hands out fresh migrated databases quickly: copies of one migrated template."""

    def __init__(self, base_url: str | None, tmp: Path) -> None:
        self.base_url = base_url
        self.tmp = tmp
        self.template: str | None = None
        self.created: list[str] = []

    def _admin(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        assert self.base_url is not None
        url = make_url(Store(self.base_url).url).set(database="postgres")
        return create_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")

    def new(self) -> str:
        if self.base_url is None:
            if self.template is None:
                self.template = str(self.tmp / "template.db")
                store = Store(f"sqlite:///{self.template}", pool=False)
                store.migrate()
                store.dispose()
            target = self.tmp / f"hub-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        from sqlalchemy.engine import make_url

        admin = self._admin()
        with admin.connect() as conn:
            if self.template is None:
                self.template = f"azorus_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
                conn.exec_driver_sql(f'CREATE DATABASE "{self.template}"')
                tpl = make_url(Store(self.base_url).url).set(database=self.template)
                store = Store(tpl.render_as_string(hide_password=False), pool=False)
                store.migrate()
                store.dispose()
            name = f"azorus_t_{uuid.uuid4().hex[:10]}"
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        admin.dispose()
        self.created.append(name)
        return make_url(Store(self.base_url).url).set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        if self.base_url is None:
            return
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        admin = self._admin()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    def close(self) -> None:
        if self.base_url is not None and self.template is not None:
            admin = self._admin()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
            admin.dispose()


@pytest.fixture(scope="session")
def azorus_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Databases]:
    dbs = _Databases(os.environ.get(TEST_DATABASE_ENV) or None, tmp_path_factory.mktemp("azorus-db"))
    yield dbs
    dbs.close()


@pytest.fixture
def azorus_database_url(azorus_databases: _Databases) -> Iterator[str]:
    """A fresh, migrated, empty database for this test."""
    url = azorus_databases.new()
    yield url
    azorus_databases.drop(url)


@pytest.fixture(scope="session")
def azorus_plugins() -> PluginHost:
    """The installed plugins, loaded once per session."""
    return PluginHost.load()


@pytest.fixture
def make_hub(
    azorus_databases: _Databases, azorus_plugins: PluginHost, tmp_path: Path
) -> Iterator[Callable[..., Hub]]:
    """Build a hub from a config (a dict, or TOML text) on a fresh database; closed after the test."""
    made: list[tuple[Hub, str]] = []

    def factory(
        config: Mapping[str, Any] | str | None = None,
        *,
        plugins: PluginHost | None = None,
        database_url: str | None = None,
    ) -> Hub:
        data = tomllib.loads(config) if isinstance(config, str) else dict(config or {})
        url = database_url or azorus_databases.new()
        hub = Hub.open(data, database_url=url, plugins=plugins or azorus_plugins, base_dir=tmp_path)
        hub.sync_config_to_db()
        made.append((hub, "" if database_url else url))
        return hub

    yield factory
    for hub, url in made:
        hub.close()
        if url:
            azorus_databases.drop(url)


@pytest.fixture
def hub(make_hub: Callable[..., Hub]) -> Hub:
    """A hub with no connections on a fresh database."""
    return make_hub({})


@pytest.fixture
def hub_client() -> Iterator[Callable[[Hub], Any]]:
    """``hub_client(hub)``: a TestClient for the hub's web app."""
    from fastapi.testclient import TestClient

    from ..web.app import create_app

    clients: list[Any] = []

    def factory(hub: Hub) -> Any:
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield factory
    for c in clients:
        c.close()


@pytest.fixture
def live_hub() -> Iterator[Callable[[Hub], str]]:
    """``live_hub(hub)``: serve the hub's web app on a free port; returns the base URL."""
    import uvicorn

    from ..web.app import create_app

    servers: list[tuple[Any, threading.Thread]] = []

    def factory(hub: Hub) -> str:
        port = free_port()
        config = uvicorn.Config(
            create_app(hub), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield factory
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
