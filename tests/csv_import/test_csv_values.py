"""Spreadsheet cell values: Excel serials, UK date formats, text-forced leading zeros."""

from __future__ import annotations

import datetime as dt

import pytest
from azorus_csv_import.values import (
    clean_cell,
    excel_date,
    excel_serial_to_date,
    looks_like_excel_mangled_number,
    parse_spreadsheet_date,
)
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (1, dt.date(1900, 1, 1)),
        (59, dt.date(1900, 2, 28)),
        (61, dt.date(1900, 3, 1)),
        (36950, dt.date(2001, 2, 28)),
        (37257, dt.date(2002, 1, 1)),
        (45658.75, dt.date(2025, 1, 1)),
        (2_958_465, dt.date(9999, 12, 31)),
    ],
)
def test_excel_serials_follow_the_1900_date_system(serial, expected):
    assert excel_serial_to_date(serial) == expected


@pytest.mark.parametrize("serial", [0, 60, 2_958_466])
def test_impossible_serials_are_refused(serial):
    with pytest.raises(ValueError):
        excel_serial_to_date(serial)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2001-02-28", dt.date(2001, 2, 28)),
        ("2001-02-28T00:00:00", dt.date(2001, 2, 28)),
        ("2001-02-28 13:45:00+01:00", dt.date(2001, 2, 28)),
        ("20010228", dt.date(2001, 2, 28)),
        ("28/02/2001", dt.date(2001, 2, 28)),
        ("3/4/2001", dt.date(2001, 4, 3)),
        ("03/04/2001 00:00", dt.date(2001, 4, 3)),
        ("28-02-2001", dt.date(2001, 2, 28)),
        ("28.02.2001", dt.date(2001, 2, 28)),
        ("28-FEB-2001", dt.date(2001, 2, 28)),
        ("28-Feb-01", dt.date(2001, 2, 28)),
        ("31-DEC-99", dt.date(1999, 12, 31)),
        ("1 September 2024", dt.date(2024, 9, 1)),
        ("1 Sept 2024", dt.date(2024, 9, 1)),
        ("36950", dt.date(2001, 2, 28)),
        ("36950.5", dt.date(2001, 2, 28)),
        ("  28/02/2001\u00a0", dt.date(2001, 2, 28)),
        ('="28/02/2001"', dt.date(2001, 2, 28)),
    ],
)
def test_uk_and_spreadsheet_dates(text, expected):
    assert parse_spreadsheet_date(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\u00a0"])
def test_blank_is_no_date(text):
    assert parse_spreadsheet_date(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("31/02/2001", "not a real date"),
        ("2001-13-01", "not a real date"),
        ("28-FOO-2001", "'FOO' is not a month"),
        ("28/02/01", "two-digit year"),
        ("next Tuesday", "is not a date"),
        ("12/2001", "is not a date"),
    ],
)
def test_bad_dates_say_why(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_spreadsheet_date(text)


def test_excel_date_transform_returns_iso_text():
    assert excel_date("36950") == "2001-02-28"
    assert excel_date(36950) == "2001-02-28"
    assert excel_date("28/02/2001") == "2001-02-28"
    assert excel_date(dt.date(2001, 2, 28)) == "2001-02-28"
    assert excel_date(dt.datetime(2001, 2, 28, 10, 0)) == "2001-02-28"
    assert excel_date(None) is None
    assert excel_date("") is None


@given(st.dates(min_value=dt.date(1900, 3, 1), max_value=dt.date(9999, 12, 31)))
def test_every_date_round_trips_through_its_serial_and_uk_forms(day):
    serial = (day - dt.date(1899, 12, 30)).days
    assert parse_spreadsheet_date(str(serial)) == day
    assert parse_spreadsheet_date(day.strftime("%d/%m/%Y")) == day
    assert parse_spreadsheet_date(day.isoformat()) == day


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  0012345 ", "0012345"),
        ('="0012345"', "0012345"),
        ('="say ""hi"""', 'say "hi"'),
        ("\ufeff\u200bAnn\u00a0", "Ann"),
        ("Mary  Ann", "Mary  Ann"),
        ("=1+1", "=1+1"),
    ],
)
def test_clean_cell_trims_and_unwraps_but_keeps_the_data(raw, clean):
    assert clean_cell(raw) == clean


def test_scientific_notation_identifiers_are_recognised_as_mangled():
    assert looks_like_excel_mangled_number("1.23457E+11")
    assert looks_like_excel_mangled_number("1E+15")
    assert not looks_like_excel_mangled_number("0012345678")
    assert not looks_like_excel_mangled_number("E+11")
