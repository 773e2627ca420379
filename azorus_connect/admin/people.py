"""Finding people and showing one in full: identifiers, enquiries, applications, custom fields, history.

List-typed values are shown with their reference-list labels (a code only when the list lacks it).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, func, or_, select

from ..model import Application, Enquiry, Person
from ..store.schema import application, change_log, enquiry, identifier, person, reference_value
from .request_log import identifier_forms

if TYPE_CHECKING:
    from ..model import CustomFieldDef

__all__ = [
    "display_name",
    "history",
    "identifier_query",
    "people_by_identifier",
    "person_detail",
    "search_people",
]

_NAME_FIELDS = ("title", "first_name", "middle_names", "last_name", "preferred_name")
_LABELS = {
    "date_of_birth": "Date of birth",
    "first_name": "First name",
    "middle_names": "Middle names",
    "last_name": "Last name",
    "preferred_name": "Preferred name",
    "address_line1": "Address",
    "address_line2": "",
    "address_line3": "",
}


def display_name(row: Mapping[str, Any]) -> str:
    parts = [row.get("first_name"), row.get("last_name")]
    name = " ".join(p for p in parts if p)
    return name or f"Person #{row['id']}"


_SCHEMES_TTL = 60.0
_schemes_cache: dict[str, tuple[float, list[str]]] = {}


def _schemes(conn: Connection, *, fresh: bool = False) -> list[str]:
    """The identifier schemes in use (a full index scan, so kept for a minute per database)."""
    key = str(conn.engine.url)
    cached = _schemes_cache.get(key)
    if not fresh and cached is not None and time.monotonic() - cached[0] < _SCHEMES_TTL:
        return cached[1]
    schemes = [s for (s,) in conn.execute(select(identifier.c.scheme).distinct())]
    _schemes_cache[key] = (time.monotonic(), schemes)
    return schemes


def people_by_identifier(conn: Connection, text: str, *, schemes_only: bool = False) -> list[int]:
    """The people an identifier (in any scheme, or as ``scheme:value``) or a hub id names.

    With ``schemes_only`` the text must be ``scheme:value`` and only that scheme is searched.
    """
    text = text.strip()
    if not text:
        return []
    scheme, sep, value = text.partition(":")
    ids = _match(conn, [scheme.lower()], value) if sep and value and scheme.isidentifier() else set()
    if not schemes_only:
        # ``scheme IN (...) AND value = ?`` is a few seeks on the (scheme, value) index.
        for form in identifier_forms(text):
            ids |= _match(conn, _schemes(conn), form)
            if not ids:
                ids |= _match(conn, _schemes(conn, fresh=True), form)
    if not schemes_only and text.isdigit() and len(text) < 12:
        row = conn.execute(select(person.c.id).where(person.c.id == int(text))).first()
        if row is not None:
            ids.add(row.id)
    return sorted(ids)


def identifier_query(schemes: list[str], value: str) -> Select[int]:
    """The people holding ``value`` in any of ``schemes``: seeks on the (scheme, value) index."""
    return select(identifier.c.person_id).where(identifier.c.scheme.in_(schemes), identifier.c.value == value)


def _match(conn: Connection, schemes: list[str], value: str) -> set[int]:
    if not schemes:
        return set()
    return set(conn.execute(identifier_query(schemes, value)).scalars())


def search_people(conn: Connection, q: str, limit: int = 50) -> list[dict[str, Any]]:
    """People matching an identifier exactly, or whose names start with every word of ``q``."""
    q = q.strip()[:200]
    if not q:
        return []
    ids = people_by_identifier(conn, q)
    if not ids:
        clauses = []
        for word in q.lower().split()[:4]:
            pattern = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(
                or_(
                    *(
                        func.lower(person.c[f]).like(pattern, escape="\\")
                        for f in _NAME_FIELDS
                        if f != "title"
                    )
                )
            )
        ids = [
            pid
            for (pid,) in conn.execute(
                select(person.c.id)
                .where(*clauses)
                .order_by(person.c.last_name, person.c.first_name)
                .limit(limit)
            )
        ]
    return _summaries(conn, ids[:limit])


def _summaries(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = {
        r.id: dict(r._mapping)
        for r in conn.execute(
            select(
                person.c.id, person.c.first_name, person.c.last_name, person.c.date_of_birth, person.c.email
            ).where(person.c.id.in_(ids))
        )
    }
    idents: dict[int, dict[str, str]] = {pid: {} for pid in ids}
    for pid, scheme, value in conn.execute(
        select(identifier.c.person_id, identifier.c.scheme, identifier.c.value)
        .where(identifier.c.person_id.in_(ids))
        .order_by(identifier.c.scheme)
    ):
        idents[pid][scheme] = value
    out = []
    for pid in ids:
        if pid in rows:
            row = rows[pid]
            out.append({**row, "display_name": display_name(row), "identifiers": idents[pid]})
    return out


def _labels(conn: Connection, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    pairs = sorted({p for p in wanted if p[1] is not None})
    if not pairs:
        return {}
    by_list: dict[str, list[str]] = {}
    for list_name, code in pairs:
        by_list.setdefault(list_name, []).append(code)
    found: dict[tuple[str, str], str] = {}
    for list_name, codes in by_list.items():
        rows = conn.execute(
            select(reference_value.c.code, reference_value.c.label).where(
                reference_value.c.list_name == list_name, reference_value.c.code.in_(codes)
            )
        )
        found.update({(list_name, code): label for code, label in rows if label})
    return found


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _source(row: Mapping[str, Any], *, short: bool = False) -> tuple[str, str | None]:
    """Where a change came from, as text and a link: an import run, an inbound request, or a connection."""
    if row.get("import_run_id") is not None:
        return f"import run #{row['import_run_id']}", None
    if row.get("request_id"):
        name = row.get("connection") or "request"
        text = name if short else f"{name} request {row['request_id']}"
        return text, f"/admin/requests/{row['request_id']}"
    return row.get("connection") or "hub", None


def person_detail(
    conn: Connection, person_id: int, custom_fields: Mapping[str, CustomFieldDef] | None = None
) -> dict[str, Any] | None:
    """Everything about one person, ready to show."""
    row = conn.execute(select(person).where(person.c.id == person_id)).first()
    if row is None:
        return None
    data = dict(row._mapping)
    apps = [
        dict(r._mapping)
        for r in conn.execute(select(application).where(application.c.person_id == person_id))
    ]
    enqs = [dict(r._mapping) for r in conn.execute(select(enquiry).where(enquiry.c.person_id == person_id))]
    wanted = [(ln, data[f]) for f, ln in Person.list_fields.items()]
    wanted += [(ln, a[f]) for a in apps for f, ln in Application.list_fields.items()]
    wanted += [(ln, e[f]) for e in enqs for f, ln in Enquiry.list_fields.items()]
    defs = custom_fields or {}
    custom = data.get("custom") or {}
    wanted += [(d.list, custom.get(n)) for n, d in defs.items() if d.list and custom.get(n) is not None]
    labels = _labels(conn, wanted)
    raw_apps = [dict(a) for a in apps]
    raw_enqs = [dict(e) for e in enqs]

    def label(list_name: str, code: Any) -> str:
        return labels.get((list_name, code), _shown(code))

    fields: list[tuple[str, str]] = []
    for name in (
        "title",
        "first_name",
        "middle_names",
        "last_name",
        "preferred_name",
        "date_of_birth",
        "gender",
        "nationality",
        "domicile",
        "email",
        "phone",
        "mobile",
        "address_line1",
        "address_line2",
        "address_line3",
        "city",
        "postcode",
        "country",
    ):
        value = data.get(name)
        if value is None or value == "":
            continue
        shown = label(Person.list_fields[name], value) if name in Person.list_fields else _shown(value)
        fields.append((_LABELS.get(name, name.replace("_", " ").capitalize()), shown))
    for item in apps:
        for f, ln in Application.list_fields.items():
            item[f] = label(ln, item[f])
    for item in enqs:
        for f, ln in Enquiry.list_fields.items():
            item[f] = label(ln, item[f])
    shown_custom = []
    for name, value in sorted(custom.items()):
        d = defs.get(name)
        text = label(d.list, value) if d is not None and d.list else _shown(value)
        shown_custom.append(((d.label if d and d.label else name), text))
    return {
        "id": person_id,
        "display_name": display_name(data),
        "fields": fields,
        "raw": data,
        "identifiers": _identifiers(conn, person_id),
        "applications": apps,
        "enquiries": enqs,
        "application_rows": raw_apps,
        "enquiry_rows": raw_enqs,
        "custom": shown_custom,
        "history": history(conn, person_id),
    }


def _identifiers(conn: Connection, person_id: int) -> list[dict[str, Any]]:
    """The person's identifiers, each with where it first came from (from the change log)."""
    sources: dict[str, tuple[str, str | None]] = {}
    for fld, new_value, conn_name, request_id, run_id in conn.execute(
        select(
            change_log.c.field,
            change_log.c.new_value,
            change_log.c.connection,
            change_log.c.request_id,
            change_log.c.import_run_id,
        )
        .where(
            change_log.c.person_id == person_id,
            change_log.c.entity == "person",
            or_(change_log.c.field.like("id:%"), change_log.c.field == "*"),
        )
        .order_by(change_log.c.id)
    ):
        origin = _source(
            {"connection": conn_name, "request_id": request_id, "import_run_id": run_id}, short=True
        )
        if fld == "*":
            created = _decode_mapping(new_value)
            for key in created:
                if key.startswith("id:"):
                    sources.setdefault(key[3:], origin)
        else:
            sources.setdefault(fld[3:], origin)
    rows = conn.execute(
        select(identifier.c.scheme, identifier.c.value, identifier.c.created_at)
        .where(identifier.c.person_id == person_id)
        .order_by(identifier.c.scheme)
    )
    out = []
    for scheme, value, created_at in rows:
        source, url = sources.get(scheme, (None, None))
        out.append(
            {"scheme": scheme, "value": value, "created_at": created_at, "source": source, "source_url": url}
        )
    return out


def _decode_mapping(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def history(conn: Connection, person_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """The person's field-level change log (their own record and their enquiries and applications)."""
    keys: dict[tuple[str, int], str] = {}
    for table, kind in ((application, "application"), (enquiry, "enquiry")):
        for rid, key in conn.execute(select(table.c.id, table.c.key).where(table.c.person_id == person_id)):
            keys[(kind, rid)] = key or ""
    out = []
    for row in conn.execute(
        select(change_log)
        .where(change_log.c.person_id == person_id)
        .order_by(change_log.c.changed_at.desc(), change_log.c.id.desc())
        .limit(limit)
    ):
        item = dict(row._mapping)
        item["old"] = _decode(item.pop("old_value"))
        item["new"] = _decode(item.pop("new_value"))
        item["record_key"] = keys.get((item["entity"], item["record_id"]))
        item["source"], item["source_url"] = _source(item)
        out.append(item)
    return out


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, (dict, list)) else value
