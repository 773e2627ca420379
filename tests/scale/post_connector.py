"""A serial REST sender for the scale tests: one POST per message, saying which process sent it.

Loaded into the test process and into every worker process (``python -m tests.scale.worker_process``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import requests
from pydantic import BaseModel

from azorus_connect import hookimpl
from azorus_connect.connector import ConnectorType, OutboundMessage, SendOutcome
from azorus_connect.http import new_session, outcome_for_exception, outcome_for_response
from azorus_connect.model import EntityKind

TYPE_NAME = "scale_post"


class PostSettings(BaseModel):
    url: str


POST = ConnectorType(
    name=TYPE_NAME,
    settings_model=PostSettings,
    capabilities=frozenset({"send"}),
    entity_kinds=frozenset({EntityKind.PERSON}),
)

_sessions: dict[str, requests.Session] = {}
_lock = threading.Lock()


def _session(connection: str) -> requests.Session:
    # one session per connection: a connection is drained by one thread at a time
    with _lock:
        if connection not in _sessions:
            _sessions[connection] = new_session()
        return _sessions[connection]


@hookimpl
def azorus_register_connector_types() -> list[ConnectorType]:
    return [POST]


@hookimpl
def azorus_send(connection: Any, messages: Sequence[OutboundMessage]) -> list[SendOutcome] | None:
    if connection.type != TYPE_NAME:
        return None
    out = []
    for m in messages:
        body = {"id": m.id, "connection": connection.name, "worker": os.getpid(), "payload": m.payload}
        try:
            resp = _session(connection.name).post(connection.settings.url, json=body, timeout=30)
        except requests.RequestException as exc:
            out.append(outcome_for_exception(m.id, exc))
            continue
        out.append(outcome_for_response(m.id, resp))
    return out
