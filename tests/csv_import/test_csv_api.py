"""The wizard's JSON API: upload -> suggestion -> dry run -> run -> progress -> rows -> error CSV -> undo."""

from __future__ import annotations

import time

import pytest

from azorus_connect.admin import accounts
from azorus_connect.store.db import utcnow

from .conftest import FIXTURES, people, table_counts


@pytest.fixture
def api(csv_hub, hub_client):
    with csv_hub.store.write() as conn:
        admin = accounts.create_api_token(conn, "importer", "admin", None, utcnow())
        viewer = accounts.create_api_token(conn, "reader", "viewer", None, utcnow())
    client = hub_client(csv_hub)
    client.admin = {"Authorization": f"Bearer {admin}"}
    client.viewer = {"Authorization": f"Bearer {viewer}"}
    return client


CSV = (
    "Student ID,Forename,Surname,DOB,Fair attended,Comments\r\n"
    '0000000001,Ann,Lee,36950,LDN24,=HYPERLINK("http://x")\r\n'
    "0000000002,Bob,Ray,31/02/2001,MAN24,\r\n"
    "0000000003,Cy,Do,01-JAN-1999,,+44 7700\r\n"
)


def upload(api, body: bytes | str = CSV, name: str = "fair.csv", headers=None):
    data = body.encode("utf-8") if isinstance(body, str) else body
    return api.post(
        "/api/imports/uploads",
        files={"file": (name, data, "text/csv")},
        data={"entity": "person"},
        headers=api.admin if headers is None else headers,
    )


def wait_finished(api, run_id: int) -> dict:
    deadline = time.monotonic() + 20
    while True:
        body = api.get(f"/api/imports/runs/{run_id}", headers=api.viewer).json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def test_the_wizard_flow_end_to_end(api, csv_hub):
    up = upload(api)
    assert up.status_code == 201, up.text
    info = up.json()
    assert info["header"] == ["Student ID", "Forename", "Surname", "DOB", "Fair attended", "Comments"]
    assert info["rows"] == 3 and info["encoding"] == "utf-8-sig" and info["delimiter"] == "comma"
    suggested = {s["column"]: (s["target"], s["method"]) for s in info["suggestion"]}
    assert suggested["Student ID"] == ("id:mst", "synonym")
    assert suggested["Fair attended"] == ("custom:fair", "exact")
    assert info["unmapped"] == ["Comments"]
    profile = info["profile"]
    profile["columns"]["Comments"] = {"to": "custom:notes", "transform": []}

    targets = api.get("/api/imports/targets?entity=person", headers=api.viewer).json()
    assert {"target": "custom:notes", "label": "Notes"} in targets

    before = table_counts(csv_hub)
    started = api.post(
        f"/api/imports/uploads/{info['upload_id']}/runs",
        json={"profile": profile, "dry_run": True},
        headers=api.admin,
    )
    assert started.status_code == 202, started.text
    dry = wait_finished(api, started.json()["run_id"])
    assert (dry["dry_run"], dry["new"], dry["invalid"]) == (True, 2, 1)
    assert table_counts(csv_hub) == before
    rows = api.get(f"/api/imports/runs/{dry['run_id']}/rows", headers=api.viewer).json()
    assert [(r["row"], r["status"]) for r in rows] == [(2, "new"), (3, "invalid"), (4, "new")]
    assert rows[1]["reasons"] == ["DOB: '31/02/2001' is not a real date"]

    real = api.post(
        f"/api/imports/uploads/{info['upload_id']}/runs",
        json={"profile": profile, "dry_run": False, "batch_size": 1},
        headers=api.admin,
    )
    result = wait_finished(api, real.json()["run_id"])
    assert (result["status"], result["new"], result["invalid"]) == ("finished", 2, 1)
    assert sorted(people(csv_hub)) == ["0000000001", "0000000003"]
    assert people(csv_hub)["0000000001"]["custom"]["notes"] == '=HYPERLINK("http://x")'

    report = api.get(result["links"]["errors"], headers=api.viewer)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    assert "attachment" in report.headers["content-disposition"]
    text = report.content.decode("utf-8-sig")
    assert text.splitlines() == [
        "row,Student ID,Forename,Surname,DOB,Fair attended,Comments,reason",
        "3,0000000002,Bob,Ray,31/02/2001,MAN24,,DOB: '31/02/2001' is not a real date",
    ]

    undone = api.post(f"/api/imports/runs/{result['run_id']}/undo", headers=api.admin)
    assert undone.status_code == 200, undone.text
    assert undone.json()["removed"] == {"person": 2}
    assert people(csv_hub) == {}
    assert api.get(f"/api/imports/runs/{result['run_id']}", headers=api.viewer).json()["status"] == "undone"
    again = api.post(f"/api/imports/runs/{result['run_id']}/undo", headers=api.admin)
    assert again.status_code == 422 and "already been undone" in again.json()["detail"]["message"]


