"""Reading hostile CSV files: encodings, delimiters, quoting, headers, ragged rows, non-CSV files."""

from __future__ import annotations

import csv
import io
import tracemalloc
from pathlib import Path

import pytest
from azorus_csv_import.reading import (
    CsvFileError,
    CsvRow,
    RowProblem,
    column_letter,
    detect_encoding,
    open_csv,
    sniff_delimiter,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).parents[1] / "fixtures" / "csv"


def read_all(name: str | Path) -> tuple[list[str], list[CsvRow | RowProblem]]:
    source = open_csv(FIXTURES / name if isinstance(name, str) else name)
    with source.rows() as rows:
        return source.header, list(rows)


def test_utf8_with_bom_keeps_accents_and_strips_the_bom_from_the_first_header():
    header, rows = read_all("bom_utf8.csv")
    assert header == ["MST code", "Forename", "Surname", "DOB"]
    assert [r.cells for r in rows] == [
        ["0000100001", "Zoë", "Brontë", "14/03/2001"],
        ["0000100002", "José", "Núñez", "2002-11-05"],
    ]


def test_cp1252_file_is_detected_and_decoded():
    assert detect_encoding(FIXTURES / "cp1252.csv") == "cp1252"
    _, rows = read_all("cp1252.csv")
    assert rows[0].cells == ["0000100003", "Renée", "O\u2019Neill", "Paid €50 deposit"]
    assert rows[1].cells[3] == "\u201cquoted\u201d \u2013 dash"


def test_bytes_undefined_in_cp1252_fall_back_to_latin1():
    assert detect_encoding(FIXTURES / "latin1_only.csv") == "latin-1"
    _, rows = read_all("latin1_only.csv")
    assert rows[0].cells == ["0000100030", "Ana\x81s"]


def test_a_cp1252_byte_far_into_a_utf8_looking_file_is_still_found(tmp_path):
    path = tmp_path / "late.csv"
    body = "MST,Forename\n" + "".join(f"{i:010d},Ann\n" for i in range(120_000))
    path.write_bytes(body.encode("ascii") + "0000999999,Zoë\n".encode("cp1252"))
    assert path.stat().st_size > 1024 * 1024
    assert detect_encoding(path) == "cp1252"
    source = open_csv(path)
    with source.rows() as rows:
        *_, last = rows
    assert last.cells == ["0000999999", "Zoë"]


def test_utf16_unicode_text_export_with_tabs():
    source = open_csv(FIXTURES / "utf16_tab.txt")
    assert (source.encoding, source.delimiter_name) == ("utf-16", "tab")
    with source.rows() as rows:
        assert [r.cells for r in rows] == [["0000100008", "Dafydd", "Łukasz"]]


@pytest.mark.parametrize(
    ("name", "delimiter"), [("semicolon.csv", ";"), ("tab.tsv", "\t"), ("bom_utf8.csv", ",")]
)
def test_delimiter_is_sniffed(name, delimiter):
    assert open_csv(FIXTURES / name).delimiter == delimiter


def test_semicolon_file_keeps_commas_inside_values():
    _, rows = read_all("semicolon.csv")
    assert rows[0].cells == ["0000100005", "Anna", "Smith, Jr", "12, High Street", "AB1 2CD"]


def test_sniffer_prefers_the_delimiter_that_splits_rows_consistently():
    sample = "a;b;c\n1,5;2,5;3\n4,0;5,0;6\n"
    assert sniff_delimiter(sample) == ";"
    assert sniff_delimiter("a,b\n1,2\n") == ","
    assert sniff_delimiter("only\n1\n") == ","


def test_explicit_delimiter_overrides_sniffing_and_unknown_is_refused():
    assert open_csv(FIXTURES / "semicolon.csv", delimiter=",").header[0].startswith("MST;")
    with pytest.raises(CsvFileError) as err:
        open_csv(FIXTURES / "semicolon.csv", delimiter="#")
    assert err.value.problem == "delimiter"


def test_quoted_newlines_stay_in_their_row_and_rows_are_numbered_as_in_a_spreadsheet():
    _, rows = read_all("quoted_newlines.csv")
    assert [(r.number, r.cells[3]) for r in rows] == [
        (2, "Flat 2\nThe Old Mill"),
        (3, "1 Road"),
        (4, 'He said "hi"'),
    ]
    assert rows[1].cells[2] == "Mc\r\nCarthy"


def test_classic_mac_line_endings():
    _, rows = read_all("mac_cr.csv")
    assert [r.cells for r in rows] == [["0000100031", "Zed", "Zane"]]


def test_duplicate_headers_are_named_case_insensitively():
    with pytest.raises(CsvFileError) as err:
        open_csv(FIXTURES / "duplicate_headers.csv")
    assert err.value.problem == "header"
    assert "duplicate header 'Forename' in columns B, D" in str(err.value)
    assert err.value.http_status == 400


def test_blank_header_is_named_by_column_letter():
    with pytest.raises(CsvFileError) as err:
        open_csv(FIXTURES / "blank_header.csv")
    assert "blank header in column B" in str(err.value)


