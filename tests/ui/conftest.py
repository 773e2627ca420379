"""Fixtures for the admin UI and API tests: a hub with two connections, users of each role, sign-in
helpers for the HTTP client, and a chromium browser (Debian's, driven by Playwright)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from azorus_connect import Hub
from azorus_connect.admin import accounts
from azorus_connect.plugins import PluginHost
from azorus_connect.store.db import utcnow
from azorus_connect.testing.servers import RecordingReceiver, recording_receiver
from azorus_connect.web.app import create_app
from tests.core import echo_plugin

from .browser import ConsoleLog

ADMIN = ("ada", "admin-password-1")
VIEWER = ("vic", "viewer-password-1")
SECRET_ENV = "AZORUS_UI_TEST_TOKEN"


@pytest.fixture(scope="session")
def ui_plugins() -> PluginHost:
    return PluginHost.load(extra=[echo_plugin])


@pytest.fixture(scope="session")
def config_secret() -> str:
    """A secret given to the config by reference; no page or API answer may ever contain it."""
    return f"tok-{uuid.uuid4().hex}"


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with recording_receiver() as rx:
        yield rx


def ui_config(url: str) -> dict[str, Any]:
    """``sits`` receives people (token-protected); ``crm`` sends them on to a local receiver."""
    both = {"person": "both", "enquiry": "both", "application": "both", "reference": "receive"}
    return {
        "connections": {
            "sits": {
                "type": "echo",
                "directions": {**both, "person": "receive"},
                "settings": {"url": url, "token": {"env": SECRET_ENV}},
                "retry_delays": [0],
            },
            "crm": {"type": "echo", "directions": both, "settings": {"url": url}, "retry_delays": [0]},
        },
        "lists": {
            "application_status": {"label": "Application status", "values": {"UF": "Unconditional firm"}},
            "course": {"label": "Course", "values": {"BSC-CS": "BSc Computer Science"}},
            "nationality": {"label": "Nationality", "values": {"GB": "British"}},
        },
    }


@pytest.fixture
def ui_hub(
    make_hub: Callable[..., Hub],
    ui_plugins: PluginHost,
    receiver: RecordingReceiver,
    config_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Hub:
    monkeypatch.setenv(SECRET_ENV, config_secret)
    hub = make_hub(ui_config(receiver.url), plugins=ui_plugins)
    with hub.store.write() as conn:
        accounts.create_user(conn, *ADMIN, "admin", utcnow())
        accounts.create_user(conn, *VIEWER, "viewer", utcnow())
    return hub


@pytest.fixture
def client(ui_hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(ui_hub), raise_server_exceptions=True) as c:
        yield c


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: TestClient, user: tuple[str, str]) -> str:
    """Sign ``client`` in as ``user``; returns the CSRF token for its forms."""
    page = client.get("/admin/sign-in")
    form = {"username": user[0], "password": user[1], "csrf_token": csrf_from(page.text), "next": "/admin/"}
    done = client.post("/admin/sign-in", data=form, follow_redirects=False)
    assert done.status_code == 303, done.text
    return csrf_from(client.get("/admin/").text)


def send_inbound(
    client: TestClient, secret: str, records: list[dict[str, Any]], connection: str = "sits"
) -> Any:
    """Post records to the inbound endpoint as the external system would."""
    response = client.post(
        f"/inbound/{connection}",
        json={"records": records},
        headers={"X-Echo-Token": secret, "Authorization": "Basic c2l0czpwdw=="},
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def person_record(
    mst: str, first: str = "Jane", last: str = "Doe", email: str | None = None
) -> dict[str, Any]:
    fields = {"MST": mst, "FIRST": first, "LAST": last, "DOB": "2006-05-14", "NAT": "GB"}
    if email:
        fields["EMAIL"] = email
    return {"entity": "person", "fields": fields}


def application_record(mst: str, seq: str = "001", status: str = "UF") -> dict[str, Any]:
    return {"entity": "application", "fields": {"MST": mst, "SEQ": seq, "COURSE": "BSC-CS", "STATUS": status}}


def seed(client: TestClient, secret: str) -> dict[str, Any]:
    """Two people, an application, and what it queued for ``crm``; returns the first request's answer."""
    first = send_inbound(
        client, secret, [person_record("0000123", email="jane@example.ac.uk"), application_record("0000123")]
    )
    send_inbound(client, secret, [person_record("0000456", "John", "Smith")])
    return dict(first)


# -- browser --------------------------------------------------------------------------------------


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(browser: Any, console: ConsoleLog) -> Iterator[Any]:
    """A fresh browser context and page; the test fails if the page logged a console error."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    page = console.watch(context.new_page())
    yield page
    context.close()
    assert console.errors == [], console.errors
