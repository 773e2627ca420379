"""Receiving an inbound request: plugin receive -> mapping -> engine -> request log -> response.

Every request is logged (headers redacted, raw body, our answer, the identifiers it touched,
duration), whatever its outcome.  On success the log row commits with the changes; on failure it
is written alone, so nothing but the log entry is stored.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from .connector import Affected, InboundRequest, InboundResult
from .engine import RecordResult, Source
from .exceptions import AzorusError, EntityNotMapped, ExternalUnavailable, UnknownConnection
from .model import Application, CanonicalRecord, Enquiry, Person
from .redaction import redact_headers
from .store.db import utcnow
from .store.schema import request_key, request_log
from .store.sql import bulk_insert

if TYPE_CHECKING:
    from .config import Connection as HubConnection
    from .hub import Hub

__all__ = ["LOGGED_BODY_LIMIT", "handle_inbound", "new_request_id"]

log = logging.getLogger(__name__)

#: The request log keeps at most this much of a body (the rest is marked truncated).
LOGGED_BODY_LIMIT = 2_000_000


def new_request_id() -> str:
    return "r-" + uuid.uuid4().hex[:20]


def handle_inbound(
    hub: Hub, request: InboundRequest, *, too_large: bool = False, started: float | None = None
) -> tuple[int, bytes, str, InboundResult]:
    """Process one inbound request; returns (status, body, media type, result). Never raises."""
    started = started if started is not None else time.perf_counter()
    request_id = new_request_id()
    connection: HubConnection | None = hub.config.connections.get(request.connection)
    records: list[CanonicalRecord] = []
    try:
        if connection is None or not connection.enabled:
            raise UnknownConnection(f"no connection named {request.connection!r}")
        if too_large:
            from .exceptions import PayloadTooLarge

            raise PayloadTooLarge(f"the body is larger than {connection.max_body_bytes} bytes")
        received = hub.plugins.hook.azorus_receive(connection=connection, request=request)
        if received is None:
            raise EntityNotMapped(
                f"connection {connection.name!r} ({connection.type}) does not receive requests"
            )
        records = hub.to_canonical(connection, received.records)
        holder: dict[str, Any] = {}

        def log_in_same_transaction(conn: Connection, results: list[RecordResult]) -> None:
            result = _result(request_id, results, received.warnings)
            status, body, media = _render(hub, connection, request, result)
            holder.update(result=result, status=status, body=body, media=media)
            _write_log(
                hub,
                conn,
                request,
                request_id,
                connection,
                result,
                body,
                media,
                started,
                _keys(records, results),
            )

        hub.engine.apply(
            records,
            Source(connection=connection.name, request_id=request_id),
            hub.apply_options(connection),
            before_commit=log_in_same_transaction,
        )
        result = holder["result"]
        _completed(hub, connection, result)
        return holder["status"], holder["body"], holder["media"], result
    except AzorusError as exc:
        error = exc
    except OperationalError as exc:  # database locked or unreachable: SITS should try again later
        log.warning("inbound %s: database unavailable: %s", request.connection, exc)
        error = ExternalUnavailable("the hub's database is temporarily unavailable; try again")
    except Exception as exc:
        log.exception("inbound %s: unexpected error", request.connection)
        error = AzorusError(f"internal error ({type(exc).__name__})")
    result = InboundResult(request_id, error.http_status, "rejected", error=error.message)
    status, body, media = _render(hub, connection, request, result)
    try:
        with hub.store.write() as conn:
            _write_log(
                hub, conn, request, request_id, connection, result, body, media, started, _keys(records, [])
            )
    except Exception:
        log.exception("could not write the request log for %s", request_id)
    if connection is not None:
        _completed(hub, connection, result)
    return status, body, media, result


def _result(request_id: str, results: list[RecordResult], warnings: list[str]) -> InboundResult:
    affected = [
        Affected(
            r.kind,
            r.hub_id,
            r.action,
            external=dict(r.external),
            key=r.key,
            changed=sorted(r.changes),
            warnings=list(r.warnings),
        )
        for r in results
    ]
    actions = {r.action for r in results}
    outcome = "created" if "created" in actions else "updated" if "updated" in actions else "unchanged"
    status = 201 if outcome == "created" else 200
    all_warnings = list(warnings) + [w for r in results for w in r.warnings]
    return InboundResult(request_id, status, outcome, affected, all_warnings)  # type: ignore[arg-type]


def _render(
    hub: Hub, connection: HubConnection | None, request: InboundRequest, result: InboundResult
) -> tuple[int, bytes, str]:
    rendered = None
    if connection is not None:
        try:
            rendered = hub.plugins.hook.azorus_render_response(
                connection=connection, request=request, result=result
            )
        except Exception:
            log.exception("azorus_render_response failed; answering in JSON")
    if rendered is None:
        rendered = (json.dumps(result_as_json(result)).encode(), "application/json")
    return result.status_code, rendered[0], rendered[1]


def result_as_json(result: InboundResult) -> dict[str, Any]:
    """The default (JSON) response body."""
    data = asdict(result)
    data["affected"] = [
        {**a, "entity": a["entity"].value if hasattr(a["entity"], "value") else a["entity"]}
        for a in data["affected"]
    ]
    return data


def _keys(records: Iterable[CanonicalRecord], results: list[RecordResult]) -> set[tuple[str, str]]:
    """Every identifier the request named or touched, for searching the log."""
    keys: set[tuple[str, str]] = set()
    for rec in records:
        if isinstance(rec, Person):
            keys.update(rec.identifiers.items())
        elif isinstance(rec, (Enquiry, Application)):
            keys.update(rec.person.identifiers.items())
            if rec.key:
                keys.add((f"{rec.kind.value}_key", rec.key))
    for r in results:
        if r.hub_id is not None:
            keys.add((f"hub_{r.kind.value}", str(r.hub_id)))
        if r.person_id is not None:
            keys.add(("hub_person", str(r.person_id)))
    return {(s[:40], v[:200]) for s, v in keys}


def _write_log(
    hub: Hub,
    conn: Connection,
    request: InboundRequest,
    request_id: str,
    connection: HubConnection | None,
    result: InboundResult,
    body: bytes,
    media: str,
    started: float,
    keys: set[tuple[str, str]],
) -> None:
    ctype = hub.plugins.connector_types().get(connection.type) if connection is not None else None
    extra = ctype.secret_headers if ctype is not None else ()
    bulk_insert(
        conn,
        request_log,
        [
            {
                "id": request_id,
                "received_at": utcnow(),
                "connection": request.connection[:60],
                "method": request.method,
                "path": request.path[:500],
                "client_ip": request.client_ip,
                "headers": redact_headers(request.headers.items(), extra),
                "content_type": request.content_type[:200] if request.content_type else None,
                "body": request.body[:LOGGED_BODY_LIMIT],
                "body_truncated": len(request.body) > LOGGED_BODY_LIMIT,
                "status_code": result.status_code,
                "outcome": result.outcome,
                "response_body": body.decode("utf-8", "replace"),
                "response_type": media,
                "error": result.error,
                "duration_ms": (time.perf_counter() - started) * 1000,
            }
        ],
    )
    if keys:
        bulk_insert(conn, request_key, [{"request_id": request_id, "scheme": s, "value": v} for s, v in keys])


def _completed(hub: Hub, connection: HubConnection, result: InboundResult) -> None:
    hook = hub.plugins.hook.azorus_request_completed
    if hook.get_hookimpls():
        try:
            hook(connection=connection, result=result)
        except Exception:
            log.exception("azorus_request_completed listener failed")
