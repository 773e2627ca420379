"""Signing in and out, CSRF, roles and the sign-in throttle, over HTTP."""

from __future__ import annotations

from sqlalchemy import select

from azorus_connect.admin.tables import admin_session, admin_user
from azorus_connect.web.security import SESSION_COOKIE

from .conftest import ADMIN, VIEWER, csrf_from, sign_in


def test_pages_redirect_to_sign_in_and_back(client):
    first = client.get("/admin/requests?status=4xx", headers={"accept": "text/html"}, follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Frequests%3Fstatus%3D4xx"
    page = client.get(first.headers["location"])
    form = {
        "username": ADMIN[0],
        "password": ADMIN[1],
        "csrf_token": csrf_from(page.text),
        "next": "/admin/requests?status=4xx",
    }
    done = client.post("/admin/sign-in", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/admin/requests?status=4xx"
    cookie = done.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here; set when served over TLS
    assert client.get("/admin/requests?status=4xx").status_code == 200


def test_session_token_is_stored_only_as_a_hash(client, ui_hub):
    sign_in(client, ADMIN)
    token = client.cookies[SESSION_COOKIE]
    with ui_hub.store.read() as conn:
        stored = conn.execute(select(admin_session.c.token_hash)).scalars().all()
        hashes = conn.execute(select(admin_user.c.password_hash)).scalars().all()
    assert len(stored) == 1 and stored[0] != token and token not in stored[0]
    assert all(h.startswith("scrypt$") and ADMIN[1] not in h for h in hashes)


def test_wrong_password_is_refused(client):
    page = client.get("/admin/sign-in")
    form = {"username": ADMIN[0], "password": "not the password", "csrf_token": csrf_from(page.text)}
    refused = client.post("/admin/sign-in", data=form, follow_redirects=False)
    assert refused.status_code == 401
    assert "not right" in refused.text
    assert SESSION_COOKIE not in client.cookies


def test_unknown_user_gets_the_same_answer(client):
    page = client.get("/admin/sign-in")
    form = {"username": "nobody", "password": "whatever password", "csrf_token": csrf_from(page.text)}
    refused = client.post("/admin/sign-in", data=form, follow_redirects=False)
    assert refused.status_code == 401 and "not right" in refused.text


def test_sign_in_without_csrf_token_is_refused(client):
    client.get("/admin/sign-in")
    refused = client.post("/admin/sign-in", data={"username": ADMIN[0], "password": ADMIN[1]})
    assert refused.status_code == 403
    assert SESSION_COOKIE not in client.cookies


def test_form_without_or_with_foreign_csrf_token_is_refused(client, ui_hub):
    token = sign_in(client, ADMIN)
    assert client.post("/admin/sign-out", data={}).status_code == 403
    assert client.post("/admin/sign-out", data={"csrf_token": "0" * 64}).status_code == 403
    # A token from another session is no good either.
    other = client.__class__(client.app)
    other_token = sign_in(other, VIEWER)
    assert other_token != token
    assert client.post("/admin/sign-out", data={"csrf_token": other_token}).status_code == 403
    other.close()
    # Still signed in: the refused posts changed nothing.
    assert client.get("/admin/").status_code == 200


def test_sign_out_ends_the_session(client):
    token = sign_in(client, VIEWER)
    old_cookie = client.cookies[SESSION_COOKIE]
    out = client.post("/admin/sign-out", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set(SESSION_COOKIE, old_cookie)  # replaying the old cookie does not work
    again = client.get("/admin/", headers={"accept": "text/html"}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/admin/sign-in")


def test_sign_in_is_throttled_after_repeated_failures(client):
    page = client.get("/admin/sign-in")
    token = csrf_from(page.text)
    codes = []
    for _ in range(6):
        bad = {"username": VIEWER[0], "password": "wrong password!", "csrf_token": token}
        codes.append(client.post("/admin/sign-in", data=bad).status_code)
    assert codes[:5] == [401] * 5 and codes[5] == 429
    # Even the right password is refused while locked.
    good = {"username": VIEWER[0], "password": VIEWER[1], "csrf_token": token}
    locked = client.post("/admin/sign-in", data=good, follow_redirects=False)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    # Another user from the same address is not locked out.
    other = {"username": ADMIN[0], "password": ADMIN[1], "csrf_token": token}
    assert client.post("/admin/sign-in", data=other, follow_redirects=False).status_code == 303


def test_next_must_be_a_local_admin_path(client):
    page = client.get("/admin/sign-in")
    for target in ("https://evil.example/", "//evil.example/admin", "/\\evil.example"):
        form = {
            "username": ADMIN[0],
            "password": ADMIN[1],
            "csrf_token": csrf_from(page.text),
            "next": target,
        }
        done = client.post("/admin/sign-in", data=form, follow_redirects=False)
        assert done.headers["location"] == "/admin/"
        page = client.get("/admin/sign-in?next=/admin/")


def test_session_cookie_is_secure_over_tls(ui_hub):
    from fastapi.testclient import TestClient

    from azorus_connect.web.app import create_app

    with TestClient(create_app(ui_hub), base_url="https://hub.example") as tls:
        page = tls.get("/admin/sign-in")
        assert "Secure" in page.headers["set-cookie"]  # the pre-sign-in cookie too
        form = {"username": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf_from(page.text)}
        done = tls.post("/admin/sign-in", data=form, follow_redirects=False)
        cookie = done.headers["set-cookie"]
        assert f"{SESSION_COOKIE}=" in cookie and "Secure" in cookie and "HttpOnly" in cookie


def test_an_idle_session_ends_and_a_used_one_does_not(client, ui_hub):
    import datetime as dt

    from sqlalchemy import update

    from azorus_connect.store.db import utcnow

    sign_in(client, VIEWER)
    with ui_hub.store.write() as conn:  # last used 90 minutes ago: still alive, and now recorded as used
        conn.execute(update(admin_session).values(last_seen_at=utcnow() - dt.timedelta(minutes=90)))
    assert client.get("/admin/").status_code == 200
    with ui_hub.store.read() as conn:
        seen = conn.execute(select(admin_session.c.last_seen_at)).scalar_one()
    assert utcnow() - seen < dt.timedelta(minutes=1)
    with ui_hub.store.write() as conn:  # unused for three hours: over
        conn.execute(update(admin_session).values(last_seen_at=utcnow() - dt.timedelta(hours=3)))
    gone = client.get("/admin/", headers={"accept": "text/html"}, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/admin/sign-in")
