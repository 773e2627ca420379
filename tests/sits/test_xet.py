"""XET parsing: every payload shape SITS sends, and every hostile one refused with its status."""

from __future__ import annotations

from pathlib import Path

import pytest
from azorus_sits.xet import XetDocument, XetLimits, XetRow, parse_content_type, parse_xet, read_xet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azorus_connect.exceptions import (
    AzorusError,
    InvalidRecord,
    MalformedPayload,
    PayloadTooLarge,
    UnsupportedMediaType,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sits"
HOSTILE = FIXTURES / "hostile"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def rows_of(doc: XetDocument, entity: str) -> list[tuple[XetRow, tuple[str, ...]]]:
    return [(row, tuple(a.tag for a in anc)) for row, anc in doc.walk() if row.entity == entity]


def test_long_tags_are_read_as_short_names_with_nested_mst() -> None:
    doc = parse_xet(fixture("stu_long_tags.xml"))
    [stu] = doc.rows
    assert (stu.entity, stu.dictionary, stu.line) == ("STU", "SRS", 4)
    assert stu.fields["STU_CODE"] == "24001234"
    assert stu.fields["STU_DOB"] == "14-MAY-06"
    assert "STU_CODE.STU.SRS" not in stu.fields
    [(mre, mre_path)] = rows_of(doc, "MRE")
    assert mre.dictionary == "MENSYS" and mre.fields == {} and mre_path == ("STU.SRS",)
    [(mst, mst_path)] = rows_of(doc, "MST")
    assert mst.fields == {"MST_CODE": "0000123456", "MST_UDF1": "CRM-000042"}
    assert mst_path == ("STU.SRS", "MRE.MENSYS")
    assert doc.entities() == ["STU", "MRE", "MST"]


def test_short_tags_with_cap_nested_in_the_student() -> None:
    doc = parse_xet(fixture("stu_cap_short_tags.xml"))
    [stu] = doc.rows
    assert stu.fields["STU_NATC"] == "000"  # leading zeros kept
    [(cap, path)] = rows_of(doc, "CAP")
    assert path == ("STU.SRS",)
    assert cap.fields["CAP_STUC"] == "24001234"
    assert cap.fields["CAP_SEQN"] == "01"
    assert cap.fields["CAP_AYRC"] == "2025/6"
    assert [r.entity for r in stu.children] == ["MRE", "CAP"]


def test_cap_at_the_root_with_long_tags() -> None:
    doc = parse_xet(fixture("cap_at_root.xml"))
    [cap] = doc.rows
    assert cap.entity == "CAP"
    assert cap.fields == {
        "CAP_STUC": "24001234",
        "CAP_SEQN": "02",
        "CAP_AYRC": "2026/7",
        "CAP_MCRC": "UMSCDS01",
        "CAP_IDRC": "UF",
        "CAP_RSPD": "2026-03-01",
    }


def test_enquirer_and_bare_mst_and_reference_table() -> None:
    esd = parse_xet(fixture("esd_enquirer.xml"))
    assert esd.rows[0].fields["ESD_CODE"] == "E000981"
    assert rows_of(esd, "MST")[0][0].fields["MST_CODE"] == "0000123999"
    mst = parse_xet(fixture("mst_only.xml"))
    assert mst.rows[0].fields == {"MST_CODE": "0000123456", "MST_TYPE": "L", "MST_UDF1": "CRM-000042"}
    nat = parse_xet(fixture("reference_nat.xml"))
    assert [(r.fields["NAT_CODE"], r.fields["NAT_IUSE"]) for r in nat.rows] == [
        ("000", "Y"),
        ("011", "Y"),
        ("099", "N"),
    ]
    assert nat.rows[2].fields["NAT_NAME"] == "Not known"


def test_many_rows_and_entities_in_document_order() -> None:
    doc = parse_xet(fixture("several_rows.xml"))
    assert [r.tag for r in doc.rows] == ["GEN.SRS", "GEN.SRS", "STU.SRS", "STU.SRS", "STU.SRS"]
    caps = rows_of(doc, "CAP")
    assert [c.fields["CAP_SEQN"] for c, _ in caps] == ["01", "02"]
    assert [m.fields["MST_CODE"] for m, _ in rows_of(doc, "MST")] == [
        "0000130101",
        "0000130102",
        "0000130103",
    ]
    assert doc.entities() == ["GEN", "STU", "MRE", "MST", "CAP"]


def test_empty_elements_are_none_and_empty_containers_vanish() -> None:
    doc = parse_xet(fixture("empty_elements.xml"))
    [stu] = doc.rows
    assert stu.fields == {
        "STU_CODE": "24001400",
        "STU_SURN": "EMPTYFIELDS",
        "STU_FNM1": None,
        "STU_FNM2": None,
        "STU_HAEM": None,
    }
    assert rows_of(doc, "MST")[0][0].fields == {"MST_CODE": "0000140000", "MST_UDF1": None}
    assert doc.entities() == ["STU", "MRE", "MST"]


def test_latin1_declared_in_the_xml_declaration() -> None:
    doc = parse_xet(fixture("stu_latin1.xml"))
    assert doc.charset == "ISO-8859-1"
    assert doc.rows[0].fields["STU_FNM1"] == "Renée"
    assert doc.rows[0].fields["STU_SURN"] == "Müller"
    assert doc.warnings == []


def test_header_charset_wins_over_the_declaration() -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><EXCHANGE><STU><STU.SRS><STU_FNM1>Zoë</STU_FNM1>'
    body += "</STU.SRS></STU></EXCHANGE>"
    doc = read_xet(body.encode("utf-8"), "text/xml; charset=utf-8")
    assert doc.rows[0].fields["STU_FNM1"] == "Zoë"
    assert doc.charset == "UTF-8"
    assert any("declares encoding ISO-8859-1" in w for w in doc.warnings)


def test_latin1_label_on_utf8_bytes_is_read_with_a_warning() -> None:
    body = "<EXCHANGE><STU><STU.SRS><STU_FNM1>Zoë</STU_FNM1></STU.SRS></STU></EXCHANGE>".encode()
    doc = read_xet(body, "application/xml; charset=ISO-8859-1")
    assert doc.rows[0].fields["STU_FNM1"] == "ZoÃ«"
    assert any("looks like UTF-8" in w for w in doc.warnings)


def test_utf8_bom_and_namespaces_and_lower_case_tags() -> None:
    body = b'\xef\xbb\xbf<exchange xmlns="urn:x"><stu><stu.srs><stu_code.stu.srs>1</stu_code.stu.srs>'
    body += b"</stu.srs></stu></exchange>"
    doc = parse_xet(body)
    assert doc.rows[0].tag == "STU.SRS"
    assert doc.rows[0].fields == {"STU_CODE": "1"}


def test_form_encoded_body_carries_the_xml_in_the_configured_field() -> None:
    from urllib.parse import urlencode

    xml = fixture("stu_latin1.xml")
    body = urlencode({"OTHER": "x", "XMLDATA": xml}, encoding="latin-1").encode("ascii")
    doc = read_xet(body, "application/x-www-form-urlencoded", form_field="XMLDATA")
    assert doc.rows[0].fields["STU_SURN"] == "Müller"
    with pytest.raises(MalformedPayload, match="no DATA field"):
        read_xet(body, "application/x-www-form-urlencoded")


def test_flattened_long_tag_of_another_entity_is_shortened() -> None:
    body = b"<EXCHANGE><STU.SRS><STU_CODE>1</STU_CODE><MST_CODE.MST.SRS>0001</MST_CODE.MST.SRS>"
    body += b"<SPR.ROU_CODE>CS</SPR.ROU_CODE></STU.SRS></EXCHANGE>"
    doc = parse_xet(body)
    assert doc.rows[0].fields == {"STU_CODE": "1", "MST_CODE": "0001", "SPR.ROU_CODE": "CS"}


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, (None, {})),
        ("text/xml", ("text/xml", {})),
        ('Text/XML; Charset="ISO-8859-1"; x=1', ("text/xml", {"charset": "ISO-8859-1", "x": "1"})),
    ],
)
def test_parse_content_type(content_type: str | None, expected: tuple[str | None, dict[str, str]]) -> None:
    assert parse_content_type(content_type) == expected


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("xxe_file.xml", MalformedPayload, "DOCTYPE"),
        ("xxe_network.xml", MalformedPayload, "DOCTYPE"),
        ("xxe_parameter_entity.xml", MalformedPayload, "DOCTYPE"),
        ("billion_laughs.xml", MalformedPayload, "DOCTYPE"),
        ("undefined_entity.xml", MalformedPayload, "not well-formed"),
        ("truncated.xml", MalformedPayload, "not well-formed"),
        ("not_xml.txt", MalformedPayload, "not well-formed"),
        ("misdeclared_utf8.xml", MalformedPayload, r"not valid UTF-8 \(byte 0xe9 at offset 105\)"),
        ("unsupported_charset.xml", UnsupportedMediaType, "'UTF-16'"),
        ("wrong_root.xml", MalformedPayload, "root element is <PERSONNELLIST>"),
        ("no_rows.xml", MalformedPayload, "no entity rows"),
    ],
)
def test_hostile_payloads_are_refused(name: str, error: type[AzorusError], message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        read_xet((HOSTILE / name).read_bytes(), "text/xml")
    assert 400 <= caught.value.http_status < 500


def test_status_codes_of_the_refusals() -> None:
    assert MalformedPayload("x").http_status == 400
    assert PayloadTooLarge("x").http_status == 413
    assert UnsupportedMediaType("x").http_status == 415
    assert InvalidRecord("x").http_status == 422


def test_size_depth_and_row_limits() -> None:
    limits = XetLimits(max_bytes=500, max_depth=8, max_rows=3)
    with pytest.raises(PayloadTooLarge, match="limit is 500"):
        read_xet(b" " * 501, "text/xml", limits=limits)
    deep = (
        b"<EXCHANGE><A><A.X>"
        + b"<B><B.X>" * 4
        + b"<F_X>1</F_X>"
        + b"</B.X></B>" * 4
        + b"</A.X></A></EXCHANGE>"
    )
    with pytest.raises(MalformedPayload, match="deeper than 8 levels"):
        parse_xet(deep, limits=limits)
    assert parse_xet(deep, limits=XetLimits(max_depth=12)).rows[0].entity == "A"
    many = b"<EXCHANGE><NAT>" + b"<NAT.SRS><NAT_CODE>1</NAT_CODE></NAT.SRS>" * 4 + b"</NAT></EXCHANGE>"
    with pytest.raises(PayloadTooLarge, match="more than 3 rows"):
        parse_xet(many, limits=limits)
    very_deep = b"<EXCHANGE>" + b"<a>" * 300 + b"</a>" * 300 + b"</EXCHANGE>"
    with pytest.raises(MalformedPayload):
        parse_xet(very_deep)


@pytest.mark.parametrize(
    ("content_type", "error"),
    [
        ("application/json", UnsupportedMediaType),
        ("text/plain", UnsupportedMediaType),
        ("multipart/form-data; boundary=x", UnsupportedMediaType),
        ("text/xml; charset=utf-16", UnsupportedMediaType),
        ("text/xml; charset=klingon", UnsupportedMediaType),
    ],
)
def test_unsupported_media_types_and_charsets(content_type: str, error: type[AzorusError]) -> None:
    with pytest.raises(error) as caught:
        read_xet(fixture("mst_only.xml"), content_type)
    assert caught.value.http_status == 415


def test_xml_media_type_variants_are_accepted() -> None:
    for content_type in (None, "", "text/xml", "application/xml", "application/vnd.sits+xml"):
        assert read_xet(fixture("mst_only.xml"), content_type).rows[0].entity == "MST"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<EXCHANGE><STU><STU_CODE>1</STU_CODE></STU></EXCHANGE>", "should hold <STU.DICT> rows"),
        (b"<EXCHANGE><STU_CODE>1</STU_CODE></EXCHANGE>", "directly under EXCHANGE"),
        (
            b"<EXCHANGE><STU><STU.SRS><STU_CODE>1</STU_CODE><STU_CODE>2</STU_CODE></STU.SRS></STU></EXCHANGE>",
            "appears twice",
        ),
        (
            b"<EXCHANGE><STU><STU.SRS><STU_NAME><B>x</B></STU_NAME></STU.SRS></STU></EXCHANGE>",
            "should hold <STU_NAME.DICT> rows",
        ),
    ],
)
def test_well_formed_but_wrongly_shaped_is_422(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        parse_xet(body)


def test_same_field_twice_with_the_same_value_is_accepted() -> None:
    body = b"<EXCHANGE><STU.SRS><STU_CODE>1</STU_CODE>"
    body += b"<STU_CODE.STU.SRS>1</STU_CODE.STU.SRS></STU.SRS></EXCHANGE>"
    assert parse_xet(body).rows[0].fields == {"STU_CODE": "1"}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None, database=None)
