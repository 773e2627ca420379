"""The example plugin, installed from its own distribution, keeps the connector contract."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import pytest

from azorus_connect.testing.contract import ConnectorContract

if TYPE_CHECKING:
    from azorus_example_sis.server import ExampleSis


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.usefixtures("example_sis_installed")
class TestExampleSisContract(ConnectorContract):
    connector_type = "example_sis"

    @pytest.fixture
    def connection_settings(self, example_sis: ExampleSis) -> dict[str, Any]:
        return {
            "base_url": example_sis.url,
            "api_key": {"env": "EXAMPLE_SIS_API_KEY"},
            "page_size": 1,
            "timeout": 5,
        }

    @pytest.fixture
    def secret_env(self, example_sis: ExampleSis) -> dict[str, str]:
        return {"EXAMPLE_SIS_API_KEY": example_sis.state.api_key}

    @pytest.fixture
    def bad_settings(self, connection_settings: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {**connection_settings, "base_url": "sis.example.ac.uk"},
            {**connection_settings, "api_key": "a literal key"},
            {**connection_settings, "page_size": 501},
            {**connection_settings, "api_key": {"env": "NO_SUCH_VARIABLE_FOR_SURE"}},
            {k: v for k, v in connection_settings.items() if k != "api_key"},
        ]

    @pytest.fixture
    def unreachable_settings(self, connection_settings: dict[str, Any]) -> dict[str, Any]:
        return {**connection_settings, "base_url": f"http://127.0.0.1:{_closed_port()}"}
