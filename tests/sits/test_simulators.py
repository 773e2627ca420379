"""The local SITS simulators: the fake SIW_RWS service and the StuTalk sender, against each other."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from azorus_simulators.sits_rws import FakeSitsRws, Reply
from azorus_simulators.sits_rws import main as rws_main
from azorus_simulators.stutalk import StuTalkSender
from azorus_simulators.stutalk import main as stutalk_main
from lxml import etree

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sits"
AUTH = ("STUTALK_AZORUS", "rws-secret")
ENQUIRER = "<EnquirerList><Enquirer><CrmId>{}</CrmId><Surname>SAMPLE</Surname></Enquirer></EnquirerList>"


@pytest.fixture
def rws() -> Iterator[FakeSitsRws]:
    with FakeSitsRws(services=("CRM_ESD_IN", "PERSON")) as fake:
        yield fake


def post(rws: FakeSitsRws, body: str, service: str = "CRM_ESD_IN", **kw: object) -> requests.Response:
    kw.setdefault("auth", AUTH)
    kw.setdefault("timeout", 5)
    return requests.post(rws.url + service + "/", data=body.encode(), **kw)  # type: ignore[arg-type]


def mst_of(reply: bytes) -> str:
    return str(etree.fromstring(reply).findtext("MasterStudentCode"))


def test_create_answers_201_with_a_new_zero_padded_mst(rws: FakeSitsRws) -> None:
    first = post(rws, ENQUIRER.format("hub-1"))
    second = post(rws, ENQUIRER.format("hub-2"))
    assert (first.status_code, second.status_code) == (201, 201)
    assert mst_of(first.content) == "0000900001"
    assert mst_of(second.content) == "0000900002"
    assert "<Surname>SAMPLE</Surname>" in rws.records["0000900001"]
    assert [r.mst_code for r in rws.requests] == ["0000900001", "0000900002"]


def test_resending_the_same_hub_id_returns_the_same_mst_with_200(rws: FakeSitsRws) -> None:
    assert post(rws, ENQUIRER.format("hub-7")).status_code == 201
    again = post(rws, ENQUIRER.format("hub-7"))
    assert again.status_code == 200
    assert mst_of(again.content) == "0000900001"
    assert len(rws.records) == 1


def test_routing_records_service_and_path_parameters(rws: FakeSitsRws) -> None:
    url = rws.url + "PERSON/MST_CODE/0000900001/AYR_CODE/2025-6"
    assert requests.put(url, data=b"<Person/>", auth=AUTH, timeout=5).status_code == 201
    [seen] = rws.requests
    assert (seen.method, seen.service) == ("PUT", "PERSON")
    assert seen.params == {"MST_CODE": "0000900001", "AYR_CODE": "2025-6"}
    got = requests.get(rws.url + "PERSON/MST_CODE/0000900001", auth=AUTH, timeout=5)
    assert (got.status_code, got.text) == (200, "<Person/>")
    assert requests.get(rws.url + "PERSON/MST_CODE/0000000404", auth=AUTH, timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("service", "auth", "status"),
    [
        ("CRM_ESD_IN", None, 401),
        ("CRM_ESD_IN", ("STUTALK_AZORUS", "wrong"), 401),
        ("CRM_ESD_IN", ("someone", "rws-secret"), 401),
        ("NO_SUCH_SERVICE", AUTH, 404),
    ],
)
def test_auth_and_unknown_services(
    rws: FakeSitsRws, service: str, auth: tuple[str, str] | None, status: int
) -> None:
    response = post(rws, ENQUIRER.format("x"), service=service, auth=auth)
    assert response.status_code == status
    assert rws.records == {}
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_garbled_basic_header_and_paths_outside_rws(rws: FakeSitsRws) -> None:
    garbled = {"Authorization": "Basic %%%not-base64"}
    assert post(rws, "<x/>", auth=None, headers=garbled).status_code == 401
    assert requests.post(rws.base_url + "/elsewhere", data=b"<x/>", auth=AUTH, timeout=5).status_code == 404
    assert requests.post(rws.url, data=b"<x/>", auth=AUTH, timeout=5).status_code == 404
    assert post(rws, "not xml at all").status_code == 400
    assert requests.delete(rws.url + "PERSON/", auth=AUTH, timeout=5).status_code == 405


def test_fail_next_answers_503_then_recovers(rws: FakeSitsRws) -> None:
    rws.fail_next(2)
    statuses = [post(rws, ENQUIRER.format("hub-9")).status_code for _ in range(3)]
    assert statuses == [503, 503, 201]
    assert list(rws.records) == ["0000900001"]


def test_rate_limit_carries_retry_after_and_400_parks(rws: FakeSitsRws) -> None:
    rws.fail_next(1, status=429, retry_after=7)
    rws.fail_next(1, status=400)
    limited = post(rws, ENQUIRER.format("a"))
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert post(rws, ENQUIRER.format("a")).status_code == 400
    assert rws.records == {}


def test_error_inside_a_200_body(rws: FakeSitsRws) -> None:
    rws.error_in_200_next()
    response = post(rws, ENQUIRER.format("a"))
    assert response.status_code == 200
    reply = etree.fromstring(response.content)
    assert reply.findtext("status") == "-1"
    assert "mandatory" in str(reply.findtext("messagebuffer"))
    assert rws.records == {}


def test_malformed_reply_is_not_xml(rws: FakeSitsRws) -> None:
    rws.malformed_next()
    response = post(rws, ENQUIRER.format("a"))
    assert response.status_code == 201
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(response.content)


def test_scripted_reply_and_clearing_switches(rws: FakeSitsRws) -> None:
    rws.queue_replies(Reply(202, b'{"MPA_MSTC":"1"', "application/json"), count=2)
    assert post(rws, "<x/>").headers["Content-Type"] == "application/json"
    rws.clear_switches()
    assert post(rws, ENQUIRER.format("z")).status_code == 201


def test_latency_makes_a_short_client_timeout_fire(rws: FakeSitsRws) -> None:
    rws.set_latency(0.6)
    with pytest.raises(requests.Timeout):
        post(rws, ENQUIRER.format("slow"), timeout=0.1)
    rws.set_latency(0)
    assert rws.wait_for_requests(1)[0].status == 201


def test_wait_for_requests_times_out_with_a_count(rws: FakeSitsRws) -> None:
    with pytest.raises(TimeoutError, match="0 of 1 requests"):
        rws.wait_for_requests(1, timeout=0.05)


def test_sender_posts_like_an_eor_with_basic_pswd_and_extra_headers(rws: FakeSitsRws) -> None:
    sender = StuTalkSender(
        rws.url + "CRM_ESD_IN/",
        username=AUTH[0],
        password=AUTH[1],
        pswd="eor-password",
        extra_headers={"X-Site": "TEST"},
    )
    entry = sender.send(FIXTURES / "stu_long_tags.xml")
    assert (entry.number, entry.name, entry.http_status, entry.success) == (1, "stu_long_tags.xml", 201, True)
    [seen] = rws.requests
    assert seen.headers["PSWD"] == "eor-password"
    assert seen.headers["X-Site"] == "TEST"
    assert seen.headers["Content-Type"] == "text/xml"
    expected = base64.b64encode(b"STUTALK_AZORUS:rws-secret").decode()
    assert seen.headers["Authorization"] == f"Basic {expected}"
    assert seen.body == (FIXTURES / "stu_long_tags.xml").read_bytes()
    sender.close()


def test_sender_form_encoding_and_success_codes(rws: FakeSitsRws) -> None:
    sender = StuTalkSender(rws.url + "CRM_ESD_IN/", username=AUTH[0], password=AUTH[1], form_field="DATA")
    entry = sender.send("<EXCHANGE/>", name="form")
    assert entry.http_status == 400  # the fake RWS wants raw XML: a failure in the tray
    assert not entry.success
    assert rws.requests[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert rws.requests[0].body == b"DATA=%3CEXCHANGE%2F%3E"
    strict = StuTalkSender(rws.url + "CRM_ESD_IN/", username=AUTH[0], password=AUTH[1], success_codes=[200])
    assert not strict.send(ENQUIRER.format("q")).success  # 201 not on its list


def test_sender_records_transport_errors_and_reruns_failed_rows(rws: FakeSitsRws) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    dead = StuTalkSender(f"http://127.0.0.1:{closed_port}/inbound/sits", timeout=2)
    entry = dead.send("<EXCHANGE/>")
    assert entry.http_status is None and entry.error == "ConnectionError"
    assert entry.status_text == "ERR ConnectionError"

    sender = StuTalkSender(rws.url + "CRM_ESD_IN/", username=AUTH[0], password=AUTH[1])
    rws.fail_next(3)
    sender.send(ENQUIRER.format("r1"), name="one")
    sender.send(ENQUIRER.format("r2"), name="two")
    assert [e.http_status for e in sender.tray] == [503, 503]
    assert sender.rerun_failed(repeat=3) == []
    assert [(e.http_status, e.attempts, e.success) for e in sender.tray] == [(201, 3, True), (201, 2, True)]
    assert "one" in sender.report() and "201" in sender.report()


def test_command_lines(
    rws: FakeSitsRws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RWS_PASSWORD", AUTH[1])
    code = stutalk_main(
        [
            rws.url + "CRM_ESD_IN/",
            str(FIXTURES / "mst_only.xml"),
            "--username",
            AUTH[0],
            "--password-env",
            "RWS_PASSWORD",
            "--repeat",
            "1",
        ]
    )
    assert code == 0
    assert "mst_only.xml" in capsys.readouterr().out

    answers: list[int] = []

    def wait() -> None:
        url = capsys.readouterr().out.split("listening on ")[1].split(" ")[0]
        answers.append(requests.post(url + "CRM_ESD_IN/", data=b"<x/>", auth=AUTH, timeout=5).status_code)

    rws_main(["--port", "0"], wait=wait)
    assert answers == [201]
