"""Receiving StuTalk: check the EOR's credentials, read the XET, turn its rows into source records,
and render the answer SITS keeps in its TOT (XML, or JSON on ``Accept: application/json``).

Rows map by entity name: a row of entity ``E`` is read by the mapping ``E`` and by every mapping
named ``E_<ROLE>`` (``ESD`` and ``ESD_PERSON``).  Fields of nested MRE/MST rows belong to the row
they sit in; a nested row sees the fields of the rows around it (a CAP knows its STU's MST code).
Reference tables that the mapping does not name fill the list named after the table.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from azorus_connect.config import Connection
from azorus_connect.connector import InboundRequest, InboundResult, Received, SourceRecord
from azorus_connect.exceptions import EntityNotMapped, Forbidden, InvalidRecord, NotAuthenticated
from azorus_connect.model import CanonicalRecord, EntityKind, ReferenceValue
from azorus_connect.transform.mapping import Mapping
from azorus_connect.transform.transforms import parse_bool

from .settings import InboundSettings
from .xet import XetDocument, XetLimits, XetRow, read_xet

__all__ = ["authenticate", "receive", "render_response", "source_records"]


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def authenticate(settings: InboundSettings, request: InboundRequest) -> None:
    """Allow the request only from an allowed address with the configured credentials (403 / 401)."""
    if settings.allowed_ips:
        try:
            address = ipaddress.ip_address(request.client_ip or "")
        except ValueError:
            raise Forbidden("the client address cannot be checked against the allow-list") from None
        if not any(address in network for network in settings.allowed_ips):
            raise Forbidden(f"address {address} is not on this connection's allow-list")
    checks: list[bool] = []
    if settings.username is not None and settings.password is not None:
        checks.append(
            _basic_ok(request.headers.get("authorization"), settings.username, settings.password.reveal())
        )
    if settings.pswd is not None:
        checks.append(_pswd_ok(request.headers.get(settings.pswd_header), settings))
    passed = all(checks) if settings.require == "all" else any(checks)
    if not passed:
        methods = []
        if settings.username is not None:
            methods.append("HTTP Basic")
        if settings.pswd is not None:
            methods.append(f"the {settings.pswd_header} header")
        joiner = " and " if settings.require == "all" else " or "
        raise NotAuthenticated(f"missing or wrong credentials: send {joiner.join(methods)}")


def _basic_ok(header: str | None, username: str, password: str) -> bool:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        _same("", password)  # the same work either way
        return False
    try:
        user, _, given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return _same(user, username) & _same(given, password)


def _pswd_ok(header: str | None, settings: InboundSettings) -> bool:
    assert settings.pswd is not None
    secret = settings.pswd.reveal()
    if settings.pswd_format == "md5":
        secret = hashlib.md5(secret.encode("utf-8"), usedforsecurity=False).hexdigest()
        return _same((header or "").strip().lower(), secret)
    return _same(header or "", secret)


@dataclass
class _RowNote:
    """What the response says about the SITS side of one record."""

    entity: str
    key: str | None
    mst: str | None


class _Notes(threading.local):
    """The SITS side of the last request received on this thread, for rendering its answer."""

    request: InboundRequest | None = None
    notes: list[_RowNote] | None = None


_notes = _Notes()


def receive(connection: Connection, settings: InboundSettings, request: InboundRequest) -> Received:
    """Authenticate, parse and flatten one StuTalk post."""
    _notes.request, _notes.notes = request, None
    authenticate(settings, request)
    limits = _limits(connection.max_body_bytes, settings.max_depth, settings.max_rows)
    doc = read_xet(request.body, request.content_type or None, form_field=settings.form_field, limits=limits)
    records, notes, warnings = source_records(doc, connection.record_mapping, settings)
    _notes.notes = notes
    return Received(records=records, warnings=[*doc.warnings, *warnings])


@functools.lru_cache(maxsize=64)
def _limits(max_bytes: int, max_depth: int, max_rows: int) -> XetLimits:
    """A connection's limits, made once: they are the same on every request (and frozen)."""
    return XetLimits(max_bytes=max_bytes, max_depth=max_depth, max_rows=max_rows)


