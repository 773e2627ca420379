"""A minimal connector used by the core's own tests: JSON in, JSON out to a local receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from pydantic import BaseModel

from azorus_connect import hookimpl
from azorus_connect.connector import (
    CheckResult,
    ConnectorType,
    InboundRequest,
    OutboundMessage,
    PullResult,
    Received,
    SendOutcome,
    SourceRecord,
)
from azorus_connect.exceptions import MalformedPayload, NotAuthenticated
from azorus_connect.http import new_session, outcome_for_exception, outcome_for_response
from azorus_connect.model import EntityKind
from azorus_connect.redaction import Secret

#: A request whose JSON says ``"hold": true`` sets HELD, then waits in ``azorus_receive`` until
#: RELEASE is set: tests use it to make requests queue up behind it.
HELD = threading.Event()
RELEASE = threading.Event()
#: The ``"mark"`` of each request ``azorus_receive`` has read, in order (for tests that follow it).
READ: list[str] = []

#: What ``azorus_pull`` returns, page by page, keyed by connection name (tests fill it).
PULL_PAGES: dict[str, list[PullResult]] = {}


class EchoSettings(BaseModel):
    url: str = "http://127.0.0.1:9/"
    token: Secret | None = None
    batch: int = 1


DEFAULT_MAPPING = {
    "person": {
        "target": "person",
        "fields": {
            "MST": "id:mst",
            "EMAIL": {"to": "id:email", "transform": "email"},
            "FIRST": "first_name",
            "LAST": "last_name",
            "DOB": {"to": "date_of_birth", "transform": "date"},
            "NAT": "nationality",
        },
    },
    "enquiry": {
        "target": "enquiry",
        "fields": {"MST": "person.id:mst", "CODE": "key", "COURSE": "course", "YEAR": "entry_year"},
    },
    "application": {
        "target": "application",
        "key": ["MST", "SEQ"],
        "fields": {"MST": "person.id:mst", "COURSE": "course", "STATUS": "status"},
    },
    "nat": {
        "target": "reference",
        "list": "nationality",
        "fields": {"CODE": "code", "NAME": "label", "IUSE": "in_use"},
    },
}

ECHO = ConnectorType(
    name="echo",
    settings_model=EchoSettings,
    capabilities=frozenset({"receive", "pull", "send"}),
    entity_kinds=frozenset(EntityKind),
    default_mapping=DEFAULT_MAPPING,
    secret_headers=("X-Echo-Token",),
)


@hookimpl
def azorus_register_connector_types() -> list[ConnectorType]:
    return [ECHO]


@hookimpl
def azorus_receive(connection, request: InboundRequest) -> Received | None:
    if connection.type != "echo":
        return None
    token = connection.settings.token
    if token is not None and request.headers.get("x-echo-token") != token.reveal():
        raise NotAuthenticated("bad or missing X-Echo-Token")
    try:
        data = json.loads(request.body)
        items = data["records"]
    except (ValueError, KeyError, TypeError):
        raise MalformedPayload("expected JSON with a 'records' list") from None
    if "mark" in data:
        READ.append(data["mark"])
    if data.get("hold"):
        HELD.set()
        RELEASE.wait(timeout=30)
    return Received([SourceRecord(i["entity"], i["fields"], line=n) for n, i in enumerate(items, 1)])


@hookimpl
def azorus_pull(connection, watermark: str | None) -> PullResult | None:
    if connection.type != "echo":
        return None
    pages = PULL_PAGES.get(connection.name, [])
    index = int(watermark or 0)
    if index >= len(pages):
        return PullResult(watermark=watermark)
    page = pages[index]
    return PullResult(records=page.records, watermark=str(index + 1), more=index + 1 < len(pages))


_SESSION = new_session()


@hookimpl
def azorus_send(connection, messages: Sequence[OutboundMessage]) -> list[SendOutcome] | None:
    if connection.type != "echo":
        return None
    out = []
    for m in messages:
        body = {"id": m.id, "entity": m.entity.value, "record_id": m.record_id, "payload": m.payload}
        try:
            resp = _SESSION.post(connection.settings.url, json=body, timeout=10)
        except Exception as exc:
            out.append(outcome_for_exception(m.id, exc))
            continue
        ext = {"echo": f"E{m.record_id}"} if m.entity == EntityKind.PERSON else None
        out.append(outcome_for_response(m.id, resp, external_ids=ext))
    return out


@hookimpl
def azorus_check_connection(connection) -> CheckResult | None:
    if connection.type != "echo":
        return None
    return CheckResult(True, f"would post to {connection.settings.url}")
