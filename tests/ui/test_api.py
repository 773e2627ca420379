"""The JSON API: token auth, people with applications by any identifier, the request log, outbox actions."""

from __future__ import annotations

from sqlalchemy import select

from azorus_connect.admin import accounts
from azorus_connect.admin.tables import api_token
from azorus_connect.store.db import utcnow
from azorus_connect.store.schema import outbox
from azorus_connect.worker import Worker

from .conftest import VIEWER, person_record, seed, send_inbound, sign_in


def make_token(hub, role="viewer", name="portal"):
    with hub.store.write() as conn:
        return accounts.create_api_token(conn, name, role, "test", utcnow())


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_api_needs_a_valid_token(client, ui_hub):
    assert client.get("/api/people/1").status_code == 401
    assert client.get("/api/people/1", headers=bearer("azc_not-a-token")).status_code == 401
    token = make_token(ui_hub)
    assert client.get("/api/reference-lists", headers=bearer(token)).status_code == 200
    with ui_hub.store.write() as conn:
        token_id = conn.execute(select(api_token.c.id)).scalar_one()
        assert accounts.revoke_api_token(conn, token_id, utcnow())
    assert client.get("/api/reference-lists", headers=bearer(token)).status_code == 401


def test_token_is_stored_only_as_a_hash(ui_hub):
    token = make_token(ui_hub)
    with ui_hub.store.read() as conn:
        stored = conn.execute(select(api_token.c.token_hash, api_token.c.last_used_at)).one()
    assert token.startswith("azc_") and token not in stored.token_hash


def test_portal_gets_a_person_with_application_status_by_any_identifier(client, ui_hub, config_secret):
    seed(client, config_secret)
    headers = bearer(make_token(ui_hub))
    by_mst = client.get("/api/people/by-identifier/mst/0000123", headers=headers)
    assert by_mst.status_code == 200, by_mst.text
    person = by_mst.json()
    assert person["identifiers"]["mst"] == "0000123" and person["first_name"] == "Jane"
    [application] = person["applications"]
    assert application["status"] == "UF" and application["status_label"] == "Unconditional firm"
    assert application["course_label"] == "BSc Computer Science"
    by_email = client.get("/api/people/by-identifier/email/jane@example.ac.uk", headers=headers).json()
    found_by_email = client.get("/api/people", params={"q": "Jane@Example.AC.UK"}, headers=headers).json()
    assert [p["id"] for p in found_by_email] == [person["id"]]
    by_id = client.get(f"/api/people/{person['id']}", headers=headers).json()
    assert by_email == person == by_id
    # Leading zeros matter: 123 is not 0000123.
    assert client.get("/api/people/by-identifier/mst/123", headers=headers).status_code == 404
    assert client.get("/api/people/999999", headers=headers).status_code == 404
    found = client.get("/api/people", params={"q": "smith"}, headers=headers).json()
    assert [p["identifiers"]["mst"] for p in found] == ["0000456"]


def test_request_log_by_identifier_with_detail(client, ui_hub, config_secret):
    first = seed(client, config_secret)
    headers = bearer(make_token(ui_hub))
    page = client.get("/api/requests", params={"identifier": "0000123"}, headers=headers).json()
    assert [r["id"] for r in page["items"]] == [first["request_id"]]
    mixed_case = {"identifier": " Jane@Example.ac.uk "}
    by_email = client.get("/api/requests", params=mixed_case, headers=headers).json()
    assert [r["id"] for r in by_email["items"]] == [first["request_id"]]
    detail = client.get(f"/api/requests/{first['request_id']}", headers=headers).json()
    assert '"MST": "0000123"' in detail["body"]
    assert detail["headers"]["x-echo-token"] == "********"
    assert detail["headers"]["authorization"] == "********"
    assert {t["entity"] for t in detail["records_touched"]} == {"person", "application"}
    assert client.get("/api/requests", params={"status": "teapot"}, headers=headers).status_code == 400


def test_request_log_pages_by_cursor_without_gaps(client, ui_hub, config_secret):
    for n in range(23):
        send_inbound(client, config_secret, [person_record(f"{n:07d}", f"P{n}")])
    headers = bearer(make_token(ui_hub))
    seen, cursor = [], None
    for _ in range(10):
        params = {"limit": 5, **({"before": cursor} if cursor else {})}
        page = client.get("/api/requests", params=params, headers=headers).json()
        seen.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == 23 and len({r["id"] for r in seen}) == 23
    stamps = [(r["received_at"], r["id"]) for r in seen]
    assert stamps == sorted(stamps, reverse=True)


def test_outbox_actions_need_the_admin_role(client, ui_hub, config_secret, receiver):
    seed(client, config_secret)
    receiver.script = [400]
    Worker(ui_hub).drain("crm")
    viewer, admin = bearer(make_token(ui_hub)), bearer(make_token(ui_hub, "admin", "ops"))
    parked = client.get("/api/outbox", params={"status": "parked"}, headers=viewer).json()
    assert len(parked) == 1 and "400" in parked[0]["last_error"]
    message_id = parked[0]["id"]
    assert client.post(f"/api/outbox/{message_id}/retry", headers=viewer).status_code == 403
    done = client.post(f"/api/outbox/{message_id}/retry", headers=admin)
    assert done.status_code == 200 and done.json() == {"id": message_id, "status": "pending"}
    again = client.post(f"/api/outbox/{message_id}/retry", headers=admin)
    assert again.status_code == 409 and "pending" in again.json()["detail"]
    assert client.post("/api/outbox/999999/skip", headers=admin).status_code == 404
    assert Worker(ui_hub).drain("crm").sent >= 1
    with ui_hub.store.read() as conn:
        assert conn.execute(select(outbox.c.status).where(outbox.c.id == message_id)).scalar_one() == "sent"


def test_browser_session_may_call_the_api_but_must_send_csrf_to_change(client, ui_hub, config_secret):
    seed(client, config_secret)
    token = sign_in(client, VIEWER)
    assert client.get("/api/outbox").status_code == 200
    assert client.post("/api/outbox/1/skip").status_code == 403
    assert client.post("/api/outbox/1/skip", headers={"X-CSRF-Token": token}).status_code == 403  # a viewer


def test_no_api_answer_contains_a_config_secret(client, ui_hub, config_secret):
    first = seed(client, config_secret)
    headers = bearer(make_token(ui_hub, "admin"))
    urls = [
        "/api/connections",
        "/api/connections/sits/check",
        "/api/plugins",
        "/api/outbox",
        "/api/outbox/depth",
        "/api/reference-lists",
        "/api/reference-lists/application_status",
        "/api/requests",
        f"/api/requests/{first['request_id']}",
        "/api/people/by-identifier/mst/0000123",
        "/openapi.json",
        "/docs",
    ]
    for url in urls:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.text[:300])
        assert config_secret not in response.text, url
    assert client.get("/api/connections", headers=headers).json()["sits"]["settings"]["token"] == "********"


def test_openapi_documents_the_api(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/people/{person_id}", "/api/people/by-identifier/{scheme}/{value}", "/api/requests"):
        assert path in spec["paths"]
    assert not any(p.startswith("/admin") for p in spec["paths"])
    assert spec["components"]["securitySchemes"]["APIToken"]["scheme"] == "bearer"
    assert spec["paths"]["/api/requests"]["get"]["security"] == [{"APIToken": []}]
    inbound = spec["paths"]["/inbound/{connection}"]["post"]
    assert {"200", "201", "401", "409", "413", "422", "503"} <= set(inbound["responses"])
    assert "text/xml" in inbound["requestBody"]["content"]
