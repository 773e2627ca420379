"""Enquiries out to the fake SIW_RWS service through the real outbox and worker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from azorus_simulators.sits_rws import FakeSitsRws
from lxml import etree
from sqlalchemy import select

from azorus_connect import Hub
from azorus_connect.engine import Source
from azorus_connect.model import Enquiry, Person
from azorus_connect.store.schema import change_log, identifier, outbox
from azorus_connect.worker import Worker

from .conftest import RWS_PASSWORD, RWS_USER, basic, fixture


def new_enquiry(hub: Hub, email: str = "ada@example.org", course: str = "UBSCCS01") -> int:
    """An enquiry made outside SITS (a web form), for a person SITS does not know yet."""
    results = hub.apply(
        [
            Person(
                identifiers={"email": email},
                first_name="Ada",
                last_name="Lovelace",
                date_of_birth=dt.date(2007, 12, 10),
                email=email,
            ),
            Enquiry(person={"identifiers": {"email": email}}, course=course, entry_year="2026/7"),
        ],
        Source(connection="web-form"),
        hub.apply_options(hub.config.connection("sits"), match_on=("email",)),
    )
    return results[0].hub_id or 0


def messages(hub: Hub) -> list[dict[str, Any]]:
    with hub.store.read() as conn:
        return [dict(r) for r in conn.execute(select(outbox).order_by(outbox.c.id)).mappings()]


def identifiers_of(hub: Hub, person_id: int) -> dict[str, str]:
    with hub.store.read() as conn:
        rows = conn.execute(
            select(identifier.c.scheme, identifier.c.value).where(identifier.c.person_id == person_id)
        )
        return {scheme: value for scheme, value in rows}


def test_enquiry_goes_out_and_its_mst_comes_back_without_echo(
    sits_hub: Callable[..., Hub], rws: FakeSitsRws
) -> None:
    hub = sits_hub(rws.url)
    person_id = new_enquiry(hub)
    [queued] = messages(hub)
    assert (queued["connection"], queued["entity"], queued["status"]) == ("sits", "enquiry", "pending")

    result = Worker(hub).drain("sits")
    assert (result.sent, result.retried, result.failed) == (1, 0, 0)
    [request] = rws.requests
    assert (request.method, request.service, request.status) == ("POST", "CRM_ESD_IN", 201)
    assert request.headers["Authorization"] == basic(RWS_USER, RWS_PASSWORD)["Authorization"]
    assert request.headers["Content-Type"].startswith("text/xml")
    sent = etree.fromstring(request.body)
    assert sent.tag == "EnquirerList"
    fields = {child.tag: child.text for child in sent.find("Enquirer")}
    assert fields == {
        "CrmId": str(person_id),
        "Forename1": "Ada",
        "Surname": "Lovelace",
        "DateOfBirth": "2007-12-10",
        "EmailAddress": "ada@example.org",
        "CourseCode": "UBSCCS01",
        "AcademicYear": "2026/7",
    }
    assert identifiers_of(hub, person_id) == {"email": "ada@example.org", "mst": "0000900001"}
    [done] = messages(hub)  # the write-back queued nothing for SITS: no echo
    assert done["status"] == "sent" and done["external_ids"] == {"mst": "0000900001"}
    with hub.store.read() as conn:
        logged = conn.execute(select(change_log).where(change_log.c.connection == "sits")).mappings().all()
    assert [(r["entity"], r["field"], r["new_value"]) for r in logged] == [
        ("person", "id:mst", '"0000900001"')
    ]
    assert Worker(hub).drain("sits").sent == 0
    assert len(rws.requests) == 1


def test_sits_later_sends_the_student_back_and_it_lands_on_the_same_person(
    sits_hub: Callable[..., Hub], rws: FakeSitsRws, hub_client: Any
) -> None:
    hub = sits_hub(rws.url)
    person_id = new_enquiry(hub)
    Worker(hub).drain("sits")
    stu = (
        fixture("stu_long_tags.xml")
        .replace(b"0000123456", b"0000900001")
        .replace(b"CRM-000042", str(person_id).encode())
    )
    response = hub_client(hub).post(
        "/inbound/sits", content=stu, headers={"content-type": "text/xml", **basic()}
    )
    assert response.status_code == 200, response.text
    assert identifiers_of(hub, person_id)["sits_stu"] == "24001234"
    assert len(messages(hub)) == 1  # still nothing queued back to SITS


def test_retry_after_503_then_sent(sits_hub: Callable[..., Hub], rws: FakeSitsRws) -> None:
    hub = sits_hub(rws.url)
    person_id = new_enquiry(hub)
    rws.fail_next(1, status=503)
    first = Worker(hub).drain("sits")
    assert (first.sent, first.retried) == (0, 1)
    [pending] = messages(hub)
    assert pending["status"] == "pending" and pending["attempts"] == 1 and "HTTP 503" in pending["last_error"]
    second = Worker(hub).drain("sits")
    assert second.sent == 1
    assert [r.status for r in rws.requests] == [503, 201]
    assert identifiers_of(hub, person_id)["mst"] == "0000900001"


def test_rate_limit_waits_for_retry_after(sits_hub: Callable[..., Hub], rws: FakeSitsRws) -> None:
    hub = sits_hub(rws.url)
    new_enquiry(hub)
    rws.fail_next(1, status=429, retry_after=120)
    assert Worker(hub).drain("sits").retried == 1
    [pending] = messages(hub)
    assert pending["next_attempt_at"] - dt.datetime.now(dt.UTC).replace(tzinfo=None) > dt.timedelta(
        seconds=100
    )
    assert Worker(hub).drain("sits").sent == 0  # not due yet
    assert len(rws.requests) == 1


def test_timeout_is_retried(sits_hub: Callable[..., Hub], rws: FakeSitsRws) -> None:
    hub = sits_hub(rws.url, outbound={"timeout": 0.2})
    new_enquiry(hub)
    rws.set_latency(1.0)
    assert Worker(hub).drain("sits").retried == 1
    assert "Timeout" in messages(hub)[0]["last_error"]
    rws.set_latency(0)
    assert Worker(hub).drain("sits").sent == 1


def test_400_parks_and_holds_the_queue_until_an_admin_retries(
    sits_hub: Callable[..., Hub], rws: FakeSitsRws
) -> None:
    hub = sits_hub(rws.url)
    new_enquiry(hub, "one@example.org")
    new_enquiry(hub, "two@example.org", course="UBAHIS01")
    rws.fail_next(1, status=400)
    result = Worker(hub).drain("sits")
    assert (result.sent, result.failed, result.held) == (0, 1, True)
    first, second = messages(hub)
    assert first["status"] == "parked" and "HTTP 400" in first["last_error"]
    assert second["status"] == "pending"
    assert Worker(hub).drain("sits").held  # the second one waits behind the parked one
    assert len(rws.requests) == 1
    assert hub.outbox.retry(first["id"])
    assert Worker(hub).drain("sits").sent == 2
    bodies = [etree.fromstring(r.body).findtext("Enquirer/EmailAddress") for r in rws.requests]
    assert bodies == ["one@example.org", "one@example.org", "two@example.org"]  # queue order kept


def test_error_inside_a_200_body_is_a_failure(sits_hub: Callable[..., Hub], rws: FakeSitsRws) -> None:
    hub = sits_hub(rws.url)
    person_id = new_enquiry(hub)
    rws.error_in_200_next()
    assert Worker(hub).drain("sits").failed == 1
    [parked] = messages(hub)
    assert parked["status"] == "parked"
    assert "reported an error" in parked["last_error"] and "mandatory" in parked["last_error"]
    assert "mst" not in identifiers_of(hub, person_id)


def test_malformed_reply_is_retried_and_the_resend_gets_the_same_mst(
    sits_hub: Callable[..., Hub], rws: FakeSitsRws
) -> None:
    hub = sits_hub(rws.url)
    person_id = new_enquiry(hub)
    rws.malformed_next()
    assert Worker(hub).drain("sits").retried == 1
    assert "unreadable" in messages(hub)[0]["last_error"]
    assert Worker(hub).drain("sits").sent == 1
    assert identifiers_of(hub, person_id)["mst"] == "0000900001"


def test_wrong_rws_password_parks_with_401(
    sits_hub: Callable[..., Hub], rws: FakeSitsRws, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SITS_TEST_RWS_PASSWORD", "not-it")
    hub = sits_hub(rws.url)
    new_enquiry(hub)
    assert Worker(hub).drain("sits").failed == 1
    assert "HTTP 401" in messages(hub)[0]["last_error"]
    assert "not-it" not in messages(hub)[0]["last_error"]


def test_url_template_with_path_values_and_an_existing_mst(
    sits_hub: Callable[..., Hub], rws: FakeSitsRws
) -> None:
    template = "{base_url}{service}/MST_CODE/{person.identifiers.mst}/AYR_CODE/{entry_year}"
    hub = sits_hub(rws.url, outbound={"url_template": template})
    new_enquiry(hub)
    assert Worker(hub).drain("sits").failed == 1  # no MST yet: the URL cannot be built
    assert "person.identifiers.mst" in messages(hub)[0]["last_error"]
    assert rws.requests == []
    hub.apply(
        [
            Person(identifiers={"mst": "0000777777"}, first_name="Grace", last_name="Hopper"),
            Enquiry(person={"identifiers": {"mst": "0000777777"}}, course="UBSCCS01", entry_year="2026/7"),
        ],
        Source(connection="web-form"),
    )
    assert hub.outbox.skip(messages(hub)[0]["id"])
    assert Worker(hub).drain("sits").sent == 1
    [request] = rws.requests
    assert request.params == {"MST_CODE": "0000777777", "AYR_CODE": "2026-7"}
    assert request.status == 200  # SITS updated the master record it already had
    assert etree.fromstring(request.body).findtext("Enquirer/MasterStudentCode") == "0000777777"


def test_check_connection(sits_hub: Callable[..., Hub], rws: FakeSitsRws, monkeypatch: Any) -> None:
    good = sits_hub(rws.url).check("sits")
    assert good.ok and "credentials accepted" in good.detail
    monkeypatch.setenv("SITS_TEST_RWS_PASSWORD", "not-it")
    bad = sits_hub(rws.url).check("sits")
    assert not bad.ok and "refused the credentials" in bad.detail
    assert "not-it" not in bad.detail
    down = sits_hub("http://127.0.0.1:9/urd/sits.urd/run/SIW_RWS/").check("sits")
    assert not down.ok and "cannot reach" in down.detail
    inbound_only = sits_hub().check("sits")
    assert inbound_only.ok and "/inbound/sits" in inbound_only.detail
