"""The example plugin's mapping works both ways, including a connection's own overrides."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from azorus_connect.config import Connection, load_config
from azorus_connect.connector import SourceRecord
from azorus_connect.model import Person
from azorus_connect.plugins import PluginHost
from azorus_connect.transform.mapping import Mapper


@pytest.fixture
def host(example_sis_installed: importlib.metadata.Distribution) -> PluginHost:
    return PluginHost.load()


def _connection(host: PluginHost, mapping: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Connection:
    monkeypatch.setenv("MAPPING_TEST_KEY", "k")
    table = {
        "type": "example_sis",
        "directions": {"person": "both"},
        "settings": {"base_url": "http://127.0.0.1:9", "api_key": {"env": "MAPPING_TEST_KEY"}},
        "mapping": mapping,
    }
    return load_config({"connections": {"sis": table}}, host).connection("sis")


def test_overrides_apply_inbound_and_outbound(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    from azorus_example_sis.hooks import student_for

    overrides = {
        "student": {
            "fields": {"phone": "mobile", "nationality": {"to": "nationality", "transform": "map:nat"}},
            "value_maps": {"nat": {"GB": "UK-CITIZEN", "IE": "IE-CITIZEN"}},
        }
    }
    connection = _connection(host, overrides, monkeypatch)
    fields: dict[str, str | None] = {
        "student_id": "S000042",
        "given_name": "  Ada  Augusta ",
        "family_name": "King",
        "birth_date": "1815-12-10",
        "phone": "07700 900000",
        "nationality": "GB",
        "changed_at": "x",
    }
    person = Mapper(connection.record_mapping, host.value_transforms()).map(SourceRecord("student", fields))
    assert isinstance(person, Person)
    assert person.identifiers == {"example_sis": "S000042"}
    assert (person.first_name, person.mobile, person.phone, person.nationality) == (
        "Ada Augusta",
        "07700 900000",
        None,
        "UK-CITIZEN",
    )

    payload = {**person.model_dump(mode="json"), "hub_id": 7}
    student = student_for(connection, payload, changed=["mobile"])
    assert student == {
        "student_id": "S000042",
        "given_name": "Ada Augusta",
        "family_name": "King",
        "birth_date": "1815-12-10",
        "phone": "07700 900000",
        "nationality": "GB",
    }


def test_a_cleared_field_is_sent_as_null_and_a_new_person_has_no_id(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azorus_example_sis.hooks import student_for

    connection = _connection(host, {}, monkeypatch)
    payload = {
        "hub_id": 3,
        "identifiers": {"mst": "0000123"},
        "last_name": "Noether",
        "email": None,
        "phone": None,
        "custom": {},
    }
    assert student_for(connection, payload, changed=["email"]) == {
        "hub_ref": "0000123",
        "family_name": "Noether",
        "email": None,
    }


def test_the_readme_configuration_loads(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = Path(__file__).parents[2] / "contrib" / "azorus-example-sis" / "README.md"
    (block,) = re.findall(r"^```toml\n(.*?)^```", readme.read_text(encoding="utf-8"), re.S | re.M)
    monkeypatch.setenv("EXAMPLE_SIS_API_KEY", "readme-key")
    connection = load_config(tomllib.loads(block), host).connection("sis")
    assert connection.type == "example_sis" and connection.settings.page_size == 100
    assert connection.settings.api_key.reveal() == "readme-key"
