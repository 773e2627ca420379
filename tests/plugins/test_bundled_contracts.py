"""The bundled connectors keep the same contract a third party's must keep."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azorus_simulators.sits_rws import FakeSitsRws
from starlette.datastructures import Headers

from azorus_connect.connector import InboundRequest
from azorus_connect.testing.contract import ConnectorContract

SITS_FIXTURES = Path(__file__).parents[1] / "fixtures" / "sits"
RWS_USER, RWS_PASSWORD = "STUTALK_AZORUS", "contract-rws-password"
BASIC_USER, BASIC_PASSWORD = "STUTALK", "contract-basic-password"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def rws() -> Iterator[FakeSitsRws]:
    with FakeSitsRws(
        username=RWS_USER, password=RWS_PASSWORD, services=("CRM_ESD_IN", "CRM_PERSON_IN")
    ) as fake:
        yield fake


class TestSitsContract(ConnectorContract):
    connector_type = "sits"

    @pytest.fixture
    def connection_settings(self, rws: FakeSitsRws) -> dict[str, Any]:
        return {
            "inbound": {"username": BASIC_USER, "password": {"env": "CONTRACT_SITS_BASIC"}},
            "outbound": {
                "base_url": rws.url,
                "username": RWS_USER,
                "password": {"env": "CONTRACT_SITS_RWS"},
                "services": {"enquiry": "CRM_ESD_IN", "person": "CRM_PERSON_IN"},
                "timeout": 5,
            },
        }

    @pytest.fixture
    def secret_env(self) -> dict[str, str]:
        return {"CONTRACT_SITS_BASIC": BASIC_PASSWORD, "CONTRACT_SITS_RWS": RWS_PASSWORD}

    @pytest.fixture
    def bad_settings(self, connection_settings: dict[str, Any]) -> list[dict[str, Any]]:
        outbound = connection_settings["outbound"]
        return [
            {**connection_settings, "no_such_setting": 1},
            {**connection_settings, "inbound": {"username": BASIC_USER}},
            {**connection_settings, "outbound": {**outbound, "base_url": "evision.example.ac.uk"}},
            {**connection_settings, "outbound": {**outbound, "password": RWS_PASSWORD}},
        ]

    @pytest.fixture
    def unreachable_settings(self, connection_settings: dict[str, Any]) -> dict[str, Any]:
        outbound = {**connection_settings["outbound"], "base_url": f"http://127.0.0.1:{_closed_port()}/"}
        return {**connection_settings, "outbound": outbound}

    @pytest.fixture
    def inbound_request(self) -> InboundRequest:
        token = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
        headers = Headers({"Authorization": f"Basic {token}", "Content-Type": "application/xml"})
        return InboundRequest(
            connection="",
            method="POST",
            path="/inbound/contract",
            headers=headers,
            query={},
            body=(SITS_FIXTURES / "esd_enquirer.xml").read_bytes(),
            content_type="application/xml",
            client_ip="127.0.0.1",
        )
