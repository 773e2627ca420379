"""Every status code of SPEC's table, hostile payloads, authentication and redaction in the request log."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from azorus_connect import Hub
from azorus_connect.redaction import MASK
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

from .conftest import BASIC_PASSWORD, HOSTILE, PSWD, basic, fixture

STORED = (person, identifier, application, enquiry, reference_value, change_log, outbox)


def post(client: Any, body: bytes, *, connection: str = "sits", auth: bool = True, **headers: str) -> Any:
    headers = {"content-type": "text/xml", **(basic() if auth else {}), **headers}
    return client.post(f"/inbound/{connection}", content=body, headers=headers)


def stored(hub: Hub) -> dict[str, int]:
    with hub.store.read() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in STORED}


def log_rows(hub: Hub) -> list[dict[str, Any]]:
    with hub.store.read() as conn:
        return [
            dict(r) for r in conn.execute(select(request_log).order_by(request_log.c.received_at)).mappings()
        ]


NOTHING = {t.name: 0 for t in STORED}


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("xxe_file.xml", 400),
        ("xxe_network.xml", 400),
        ("xxe_parameter_entity.xml", 400),
        ("billion_laughs.xml", 400),
        ("undefined_entity.xml", 400),
        ("truncated.xml", 400),
        ("not_xml.txt", 400),
        ("misdeclared_utf8.xml", 400),
        ("wrong_root.xml", 400),
        ("no_rows.xml", 400),
        ("unsupported_charset.xml", 415),
    ],
)
def test_hostile_payload_gets_a_4xx_and_only_the_log_entry_is_stored(
    sits_hub: Callable[..., Hub], hub_client: Any, name: str, status: int
) -> None:
    hub = sits_hub()
    body = (HOSTILE / name).read_bytes()
    response = post(hub_client(hub), body)
    assert response.status_code == status
    assert "root:" not in response.text  # no file content leaks back
    assert stored(hub) == NOTHING
    [entry] = log_rows(hub)
    assert entry["status_code"] == status and entry["outcome"] == "rejected"
    assert bytes(entry["body"]) == body and entry["error"]


def test_oversized_body_is_413(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub(max_body_bytes=2_000)
    big = fixture("several_rows.xml").replace(b"</EXCHANGE>", b"<!--" + b"x" * 3_000 + b"--></EXCHANGE>")
    response = post(hub_client(hub), big)
    assert response.status_code == 413
    assert stored(hub) == NOTHING
    assert [r["status_code"] for r in log_rows(hub)] == [413]


def test_too_many_rows_is_413(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub(inbound={"max_rows": 2})
    assert post(hub_client(hub), fixture("reference_nat.xml")).status_code == 413
    assert stored(hub) == NOTHING


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("application/json", 415), ("text/plain", 415), ("text/xml; charset=utf-16", 415), ("text/xml", 201)],
)
def test_media_types(sits_hub: Callable[..., Hub], hub_client: Any, content_type: str, status: int) -> None:
    hub = sits_hub()
    response = post(hub_client(hub), fixture("mst_only.xml"), **{"content-type": content_type})
    assert response.status_code == status
    if status == 415:
        assert stored(hub) == NOTHING


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(password="wrong"),
        basic(user="SOMEONE", password=BASIC_PASSWORD),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer " + BASIC_PASSWORD},
        {"PSWD": "wrong"},
        {"PASSWORD": PSWD},
    ],
)
def test_missing_or_wrong_credentials_are_401(
    sits_hub: Callable[..., Hub], hub_client: Any, headers: dict[str, str]
) -> None:
    hub = sits_hub()
    response = post(hub_client(hub), fixture("stu_long_tags.xml"), auth=False, **headers)
    assert response.status_code == 401
    assert "credentials" in response.text
    assert stored(hub) == NOTHING


def test_ip_allow_list(sits_hub: Callable[..., Hub], live_hub: Callable[[Hub], str]) -> None:
    import requests

    headers = {"content-type": "text/xml", **basic()}
    refused = sits_hub(inbound={"allowed_ips": ["10.0.0.0/8"]})
    response = requests.post(
        live_hub(refused) + "/inbound/sits", data=fixture("mst_only.xml"), headers=headers, timeout=10
    )
    assert response.status_code == 403 and "127.0.0.1" in response.text
    assert stored(refused) == NOTHING
    allowed = sits_hub(inbound={"allowed_ips": ["10.0.0.0/8", "127.0.0.1"]})
    response = requests.post(
        live_hub(allowed) + "/inbound/sits", data=fixture("mst_only.xml"), headers=headers, timeout=10
    )
    assert response.status_code == 201


def test_unknown_connection_is_404(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub()
    assert post(hub_client(hub), fixture("mst_only.xml"), connection="nope").status_code == 404
    assert stored(hub) == NOTHING


def test_unmapped_entity_is_406(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub()
    body = b"<EXCHANGE><SMO><SMO.CAMS><SPR_CODE>24001234/1</SPR_CODE></SMO.CAMS></SMO></EXCHANGE>"
    response = post(hub_client(hub), body, accept="application/json")
    assert response.status_code == 406
    assert "SMO" in response.json()["error"]
    assert stored(hub) == NOTHING


def test_entity_whose_direction_is_off_is_406(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub(directions={"person": "receive", "application": "off"})
    response = post(hub_client(hub), fixture("stu_cap_short_tags.xml"))
    assert response.status_code == 406
    assert stored(hub) == NOTHING  # the STU in the same payload is not half-written


def test_unmapped_entity_dropped_by_the_connections_mapping_is_406(
    sits_hub: Callable[..., Hub], hub_client: Any
) -> None:
    hub = sits_hub(mapping={"NAT": False})
    assert post(hub_client(hub), fixture("reference_nat.xml")).status_code == 201  # falls back to list NAT
    hub = sits_hub(mapping={"MST": False})
    assert post(hub_client(hub), fixture("mst_only.xml")).status_code == 406


def test_identifier_conflict_is_409(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub()
    client = hub_client(hub)
    assert post(client, fixture("stu_long_tags.xml")).status_code == 201
    other = (
        fixture("stu_long_tags.xml").replace(b"24001234", b"24009999").replace(b"0000123456", b"0000999999")
    )
    other = other.replace(b"1234567890", b"9999999999")
    assert post(client, other).status_code == 201
    mixed = fixture("stu_long_tags.xml").replace(b"24001234", b"24009999")
    before = stored(hub)
    response = post(client, mixed, accept="application/json")
    assert response.status_code == 409
    assert "different people" in response.json()["error"] or "another person" in response.json()["error"]
    assert stored(hub) == before


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (fixture("stu_long_tags.xml").replace(b"14-MAY-06", b"31-FEB-06"), "STU_DOB"),
        (b"<EXCHANGE><NAT><NAT.SRS><NAT_CODE/><NAT_NAME>x</NAT_NAME></NAT.SRS></NAT></EXCHANGE>", "code"),
        (b"<EXCHANGE><ETH><ETH.SRS><ETH_CODE/><ETH_NAME>x</ETH_NAME></ETH.SRS></ETH></EXCHANGE>", "ETH_CODE"),
        (
            b"<EXCHANGE><GEN><GEN.SRS><GEN_CODE>F</GEN_CODE><GEN_IUSE>maybe</GEN_IUSE></GEN.SRS></GEN></EXCHANGE>",
            "GEN_IUSE",
        ),
        (b"<EXCHANGE><STU><STU.SRS><STU_SURN>X</STU_SURN></STU.SRS></STU></EXCHANGE>", "no identifier"),
        (b"<EXCHANGE><STU><STU_CODE>1</STU_CODE></STU></EXCHANGE>", "STU.DICT"),
    ],
)
def test_well_formed_but_invalid_is_422(
    sits_hub: Callable[..., Hub], hub_client: Any, body: bytes, reason: str
) -> None:
    hub = sits_hub()
    response = post(hub_client(hub), body, accept="application/json")
    assert response.status_code == 422, response.text
    assert reason in response.json()["error"]
    assert stored(hub) == NOTHING


def test_unknown_code_in_strict_mode_is_422(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub(unknown_codes="strict")
    client = hub_client(hub)
    payload = (
        "<EXCHANGE><GEN><GEN.SRS><GEN_CODE>F</GEN_CODE><GEN_NAME>Female</GEN_NAME></GEN.SRS></GEN>"
        "<STU><STU.SRS><STU_CODE>1</STU_CODE><STU_GEND>{}</STU_GEND>"
        "<MRE><MRE.MENSYS><MST><MST.SRS><MST_CODE>0000000001</MST_CODE></MST.SRS></MST></MRE.MENSYS></MRE>"
        "</STU.SRS></STU></EXCHANGE>"
    )
    response = post(client, payload.format("Q").encode())
    assert response.status_code == 422
    assert "'Q' is not in list 'gender'" in response.text
    assert stored(hub) == NOTHING
    assert post(client, payload.format("F").encode()).status_code == 201


@contextmanager
def database_down(hub: Hub) -> Iterator[None]:
    """Make the hub's database unreachable for the block (SQLite: its folder moves away;
    PostgreSQL: the database stops taking connections)."""
    url = make_url(hub.store.url)
    if hub.store.is_sqlite:
        folder = Path(str(url.database)).parent
        away = folder.with_name(folder.name + "-away")
        hub.store.dispose()
        folder.rename(away)
        try:
            yield
        finally:
            away.rename(folder)
        return
    admin = create_engine(
        url.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
            {"d": url.database},
        )
        try:
            hub.store.dispose()
            yield
        finally:
            conn.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true'))
    admin.dispose()


def test_database_unavailable_is_503_then_recovers(
    make_hub: Callable[..., Hub], hub_client: Any, tmp_path: Path
) -> None:
    from .conftest import sits_config

    url = None if os.environ.get("AZORUS_TEST_DATABASE_URL") else f"sqlite:///{tmp_path / 'own' / 'hub.db'}"
    if url is not None:
        from azorus_connect.store.db import Store

        store = Store(url)
        store.migrate()
        store.dispose()
    hub = make_hub(sits_config(), database_url=url) if url else make_hub(sits_config())
    client = hub_client(hub)
    with database_down(hub):
        response = post(client, fixture("stu_long_tags.xml"), accept="application/json")
        assert response.status_code == 503
        assert "temporarily unavailable" in response.json()["error"]
    assert post(client, fixture("stu_long_tags.xml")).status_code == 201  # SITS re-sends: it goes through
    assert stored(hub)["person"] == 1


def test_request_log_redacts_every_secret(
    sits_hub: Callable[..., Hub], hub_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hub = sits_hub()
    client = hub_client(hub)
    headers = {**basic(), "PSWD": PSWD, "PASSWORD": PSWD}
    assert post(client, fixture("stu_long_tags.xml"), auth=False, **headers).status_code == 201
    assert post(client, fixture("stu_long_tags.xml"), auth=False, PSWD="wrong-guess").status_code == 401
    entries = log_rows(hub)
    assert len(entries) == 2
    for entry in entries:
        headers_logged = {k.lower(): v for k, v in entry["headers"].items()}
        assert headers_logged["pswd"] == MASK
        dumped = json.dumps({k: str(v) for k, v in entry.items()})
        for secret in (PSWD, BASIC_PASSWORD, basic()["Authorization"].split()[1], "wrong-guess"):
            assert secret not in dumped
    assert {k.lower(): v for k, v in entries[0]["headers"].items()}["authorization"] == MASK
    for secret in (PSWD, BASIC_PASSWORD):
        assert secret not in caplog.text
    assert BASIC_PASSWORD not in json.dumps(hub.config.redacted())


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda s: f"<EXCHANGE>{s}</EXCHANGE>".encode("utf-8", "replace")),
    ),
    content_type=st.sampled_from(["text/xml", "application/xml", "application/x-www-form-urlencoded", ""]),
)
def test_arbitrary_bytes_never_get_a_500(
    sits_hub: Callable[..., Hub], hub_client: Any, body: bytes, content_type: str
) -> None:
    client = _shared_client(sits_hub, hub_client)
    response = post(client, body, **{"content-type": content_type})
    assert response.status_code < 500, response.text


_CLIENTS: dict[int, Any] = {}


def _shared_client(factory: Callable[..., Hub], hub_client: Any) -> Any:
    """One hub and client per test run (hypothesis calls the body many times with the same fixtures)."""
    key = id(factory)
    if key not in _CLIENTS:
        _CLIENTS.clear()
        _CLIENTS[key] = hub_client(factory())
    return _CLIENTS[key]


_TAG = st.sampled_from(
    [
        "STU",
        "STU.SRS",
        "CAP",
        "CAP.SRS",
        "NAT",
        "NAT.SRS",
        "STU_CODE",
        "MST_CODE",
        "NAT_CODE",
        "NAT_NAME",
        "CAP_STUC",
        "CAP_SEQN",
        "MRE",
        "MRE.MENSYS",
        "MST",
        "MST.SRS",
        "STU_DOB",
        "X",
    ]
)


def _element() -> st.SearchStrategy[str]:
    value = st.text(alphabet="0123456789ABCZ-/ é", max_size=10)
    leaf = st.tuples(_TAG, value).map(lambda t: f"<{t[0]}>{t[1]}</{t[0]}>")
    return st.recursive(
        leaf,
        lambda inner: st.tuples(_TAG, st.lists(inner, max_size=3)).map(
            lambda t: f"<{t[0]}>{''.join(t[1])}</{t[0]}>"
        ),
        max_leaves=12,
    )


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_element(), max_size=4))
def test_arbitrary_well_formed_exchange_never_gets_a_500(
    sits_hub: Callable[..., Hub], hub_client: Any, children: list[str]
) -> None:
    client = _shared_client(sits_hub, hub_client)
    body = ("<EXCHANGE>" + "".join(children) + "</EXCHANGE>").encode()
    response = post(client, body)
    assert response.status_code < 500, response.text


def test_a_secret_header_the_log_would_not_mask_is_refused(make_hub: Callable[..., Hub]) -> None:
    from azorus_connect.exceptions import ConfigError

    from .conftest import sits_config

    with pytest.raises(ConfigError, match="pswd_header must be a header the request log masks"):
        make_hub(sits_config(inbound={"pswd_header": "X-Shared-Secret"}))
    hub = make_hub(sits_config(inbound={"pswd_header": "X-Api-Key"}))
    assert hub.config.connection("sits").settings.inbound.pswd_header == "X-Api-Key"


def test_enquiries_sent_only_are_not_received(sits_hub: Callable[..., Hub], hub_client: Any) -> None:
    hub = sits_hub(directions={"person": "receive", "enquiry": "send"})
    response = post(hub_client(hub), fixture("esd_enquirer.xml"), accept="application/json")
    assert response.status_code == 406
    assert "directions.enquiry is 'send'" in response.json()["error"]
    assert stored(hub) == NOTHING
