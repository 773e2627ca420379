"""Hardened reading of StuTalk XET payloads into rows of SITS fields.

A XET export has the root ``EXCHANGE``; each entity has a container element (``STU``) holding one
row element per record named ``ENTITY.DICTIONARY`` (``STU.SRS``, ``MRE.MENSYS``).  Field tags are
short (``STU_CODE``) or long (``STU_CODE.STU.SRS``); child entities nest inside a row
(``STU.SRS/CAP/CAP.SRS``, ``STU.SRS/MRE/MRE.MENSYS/MST/MST.SRS``).  The payload comes from outside,
so the parser loads no DTD, expands no entity, touches no network and refuses any DOCTYPE, and its
size, depth and row count are bounded.  Every rejection is an :class:`~azorus_connect.exceptions.
PayloadError` or :class:`~azorus_connect.exceptions.InvalidRecord` carrying its HTTP status.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from lxml import etree

from azorus_connect.exceptions import (
    InvalidRecord,
    MalformedPayload,
    PayloadTooLarge,
    UnsupportedMediaType,
)

__all__ = [
    "FORM_MEDIA_TYPE",
    "XML_MEDIA_TYPES",
    "XetDocument",
    "XetLimits",
    "XetRow",
    "decode_xml",
    "parse_content_type",
    "parse_xet",
    "read_xet",
]

XML_MEDIA_TYPES = frozenset({"text/xml", "application/xml"})
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"

#: Charsets accepted, by Python codec name; anything else is a 415.
SUPPORTED_CHARSETS = {
    "utf-8": "UTF-8",
    "iso8859-1": "ISO-8859-1",
    "ascii": "US-ASCII",
    "cp1252": "windows-1252",
}

_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")


@dataclass(frozen=True)
class XetLimits:
    """Bounds on one payload: bytes (413), element nesting (400) and rows (413)."""

    max_bytes: int = 10 * 1024 * 1024
    max_depth: int = 32
    max_rows: int = 10_000


@dataclass
class XetRow:
    """One ``<ENT>.<DICT>`` row: its fields by short upper-case tag, and the rows nested in it."""

    entity: str
    dictionary: str
    fields: dict[str, str | None]
    children: list[XetRow] = field(default_factory=list)
    #: Line of the row element in the payload, for error reports.
    line: int | None = None

    @property
    def tag(self) -> str:
        return f"{self.entity}.{self.dictionary}"


@dataclass
class XetDocument:
    """A parsed ``EXCHANGE``: its top-level rows, the charset it was read in, and warnings."""

    rows: list[XetRow]
    charset: str
    warnings: list[str] = field(default_factory=list)

    def walk(self) -> Iterator[tuple[XetRow, tuple[XetRow, ...]]]:
        """Every row depth-first in document order, with its ancestor rows (outermost first)."""
        stack: list[tuple[XetRow, tuple[XetRow, ...]]] = [(row, ()) for row in reversed(self.rows)]
        while stack:
            row, ancestors = stack.pop()
            yield row, ancestors
            inner = (*ancestors, row)
            stack.extend((child, inner) for child in reversed(row.children))

    def entities(self) -> list[str]:
        """The entity names present, in order of first appearance."""
        return list(dict.fromkeys(row.entity for row, _ in self.walk()))


def parse_content_type(value: str | None) -> tuple[str | None, dict[str, str]]:
    """``text/xml; charset="UTF-8"`` -> ``("text/xml", {"charset": "UTF-8"})``; None when absent."""
    if not value or not value.strip():
        return None, {}
    media_type, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        name, eq, val = part.partition("=")
        if eq:
            params[name.strip().lower()] = val.strip().strip('"').strip()
    return media_type.strip().lower(), params


def read_xet(
    body: bytes,
    content_type: str | None,
    *,
    form_field: str = "DATA",
    limits: XetLimits = XetLimits(),
) -> XetDocument:
    """Read a StuTalk request body: XML (``text/xml``, ``application/xml``, ``*+xml``) or a form
    with the XML in ``form_field``.  A missing Content-Type is read as XML, since SITS's EOR does
    not document what it sends."""
    if len(body) > limits.max_bytes:
        raise PayloadTooLarge(f"payload is {len(body)} bytes; the limit is {limits.max_bytes}")
    media_type, params = parse_content_type(content_type)
    header_charset = params.get("charset")
    if media_type == FORM_MEDIA_TYPE:
        return parse_xet(_form_value(body, form_field), header_charset, limits=limits)
    if media_type is None or media_type in XML_MEDIA_TYPES or media_type.endswith("+xml"):
        return parse_xet(body, header_charset, limits=limits)
    raise UnsupportedMediaType(
        f"unsupported media type {media_type}: send text/xml, application/xml or "
        f"{FORM_MEDIA_TYPE} with the XML in the {form_field} field"
    )


def _form_value(body: bytes, form_field: str) -> bytes:
    # Latin-1 maps bytes to code points one to one, so the percent-decoded value comes back as the
    # exact bytes sent; their charset is decided afterwards like any XML body's.
    try:
        pairs = parse_qsl(
            body.decode("latin-1"), keep_blank_values=True, encoding="latin-1", max_num_fields=100
        )
    except ValueError as exc:
        raise MalformedPayload(f"form body cannot be read: {exc}") from None
    values = [value.encode("latin-1") for name, value in pairs if name == form_field]
    if not values:
        raise MalformedPayload(f"form body has no {form_field} field holding the XML")
    if len(values) > 1:
        raise MalformedPayload(f"form body has {len(values)} {form_field} fields; send one")
    return values[0]


def _codec(name: str, where: str) -> str:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        codec = ""
    if codec not in SUPPORTED_CHARSETS:
        accepted = ", ".join(SUPPORTED_CHARSETS.values())
        raise UnsupportedMediaType(f"charset {name!r} ({where}) is not supported; use one of {accepted}")
    return codec


def decode_xml(data: bytes, header_charset: str | None = None) -> tuple[str, str, list[str]]:
    """Decode the payload bytes: the header's charset wins over the XML declaration (RFC 7303),
    UTF-8 when neither names one.  Returns ``(text, charset label, warnings)``."""
    warnings: list[str] = []
    if data.startswith(_OTHER_BOMS):
        raise UnsupportedMediaType("UTF-16/UTF-32 payloads are not supported; send UTF-8 or ISO-8859-1")
    had_bom = data.startswith(_UTF8_BOM)
    if had_bom:
        data = data[len(_UTF8_BOM) :]
    match = _DECLARED_ENCODING.match(data[:200])
    declared = match.group(1).decode("ascii") if match else None
    if header_charset:
        codec = _codec(header_charset, "Content-Type header")
        if declared and _codec_or_none(declared) != codec:
            warnings.append(f"the XML declares encoding {declared} but the header says {header_charset}")
    elif had_bom:
        codec = "utf-8"
    elif declared:
        codec = _codec(declared, "XML declaration")
    else:
        codec = "utf-8"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise MalformedPayload(
            f"payload is not valid {SUPPORTED_CHARSETS[codec]} (byte 0x{bad} at offset {exc.start}); "
            "declare the charset it is written in, e.g. charset=ISO-8859-1"
        ) from None
    if codec in ("iso8859-1", "cp1252") and _looks_like_utf8(data):
        warnings.append(
            f"payload declared {SUPPORTED_CHARSETS[codec]} looks like UTF-8; accents may be garbled"
        )
    return text, SUPPORTED_CHARSETS[codec], warnings


def _codec_or_none(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _looks_like_utf8(data: bytes) -> bool:
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_local = threading.local()


def _parser() -> etree.XMLParser:
    """One hardened parser per thread (lxml parsers are not shared across threads)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            encoding="utf-8",
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse_xet(
    data: bytes,
    header_charset: str | None = None,
    *,
    limits: XetLimits = XetLimits(),
) -> XetDocument:
    """Parse XET bytes into rows; see the module docstring for the shape and the defences."""
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"payload is {len(data)} bytes; the limit is {limits.max_bytes}")
    if not data.strip():
        raise MalformedPayload("payload is empty; expected StuTalk XML with an EXCHANGE root")
    text, charset, warnings = decode_xml(data, header_charset)
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise MalformedPayload("DOCTYPE and ENTITY declarations are not accepted")
    try:
        root = etree.fromstring(text.encode("utf-8"), _parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedPayload(f"payload is not well-formed XML: {exc.msg}", detail=str(exc)) from None
    except (etree.LxmlError, ValueError) as exc:
        raise MalformedPayload(f"payload cannot be parsed as XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedPayload("DOCTYPE declarations are not accepted")
    if _name(root) != "EXCHANGE":
        raise MalformedPayload(f"root element is <{_name(root)}>; StuTalk XML has an EXCHANGE root")
    reader = _RowReader(limits)
    rows = reader.read_exchange(root)
    if not rows:
        raise MalformedPayload("EXCHANGE holds no entity rows (expected e.g. <STU><STU.SRS>...)")
    return XetDocument(rows=rows, charset=charset, warnings=warnings)


#: Most payloads repeat the same few dozen tags, request after request, so the name of a tag and
#: the field it names are worked out once per distinct tag and kept.  Tags come from outside, so
#: each cache stops growing at a bound (further tags are then worked out every time): at most this
#: many tag names, row tags, and fields per row tag (64 Ki field entries in all, a few MB).
_CACHE_LIMIT = 4096
_ROWS_CACHED = 128
_FIELDS_CACHED_PER_ROW = 512

#: Element tag (``{ns}Stu_Code`` or ``STU_CODE``) -> its upper-case local name.
_names: dict[str, str] = {}

#: Row tag (``STU.SRS``) -> element tag of a field in that row -> the field's short name, or ""
#: for a childless element that names no field (an empty container such as ``<CAP/>``).
_field_names: dict[str, dict[str, str]] = {}


def _name(element: etree._Element) -> str:
    """The element's tag without namespace, upper-cased (XET tags are upper-case)."""
    tag = element.tag
    name = _names.get(tag)
    if name is None:
        name = str(etree.QName(element).localname).upper()
        if len(_names) < _CACHE_LIMIT:
            _names[tag] = name
    return name


def _has_children(element: etree._Element) -> bool:
    # len() counts every child node and costs nothing, and leaf fields are most of a payload.
    return len(element) > 0 and next(element.iterchildren(tag=etree.Element), None) is not None


def _fields_of(row_name: str) -> dict[str, str]:
    """The field-name cache of one row tag, new or shared (it is only ever added to)."""
    names = _field_names.get(row_name)
    if names is None:
        names = {}
        if len(_field_names) < _ROWS_CACHED:
            names = _field_names.setdefault(row_name, names)
    return names


def _field_of(element: etree._Element, suffix: str, names: dict[str, str]) -> str:
    """The short field name of a childless element of a row (see :func:`_field_name`), or "" when
    the element names no field; kept in ``names``."""
    field_name = _field_name(_name(element), suffix)
    if "_" not in field_name and "." not in field_name:
        field_name = ""
    if len(names) < _FIELDS_CACHED_PER_ROW:
        names[element.tag] = field_name
    return field_name


class _RowReader:
    """Walks the element tree once, checking depth and row count as it goes."""

    def __init__(self, limits: XetLimits) -> None:
        self.limits = limits
        self.row_count = 0

    def read_exchange(self, root: etree._Element) -> list[XetRow]:
        rows: list[XetRow] = []
        for child in root.iterchildren(tag=etree.Element):
            name = _name(child)
            if _has_children(child):
                if "." in name:  # a row straight under EXCHANGE, without its container
                    rows.append(self._row(child, 2, name))
                else:
                    rows.extend(self._container(child, depth=2))
            elif (child.text or "").strip():
                raise InvalidRecord(
                    f"<{name}> at line {child.sourceline} holds a value directly under EXCHANGE; "
                    "values belong in entity rows such as <STU><STU.SRS>"
                )
        return rows

    def _check_depth(self, element: etree._Element, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise MalformedPayload(
                f"elements nest deeper than {self.limits.max_depth} levels (at line {element.sourceline})"
            )

    def _container(self, element: etree._Element, depth: int) -> list[XetRow]:
        self._check_depth(element, depth)
        name = _name(element)
        prefix = name + "."
        rows = []
        for child in element.iterchildren(tag=etree.Element):
            child_name = _name(child)
            if not child_name.startswith(prefix) or child_name == prefix:
                raise InvalidRecord(
                    f"<{name}> at line {element.sourceline} should hold <{name}.DICT> rows "
                    f"but holds <{child_name}>"
                )
            rows.append(self._row(child, depth + 1, child_name))
        return rows

    def _row(self, element: etree._Element, depth: int, name: str) -> XetRow:
        """Read a row element named ``name``: its fields, and the rows in its nested containers."""
        self._check_depth(element, depth)
        self.row_count += 1
        if self.row_count > self.limits.max_rows:
            raise PayloadTooLarge(f"payload holds more than {self.limits.max_rows} rows")
        entity, _, dictionary = name.partition(".")
        if not entity or not dictionary:
            raise InvalidRecord(f"row <{name}> at line {element.sourceline} is not named ENT.DICT")
        row = XetRow(entity=entity, dictionary=dictionary, fields={}, line=element.sourceline)
        fields = row.fields
        suffix = "." + name  # name is exactly f"{entity}.{dictionary}"
        names = _fields_of(name)
        inner = depth + 1
        too_deep = inner > self.limits.max_depth
        for child in element.iterchildren(tag=etree.Element):
            if len(child) and _has_children(child):
                row.children.extend(self._container(child, inner))
                continue
            if too_deep:
                self._check_depth(child, inner)
            tag = names.get(child.tag)
            if tag is None:
                tag = _field_of(child, suffix, names)
            if not tag:
                continue  # an empty entity container such as <CAP/>
            text = child.text
            value = (text.strip() or None) if text else None
            if tag in fields and fields[tag] != value:
                raise InvalidRecord(
                    f"field {tag} appears twice with different values in <{row.tag}> at line {row.line}"
                )
            fields[tag] = value
        return row


def _field_name(tag: str, own_suffix: str) -> str:
    """Long tag to short: ``STU_CODE.STU.SRS`` -> ``STU_CODE``; ``MST_CODE.MST.SRS`` -> ``MST_CODE``
    even when flattened into another row; names like ``SPR.ROU_CODE`` are kept."""
    if tag.endswith(own_suffix) and len(tag) > len(own_suffix):
        return tag[: -len(own_suffix)]
    parts = tag.split(".")
    if len(parts) >= 3 and parts[0].startswith(parts[-2] + "_"):
        return ".".join(parts[:-2])
    return tag
