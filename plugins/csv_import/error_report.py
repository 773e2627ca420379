"""The error report: every rejected row with its original columns, its row number and the reason.

It is meant to be opened in Excel or LibreOffice, fixed and imported again, so it is written as
UTF-8 with a BOM (Excel then reads accents correctly) and every cell that a spreadsheet would
run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR) is neutralised with a leading apostrophe.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

__all__ = [
    "FORMULA_TRIGGERS",
    "REASON_COLUMN",
    "ROW_COLUMN",
    "ErrorReportWriter",
    "neutralise",
    "write_error_report",
]

#: First characters that make a spreadsheet treat a cell as a formula (OWASP's list).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: Fullwidth look-alikes some spreadsheet locales also accept.
_FULLWIDTH_TRIGGERS = ("\uff1d", "\uff0b", "\uff0d", "\uff20")
ROW_COLUMN = "row"
REASON_COLUMN = "reason"


def neutralise(cell: str) -> str:
    """``cell`` made inert for a spreadsheet: a leading formula character gets an apostrophe.

    Leading spaces are looked through, since some spreadsheets skip them before a formula.
    """
    stripped = cell.lstrip(" ")
    if stripped.startswith(FORMULA_TRIGGERS) or stripped.startswith(_FULLWIDTH_TRIGGERS):
        return "'" + cell
    return cell


class ErrorReportWriter:
    """Writes the error report row by row (constant memory) to a path or an open text file.

    Columns: ``row``, then the file's own columns in their order, then ``reason``. A header
    that is itself ``row`` or ``reason`` keeps its place; ours are then suffixed to stay distinct.
    """

    def __init__(
        self, target: str | os.PathLike[str] | TextIO, header: Sequence[str], *, delimiter: str = ","
    ) -> None:
        self._owned: TextIO | None = None
        if isinstance(target, (str, os.PathLike)):
            # utf-8-sig writes the BOM Excel needs to read the report as UTF-8.
            self._owned = open(Path(target), "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
            stream: TextIO = self._owned
        else:
            stream = target
        self._width = len(header)
        self._delimiter = delimiter
        self._writer = csv.writer(
            stream, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n"
        )
        taken = {name.casefold() for name in header}
        row_col, reason_col = ROW_COLUMN, REASON_COLUMN
        while row_col.casefold() in taken:
            row_col = "_" + row_col
        while reason_col.casefold() in taken:
            reason_col = "_" + reason_col
        self._writer.writerow([row_col, *(neutralise(name) for name in header), reason_col])
        self.rows_written = 0

    def write(self, number: int, cells: Sequence[str], reason: str) -> None:
        """Add one rejected row; ``cells`` are padded or kept whole so no value is lost."""
        values = [neutralise(cell) for cell in cells]
        if len(values) < self._width:
            values.extend([""] * (self._width - len(values)))
        elif len(values) > self._width:
            # A ragged row's extra cells go into the reason so the columns stay aligned.
            extra = " | ".join(cells[self._width :])
            reason = f"{reason}; extra cells: {extra}"
            values = values[: self._width]
        self._writer.writerow([str(number), *values, neutralise(reason)])
        self.rows_written += 1

    def copy_from(self, path: str | os.PathLike[str], *, up_to_row: int) -> None:
        """Carry over the rows of an earlier report up to row ``up_to_row`` (a resumed run)."""
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, delimiter=self._delimiter)
            next(reader, None)
            for line in reader:
                if line and line[0].isdigit() and int(line[0]) <= up_to_row:
                    self._writer.writerow(line)
                    self.rows_written += 1

    def flush(self) -> None:
        if self._owned is not None:
            self._owned.flush()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> ErrorReportWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_error_report(
    target: str | os.PathLike[str] | TextIO,
    header: Sequence[str],
    rows: Iterable[tuple[int, Sequence[str], str]],
    *,
    delimiter: str = ",",
) -> int:
    """Write ``(row number, cells, reason)`` entries as an error report; return how many."""
    with ErrorReportWriter(target, header, delimiter=delimiter) as writer:
        for number, cells, reason in rows:
            writer.write(number, cells, reason)
        return writer.rows_written