@given(st.binary(max_size=400), st.sampled_from([None, "text/xml", "application/x-www-form-urlencoded"]))
def test_arbitrary_bytes_never_raise_anything_but_a_4xx(body: bytes, content_type: str | None) -> None:
    try:
        read_xet(body, content_type)
    except AzorusError as exc:
        assert 400 <= exc.http_status < 500


_TAGS = st.sampled_from(
    ["EXCHANGE", "STU", "STU.SRS", "CAP", "CAP.SRS", "STU_CODE", "X", "A.B.C", "MST_CODE.MST.SRS"]
)


def _xml_tree() -> st.SearchStrategy[str]:
    text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8).map(
        lambda s: s.replace("&", "&amp;").replace("<", "&lt;")
    )
    leaf = st.tuples(_TAGS, text).map(lambda t: f"<{t[0]}>{t[1]}</{t[0]}>")
    return st.recursive(
        leaf,
        lambda inner: st.tuples(_TAGS, st.lists(inner, max_size=4)).map(
            lambda t: f"<{t[0]}>{''.join(t[1])}</{t[0]}>"
        ),
        max_leaves=20,
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None, database=None)
@given(_xml_tree(), st.booleans())
def test_arbitrary_well_formed_xml_parses_or_gets_a_4xx(tree: str, wrap: bool) -> None:
    xml = f"<EXCHANGE>{tree}</EXCHANGE>" if wrap else tree
    try:
        doc = parse_xet(xml.encode("utf-8"))
    except AzorusError as exc:
        assert 400 <= exc.http_status < 500
    else:
        assert doc.rows
        for row, _ in doc.walk():
            assert row.entity and row.dictionary