def source_records(
    doc: XetDocument, mapping: Mapping, settings: InboundSettings
) -> tuple[list[SourceRecord | CanonicalRecord], list[_RowNote], list[str]]:
    """The records a payload holds, in document order, with a note per record and any warnings."""
    flattener = _Flattener(mapping, settings)
    for row in doc.rows:
        flattener.visit(row, {}, top=True)
    return flattener.records, flattener.notes, flattener.warnings


#: Per mapping object: source entity -> the mappings that read its rows (see ``_Flattener._names``).
#: A connection's mapping lives as long as its config, so the answer is worked out once per entity;
#: the mapping is held in the entry, so its id cannot be reused while the entry is there.
_readers: dict[int, tuple[Mapping, dict[str, tuple[str, ...]]]] = {}

#: Bounds on that cache: mappings kept (configs reloaded many times), entities per mapping (entity
#: names come from payloads).
_READERS_MAPPINGS = 64
_READERS_ENTITIES = 256


def _readers_of(mapping: Mapping) -> dict[str, tuple[str, ...]]:
    entry = _readers.get(id(mapping))
    if entry is None or entry[0] is not mapping:
        if len(_readers) >= _READERS_MAPPINGS:
            _readers.clear()
        entry = (mapping, {})
        _readers[id(mapping)] = entry
    return entry[1]


class _Flattener:
    def __init__(self, mapping: Mapping, settings: InboundSettings) -> None:
        self.mapping = mapping
        self.readers = _readers_of(mapping)
        self.settings = settings
        self.merge = {e.upper() for e in settings.merge_nested}
        self.records: list[SourceRecord | CanonicalRecord] = []
        self.notes: list[_RowNote] = []
        self.warnings: list[str] = []

    def _names(self, entity: str) -> tuple[str, ...]:
        """The mappings reading rows of ``entity``; people first, so links find them."""
        names = self.readers.get(entity)
        if names is None:
            found = [n for n in self.mapping.entities if n == entity or n.startswith(entity + "_")]
            names = tuple(sorted(found, key=lambda n: self.mapping.entities[n].kind != EntityKind.PERSON))
            if len(self.readers) < _READERS_ENTITIES:
                self.readers[entity] = names
        return names

    def _absorb(self, row: XetRow, fields: dict[str, str | None], others: list[XetRow]) -> None:
        """Fold nested MRE/MST rows into ``fields``; collect the other nested rows."""
        for child in row.children:
            if child.entity in self.merge:
                for name, value in child.fields.items():
                    fields.setdefault(name, value)
                self._absorb(child, fields, others)
            else:
                others.append(child)

    def visit(self, row: XetRow, context: dict[str, str | None], *, top: bool) -> None:
        fields = dict(row.fields)
        nested: list[XetRow] = []
        self._absorb(row, fields, nested)
        names = self._names(row.entity)
        if not names and top and row.entity in self.merge and row.children:
            for child in row.children:  # e.g. MRE at the root: its MST rows stand alone
                self.visit(child, {**context, **row.fields}, top=True)
            return
        seen = {**context, **fields}
        if names:
            for name in names:
                self.records.append(SourceRecord(entity=name, fields=dict(seen), line=row.line))
                self.notes.append(self._note(row.entity, name, seen))
        elif _is_reference_table(row):
            self.records.append(self._reference(row))
            self.notes.append(_RowNote(row.entity, row.fields.get(f"{row.entity}_CODE"), None))
        elif top:
            raise EntityNotMapped(
                f"entity {row.entity} (<{row.tag}> at line {row.line}) is not mapped for this connection",
                detail=f"mapped entities: {', '.join(sorted(self.mapping.entities)) or 'none'}",
            )
        else:
            self.warnings.append(f"<{row.tag}> rows (line {row.line}) are not mapped and were ignored")
        for child in nested:
            self.visit(child, seen, top=False)

    def _note(self, entity: str, mapping_name: str, fields: dict[str, str | None]) -> _RowNote:
        rule = self.mapping.entities[mapping_name]
        if rule.key:
            key: str | None = "/".join(str(fields.get(k) or "") for k in rule.key)
        else:
            key = fields.get(f"{entity}_CODE")
        return _RowNote(entity, key, fields.get("MST_CODE"))

    def _reference(self, row: XetRow) -> ReferenceValue:
        table = row.entity
        code = row.fields.get(f"{table}_CODE")
        if not code:
            raise InvalidRecord(f"<{row.tag}> at line {row.line} has an empty {table}_CODE", line=row.line)
        in_use = row.fields.get(f"{table}_IUSE")
        try:
            flag = parse_bool(in_use)
        except ValueError as exc:
            raise InvalidRecord(f"{table}_IUSE at line {row.line}: {exc}", line=row.line) from None
        values = {
            "label": row.fields.get(f"{table}_NAME"),
            "short_label": row.fields.get(f"{table}_SNAM"),
            "in_use": flag,
        }
        return ReferenceValue(
            list_name=self.settings.reference_list_name.format(table=table),
            code=code,
            **{k: v for k, v in values.items() if v is not None},
        )