@pytest.mark.parametrize(
    ("fixture", "status", "problem"),
    [
        ("empty.csv", 400, "empty"),
        ("binary.csv", 400, "binary"),
        ("workbook.xlsx", 400, "binary"),
        ("duplicate_headers.csv", 400, "header"),
        ("blank_header.csv", 400, "header"),
    ],
)
def test_unusable_uploads_get_a_4xx_with_the_reason(api, csv_hub, fixture, status, problem):
    response = upload(api, (FIXTURES / fixture).read_bytes(), fixture)
    assert response.status_code == status
    assert response.json()["detail"]["problem"] == problem
    assert response.json()["detail"]["message"]


def test_oversized_upload_is_413_and_not_kept(api, csv_hub, monkeypatch, tmp_path):
    monkeypatch.setenv("AZORUS_IMPORT_MAX_BYTES", "50")
    response = upload(api)
    assert response.status_code == 413
    assert list((tmp_path / "imports" / "uploads").glob("*.csv")) == []


def test_roles_and_sign_in_are_enforced(api):
    assert upload(api, headers={}).status_code == 401
    assert upload(api, headers=api.viewer).status_code == 403
    assert api.get("/api/imports/runs").status_code == 401
    assert api.get("/api/imports/runs", headers=api.viewer).status_code == 200


def test_a_bad_profile_is_a_422_naming_the_problem(api):
    info = upload(api).json()
    profile = {**info["profile"], "columns": {"Student ID": "id:mst", "Forename": "shoe_size"}}
    response = api.post(
        f"/api/imports/uploads/{info['upload_id']}/runs", json={"profile": profile}, headers=api.admin
    )
    assert response.status_code == 422
    assert "unknown target 'shoe_size'" in response.json()["detail"]["message"]


def test_profiles_saved_exported_and_loaded_as_toml(api):
    definition = {
        "entity": "person",
        "match_on": ["mst"],
        "columns": {"MST": "id:mst", "DOB": "date_of_birth"},
    }
    saved = api.put("/api/imports/profiles/fairs", json=definition, headers=api.admin)
    assert saved.status_code == 200, saved.text
    toml = api.get("/api/imports/profiles/fairs/toml", headers=api.viewer)
    assert toml.status_code == 200 and 'name = "fairs"' in toml.text
    assert api.delete("/api/imports/profiles/fairs", headers=api.admin).status_code == 200
    assert api.get("/api/imports/profiles/fairs", headers=api.viewer).status_code == 404
    loaded = api.post(
        "/api/imports/profiles/toml",
        content=toml.text,
        headers={**api.admin, "Content-Type": "application/toml"},
    )
    assert loaded.status_code == 201, loaded.text
    assert [p["name"] for p in api.get("/api/imports/profiles", headers=api.viewer).json()] == ["fairs"]
    bad = api.put("/api/imports/profiles/x", json={"columns": {"A": "custom:nope"}}, headers=api.admin)
    assert bad.status_code == 422 and "nope" in bad.json()["detail"]["message"]
