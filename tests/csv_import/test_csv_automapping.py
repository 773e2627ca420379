"""Auto-mapping columns to fields: exact, normalised, synonym, filler-word and fuzzy matches."""

from __future__ import annotations

import pytest
from azorus_csv_import.automapping import normalise_header, suggest_mapping, targets_for

from azorus_connect.model import CustomFieldDef


def suggestion(columns, entity="person", **kw):
    return {
        c.column: (c.target, c.method, c.confidence) for c in suggest_mapping(columns, entity, **kw).columns
    }


@pytest.mark.parametrize(
    ("column", "target", "method"),
    [
        ("first_name", "first_name", "exact"),
        ("id:mst", "id:mst", "exact"),
        ("Date of birth", "date_of_birth", "exact"),
        ("FIRST NAME", "first_name", "normalised"),
        ("first-name", "first_name", "normalised"),
        ("  Last   Name ", "last_name", "normalised"),
        ("Post Code", "postcode", "normalised"),
        ("Address Line 1", "address_line1", "normalised"),
        ("MST", "id:mst", "normalised"),
        ("E-mail", "email", "normalised"),
        ("Forename", "first_name", "synonym"),
        ("Given name", "first_name", "synonym"),
        ("Surname", "last_name", "synonym"),
        ("Student ID", "id:mst", "synonym"),
        ("MST code", "id:mst", "synonym"),
        ("DOB", "date_of_birth", "synonym"),
        ("D.O.B.", "date_of_birth", "synonym"),
        ("Sex", "gender", "synonym"),
        ("UCAS Personal ID", "id:ucas_pid", "synonym"),
        ("Mobile Number", "mobile", "synonym"),
        ("Zip", "postcode", "synonym"),
        ("Applicant Surname", "last_name", "filler"),
        ("Student Email", "email", "filler"),
        ("Nationalty", "nationality", "fuzzy"),
        ("Surnmae", "last_name", "fuzzy"),
    ],
)
def test_single_column_matches(column, target, method):
    got_target, got_method, confidence = suggestion([column])[column]
    assert (got_target, got_method) == (target, method)
    assert (
        confidence == {"exact": 1.0, "normalised": 0.9, "synonym": 0.8, "filler": 0.7, "fuzzy": 0.6}[method]
    )


def test_unmapped_columns_are_listed_never_dropped():
    result = suggest_mapping(["MST", "Favourite colour", "Name", "Notes"])
    assert result.unmapped == ["Favourite colour", "Name", "Notes"]
    assert [c.column for c in result.columns] == ["MST", "Favourite colour", "Name", "Notes"]
    assert result.as_mapping() == {"MST": "id:mst"}


def test_a_target_goes_to_the_surest_column_and_the_other_is_explained():
    result = suggest_mapping(["Forename", "First Name", "Student ID", "MST code"])
    assert result.as_mapping() == {"First Name": "first_name", "Student ID": "id:mst"}
    notes = {c.column: c.note for c in result.columns if c.target is None}
    assert notes == {
        "Forename": "looks like First name, already matched to column 'First Name'",
        "MST code": "looks like Identifier (mst), already matched to column 'Student ID'",
    }


def test_email_column_goes_to_the_email_field_first():
    assert suggestion(["Email"])["Email"][0] == "email"
    assert suggestion(["Email", "Email ID"]) == {
        "Email": ("email", "exact", 1.0),
        "Email ID": ("id:email", "synonym", 0.8),
    }


def test_custom_fields_map_by_name_and_label():
    custom = {
        "fav_subject": CustomFieldDef(name="fav_subject", label="Favourite subject"),
        "fair": CustomFieldDef(name="fair", label="Fair attended", type="list", list="fairs"),
        "esd_note": CustomFieldDef(name="esd_note", entity="enquiry"),
    }
    got = suggestion(["Favourite Subject", "fair", "custom:fair", "esd note"], custom_fields=custom)
    assert got["Favourite Subject"] == ("custom:fav_subject", "normalised", 0.9)
    assert got["custom:fair"] == ("custom:fair", "exact", 1.0)
    assert got["fair"][0] is None
    assert got["esd note"][0] is None  # an enquiry field is not offered for a person import
    assert suggestion(["esd note"], "enquiry", custom_fields=custom)["esd note"][0] == "custom:esd_note"


def test_enquiry_import_links_the_person_by_identifier():
    got = suggestion(
        ["Student ID", "Course code", "Year of entry", "Enquiry source", "Enquiry ID"], "enquiry"
    )
    assert {k: v[0] for k, v in got.items()} == {
        "Student ID": "person.id:mst",
        "Course code": "course",
        "Year of entry": "entry_year",
        "Enquiry source": "source",
        "Enquiry ID": "key",
    }


def test_application_targets():
    got = suggestion(
        ["Application ID", "Academic Year", "Decision", "Date applied", "UCAS ID"], "application"
    )
    assert {k: v[0] for k, v in got.items()} == {
        "Application ID": "key",
        "Academic Year": "academic_year",
        "Decision": "decision",
        "Date applied": "application_date",
        "UCAS ID": "person.id:ucas_pid",
    }


def test_site_schemes_are_offered():
    targets = [t.target for t in targets_for("person", schemes=["mst", "agent_ref"])]
    assert "id:agent_ref" in targets and "id:ucas_pid" not in targets
    assert suggestion(["Agent ref"], schemes=["mst", "agent_ref"])["Agent ref"][0] == "id:agent_ref"


def test_every_person_field_of_the_model_is_a_target():
    targets = {t.target for t in targets_for("person")}
    assert {"first_name", "last_name", "date_of_birth", "address_line3", "country", "id:mst"} <= targets
    assert not {"custom", "identifiers"} & targets


def test_normalise_header():
    assert normalise_header("  Crème-Brûlée & Co. ") == "cremebruleeandco"
    assert normalise_header("D.O.B.") == "dob"