def _is_reference_table(row: XetRow) -> bool:
    prefix = row.entity + "_"
    return f"{prefix}CODE" in row.fields and any(
        f"{prefix}{s}" in row.fields for s in ("NAME", "SNAM", "IUSE")
    )


# -- the answer ------------------------------------------------------------------------------------


def _wants_json(request: InboundRequest) -> bool:
    accept = (request.headers.get("accept") or "").lower()
    if "json" not in accept:
        return False
    return "xml" not in accept or accept.index("json") < accept.index("xml")


def _rows(
    request: InboundRequest, result: InboundResult
) -> Iterable[tuple[_RowNote | None, dict[str, object]]]:
    notes = _notes.notes if _notes.request is request and _notes.notes is not None else []
    for i, affected in enumerate(result.affected):
        note = notes[i] if i < len(notes) and len(notes) == len(result.affected) else None
        hub: dict[str, object] = {
            "type": affected.entity.value,
            "hubId": affected.hub_id,
            "action": affected.action,
            "key": affected.key,
            "identifiers": dict(affected.external),
        }
        yield note, hub


def render_response(request: InboundRequest, result: InboundResult) -> tuple[bytes, str]:
    """The response body: request id, outcome, and per record the SITS key and the hub record."""
    rows = list(_rows(request, result))
    if _notes.request is request:
        _notes.request, _notes.notes = None, None
    if _wants_json(request):
        body = {
            "requestId": result.request_id,
            "outcome": result.outcome,
            "status": result.status_code,
            "records": [
                {
                    **({"sitsEntity": n.entity, "sitsKey": n.key, "mst": n.mst} if n is not None else {}),
                    **hub,
                }
                for n, hub in rows
            ],
            "warnings": result.warnings,
            **({"error": result.error} if result.error else {}),
        }
        return json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json"
    try:
        return _xml_text(result, rows), "application/xml"
    except _NotPlain:
        return _xml_tree(result, rows), "application/xml"


def _xml_tree(result: InboundResult, rows: list[tuple[_RowNote | None, dict[str, object]]]) -> bytes:
    """The XML answer built as an lxml tree: the reference for :func:`_xml_text`, and its fallback
    for values that are not plain text."""
    root = etree.Element(
        "result", requestId=result.request_id, outcome=result.outcome, http=str(result.status_code)
    )
    for note, hub in rows:
        attrs: dict[str, str] = {}
        if note is not None:
            attrs["sitsEntity"] = note.entity
            if note.key:
                attrs["sitsKey"] = note.key
            if note.mst:
                attrs["mst"] = note.mst
        attrs.update(type=str(hub["type"]), action=str(hub["action"]))
        if hub["hubId"] is not None:
            attrs["hubId"] = str(hub["hubId"])
        if hub["key"]:
            attrs["key"] = str(hub["key"])
        record = etree.SubElement(root, "record", attrs)
        identifiers = hub["identifiers"]
        assert isinstance(identifiers, dict)
        for scheme, value in sorted(identifiers.items()):
            etree.SubElement(record, "id", scheme=str(scheme)).text = str(value)
    for warning in result.warnings:
        etree.SubElement(root, "warning").text = warning
    if result.error:
        etree.SubElement(root, "error").text = result.error
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