def test_tag_caches_are_bounded_and_read_the_same_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tags come from outside: the name caches stop growing at their bounds, and a payload whose
    tags are not cached reads exactly as one whose tags are."""
    from azorus_sits import xet

    monkeypatch.setattr(xet, "_names", {})
    monkeypatch.setattr(xet, "_field_names", {})
    monkeypatch.setattr(xet, "_CACHE_LIMIT", 5)
    monkeypatch.setattr(xet, "_ROWS_CACHED", 2)
    monkeypatch.setattr(xet, "_FIELDS_CACHED_PER_ROW", 3)

    def payload(n: int) -> bytes:
        fields = "".join(f"<E{n}_F{i}.E{n}.SRS>{i}</E{n}_F{i}.E{n}.SRS><X{i}/>" for i in range(6))
        return f"<EXCHANGE><E{n}><E{n}.SRS>{fields}</E{n}.SRS></E{n}></EXCHANGE>".encode()

    for n in range(4):
        for _ in range(2):  # the second read of each payload meets whatever was cached
            [row] = parse_xet(payload(n)).rows
            assert (row.entity, row.dictionary) == (f"E{n}", "SRS")
            assert row.fields == {f"E{n}_F{i}": str(i) for i in range(6)}
    assert len(xet._names) == 5
    assert len(xet._field_names) == 2
    assert all(len(names) == 3 for names in xet._field_names.values())
