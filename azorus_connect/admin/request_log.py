"""Reading the request log: filters, keyset paging and one request in full.

Paging is by ``(received_at, id)`` cursors, never ``OFFSET``, and each filter has an index
(``request_key.value`` for identifiers, ``(connection, received_at)``, ``(status_code, received_at)``),
so a page costs the same at row 10 and at row 500,000.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from lxml import etree
from sqlalchemy import Connection, Select, or_, select

from ..store.schema import application, change_log, enquiry, identifier, request_key, request_log

__all__ = [
    "STATUS_CHOICES",
    "FilterError",
    "RequestFilters",
    "RequestPage",
    "identifier_forms",
    "page_query",
    "pretty_body",
    "records_touched",
    "request_detail",
    "request_page",
    "requests_query",
]

#: Status filter values: an exact code, a class, or "failed" (4xx and 5xx).
STATUS_CHOICES = [
    ("2xx", "2xx success"),
    ("failed", "4xx or 5xx"),
    ("4xx", "4xx refused"),
    ("5xx", "5xx error"),
    ("200", "200 updated/unchanged"),
    ("201", "201 created"),
    ("400", "400 malformed"),
    ("401", "401 not authenticated"),
    ("409", "409 identifier conflict"),
    ("422", "422 invalid"),
    ("503", "503 unavailable"),
]
_MAX_TEXT = 200
PAGE_SIZE = 50


class FilterError(ValueError):
    """A filter value that cannot be understood (the message names it)."""


def _parse_time(name: str, text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{name}: {text[:40]!r} is not a date and time (use YYYY-MM-DDTHH:MM)") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _parse_status(text: str | None) -> str | None:
    if not text:
        return None
    text = text.strip().lower()
    if text in ("2xx", "3xx", "4xx", "5xx", "failed") or (text.isdigit() and len(text) == 3):
        return text
    raise FilterError(f"status: {text[:20]!r} is not a status code, a class like 4xx, or 'failed'")


@dataclass(frozen=True)
class RequestFilters:
    """What to show of the request log; every field optional."""

    connection: str | None = None
    status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    identifier: str | None = None

    @classmethod
    def parse(
        cls,
        connection: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        identifier: str | None = None,
    ) -> RequestFilters:
        """Filters from query parameters; raises :class:`FilterError` with a reason."""
        ident = (identifier or "").strip()
        if len(ident) > _MAX_TEXT:
            raise FilterError(f"identifier: longer than {_MAX_TEXT} characters")
        return cls(
            connection=(connection or "").strip()[:_MAX_TEXT] or None,
            status=_parse_status(status),
            since=_parse_time("since", since),
            until=_parse_time("until", until),
            identifier=ident or None,
        )

    def as_params(self) -> dict[str, str]:
        out = {
            "connection": self.connection or "",
            "status": self.status or "",
            "since": self.since_text,
            "until": self.until_text,
            "identifier": self.identifier or "",
        }
        return {k: v for k, v in out.items() if v}

    @property
    def since_text(self) -> str:
        return self.since.strftime("%Y-%m-%dT%H:%M") if self.since else ""

    @property
    def until_text(self) -> str:
        return self.until.strftime("%Y-%m-%dT%H:%M") if self.until else ""


def identifier_forms(text: str) -> list[str]:
    """The stored forms an identifier typed by a person may take (emails are kept in lower case)."""
    forms = [text]
    if "@" in text and text.lower() != text:
        forms.append(text.lower())
    return forms


def requests_query(filters: RequestFilters) -> Select[Any]:
    """The filtered request log, newest first (without paging)."""
    q = select(
        request_log.c.id,
        request_log.c.received_at,
        request_log.c.connection,
        request_log.c.status_code,
        request_log.c.outcome,
        request_log.c.duration_ms,
        request_log.c.error,
    )
    if filters.identifier:
        keys = select(request_key.c.request_id).where(
            request_key.c.value.in_(identifier_forms(filters.identifier))
        )
        q = q.where(request_log.c.id.in_(keys))
    if filters.connection:
        q = q.where(request_log.c.connection == filters.connection)
    status = filters.status
    if status == "failed":
        q = q.where(request_log.c.status_code >= 400)
    elif status and status.endswith("xx"):
        low = int(status[0]) * 100
        q = q.where(request_log.c.status_code >= low, request_log.c.status_code < low + 100)
    elif status:
        q = q.where(request_log.c.status_code == int(status))
    if filters.since:
        q = q.where(request_log.c.received_at >= filters.since)
    if filters.until:
        q = q.where(request_log.c.received_at < filters.until)
    return q


@dataclass
class RequestPage:
    """One page of the request log with cursors to the pages either side."""

    rows: list[dict[str, Any]]
    older: str | None
    newer: str | None
    filters: RequestFilters = field(default_factory=RequestFilters)

    def url(self, base: str, cursor_name: str, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        return f"{base}?{urlencode({**self.filters.as_params(), cursor_name: cursor})}"

    @property
    def older_url(self) -> str | None:
        return self.url("/admin/requests", "before", self.older)

    @property
    def newer_url(self) -> str | None:
        return self.url("/admin/requests", "after", self.newer)


def _cursor(row: dict[str, Any]) -> str:
    return f"{row['received_at'].isoformat()}~{row['id']}"


def _parse_cursor(text: str) -> tuple[dt.datetime, str]:
    stamp, sep, rid = text.partition("~")
    try:
        if not sep or not rid:
            raise ValueError
        return dt.datetime.fromisoformat(stamp), rid
    except ValueError:
        raise FilterError("the page cursor is not valid: start again from the first page") from None


def page_query(
    filters: RequestFilters, *, before: str | None = None, after: str | None = None, limit: int = PAGE_SIZE
) -> Select[Any]:
    """The statement for one page: newest first before a cursor, or oldest first after one."""
    q = requests_query(filters)
    t, rid = request_log.c.received_at, request_log.c.id
    if after:
        at, aid = _parse_cursor(after)
        # "t >= at AND (...)" rather than a bare OR, so the time index bounds the range.
        return q.where(t >= at, or_(t > at, rid > aid)).order_by(t.asc(), rid.asc()).limit(limit)
    if before:
        bt, bid = _parse_cursor(before)
        q = q.where(t <= bt, or_(t < bt, rid < bid))
    return q.order_by(t.desc(), rid.desc()).limit(limit)


def request_page(
    conn: Connection,
    filters: RequestFilters,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = PAGE_SIZE,
) -> RequestPage:
    """A page of requests matching ``filters``, newest first, before or after a cursor."""
    q = page_query(filters, before=before, after=after, limit=limit + 1)
    rows = [dict(r._mapping) for r in conn.execute(q)]
    more = len(rows) > limit
    rows = rows[:limit]
    if after:
        rows.reverse()
    _attach_identifiers(conn, rows)
    older = _cursor(rows[-1]) if rows and (more or after) else None
    newer = _cursor(rows[0]) if rows and (before or (after and more)) else None
    return RequestPage(rows, older, newer, filters)


def _attach_identifiers(conn: Connection, rows: list[dict[str, Any]]) -> None:
    ids = [r["id"] for r in rows]
    found: dict[str, dict[str, str]] = defaultdict(dict)
    if ids:
        for req_id, scheme, value in conn.execute(
            select(request_key.c.request_id, request_key.c.scheme, request_key.c.value).where(
                request_key.c.request_id.in_(ids)
            )
        ):
            found[req_id][scheme] = value
    for r in rows:
        r["request_id"] = r["id"]
        r["identifiers"] = found.get(r["id"], {})


def pretty_body(body: bytes | str | None, content_type: str | None) -> str:
    """The payload as readable text: indented XML or JSON when it parses, else the text as is."""
    if body is None:
        return ""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    kind = (content_type or "").lower()
    stripped = raw.lstrip()
    if "json" in kind or stripped[:1] in (b"{", b"["):
        try:
            return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    if "xml" in kind or stripped[:1] == b"<":
        try:
            parser = etree.XMLParser(
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
                remove_blank_text=True,
            )
            root = etree.fromstring(raw, parser)
            return str(etree.tostring(root, pretty_print=True, encoding="unicode"))
        except etree.XMLSyntaxError:
            pass
    return raw.decode("utf-8", errors="replace")


def request_detail(conn: Connection, request_id: str) -> dict[str, Any] | None:
    """One logged request in full, with the records it touched."""
    row = conn.execute(select(request_log).where(request_log.c.id == request_id)).first()
    if row is None:
        return None
    data = dict(row._mapping)
    body = data.pop("body")
    data["request_id"] = data["id"]
    data["body_size"] = len(body or b"")
    data["pretty_body"] = pretty_body(body, data.get("content_type"))
    data["pretty_response"] = pretty_body(data.get("response_body"), data.get("response_type"))
    data["headers"] = dict(data.get("headers") or {})
    keys = conn.execute(
        select(request_key.c.scheme, request_key.c.value).where(request_key.c.request_id == request_id)
    )
    data["identifiers"] = {scheme: value for scheme, value in keys}
    data["affected"] = records_touched(conn, request_id)
    return data


def records_touched(conn: Connection, request_id: str) -> list[dict[str, Any]]:
    """The records a request touched: changed ones from the change log (with their fields), and the
    unchanged ones it named (from its ``hub_*`` log keys)."""
    touched: dict[tuple[str, int], dict[str, Any]] = {}

    def item(entity: str, record_id: int, person_id: int | None, action: str) -> dict[str, Any]:
        found = touched.setdefault(
            (entity, record_id),
            {"entity": entity, "hub_id": record_id, "person_id": person_id, "action": action, "changed": []},
        )
        return found

    for entity, record_id, person_id, action, fld in conn.execute(
        select(
            change_log.c.entity,
            change_log.c.record_id,
            change_log.c.person_id,
            change_log.c.action,
            change_log.c.field,
        )
        .where(change_log.c.request_id == request_id)
        .order_by(change_log.c.id)
    ):
        entry = item(entity, record_id, person_id, action)
        if action == "created":
            entry["action"] = "created"
        if fld != "*" and fld not in entry["changed"]:
            entry["changed"].append(fld)
    for scheme, value in conn.execute(
        select(request_key.c.scheme, request_key.c.value).where(request_key.c.request_id == request_id)
    ):
        entity = scheme.removeprefix("hub_")
        if scheme.startswith("hub_") and (entity in _LINK_TABLES or entity == "person") and value.isdigit():
            item(entity, int(value), int(value) if entity == "person" else None, "unchanged")
    _describe(conn, list(touched.values()))
    return sorted(touched.values(), key=lambda t: (_ENTITY_ORDER.get(t["entity"], 9), t["hub_id"]))


_LINK_TABLES = {"application": application, "enquiry": enquiry}
_ENTITY_ORDER = {"person": 0, "enquiry": 1, "application": 2}


def _describe(conn: Connection, items: list[dict[str, Any]]) -> None:
    """Add each record's key (enquiries, applications), person and identifiers (people)."""
    for entity, table in _LINK_TABLES.items():
        ids = [t["hub_id"] for t in items if t["entity"] == entity]
        if ids:
            found = {
                rid: (key, pid)
                for rid, key, pid in conn.execute(
                    select(table.c.id, table.c.key, table.c.person_id).where(table.c.id.in_(ids))
                )
            }
            for t in items:
                if t["entity"] == entity and t["hub_id"] in found:
                    t["key"], t["person_id"] = found[t["hub_id"]]
    person_ids = [t["hub_id"] for t in items if t["entity"] == "person"]
    idents: dict[int, dict[str, str]] = defaultdict(dict)
    if person_ids:
        for pid, scheme, value in conn.execute(
            select(identifier.c.person_id, identifier.c.scheme, identifier.c.value).where(
                identifier.c.person_id.in_(person_ids)
            )
        ):
            idents[pid][scheme] = value
    for t in items:
        t.setdefault("key", None)
        t["external"] = idents.get(t["hub_id"], {}) if t["entity"] == "person" else {}
