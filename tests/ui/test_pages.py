"""The admin pages over HTTP: every page renders, viewers change nothing, secrets never show."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from sqlalchemy import select

from azorus_connect.store.schema import outbox, request_log
from azorus_connect.worker import Worker

from .conftest import ADMIN, VIEWER, seed, sign_in

#: Changing routes a viewer may use: signing in and out, and checking a connection (it only reads).
VIEWER_ALLOWED = {"/admin/sign-in", "/admin/sign-out", "/admin/connections/{name}/check"}


def _pages(client, hub):
    with hub.store.read() as conn:
        request_id = (
            conn.execute(select(request_log.c.id).order_by(request_log.c.received_at)).scalars().first()
        )
    person_url = client.get("/admin/people?q=0000123", follow_redirects=False).headers["location"]
    return [
        "/admin/",
        "/admin/requests",
        "/admin/requests?identifier=0000123",
        "/admin/requests?connection=sits&status=2xx&since=2020-01-01T00:00",
        f"/admin/requests/{request_id}",
        "/admin/outbox",
        "/admin/outbox?status=sent",
        "/admin/people",
        "/admin/people?q=Smith",
        person_url,
        "/admin/reference-lists",
        "/admin/reference-lists?list=application_status",
        "/admin/connections",
    ]


def test_every_page_renders_for_a_viewer(client, ui_hub, config_secret):
    seed(client, config_secret)
    sign_in(client, VIEWER)
    for url in _pages(client, ui_hub):
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[:500])
        assert "<h1>" in response.text
    tokens = client.get("/admin/tokens")
    assert tokens.status_code == 403


def test_person_page_shows_identifiers_applications_labels_and_history(client, ui_hub, config_secret):
    first = seed(client, config_secret)
    sign_in(client, VIEWER)
    found = client.get("/admin/people?q=jane@example.ac.uk", follow_redirects=False)
    assert found.status_code == 303
    html = client.get(found.headers["location"]).text
    assert "0000123" in html and "jane@example.ac.uk" in html
    assert "Unconditional firm" in html and "BSc Computer Science" in html and "British" in html
    # Field history names the request each change came from, with a link to it.
    assert f'href="/admin/requests/{first["request_id"]}"' in html
    assert "first_name" in html


def test_request_detail_shows_payload_redacted_headers_response_and_records(client, ui_hub, config_secret):
    first = seed(client, config_secret)
    sign_in(client, VIEWER)
    html = client.get(f"/admin/requests/{first['request_id']}").text
    assert "&#34;MST&#34;: &#34;0000123&#34;" in html or "&quot;MST&quot;: &quot;0000123&quot;" in html
    assert config_secret not in html
    assert re.search(r"x-echo-token</th><td class=\"mono\">\*+", html)
    assert re.search(r'href="/admin/people/\d+"', html)
    assert "created" in html


def test_unknown_request_and_person_are_404(client):
    sign_in(client, VIEWER)
    assert client.get("/admin/requests/r-nope").status_code == 404
    assert client.get("/admin/people/999999").status_code == 404


def test_bad_filter_is_a_clear_400(client):
    sign_in(client, VIEWER)
    response = client.get("/admin/requests?since=yesterday")
    assert response.status_code == 400 and "since" in response.text and "not a date" in response.text
    assert client.get("/admin/requests?before=garbage").status_code == 400


def _all_routes(app):
    """(path, methods) of every route, including those of included routers."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route.path, route.methods
        elif hasattr(route, "effective_route_contexts"):
            for context in route.effective_route_contexts():
                yield context.path, context.methods or set()


def _changing_routes(app):
    for route_path, methods in _all_routes(app):
        changing = methods & {"POST", "PUT", "PATCH", "DELETE"}
        if changing and route_path.startswith(("/admin", "/api")) and route_path not in VIEWER_ALLOWED:
            path = re.sub(r"\{[^}]+\}", "1", route_path)
            for method in changing:
                yield method, path


def test_viewer_gets_403_on_every_changing_action(client, ui_hub, config_secret):
    seed(client, config_secret)
    routes = list(_changing_routes(client.app))
    assert ("POST", "/admin/outbox/1/retry") in routes and ("POST", "/api/outbox/1/skip") in routes
    token = sign_in(client, VIEWER)
    for method, path in routes:
        response = client.request(method, path, data={"csrf_token": token}, headers={"X-CSRF-Token": token})
        assert response.status_code == 403, (method, path, response.status_code, response.text[:300])
    with ui_hub.store.read() as conn:
        assert set(conn.execute(select(outbox.c.status)).scalars()) == {"pending"}


def test_admin_can_retry_and_skip_from_the_outbox_page(client, ui_hub, config_secret, receiver):
    seed(client, config_secret)
    receiver.script = [400]
    Worker(ui_hub).drain("crm")
    with ui_hub.store.read() as conn:
        parked = conn.execute(select(outbox.c.id).where(outbox.c.status == "parked")).scalar_one()
    token = sign_in(client, ADMIN)
    page = client.get("/admin/outbox?status=parked")
    assert f'action="/admin/outbox/{parked}/retry"' in page.text
    # Without the CSRF token the admin is refused too.
    assert client.post(f"/admin/outbox/{parked}/retry", data={}).status_code == 403
    done = client.post(f"/admin/outbox/{parked}/retry", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and f"notice=retried&id={parked}" in done.headers["location"]
    assert "is back in the queue" in client.get(done.headers["location"]).text
    assert Worker(ui_hub).drain("crm").sent >= 1
    with ui_hub.store.read() as conn:
        assert conn.execute(select(outbox.c.status).where(outbox.c.id == parked)).scalar_one() == "sent"


def test_check_connection_button(client, config_secret):
    token = sign_in(client, VIEWER)
    html = client.post("/admin/connections/crm/check", data={"csrf_token": token}).text
    assert "Check: OK" in html and "would post to" in html
    assert client.post("/admin/connections/nope/check", data={"csrf_token": token}).status_code == 404


def test_no_page_ever_contains_a_config_secret(client, ui_hub, config_secret):
    seed(client, config_secret)
    token = sign_in(client, ADMIN)
    bodies = [client.get(url).text for url in _pages(client, ui_hub)]
    bodies.append(client.post("/admin/connections/sits/check", data={"csrf_token": token}).text)
    bodies.append(client.get("/admin/tokens").text)
    connections = client.get("/admin/connections").text
    assert "********" in connections  # the secret is there, masked
    for body in bodies:
        assert config_secret not in body
    with ui_hub.store.read() as conn:
        for headers, body in conn.execute(select(request_log.c.headers, request_log.c.body)):
            assert config_secret not in str(headers)
