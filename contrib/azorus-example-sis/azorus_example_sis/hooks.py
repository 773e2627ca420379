"""The ``example_sis`` connector type: pull students since a cursor, send changed people back in batches.

Every hook answers ``None`` for connections of other types, so the hub can ask all plugins.
Inbound, the declarative mapping (``mapping.toml``, overridable per connection) does the field
work; outbound, the same mapping is read backwards, so a connection's override applies both ways.
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from azorus_connect.config import Connection
from azorus_connect.connector import (
    CheckResult,
    ConnectorType,
    OutboundMessage,
    PullResult,
    SendOutcome,
    SourceRecord,
)
from azorus_connect.exceptions import AzorusError, PermanentExternalError, RetryableError
from azorus_connect.hookspecs import hookimpl
from azorus_connect.model import EntityKind
from azorus_connect.redaction import Secret

from .client import SisClient

__all__ = [
    "CONNECTOR_TYPE",
    "ENTITY",
    "SCHEME",
    "ExampleSisSettings",
    "azorus_check_connection",
    "azorus_pull",
    "azorus_register_connector_types",
    "azorus_send",
    "student_for",
]

TYPE_NAME = "example_sis"
#: The source entity name of a student, as the mapping knows it.
ENTITY = "student"
#: The identifier scheme of the SIS's own student ids.
SCHEME = "example_sis"
#: What the SIS lets a client write (besides ``student_id``, which selects update over create).
WRITABLE_FIELDS = frozenset(
    {"given_name", "family_name", "birth_date", "email", "phone", "nationality", "hub_ref"}
)


class ExampleSisSettings(BaseModel):
    """``[connections.NAME.settings]`` for an ``example_sis`` connection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Where the SIS's REST API lives, e.g. ``https://sis.example.ac.uk``.
    base_url: str
    #: Sent as ``X-Api-Key``; by reference only: ``{ env = "NAME" }`` or ``{ file = "path" }``.
    api_key: Secret
    #: Students fetched per ``GET /api/students`` call.
    page_size: int = Field(100, ge=1, le=500)
    #: Seconds to wait for the SIS before treating it as unavailable.
    timeout: float = Field(10.0, gt=0, le=120)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1].strip("/")) == 0:
            raise ValueError(f"base_url must be an http:// or https:// URL, not {value!r}")
        return value.rstrip("/")


def _default_mapping() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("mapping.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


CONNECTOR_TYPE = ConnectorType(
    name=TYPE_NAME,
    settings_model=ExampleSisSettings,
    capabilities=frozenset({"pull", "send"}),
    entity_kinds=frozenset({EntityKind.PERSON}),
    default_mapping=_default_mapping(),
    send_batch_size=50,
    description="Example SIS: students pulled by change cursor, changes sent back in batches",
)

_clients: dict[tuple[str, ExampleSisSettings], SisClient] = {}
_clients_lock = threading.Lock()


def _client(connection: Connection) -> SisClient:
    """One client (and HTTP session) per connection and settings."""
    settings: ExampleSisSettings = connection.settings
    key = (connection.name, settings)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = SisClient(settings.base_url, settings.api_key.reveal(), settings.timeout)
            _clients[key] = client
        return client


@hookimpl
def azorus_register_connector_types() -> Sequence[ConnectorType]:
    return [CONNECTOR_TYPE]


@hookimpl
def azorus_pull(connection: Connection, watermark: str | None) -> PullResult | None:
    if connection.type != TYPE_NAME:
        return None
    settings: ExampleSisSettings = connection.settings
    page = _client(connection).students_since(watermark, settings.page_size)
    records: list[Any] = [
        SourceRecord(ENTITY, {k: None if v is None else str(v) for k, v in student.items()}, line=n)
        for n, student in enumerate(page.students, start=1)
    ]
    return PullResult(records=records, watermark=page.next_cursor, more=page.more)


def student_for(connection: Connection, payload: dict[str, Any], changed: Sequence[str]) -> dict[str, Any]:
    """The SIS student for a person ``payload``, through the connection's mapping read backwards.

    Fields the person has are sent; a field that was just cleared is sent as null so the SIS clears
    it too; ``student_id`` is present when the person already has an ``example_sis`` identifier.
    """
    identifiers = payload.get("identifiers") or {}
    rule = connection.record_mapping.rule(ENTITY)
    student: dict[str, Any] = {}
    for field_rule in rule.fields:
        source, target = field_rule.source, field_rule.target
        if source != "student_id" and source not in WRITABLE_FIELDS:
            continue  # read-only in the SIS (e.g. changed_at)
        if target.startswith("id:"):
            value = identifiers.get(target[3:])
            if source == "student_id" or value is not None:
                student[source] = value
            continue
        if target == "-":
            continue
        value = payload.get(target)
        for name, args in field_rule.transforms:
            if name == "map" and value is not None:
                backwards = {v: k for k, v in rule.value_maps[args[0]].items() if k != "*"}
                value = backwards.get(str(value), value)
        if value is not None or target in changed:
            student[source] = None if value is None else str(value)
    if student.get("student_id") is None:
        student.pop("student_id", None)
    return student


@hookimpl
def azorus_send(connection: Connection, messages: Sequence[OutboundMessage]) -> list[SendOutcome] | None:
    if connection.type != TYPE_NAME:
        return None
    outcomes: dict[int, SendOutcome] = {}
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.entity != EntityKind.PERSON or message.operation != "upsert":
            reason = f"Example SIS takes person upserts only, not {message.entity} {message.operation}"
            outcomes[message.id] = SendOutcome.failed(message.id, reason)
            continue
        student = student_for(connection, message.payload, message.changed)
        items.append({"ref": str(message.id), "student": student})
    if items:
        try:
            results = _client(connection).upsert_batch(items)
        except RetryableError as exc:
            for item in items:
                mid = int(item["ref"])
                outcomes[mid] = SendOutcome.retry(mid, exc.message, retry_after=exc.retry_after)
        except AzorusError as exc:
            for item in items:
                mid = int(item["ref"])
                outcomes[mid] = SendOutcome.failed(mid, exc.message)
        else:
            for item in items:
                mid = int(item["ref"])
                result = results.get(item["ref"])
                if result is None:
                    outcomes[mid] = SendOutcome.retry(mid, "Example SIS did not answer for this item")
                elif result.status in (200, 201) and result.student_id:
                    outcomes[mid] = SendOutcome.sent(mid, {SCHEME: result.student_id})
                else:
                    outcomes[mid] = SendOutcome.failed(
                        mid, f"Example SIS refused it ({result.status}): {result.error}"
                    )
    return [outcomes[m.id] for m in messages]


@hookimpl
def azorus_check_connection(connection: Connection) -> CheckResult | None:
    if connection.type != TYPE_NAME:
        return None
    client = _client(connection)
    try:
        about = client.ping()
    except (RetryableError, PermanentExternalError) as exc:
        return CheckResult(False, exc.message)
    return CheckResult(
        True, f"{about.get('system', 'Example SIS')} {about.get('version', '?')} at {client.base_url}"
    )
