"""The store's one-shot JSON encoder writes exactly what ``json.JSONEncoder`` writes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azorus_connect.store.sql import json_encoder


def _default(value):
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


_values = st.recursive(
    st.one_of(st.text(), st.none(), st.booleans(), st.integers(), st.floats(), st.dates(), st.datetimes()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(_values, st.booleans())
def test_same_text_as_the_standard_encoder(value, sort_keys):
    expected = json.JSONEncoder(ensure_ascii=False, sort_keys=sort_keys, default=_default).encode(value)
    assert json_encoder(sort_keys=sort_keys, default=_default)(value) == expected


def test_errors_are_the_standard_encoders():
    encode = json_encoder(default=_default)
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular reference"):
        encode(loop)
    with pytest.raises(TypeError, match="cannot store object"):
        encode({"a": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_encoder()({"a": dt.date(2001, 2, 3)})
