"""The fast row mapper gives the core mapper's records and errors, whatever the cells hold."""

from __future__ import annotations

from azorus_csv_import.profiles import ROW_ENTITY, ImportProfile
from azorus_csv_import.rowmapping import RowMapper
from hypothesis import given, settings
from hypothesis import strategies as st

from azorus_connect.connector import SourceRecord
from azorus_connect.exceptions import InvalidRecord
from azorus_connect.model import CustomFieldDef
from azorus_connect.plugins import PluginHost
from azorus_connect.transform.mapping import Mapper

CUSTOM = {
    "points": CustomFieldDef(name="points", type="number"),
    "visited": CustomFieldDef(name="visited", type="date"),
    "consent": CustomFieldDef(name="consent", type="bool"),
    "fair": CustomFieldDef(name="fair", type="list", list="fairs"),
}
HEADER = [
    "MST",
    "UCAS",
    "First",
    "Last",
    "DOB",
    "Email",
    "Points",
    "Visited",
    "Consent",
    "Fair",
    "Title",
    "Skip",
]
TRANSFORMS = PluginHost.load().value_transforms()


def mappers(blank: str, dob_transform: list[str]) -> tuple[Mapper, RowMapper]:
    profile = ImportProfile.model_validate(
        {
            "blank": blank,
            "match_on": ["mst", "email"],
            "columns": {
                "MST": "id:mst",
                "UCAS": {"to": "id:UCAS_PID", "transform": ["digits"]},
                "First": {"to": "first_name", "transform": ["title"]},
                "Last": "last_name",
                "DOB": {"to": "date_of_birth", "transform": dob_transform},
                "Email": "email",
                "Points": "custom:points",
                "Visited": "custom:visited",
                "Consent": "custom:consent",
                "Fair": {"to": "custom:fair", "transform": ["upper"]},
                "Title": "title",
                "Skip": "-",
            },
        }
    )
    mapping = profile.record_mapping(CUSTOM)
    core = Mapper(mapping, TRANSFORMS, CUSTOM)
    return core, RowMapper(core, mapping.entities[ROW_ENTITY], HEADER, TRANSFORMS, CUSTOM)


def outcome(fn):
    try:
        record = fn()
    except InvalidRecord as exc:
        return ("error", exc.message)
    return ("ok", record.model_dump(), sorted(record.model_fields_set), record)


_cell = st.one_of(
    st.sampled_from(["", " ", "0012", "36950", "28/02/2001", "2001-02-28", "31/02/2001", "12", "x", "y", "N",
                     "1,200", "lots", " Ann ", "ann@x.org", "\u00a0", "2001-02-28T10:00:00", "="]),
    st.text(max_size=6),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    cells=st.lists(_cell, min_size=len(HEADER), max_size=len(HEADER)),
    blank=st.sampled_from(["ignore", "clear"]),
    dob_transform=st.sampled_from([["excel_date"], [], ["date"]]),
)
def test_fast_row_mapper_equals_the_core_mapper(cells, blank, dob_transform):
    core, fast = mappers(blank, dob_transform)
    assert fast.fast
    expected = outcome(lambda: core.map(SourceRecord(ROW_ENTITY, dict(zip(HEADER, cells, strict=True)), 7)))
    assert outcome(lambda: fast.map(list(cells), 7)) == expected
