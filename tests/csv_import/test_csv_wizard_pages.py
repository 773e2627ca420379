"""The wizard's pages over HTTP: who may do what, CSRF, and clear messages for bad files."""

from __future__ import annotations

import re

import pytest

from azorus_connect.admin import accounts
from azorus_connect.store.db import utcnow

from .conftest import FIXTURES

ADMIN = ("ada", "admin-password-1")
VIEWER = ("vic", "viewer-password-1")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def web(csv_hub, hub_client):
    with csv_hub.store.write() as conn:
        accounts.create_user(conn, *ADMIN, "admin", utcnow())
        accounts.create_user(conn, *VIEWER, "viewer", utcnow())
    return hub_client(csv_hub)


def sign_in(client, user) -> str:
    page = client.get("/admin/sign-in")
    token = _CSRF.search(page.text).group(1)
    done = client.post(
        "/admin/sign-in",
        data={"username": user[0], "password": user[1], "csrf_token": token, "next": "/admin/imports"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    return _CSRF.search(client.get("/admin/imports").text).group(1)


def test_pages_need_sign_in(web):
    response = web.get("/admin/imports", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303 and "/admin/sign-in" in response.headers["location"]


def test_a_bad_file_is_refused_on_the_page_with_its_reason(web):
    token = sign_in(web, ADMIN)
    response = web.post(
        "/admin/imports/upload",
        data={"csrf_token": token, "entity": "person"},
        files={"file": ("dup.csv", (FIXTURES / "duplicate_headers.csv").read_bytes(), "text/csv")},
    )
    assert response.status_code == 400
    assert "duplicate header &#39;Forename&#39; in columns B, D" in response.text


def test_upload_without_the_csrf_token_is_refused(web):
    sign_in(web, ADMIN)
    response = web.post(
        "/admin/imports/upload",
        data={"entity": "person"},
        files={"file": ("a.csv", b"MST,Forename\n1,A\n", "text/csv")},
    )
    assert response.status_code == 403


def test_a_viewer_sees_the_pages_but_cannot_import(web):
    token = sign_in(web, VIEWER)
    page = web.get("/admin/imports")
    assert page.status_code == 200 and 'id="upload" disabled' in page.text
    response = web.post(
        "/admin/imports/upload",
        data={"csrf_token": token, "entity": "person"},
        files={"file": ("a.csv", b"MST,Forename\n1,A\n", "text/csv")},
    )
    assert response.status_code == 403


def test_mapping_page_shows_guesses_and_confidence(web):
    token = sign_in(web, ADMIN)
    done = web.post(
        "/admin/imports/upload",
        data={"csrf_token": token, "entity": "person"},
        files={"file": ("f.csv", (FIXTURES / "cp1252.csv").read_bytes(), "text/csv")},
        follow_redirects=False,
    )
    assert done.status_code == 303
    page = web.get(done.headers["location"])
    assert page.status_code == 200
    assert "cp1252" in page.text
    assert "80% synonym" in page.text  # Student ID -> id:mst
    assert "Renée" in page.text
    assert "100% exact" in page.text  # Notes -> the custom field "notes" by its label
