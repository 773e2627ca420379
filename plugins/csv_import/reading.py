"""Reading CSV files as people really have them, row by row in constant memory.

A file is checked once up front (empty, binary, spreadsheet workbook, encoding, delimiter,
header) so every file-level problem is a clear :class:`CsvFileError` before any row is read.
Rows then stream with their spreadsheet row number (the header is row 1); a ragged row is a
:class:`RowProblem`, never an exception, so one bad row cannot stop a run.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azorus_connect.exceptions import MalformedPayload

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DELIMITERS",
    "CsvFile",
    "CsvFileError",
    "CsvRow",
    "RowProblem",
    "RowStream",
    "column_letter",
    "detect_encoding",
    "open_csv",
    "sniff_delimiter",
]

#: Delimiters we recognise, in order of preference when the evidence ties.
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

_SAMPLE_BYTES = 64 * 1024
_SCAN_CHUNK = 1024 * 1024
_SNIFF_ROWS = 50
#: Bytes cp1252 leaves undefined: a file holding them can only be latin-1.
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Excel workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive"),
)


class CsvFileError(MalformedPayload):
    """The file as a whole cannot be read as CSV; ``problem`` is a short machine-readable tag."""

    def __init__(self, message: str, *, problem: str, **context: Any) -> None:
        super().__init__(message, problem=problem, **context)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row: its spreadsheet row number and its cells, one per header, as text."""

    number: int
    cells: list[str]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that cannot be used as it stands, with the cells it had and why."""

    number: int
    cells: list[str]
    reason: str


def column_letter(index: int) -> str:
    """The spreadsheet name of the 0-based column ``index``: 0 -> A, 26 -> AA."""
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


def _check_not_binary(head: bytes) -> None:
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            raise CsvFileError(
                f"this file is {what}, not a CSV file; save it as CSV (comma or semicolon separated) first",
                problem="binary",
            )
    if b"\x00" in head:
        raise CsvFileError("this file holds binary data (NUL bytes), not CSV text", problem="binary")


def detect_encoding(path: str | os.PathLike[str]) -> str:
    """The file's text encoding: ``utf-8-sig`` (with or without BOM), ``utf-16``, ``cp1252`` or ``latin-1``.

    The whole file is checked for valid UTF-8 in chunks (constant memory, C speed), so a stray
    cp1252 byte on row 90,000 is found before the import starts rather than half-way through.
    """
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        seen_cp1252_gap = False
        utf8 = True
        while chunk := fh.read(_SCAN_CHUNK):
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            if not utf8 and not _CP1252_UNDEFINED.isdisjoint(chunk):
                seen_cp1252_gap = True
                break
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    if utf8:
        return "utf-8-sig"
    if not seen_cp1252_gap:
        # Only reached when UTF-8 failed part-way: re-check the bytes already passed.
        with open(path, "rb") as fh:
            while chunk := fh.read(_SCAN_CHUNK):
                if not _CP1252_UNDEFINED.isdisjoint(chunk):
                    return "latin-1"
        return "cp1252"
    return "latin-1"


def _count_fields(sample: str, delimiter: str) -> list[int]:
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
    counts: list[int] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                counts.append(len(row))
            if len(counts) > _SNIFF_ROWS:
                break
    except csv.Error:
        return counts
    return counts


def sniff_delimiter(sample: str) -> str:
    """Pick the delimiter (comma, semicolon, tab or pipe) that splits ``sample`` most consistently.

    ``sample`` should end on a whole line. A delimiter scores by how many rows have the same
    number of fields as the header (more than one field), then by that number of fields.
    """
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        counts = _count_fields(sample, delimiter)
        if not counts or counts[0] < 2:
            continue
        consistent = sum(1 for n in counts if n == counts[0])
        score = (consistent, counts[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _header_problems(header: list[str]) -> list[str]:
    problems: list[str] = []
    blanks = [column_letter(i) for i, name in enumerate(header) if not name]
    if blanks:
        plural = "s" if len(blanks) > 1 else ""
        problems.append(f"blank header in column{plural} {', '.join(blanks)}")
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        if name:
            seen.setdefault(name.casefold(), []).append(i)
    for positions in seen.values():
        if len(positions) > 1:
            where = ", ".join(column_letter(i) for i in positions)
            problems.append(f"duplicate header {header[positions[0]]!r} in columns {where}")
    return problems


class CsvFile:
    """A checked CSV file: its encoding, delimiter and header; :meth:`rows` streams the data.

    Build it with :func:`open_csv`, which raises :class:`CsvFileError` for a file that cannot
    be imported at all (empty, binary, no usable header).
    """

    def __init__(self, path: Path, encoding: str, delimiter: str, header: list[str]) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.header = header

    @property
    def delimiter_name(self) -> str:
        return _DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))

    def rows(self) -> RowStream:
        """Every non-blank data row in order, each a :class:`CsvRow` or a :class:`RowProblem`.

        Row numbers are spreadsheet rows: the header is row 1, so the first data row is 2
        (a quoted newline stays inside its row). Rows whose cells are all empty are skipped.
        """
        return RowStream(self)

    def count_rows(self) -> int:
        """How many records follow the header (one quick pass; for progress and ETA)."""
        if (
            self.encoding in _NEWLINE_SAFE_ENCODINGS
            and (lines := _count_unquoted_lines(self.path)) is not None
        ):
            return max(lines - 1, 0)
        return self._count_by_parsing()

    def _count_by_parsing(self) -> int:
        with open(self.path, encoding=self.encoding, newline="") as fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            count = -1
            try:
                for _ in reader:
                    count += 1
            except csv.Error:
                pass
            return max(count, 0)


#: Encodings in which the bytes of a line end and of a quote are only ever those characters.
_NEWLINE_SAFE_ENCODINGS = frozenset({"utf-8-sig", "cp1252", "latin-1"})


def _count_unquoted_lines(path: Path) -> int | None:
    """The records ``csv.reader`` would read, counted as line ends, for a file without a quote.

    Without a quote character every line is one record (a blank line too), split where a text
    file with ``newline=""`` splits: ``\n``, ``\r`` or ``\r\n``. Counting those bytes is about
    twenty times faster than parsing. None when the file has a quote, or a line longer than csv's
    field limit (where the parser would stop counting), so the caller parses instead.
    """
    limit = csv.field_size_limit()
    lines = 0
    open_line = 0  # bytes of the line still open at the end of the previous block
    last = b""
    with open(path, "rb") as fh:
        while block := fh.read(_SCAN_CHUNK):
            if b'"' in block:
                return None
            lines += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
            if last == b"\r" and block[:1] == b"\n":
                lines -= 1  # a \r\n split between two blocks
            parts = block.splitlines()
            if open_line + len(parts[0]) > limit or max(map(len, parts)) > limit:
                return None
            last = block[-1:]
            if last in (b"\r", b"\n"):
                open_line = 0
            else:
                open_line = open_line + len(parts[0]) if len(parts) == 1 else len(parts[-1])
    if last not in (b"", b"\r", b"\n"):
        lines += 1  # the last line has no line end
    return lines


class _CountingFile(io.FileIO):
    """A binary file that counts the bytes read from it, for progress through a text stream."""

    bytes_read = 0

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        n = super().readinto(buffer)
        if n:
            self.bytes_read += n
        return n


class RowStream(Iterator[CsvRow | RowProblem]):
    """The rows of a :class:`CsvFile`, with how far through the file they have got (for an ETA)."""

    def __init__(self, source: CsvFile) -> None:
        self._source = source
        self._raw = _CountingFile(source.path, "r")
        self.total_bytes = os.fstat(self._raw.fileno()).st_size
        self._text = io.TextIOWrapper(io.BufferedReader(self._raw), encoding=source.encoding, newline="")
        self._rows = self._generate()

    @property
    def bytes_read(self) -> int:
        return self._raw.bytes_read

    @property
    def fraction_done(self) -> float:
        return min(self.bytes_read / self.total_bytes, 1.0) if self.total_bytes else 1.0

    def __next__(self) -> CsvRow | RowProblem:
        return next(self._rows)

    def close(self) -> None:
        self._rows.close()
        self._text.close()

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _generate(self) -> Generator[CsvRow | RowProblem, None, None]:
        width = len(self._source.header)
        try:
            reader = csv.reader(self._text, delimiter=self._source.delimiter, strict=True)
            try:
                next(reader, None)
            except csv.Error:
                return
            number = 1
            while True:
                number += 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield RowProblem(number, [], f"cannot read this row: {exc}")
                    continue
                if len(cells) == width:
                    if any(cells):
                        yield CsvRow(number, cells)
                elif not any(cells):
                    continue
                elif len(cells) > width and not any(cells[width:]):
                    yield CsvRow(number, cells[:width])
                else:
                    yield RowProblem(number, cells, _ragged_reason(len(cells), width, cells))
        finally:
            self._text.close()


def _ragged_reason(count: int, width: int, cells: list[str]) -> str:
    reason = f"this row has {count} cells but the header has {width} columns"
    if count > width:
        extra = [column_letter(i) for i in range(width, count) if cells[i]]
        reason += f" (values beyond the header in column{'s' if len(extra) > 1 else ''} {', '.join(extra)})"
    return reason


def _decoded_sample(path: Path, encoding: str) -> str:
    with open(path, encoding=encoding, newline="", errors="replace") as fh:
        sample = fh.read(_SAMPLE_BYTES)
        if len(sample) == _SAMPLE_BYTES:
            # Cut back to a whole line so the sniffer does not see half a row.
            cut = max(sample.rfind("\n"), sample.rfind("\r"))
            if cut > 0:
                sample = sample[:cut]
    return sample


def open_csv(path: str | os.PathLike[str], *, delimiter: str | None = None) -> CsvFile:
    """Check ``path`` and return a :class:`CsvFile` ready to stream; raise :class:`CsvFileError`.

    ``delimiter`` overrides sniffing (one of :data:`DELIMITERS`).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(_SAMPLE_BYTES)
    if not head.strip():
        raise CsvFileError("the file is empty", problem="empty")
    if not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        _check_not_binary(head)
    encoding = detect_encoding(path)
    sample = _decoded_sample(path, encoding)
    if not sample.lstrip("\ufeff").strip():
        raise CsvFileError("the file is empty", problem="empty")
    if delimiter is not None and delimiter not in DELIMITERS:
        raise CsvFileError(f"unsupported delimiter {delimiter!r}", problem="delimiter")
    chosen = delimiter or sniff_delimiter(sample)
    with open(path, encoding=encoding, newline="") as fh:
        try:
            raw = next(csv.reader(fh, delimiter=chosen, strict=True), [])
        except csv.Error as exc:
            raise CsvFileError(f"the header row cannot be read: {exc}", problem="header") from None
    header = [name.strip() for name in raw]
    while len(header) > 1 and not header[-1]:
        # Excel often saves a few blank columns after the last real one: drop their empty
        # header cells; a value under one is then a row problem naming its column.
        header.pop()
    if not any(header):
        raise CsvFileError("the first row (the header) is empty", problem="header")
    problems = _header_problems(header)
    if problems:
        raise CsvFileError(
            "the header row has problems: " + "; ".join(problems), problem="header", details=problems
        )
    return CsvFile(path, encoding, chosen, header)
