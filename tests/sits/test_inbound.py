"""StuTalk posts through the real web app and store: every payload shape, and what is stored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from lxml import etree
from sqlalchemy import func, select

from azorus_connect import Hub
from azorus_connect.store.schema import (
    application,
    change_log,
    enquiry,
    identifier,
    outbox,
    person,
    reference_value,
    request_log,
)

from .conftest import PSWD, basic, fixture


def post(client: Any, body: bytes, *, connection: str = "sits", **headers: str) -> Any:
    headers = {"content-type": "text/xml", **basic(), **headers}
    return client.post(f"/inbound/{connection}", content=body, headers=headers)


def people(hub: Hub) -> dict[str, dict[str, Any]]:
    """Every person by MST code (or by hub id when they have none), with identifiers."""
    with hub.store.read() as conn:
        ids: dict[int, dict[str, str]] = {}
        for pid, scheme, value in conn.execute(
            select(identifier.c.person_id, identifier.c.scheme, identifier.c.value)
        ):
            ids.setdefault(pid, {})[scheme] = value
        out = {}
        for row in conn.execute(select(person)).mappings():
            found = ids.get(row["id"], {})
            out[found.get("mst", str(row["id"]))] = {**row, "identifiers": found}
        return out


def rows(hub: Hub, table: Any) -> list[dict[str, Any]]:
    with hub.store.read() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def count(hub: Hub, table: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def answer(response: Any) -> etree._Element:
    assert response.headers["content-type"].startswith("application/xml"), response.text
    return etree.fromstring(response.content)


def test_long_tags_create_a_person_with_mst_and_stu_identifiers(
    sits_hub: Callable[..., Hub], hub_client: Any
) -> None:
    hub = sits_hub()
    response = post(hub_client(hub), fixture("stu_long_tags.xml"))
    assert response.status_code == 201
    body = answer(response)
    assert body.get("outcome") == "created" and body.get("http") == "201"
    assert body.get("requestId") == response.headers["x-request-id"]
    [record] = body.findall("record")
    assert record.attrib["sitsEntity"] == "STU" and record.attrib["sitsKey"] == "24001234"
    assert record.attrib["mst"] == "0000123456" and record.attrib["action"] == "created"
    [jane] = people(hub).values()
    assert record.attrib["hubId"] == str(jane["id"])
    assert jane["identifiers"] == {"mst": "0000123456", "sits_stu": "24001234", "uln": "1234567890"}
    assert (jane["first_name"], jane["last_name"], jane["title"]) == ("JANE", "EXAMPLE", "MS")
    assert jane["date_of_birth"] == dt.date(2006, 5, 14)
    assert (jane["gender"], jane["domicile"]) == ("F", "XF")


def test_short_tags_with_nested_cap_link_the_application(
    sits_hub: Callable[..., Hub], hub_client: Any
) -> None:
    hub = sits_hub()
    response = post(hub_client(hub), fixture("stu_cap_short_tags.xml"))
    assert response.status_code == 201
    records = answer(response).findall("record")
    assert [(r.get("sitsEntity"), r.get("sitsKey"), r.get("type")) for r in records] == [
        ("STU", "24001234", "person"),
        ("CAP", "24001234/01", "application"),
    ]
    [jane] = people(hub).values()
    assert jane["email"] == "jane@example.org" and jane["nationality"] == "000"
    [cap] = rows(hub, application)
    assert cap["person_id"] == jane["id"] and cap["key"] == "24001234/01"
    assert (cap["course"], cap["route"], cap["academic_year"], cap["status"]) == (
        "UBSCCS01",
        "CS",
        "2025/6",
        "CF",
    )
    assert cap["response"] == "F" and cap["response_date"] == dt.date(2025, 7, 2)


def test_cap_at_the_root_links_through_cap_stuc(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub()
    client = hub_client(hub)
    assert post(client, fixture("stu_long_tags.xml")).status_code == 201
    response = post(client, fixture("cap_at_root.xml"))
    assert response.status_code == 201, response.text
    [cap] = rows(hub, application)
    assert cap["person_id"] == people(hub)["0000123456"]["id"]
    assert cap["key"] == "24001234/02" and cap["response_date"] == dt.date(2026, 3, 1)


def test_cap_for_an_unknown_student_is_422_and_stores_nothing(
    sits_hub: Callable[..., Hub], hub_client: Any
) -> None:
    hub = sits_hub()
    response = post(hub_client(hub), fixture("cap_at_root.xml"))
    assert response.status_code == 422
    assert "no person found" in answer(response).findtext("error", "")
    assert count(hub, application) == 0 and count(hub, request_log) == 1


def test_mst_alone_and_nested_mre_mst_match_the_same_person(
    sits_hub: Callable[..., Hub], hub_client: Any
) -> None:
    hub = sits_hub()
    client = hub_client(hub)
    post(client, fixture("stu_long_tags.xml"))
    response = post(client, fixture("mst_only.xml"))
    assert response.status_code == 200
    assert answer(response).find("record").get("action") == "unchanged"
    assert list(people(hub)) == ["0000123456"]


def test_reference_table_fills_its_list(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub()
    response = post(hub_client(hub), fixture("reference_nat.xml"))
    assert response.status_code == 201
    values = {(r["list_name"], r["code"]): r for r in rows(hub, reference_value)}
    assert set(values) == {("nationality", "000"), ("nationality", "011"), ("nationality", "099")}
    assert values[("nationality", "000")]["label"] == "British"
    assert values[("nationality", "000")]["short_label"] == "BRITISH"
    assert values[("nationality", "099")]["in_use"] is False


def test_unmapped_reference_table_fills_the_list_named_after_it(
    sits_hub: Callable[..., Hub], hub_client: Any
) -> None:
    hub = sits_hub()
    body = b"<EXCHANGE><ETH><ETH.SRS><ETH_CODE>10</ETH_CODE><ETH_NAME>White</ETH_NAME><ETH_IUSE>Y</ETH_IUSE>"
    body += b"</ETH.SRS></ETH></EXCHANGE>"
    assert post(hub_client(hub), body).status_code == 201
    [value] = rows(hub, reference_value)
    assert (value["list_name"], value["code"], value["label"], value["in_use"]) == (
        "ETH",
        "10",
        "White",
        True,
    )


def test_reference_list_turns_a_warning_into_a_known_code(
    sits_hub: Callable[..., Hub], hub_client: Any
) -> None:
    hub = sits_hub()
    client = hub_client(hub)
    first = answer(post(client, fixture("stu_cap_short_tags.xml")))
    assert any("'000' is not in list 'nationality'" in (w.text or "") for w in first.findall("warning"))
    post(client, fixture("reference_nat.xml"))
    again = post(client, fixture("stu_cap_short_tags.xml"), accept="application/json").json()
    assert not any("nationality" in w for w in again["warnings"])


def test_esd_creates_a_person_and_their_enquiry(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub()
    response = post(hub_client(hub), fixture("esd_enquirer.xml"), accept="application/json")
    assert response.status_code == 201
    body = response.json()
    assert [(r["sitsEntity"], r["type"], r["action"]) for r in body["records"]] == [
        ("ESD", "person", "created"),
        ("ESD", "enquiry", "created"),
    ]
    sam = people(hub)["0000123999"]
    assert sam["identifiers"] == {"mst": "0000123999", "sits_esd": "E000981"}
    assert (sam["first_name"], sam["email"], sam["date_of_birth"]) == (
        "SAM",
        "sam@example.org",
        dt.date(2007, 1, 31),
    )
    [esd] = rows(hub, enquiry)
    assert (esd["person_id"], esd["key"], esd["course"], esd["entry_year"]) == (
        sam["id"],
        "E000981",
        "UBSCCS01",
        "2026/7",
    )
    assert count(hub, outbox) == 0  # it came from SITS: nothing goes back


def test_several_rows_and_entities_in_one_payload(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub()
    response = post(hub_client(hub), fixture("several_rows.xml"))
    assert response.status_code == 201
    assert [r.get("sitsEntity") for r in answer(response).findall("record")] == [
        "GEN",
        "GEN",
        "STU",
        "STU",
        "CAP",
        "CAP",
        "STU",
    ]
    found = people(hub)
    assert sorted(found) == ["0000130101", "0000130102", "0000130103"]
    assert found["0000130101"]["date_of_birth"] == dt.date(2006, 7, 16)
    assert found["0000130103"]["date_of_birth"] == dt.date(2006, 1, 3)
    caps = rows(hub, application)
    assert {c["key"] for c in caps} == {"24001302/01", "24001302/02"}
    assert {c["person_id"] for c in caps} == {found["0000130102"]["id"]}
    assert count(hub, reference_value) == 2


def test_empty_elements_clear_fields(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub()
    client = hub_client(hub)
    full = fixture("empty_elements.xml").replace(b"<STU_FNM1/>", b"<STU_FNM1>ANNA</STU_FNM1>")
    post(client, full)
    assert people(hub)["0000140000"]["first_name"] == "ANNA"
    response = post(client, fixture("empty_elements.xml"), accept="application/json")
    assert response.status_code == 200 and response.json()["outcome"] == "updated"
    assert people(hub)["0000140000"]["first_name"] is None


def test_same_payload_twice_is_200_unchanged_and_changes_nothing(
    sits_hub: Callable[..., Hub], hub_client: Any
) -> None:
    hub = sits_hub()
    client = hub_client(hub)
    assert post(client, fixture("several_rows.xml")).status_code == 201
    before = (rows(hub, person), rows(hub, application), count(hub, change_log))
    again = post(client, fixture("several_rows.xml"))
    assert again.status_code == 200
    body = answer(again)
    assert body.get("outcome") == "unchanged"
    assert {r.get("action") for r in body.findall("record")} == {"unchanged"}
    assert (rows(hub, person), rows(hub, application), count(hub, change_log)) == before


def test_update_answers_200_updated_with_the_changed_record(
    sits_hub: Callable[..., Hub], hub_client: Any
) -> None:
    hub = sits_hub()
    client = hub_client(hub)
    post(client, fixture("stu_long_tags.xml"))
    changed = fixture("stu_long_tags.xml").replace(b">EXAMPLE<", b">EXAMPLE-SMITH<")
    response = post(client, changed, accept="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["outcome"] == "updated"
    assert body["records"][0]["action"] == "updated" and body["records"][0]["mst"] == "0000123456"
    assert people(hub)["0000123456"]["last_name"] == "EXAMPLE-SMITH"


def test_form_encoded_post_with_the_xml_in_a_field(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub(inbound={"form_field": "XMLDATA"})
    form = urlencode({"XMLDATA": fixture("stu_latin1.xml")}, encoding="latin-1")
    response = post(hub_client(hub), form.encode(), **{"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 201, response.text
    assert people(hub)["0000150000"]["first_name"] == "Renée"


def test_pswd_header_alone_authenticates(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub()
    response = hub_client(hub).post(
        "/inbound/sits", content=fixture("mst_only.xml"), headers={"content-type": "text/xml", "PSWD": PSWD}
    )
    assert response.status_code == 201


def test_md5_pswd_and_requiring_every_method(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    import hashlib

    hub = sits_hub(inbound={"pswd_format": "md5", "require": "all"})
    client = hub_client(hub)
    digest = hashlib.md5(PSWD.encode()).hexdigest().upper()
    assert post(client, fixture("mst_only.xml"), PSWD=digest).status_code == 201
    assert post(client, fixture("mst_only.xml"), PSWD=PSWD).status_code == 401  # plain text refused
    headers = {"content-type": "text/xml", "PSWD": digest}
    assert client.post("/inbound/sits", content=fixture("mst_only.xml"), headers=headers).status_code == 401