class _NotPlain(Exception):
    """A value :func:`_xml_text` does not write itself: the answer is built with lxml instead."""


#: What lxml writes before the root element.
_XML_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"

#: Any character outside the ones lxml writes as they are.  Control characters (which lxml refuses
#: or writes as character references), U+FFFE/U+FFFF, surrogates and code points beyond the BMP
#: are left to lxml, so its rules for them need not be copied here.
_NOT_PLAIN = re.compile("[^\x20-\x7e\xa0-\ud7ff\ue000-\ufffd]")


def _text(value: object) -> str:
    """Element text, escaped as lxml escapes it."""
    if type(value) is not str:
        raise _NotPlain
    if "&" in value or "<" in value or ">" in value:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value


def _xml_text(result: InboundResult, rows: list[tuple[_RowNote | None, dict[str, object]]]) -> bytes:
    """The XML answer written as text, byte for byte what :func:`_xml_tree` gives (a third of the
    CPU: it is rendered on every request).  Raises :class:`_NotPlain` for any value it leaves to
    lxml.

    Attribute values (ids, codes, keys) are written as they are and checked all at once at the
    end: any that would need escaping sends the whole answer to lxml."""
    http = str(result.status_code)
    values: list[object] = [result.request_id, result.outcome, http]
    parts = [f'<result requestId="{result.request_id}" outcome="{result.outcome}" http="{http}"']
    inner: list[str] = []
    for note, hub in rows:
        record = ["<record"]
        if note is not None:
            values.append(note.entity)
            record.append(f' sitsEntity="{note.entity}"')
            if note.key:
                values.append(note.key)
                record.append(f' sitsKey="{note.key}"')
            if note.mst:
                values.append(note.mst)
                record.append(f' mst="{note.mst}"')
        kind, action = str(hub["type"]), str(hub["action"])
        values += (kind, action)
        record.append(f' type="{kind}" action="{action}"')
        if hub["hubId"] is not None:
            hub_id = str(hub["hubId"])
            values.append(hub_id)
            record.append(f' hubId="{hub_id}"')
        if hub["key"]:
            key = str(hub["key"])
            values.append(key)
            record.append(f' key="{key}"')
        identifiers = hub["identifiers"]
        assert isinstance(identifiers, dict)
        if identifiers:
            record.append(">")
            for scheme, value in sorted(identifiers.items()):
                scheme, value = str(scheme), str(value)
                values += (scheme, value)
                record.append(f'<id scheme="{scheme}">{value}</id>')
            record.append("</record>")
        else:
            record.append("/>")
        inner.append("".join(record))
    if {*map(type, values)} != {str}:
        raise _NotPlain
    written = "".join(values)  # type: ignore[arg-type]  # every one is a str, as just checked
    if "&" in written or "<" in written or ">" in written or '"' in written:
        raise _NotPlain
    for warning in result.warnings:
        inner.append(f"<warning>{_text(warning)}</warning>")
    if result.error:
        inner.append(f"<error>{_text(result.error)}</error>")
    if inner:
        parts.append(">")
        parts.extend(inner)
        parts.append("</result>")
    else:
        parts.append("/>")
    body = "".join(parts)
    # The usual answer is printable ASCII, which two C-speed checks see; only others need the scan.
    if not (body.isascii() and body.isprintable()) and _NOT_PLAIN.search(body):
        raise _NotPlain
    return (_XML_DECLARATION + body).encode("utf-8")
