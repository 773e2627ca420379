"""Shared set-up for the CSV import tests: a hub with custom fields, lists and a sending connection."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select

from azorus_connect.connector import ConnectorType, OutboundMessage, SendOutcome
from azorus_connect.hookspecs import hookimpl
from azorus_connect.hub import Hub
from azorus_connect.model import EntityKind
from azorus_connect.plugins import PluginHost
from azorus_connect.store.schema import (
    application,
    change_log,
    enquiry,
    identifier,
    import_run,
    outbox,
    person,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "csv"


class _SinkSettings(BaseModel):
    pass


class SinkPlugin:
    """A connector type that sends people and enquiries somewhere (the outbox is what we look at)."""

    @hookimpl
    def azorus_register_connector_types(self) -> list[ConnectorType]:
        return [
            ConnectorType(
                name="csvtest_sink",
                settings_model=_SinkSettings,
                capabilities=frozenset({"send"}),
                entity_kinds=frozenset({EntityKind.PERSON, EntityKind.ENQUIRY}),
            )
        ]

    @hookimpl
    def azorus_send(self, connection: Any, messages: Sequence[OutboundMessage]) -> list[SendOutcome] | None:
        return None


HUB_CONFIG: dict[str, Any] = {
    "custom_fields": {
        "fair": {"type": "list", "list": "fairs", "label": "Fair attended"},
        "ucas_points": {"type": "number", "label": "UCAS points"},
        "visit_date": {"type": "date", "label": "Visit date"},
        "notes": {"type": "text"},
    },
    "lists": {
        "fairs": {"values": {"LDN24": "London 2024", "MAN24": "Manchester 2024"}},
        "nationality": {"values": {"GB": "British", "FR": "French", "IE": "Irish"}},
        "course": {"values": {"UG-CS": "Computer Science", "UG-MA": "Mathematics"}},
        "academic_year": {"values": {"2025": "2025/26", "2026": "2026/27"}},
    },
    "connections": {
        "sits_out": {
            "type": "csvtest_sink",
            "directions": {"person": "off", "enquiry": "send"},
        }
    },
}


@pytest.fixture(scope="session")
def csv_plugins() -> PluginHost:
    return PluginHost.load(extra=[SinkPlugin()])


@pytest.fixture
def csv_hub(
    make_hub: Callable[..., Hub], csv_plugins: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Hub:
    monkeypatch.setenv("AZORUS_IMPORT_DIR", str(tmp_path / "imports"))
    return make_hub(HUB_CONFIG, plugins=csv_plugins)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def table_counts(hub: Hub) -> dict[str, int]:
    """Rows per data table: what 'nothing written' is checked against."""
    tables = {
        "person": person,
        "identifier": identifier,
        "enquiry": enquiry,
        "application": application,
        "change_log": change_log,
        "outbox": outbox,
    }
    with hub.store.read() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(t)).scalar_one() for name, t in tables.items()
        }


def people(hub: Hub) -> dict[str, dict[str, Any]]:
    """Every person by MST code: fields, custom fields and identifiers (a comparable snapshot)."""
    with hub.store.read() as conn:
        ids: dict[int, dict[str, str]] = {}
        for pid, scheme, value in conn.execute(
            select(identifier.c.person_id, identifier.c.scheme, identifier.c.value)
        ):
            ids.setdefault(pid, {})[scheme] = value
        out = {}
        for row in conn.execute(select(person)).mappings():
            data = {k: v for k, v in row.items() if k not in ("created_at", "updated_at")}
            data["identifiers"] = ids.get(row["id"], {})
            out[data["identifiers"].get("mst", f"#{row['id']}")] = data
        return out


def run_rows(hub: Hub, run_id: int) -> dict[str, Any]:
    with hub.store.read() as conn:
        return dict(conn.execute(select(import_run).where(import_run.c.id == run_id)).mappings().one())
