"""SITS test set-up: a hub with a ``sits`` connection, the fake SIW_RWS service, and payload helpers."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azorus_simulators.sits_rws import FakeSitsRws

from azorus_connect import Hub
from azorus_connect.plugins import PluginHost

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sits"
HOSTILE = FIXTURES / "hostile"

BASIC_USER = "STUTALK"
BASIC_PASSWORD = "basic-pa55word"
PSWD = "eor-pa55word"
RWS_USER = "STUTALK_AZORUS"
RWS_PASSWORD = "rws-pa55word"


def basic(user: str = BASIC_USER, password: str = BASIC_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sits_config(
    rws_url: str | None = None,
    *,
    inbound: dict[str, Any] | None = None,
    outbound: dict[str, Any] | None = None,
    directions: dict[str, str] | None = None,
    **connection: Any,
) -> dict[str, Any]:
    """One ``sits`` connection: StuTalk in with Basic or PSWD, enquiries out to ``rws_url``."""
    settings: dict[str, Any] = {
        "inbound": {
            "username": BASIC_USER,
            "password": {"env": "SITS_TEST_BASIC_PASSWORD"},
            "pswd": {"env": "SITS_TEST_PSWD"},
            **(inbound or {}),
        }
    }
    if rws_url is not None:
        settings["outbound"] = {
            "base_url": rws_url,
            "username": RWS_USER,
            "password": {"env": "SITS_TEST_RWS_PASSWORD"},
            **(outbound or {}),
        }
    return {
        "connections": {
            "sits": {
                "type": "sits",
                "directions": directions
                or {"person": "receive", "application": "receive", "reference": "receive", "enquiry": "both"},
                "match_on": ["mst", "sits_stu", "sits_esd"],
                "retry_delays": [0],
                "settings": settings,
                **connection,
            }
        }
    }


@pytest.fixture(scope="session")
def azorus_plugins() -> PluginHost:
    """Only the SITS plugin, found through its entry point like any installed plugin."""
    saved = os.environ.get("AZORUS_PLUGINS")
    os.environ["AZORUS_PLUGINS"] = "sits"
    try:
        return PluginHost.load()
    finally:
        if saved is None:
            del os.environ["AZORUS_PLUGINS"]
        else:
            os.environ["AZORUS_PLUGINS"] = saved


@pytest.fixture(autouse=True)
def sits_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITS_TEST_BASIC_PASSWORD", BASIC_PASSWORD)
    monkeypatch.setenv("SITS_TEST_PSWD", PSWD)
    monkeypatch.setenv("SITS_TEST_RWS_PASSWORD", RWS_PASSWORD)


@pytest.fixture
def rws() -> Iterator[FakeSitsRws]:
    with FakeSitsRws(
        username=RWS_USER, password=RWS_PASSWORD, services=("CRM_ESD_IN", "CRM_PERSON_IN")
    ) as fake:
        yield fake


@pytest.fixture
def sits_hub(make_hub: Callable[..., Hub]) -> Callable[..., Hub]:
    """``sits_hub(rws_url=None, **options)``: a hub with the ``sits`` connection of :func:`sits_config`."""

    def factory(rws_url: str | None = None, **options: Any) -> Hub:
        return make_hub(sits_config(rws_url, **options))

    return factory
