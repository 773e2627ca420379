"""What a connector plugin deals in: the values passed to and returned from the hooks.

These are plain dataclasses so a plugin can build them without the hub running.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from .model import CanonicalRecord, EntityKind

__all__ = [
    "Affected",
    "ChangeEvent",
    "CheckResult",
    "ConnectorType",
    "InboundRequest",
    "InboundResult",
    "OutboundMessage",
    "PullResult",
    "Received",
    "SendOutcome",
    "SourceRecord",
]

Capability = Literal["receive", "pull", "send"]


@dataclass(frozen=True)
class ConnectorType:
    """A kind of connection a plugin provides (``type = "sits"`` in the config)."""

    name: str
    #: Validates the connection's ``[connections.X.settings]`` table.
    settings_model: type[BaseModel]
    capabilities: frozenset[Capability]
    entity_kinds: frozenset[EntityKind]
    #: The shipped default mapping: source entity -> mapping table (same shape as the TOML).
    default_mapping: Mapping[str, Any] = field(default_factory=dict)
    #: How many outbound messages one ``azorus_send`` call may take (1 = strictly one at a time).
    send_batch_size: int = 1
    #: Inbound request headers that carry secrets, redacted in the request log.
    secret_headers: tuple[str, ...] = ()
    description: str = ""


@dataclass
class SourceRecord:
    """One record as the external system shaped it, before mapping.

    ``entity`` is the source's own name for it ("STU", "CAP", "contact", "row") and selects the
    mapping; ``fields`` are flat name -> text values.
    """

    entity: str
    fields: dict[str, str | None]
    #: Position in the payload or file (1-based), for error reports.
    line: int | None = None


@dataclass
class InboundRequest:
    """An HTTP request received at ``POST /inbound/{connection}``."""

    connection: str
    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive
    query: Mapping[str, str]
    body: bytes
    content_type: str
    client_ip: str | None


@dataclass
class Received:
    """What ``azorus_receive`` or ``azorus_pull`` hands the engine: raw or already-canonical records."""

    records: list[SourceRecord | CanonicalRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class PullResult(Received):
    """One page of changes since a watermark; ``more`` asks the engine to pull again at once."""

    watermark: str | None = None
    more: bool = False


@dataclass
class Affected:
    """A record an inbound request touched."""

    entity: EntityKind
    hub_id: int | None
    action: Literal["created", "updated", "unchanged", "rejected"]
    #: External identifiers of the record (scheme -> value), e.g. {"sits_stu": "24001234"}.
    external: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    changed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class InboundResult:
    """What the engine did with an inbound request; the connector renders it as the response body."""

    request_id: str
    status_code: int
    outcome: Literal["created", "updated", "unchanged", "rejected"]
    affected: list[Affected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class OutboundMessage:
    """A queued change for one connection, with a snapshot of the record when it was queued."""

    id: int
    connection: str
    entity: EntityKind
    record_id: int
    person_id: int | None
    operation: Literal["upsert", "delete"]
    #: The canonical record as JSON-able data (``identifiers``/``person`` included).
    payload: dict[str, Any]
    changed: list[str]
    attempts: int
    queued_at: dt.datetime


@dataclass
class SendOutcome:
    """The result of sending one message. Build with ``sent()``, ``retry()`` or ``failed()``."""

    message_id: int
    status: Literal["sent", "retry", "failed"]
    reason: str | None = None
    retry_after: float | None = None
    #: Keys the external system assigned (scheme -> value), written back to the person.
    external_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def sent(cls, message_id: int, external_ids: Mapping[str, str] | None = None) -> SendOutcome:
        return cls(message_id, "sent", external_ids=dict(external_ids or {}))

    @classmethod
    def retry(cls, message_id: int, reason: str, retry_after: float | None = None) -> SendOutcome:
        return cls(message_id, "retry", reason=reason, retry_after=retry_after)

    @classmethod
    def failed(cls, message_id: int, reason: str) -> SendOutcome:
        return cls(message_id, "failed", reason=reason)


@dataclass
class CheckResult:
    """Whether a connection's credentials and endpoint work."""

    ok: bool
    detail: str


@dataclass
class ChangeEvent:
    """A committed change to one record: which fields, old and new values, and where it came from."""

    entity: EntityKind
    record_id: int
    person_id: int | None
    action: Literal["created", "updated", "deleted"]
    changes: dict[str, tuple[Any, Any]]
    connection: str | None
    request_id: str | None
    import_run_id: int | None