def test_several_header_problems_are_all_reported(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,,b,A,b,c,\n1,2,3,4,5,6,7\n")
    with pytest.raises(CsvFileError) as err:
        open_csv(path)
    assert err.value.context["details"] == [
        "blank header in column B",
        "duplicate header 'a' in columns A, D",
        "duplicate header 'b' in columns C, E",
    ]


def test_trailing_blank_header_cells_are_dropped_but_values_under_them_are_row_problems():
    header, rows = read_all("trailing_blank_headers.csv")
    assert header == ["MST", "Forename", "Surname"]
    assert isinstance(rows[0], CsvRow)
    assert rows[0].cells == ["0000100014", "Kim", "Kerr"]
    assert isinstance(rows[1], RowProblem)
    assert rows[1].number == 3
    assert "column E" in rows[1].reason


def test_ragged_rows_are_row_problems_and_do_not_stop_the_stream():
    _, rows = read_all("ragged.csv")
    summary = [(type(r).__name__, r.number) for r in rows]
    assert summary == [
        ("CsvRow", 2),
        ("RowProblem", 3),
        ("RowProblem", 4),
        ("CsvRow", 5),
        ("CsvRow", 8),
    ]
    short, long = rows[1], rows[2]
    assert isinstance(short, RowProblem) and isinstance(long, RowProblem)
    assert short.reason == "this row has 2 cells but the header has 3 columns"
    assert short.cells == ["0000100017", "Ned"]
    assert "values beyond the header in column D" in long.reason
    assert rows[3].cells == ["0000100019", "Pat", "Pike"]


def test_an_unreadable_row_is_a_row_problem_and_later_rows_still_come(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('MST,Name\n001,"Ann"x\n002,Bob\n')
    _, rows = read_all(path)
    assert isinstance(rows[0], RowProblem) and rows[0].number == 2
    assert "cannot read this row" in rows[0].reason
    assert isinstance(rows[1], CsvRow) and rows[1].cells == ["002", "Bob"] and rows[1].number == 3


def test_leading_zeros_are_kept_as_text():
    _, rows = read_all("leading_zeros.csv")
    assert rows[0].cells == ["0000100026", "0012345678", "Wyn", "Wade", "01234"]


@pytest.mark.parametrize("name", ["empty.csv", "whitespace_only.csv"])
def test_empty_file_is_a_clear_error(name):
    with pytest.raises(CsvFileError) as err:
        open_csv(FIXTURES / name)
    assert err.value.problem == "empty"
    assert str(err.value) == "the file is empty"


def test_header_only_file_opens_with_no_rows():
    header, rows = read_all("header_only.csv")
    assert header == ["MST", "Forename", "Surname"]
    assert rows == []


@pytest.mark.parametrize(
    ("name", "words"),
    [("binary.csv", "binary data"), ("workbook.xlsx", "Excel workbook (.xlsx)")],
)
def test_binary_files_are_refused_with_a_reason(name, words):
    with pytest.raises(CsvFileError) as err:
        open_csv(FIXTURES / name)
    assert err.value.problem == "binary"
    assert words in str(err.value)


def test_old_excel_and_pdf_signatures(tmp_path):
    for magic, words in [(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", ".xls"), (b"%PDF-1.7\n", "PDF")]:
        path = tmp_path / "f.csv"
        path.write_bytes(magic + b"a,b\n" * 10)
        with pytest.raises(CsvFileError, match=words):
            open_csv(path)


def test_progress_is_reported_in_bytes(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a,b\n" + "1,2\n" * 50_000)
    source = open_csv(path)
    with source.rows() as rows:
        assert rows.fraction_done == 0.0
        next(rows)
        assert 0 < rows.fraction_done < 1
        count = 1 + sum(1 for _ in rows)
        assert rows.fraction_done == 1.0
    assert count == 50_000


def test_streaming_memory_stays_flat(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["mst", "first", "last", "email"])
        for i in range(100_000):
            writer.writerow([f"{i:010d}", "Firstname", "Lastname", f"person{i}@example.org"])
    assert path.stat().st_size > 4_000_000
    source = open_csv(path)
    tracemalloc.start()
    try:
        with source.rows() as rows:
            n = sum(1 for _ in rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 100_000
    assert peak < 1_000_000


def test_column_letters():
    assert [column_letter(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == [
        "A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA",
    ]  # fmt: skip


_cell = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_cell, min_size=3, max_size=3), min_size=1, max_size=8),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig"]),
)
def test_whatever_a_csv_writer_writes_reads_back_the_same(tmp_path, rows, delimiter, encoding):
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, quoting=csv.QUOTE_ALL)
    writer.writerow(["Col one", "Col two", "Col three"])
    writer.writerows(rows)
    path = tmp_path / "rt.csv"
    path.write_bytes(buf.getvalue().encode(encoding))
    source = open_csv(path)
    assert source.header == ["Col one", "Col two", "Col three"]
    with source.rows() as stream:
        got = [(r.number, r.cells) for r in stream if isinstance(r, CsvRow)]
    expected = [(i + 2, r) for i, r in enumerate(rows) if any(r)]
    assert got == expected


_COUNT_TEXT = st.lists(
    st.sampled_from(["a", "é", ",", ";", " ", "\n", "\r", "\r\n", '"', "x,y"]), max_size=40
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=_COUNT_TEXT,
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
    block=st.sampled_from([1, 2, 3, 7, 1 << 20]),
)
def test_counting_rows_by_line_ends_gives_what_parsing_gives(tmp_path, monkeypatch, body, encoding, block):
    from azorus_csv_import import reading

    monkeypatch.setattr(reading, "_SCAN_CHUNK", block)  # line ends split across blocks
    path = tmp_path / "count.csv"
    path.write_bytes(("id,name\n" + body).encode(encoding))
    source = open_csv(path)
    assert source.count_rows() == source._count_by_parsing()


def test_a_line_longer_than_the_field_limit_is_counted_by_parsing(tmp_path, monkeypatch):
    from azorus_csv_import import reading

    path = tmp_path / "long.csv"
    path.write_text("id,name\n1,a\n2," + "x" * 50 + "\n3,c\n", encoding="utf-8")
    monkeypatch.setattr(csv, "field_size_limit", lambda *a: 20)
    assert reading._count_unquoted_lines(path) is None
    assert open_csv(path).count_rows() == open_csv(path)._count_by_parsing()
