"""The XML answer to a StuTalk post is written as text; it must be byte for byte what lxml writes."""

from __future__ import annotations

import pytest
from azorus_sits import inbound
from azorus_sits.inbound import _NotPlain, _RowNote, _xml_text, _xml_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from azorus_connect.connector import InboundRequest, InboundResult

Rows = list[tuple[_RowNote | None, dict[str, object]]]


def _hub(ids: dict[str, str], key: str | None = None, hub_id: int | None = 7) -> dict[str, object]:
    return {"type": "person", "hubId": hub_id, "action": "created", "key": key, "identifiers": ids}


def _both(result: InboundResult, rows: Rows) -> tuple[bytes, bytes | None]:
    """lxml's answer, and the text writer's (None when it leaves the values to lxml)."""
    try:
        text: bytes | None = _xml_text(result, rows)
    except _NotPlain:
        text = None
    return _xml_tree(result, rows), text


def test_the_usual_answer_is_the_same_bytes() -> None:
    result = InboundResult("r-1", 201, "created", warnings=["code 'X' is not in list 'title' (stored as is)"])
    rows: Rows = [
        (_RowNote("STU", "24000001", "0000000002"), _hub({"mst": "0000000002", "sits_stu": "24000001"})),
        (_RowNote("CAP", "24000001/01", None), _hub({}, key="24000001/01", hub_id=None)),
        (None, _hub({})),
    ]
    tree, text = _both(result, rows)
    assert text == tree
    assert tree.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<result ")


@pytest.mark.parametrize(
    ("warnings", "error"),
    [([], None), ([""], None), ([], "bad <input> & \"quotes\" 'here'"), (["café ]]> \u2028"], "x")],
)
def test_empty_elements_escaped_text_and_accents(warnings: list[str], error: str | None) -> None:
    result = InboundResult("r-1", 400, "rejected", warnings=warnings, error=error)
    rows: Rows = [(_RowNote("STU", "é/1", "'"), _hub({"sits_stu": "x'y"}, key="k"))]
    tree, text = _both(result, rows)
    assert text == tree


@pytest.mark.parametrize(
    "where", ["request_id", "entity", "key", "mst", "scheme", "identifier", "record key"]
)
def test_attribute_values_to_escape_are_left_to_lxml(where: str) -> None:
    odd = 'a&b<c>d"e'
    result = InboundResult(odd if where == "request_id" else "r-1", 200, "updated")
    note = _RowNote(
        odd if where == "entity" else "STU", odd if where == "key" else "k", odd if where == "mst" else "m"
    )
    ids = {odd if where == "scheme" else "s": odd if where == "identifier" else "v"}
    rows: Rows = [(note, _hub(ids, key=odd if where == "record key" else None))]
    with pytest.raises(_NotPlain):
        _xml_text(result, rows)
    assert b"a&amp;b&lt;c&gt;d" in _xml_tree(result, rows)


@pytest.mark.parametrize("odd", ["\t", "\n", "\r", "\x00", "\x0b", "\x7f", "\ufffe", "\U0001f600", "\ud800"])
def test_characters_left_to_lxml(odd: str) -> None:
    """Control characters, non-characters, surrogates and astral code points are not written as text;
    the answer is then whatever lxml makes of them (an exception sends the hub to its JSON answer)."""
    result = InboundResult("r-1", 200, "updated", warnings=[f"a{odd}b"])
    with pytest.raises(_NotPlain):
        _xml_text(result, [])


_text = st.text(max_size=6)
_note = st.one_of(
    st.none(), st.builds(_RowNote, _text, st.one_of(st.none(), _text), st.one_of(st.none(), _text))
)
_row = st.tuples(
    _note,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["person", "application"]),
            "hubId": st.one_of(st.none(), st.integers()),
            "action": st.sampled_from(["created", "updated", "unchanged"]),
            "key": st.one_of(st.none(), _text),
            "identifiers": st.dictionaries(_text, _text, max_size=3),
        }
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None, database=None)
@given(
    _text,
    st.sampled_from(["created", "updated", "rejected"]),
    st.lists(_row, max_size=3),
    st.lists(_text, max_size=3),
    st.one_of(st.none(), _text),
)
def test_text_writer_matches_lxml_or_leaves_it_to_lxml(
    request_id: str, outcome: str, rows: Rows, warnings: list[str], error: str | None
) -> None:
    result = InboundResult(request_id, 200, outcome, warnings=warnings, error=error)  # type: ignore[arg-type]
    try:
        tree: bytes | None = _xml_tree(result, rows)
    except ValueError:  # lxml refuses some characters: the text writer must leave those to it
        tree = None
    try:
        text = _xml_text(result, rows)
    except _NotPlain:
        return
    assert text == tree


def test_render_response_falls_back_to_lxml() -> None:
    """A value the text writer leaves alone still gets lxml's answer."""
    request = InboundRequest(
        connection="sits",
        method="POST",
        path="/inbound/sits",
        headers=Headers({"content-type": "text/xml"}),
        query={},
        body=b"",
        content_type="text/xml",
        client_ip="127.0.0.1",
    )
    result = InboundResult("r-1", 200, "updated", warnings=["tab\there"])
    body, media = inbound.render_response(request, result)
    assert media == "application/xml"
    assert body == _xml_tree(result, [])
    assert body.endswith(b"<warning>tab\there</warning></result>")
