"""The JSON API under ``/api/`` (OpenAPI at ``/docs``).

Clients authenticate with ``Authorization: Bearer <token>`` (tokens made with
``azorus-connect admin create-token`` or on the admin UI's token page); a signed-in browser
session works too.  Reading needs any role; changing (outbox retry/skip) needs ``admin``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from ..admin import overview, people, request_log
from ..store.schema import outbox
from .security import AdminUser, ViewerUser, csrf_protect, require_viewer

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["build_router"]


class ApplicationOut(BaseModel):
    """An application with its status: codes, and the labels people read."""

    id: int
    key: str
    course: str | None = None
    course_label: str | None = None
    route: str | None = None
    academic_year: str | None = None
    status: str | None = None
    status_label: str | None = None
    decision: str | None = None
    decision_label: str | None = None
    response: str | None = None
    response_label: str | None = None
    application_date: dt.date | None = None
    decision_date: dt.date | None = None
    response_date: dt.date | None = None
    updated_at: dt.datetime | None = None


class EnquiryOut(BaseModel):
    id: int
    key: str | None = None
    course: str | None = None
    entry_year: str | None = None
    source: str | None = None
    status: str | None = None
    enquiry_date: dt.date | None = None


class PersonOut(BaseModel):
    """A person as a portal needs it: identifiers from every system, details, applications with status."""

    id: int
    identifiers: dict[str, str]
    title: str | None = None
    first_name: str | None = None
    middle_names: str | None = None
    last_name: str | None = None
    preferred_name: str | None = None
    date_of_birth: dt.date | None = None
    email: str | None = None
    phone: str | None = None
    mobile: str | None = None
    nationality: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)
    applications: list[ApplicationOut] = Field(default_factory=list)
    enquiries: list[EnquiryOut] = Field(default_factory=list)
    updated_at: dt.datetime | None = None


class PersonSummary(BaseModel):
    id: int
    display_name: str
    date_of_birth: dt.date | None = None
    email: str | None = None
    identifiers: dict[str, str]


class RequestSummary(BaseModel):
    id: str
    received_at: dt.datetime
    connection: str
    status_code: int
    outcome: str
    duration_ms: float | None = None
    error: str | None = None
    identifiers: dict[str, str]


class RequestPageOut(BaseModel):
    """A page of the request log; pass ``next`` as ``before`` to get the following page."""

    items: list[RequestSummary]
    next: str | None = None


class TouchedOut(BaseModel):
    entity: str
    hub_id: int
    person_id: int | None = None
    action: str
    changed: list[str]


class RequestDetailOut(RequestSummary):
    method: str
    path: str
    client_ip: str | None = None
    headers: dict[str, str]
    content_type: str | None = None
    body: str
    body_truncated: bool
    response_body: str | None = None
    response_type: str | None = None
    records_touched: list[TouchedOut]


class OutboxMessageOut(BaseModel):
    id: int
    connection: str
    entity: str
    record_id: int
    person_id: int | None = None
    operation: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None = None
    last_error: str | None = None
    queued_at: dt.datetime
    sent_at: dt.datetime | None = None


class ActionOut(BaseModel):
    id: int
    status: str


def _person_out(detail: dict[str, Any], raw_apps: list[dict[str, Any]]) -> PersonOut:
    raw = detail["raw"]
    labelled = {a["id"]: a for a in detail["applications"]}
    apps = []
    for a in raw_apps:
        shown = labelled.get(a["id"], {})
        apps.append(
            ApplicationOut(
                **{k: a[k] for k in ApplicationOut.model_fields if k in a},
                course_label=shown.get("course"),
                status_label=shown.get("status"),
                decision_label=shown.get("decision"),
                response_label=shown.get("response"),
            )
        )
    return PersonOut(
        **{k: raw[k] for k in PersonOut.model_fields if k in raw and k not in ("custom", "identifiers")},
        identifiers={i["scheme"]: i["value"] for i in detail["identifiers"]},
        custom=dict(raw.get("custom") or {}),
        applications=apps,
        enquiries=[
            EnquiryOut(**{k: e[k] for k in EnquiryOut.model_fields if k in e}) for e in detail["enquiry_rows"]
        ],
    )


#: Documents the token scheme in OpenAPI (so /docs can "Authorize"); checking is require_viewer's job.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="APIToken",
    description="An API token from `azorus-connect admin create-token` or the admin UI's token page.",
)


def build_router(hub: Hub) -> APIRouter:
    """The API for ``hub``; every route needs a token or a signed-in session."""
    router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(_BEARER), Depends(require_viewer)])

    def load_person(person_id: int) -> PersonOut:
        with hub.store.read() as conn:
            detail = people.person_detail(conn, person_id, hub.config.custom_fields)
        if detail is None:
            raise HTTPException(404, f"no person with hub id {person_id}")
        return _person_out(detail, detail["application_rows"])

    @router.get("/people/{person_id}", summary="A person by hub id, with applications and their status")
    def person_by_id(person_id: int) -> PersonOut:
        return load_person(person_id)

    @router.get(
        "/people/by-identifier/{scheme}/{value}",
        summary="A person by an identifier in a scheme (mst, sits_stu, ucas_pid, email, ...)",
    )
    def person_by_identifier(scheme: str, value: str) -> PersonOut:
        with hub.store.read() as conn:
            found = people.people_by_identifier(conn, f"{scheme.lower()}:{value}", schemes_only=True)
        if not found:
            raise HTTPException(404, f"no person has {scheme} identifier {value!r}")
        return load_person(found[0])

    @router.get("/people", summary="Search people by name or by an identifier in any scheme")
    def search(q: Annotated[str, Query(min_length=1, max_length=200)]) -> list[PersonSummary]:
        with hub.store.read() as conn:
            return [PersonSummary(**p) for p in people.search_people(conn, q)]

    @router.get("/requests", summary="The request log, newest first, filtered and paged by cursor")
    def requests(
        connection: str | None = None,
        status: Annotated[str | None, Query(description="a code, 2xx/4xx/5xx, or 'failed'")] = None,
        since: Annotated[str | None, Query(description="ISO date-time (UTC)")] = None,
        until: Annotated[str | None, Query(description="ISO date-time (UTC)")] = None,
        identifier: Annotated[
            str | None, Query(description="any identifier: MST, STU code, email, hub id")
        ] = None,
        before: Annotated[str | None, Query(description="the `next` cursor of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> RequestPageOut:
        try:
            filters = request_log.RequestFilters.parse(connection, status, since, until, identifier)
            with hub.store.read() as conn:
                page = request_log.request_page(conn, filters, before=before, limit=limit)
        except request_log.FilterError as exc:
            raise HTTPException(400, str(exc)) from None
        return RequestPageOut(items=[RequestSummary(**r) for r in page.rows], next=page.older)

    @router.get("/requests/{request_id}", summary="One logged request: payload, redacted headers, response")
    def request_detail(request_id: str) -> RequestDetailOut:
        with hub.store.read() as conn:
            detail = request_log.request_detail(conn, request_id[:40])
        if detail is None:
            raise HTTPException(404, "no logged request with that id")
        return RequestDetailOut(
            **{k: v for k, v in detail.items() if k in RequestDetailOut.model_fields},
            body=detail["pretty_body"],
            records_touched=[TouchedOut(**t) for t in detail["affected"]],
        )

    @router.get("/outbox", summary="Outbox messages (waiting and parked unless a status is given)")
    def outbox_list(
        connection: str | None = None,
        status: Annotated[str | None, Query(pattern="^(pending|parked|skipped|sent)$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[OutboxMessageOut]:
        with hub.store.read() as conn:
            groups = overview.outbox_groups(conn, hub.config, connection, status, limit=limit)
        return [OutboxMessageOut(**m) for g in groups for m in g["messages"]]

    @router.get("/outbox/depth", summary="Pending and parked messages per connection")
    def outbox_depth() -> dict[str, dict[str, int]]:
        return hub.outbox.depth()

    def _status(message_id: int) -> str:
        with hub.store.read() as conn:
            found = conn.execute(
                outbox.select().with_only_columns(outbox.c.status).where(outbox.c.id == message_id)
            )
            row = found.first()
        if row is None:
            raise HTTPException(404, f"no outbox message {message_id}")
        return str(row[0])

    @router.post(
        "/outbox/{message_id}/retry",
        summary="Put a parked or skipped message back in its place in the queue (admin)",
        dependencies=[Depends(csrf_protect)],
    )
    def retry(message_id: int, principal: AdminUser) -> ActionOut:
        if not hub.outbox.retry(message_id):
            raise HTTPException(409, f"message {message_id} is {_status(message_id)}, not parked or skipped")
        return ActionOut(id=message_id, status=_status(message_id))

    @router.post(
        "/outbox/{message_id}/skip",
        summary="Give up on a parked or pending message so the queue moves on (admin)",
        dependencies=[Depends(csrf_protect)],
    )
    def skip(message_id: int, principal: AdminUser) -> ActionOut:
        if not hub.outbox.skip(message_id):
            raise HTTPException(409, f"message {message_id} is {_status(message_id)}, not parked or pending")
        return ActionOut(id=message_id, status=_status(message_id))

    @router.get("/reference-lists", summary="Every reference list with its size")
    def lists() -> list[dict[str, Any]]:
        with hub.store.read() as conn:
            return overview.reference_lists(conn)

    @router.get("/reference-lists/{name}", summary="The codes of one reference list")
    def list_values(name: str) -> list[dict[str, Any]]:
        with hub.store.read() as conn:
            values = overview.list_values(conn, name)
            known = any(item["name"] == name for item in overview.reference_lists(conn))
        if not known:
            raise HTTPException(404, f"no reference list named {name!r}")
        return values

    @router.get("/connections", summary="Configured connections, secrets masked")
    def connections(principal: ViewerUser) -> dict[str, Any]:
        return dict(hub.config.redacted()["connections"])

    @router.get("/connections/{name}/check", summary="Check a connection's credentials and reachability")
    def check(name: str) -> dict[str, Any]:
        if name not in hub.config.connections:
            raise HTTPException(404, f"no connection named {name!r}")
        result = hub.check(name)
        return {"ok": result.ok, "detail": result.detail}

    @router.get("/plugins", summary="Installed plugins with their hooks and connector types")
    def plugins() -> list[dict[str, Any]]:
        return [info.as_dict() for info in hub.plugins.infos]

    return router
