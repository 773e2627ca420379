"""Cell values as spreadsheets write them: Excel date serials, UK dates, protected leading zeros.

Every cell stays a string until a typed field converts it, so ``00123`` keeps its zeros. The
date parser is registered as the ``excel_date`` value transform; it raises ``ValueError`` with
a message a person can act on, which becomes the row's reason in the error report.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

__all__ = [
    "EXCEL_EPOCH",
    "clean_cell",
    "excel_date",
    "excel_serial_to_date",
    "looks_like_excel_mangled_number",
    "parse_spreadsheet_date",
]

#: Day 0 of Excel's 1900 date system, allowing for its fictitious 29 February 1900 (serial 60).
EXCEL_EPOCH = dt.date(1899, 12, 30)
#: Serial of 31 December 9999, the last day Excel can show.
_MAX_SERIAL = 2_958_465

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}

_SERIAL = re.compile(r"\d{1,7}(?:\.\d+)?")
_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DMY = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(?: \d{1,2}:\d{2}(?::\d{2})?)?")
_DMONY = re.compile(r"(\d{1,2})[ -]([A-Za-z]{3,9})[ -](\d{4}|\d{2})")
_TWO_DIGIT_YEAR = re.compile(r"\d{1,2}([/.-])\d{1,2}\1\d{2}")
_EXCEL_TEXT = re.compile(r'="(.*)"', re.DOTALL)
_SCIENTIFIC = re.compile(r"[+-]?\d(?:\.\d+)?E\+\d+", re.IGNORECASE)
#: Spaces a spreadsheet or a web form leaves around values: NBSP, zero-width, BOM.
_EDGE_SPACE = " \t\r\n\u00a0\u2007\u202f\u200b\u200c\u200d\ufeff"


def clean_cell(value: str) -> str:
    """Trim spreadsheet whitespace and unwrap Excel's ``="00123"`` text-forcing formula.

    Nothing else is changed: leading zeros, inner spacing and case are the data.
    """
    value = value.strip(_EDGE_SPACE)
    match = _EXCEL_TEXT.fullmatch(value)
    if match:
        value = match.group(1).replace('""', '"').strip(_EDGE_SPACE)
    return value


def looks_like_excel_mangled_number(value: str) -> bool:
    """True for ``1.23457E+11``: a long code Excel turned into scientific notation, digits lost."""
    return "+" in value and bool(_SCIENTIFIC.fullmatch(value.strip()))  # the exponent's sign first: cheap


def excel_serial_to_date(serial: float) -> dt.date:
    """The date of an Excel (1900 system) serial; the time of day, if any, is dropped."""
    whole = int(serial)
    if not 1 <= whole <= _MAX_SERIAL:
        raise ValueError(f"{serial:g} is outside the range of Excel date serials (1 to {_MAX_SERIAL})")
    if whole == 60:
        raise ValueError("Excel serial 60 is 29/02/1900, a day that never existed")
    # Serials before the fictitious leap day count from one day later.
    return EXCEL_EPOCH + dt.timedelta(days=whole if whole > 60 else whole + 1)


def _make_date(year: int, month: int, day: int, text: str) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise ValueError(f"{text!r} is not a real date") from None


def parse_spreadsheet_date(value: str) -> dt.date | None:
    """Read a date the way UK spreadsheets and SITS exports write it; ``None`` for a blank cell.

    Accepted: ISO ``2001-02-28`` (with an optional time), ``20010228``, ``28/02/2001``,
    ``28-02-2001``, ``28.02.2001``, ``28-FEB-2001``, ``28 February 2001`` and Excel serials
    (``36950``). Day-first always: a UK file's 03/04/2001 is 3 April. Two-digit years are
    refused except in ``DD-MON-YY`` (SITS style), where 00-49 is 20xx.
    """
    text = clean_cell(value)
    if not text:
        return None
    if match := _ISO.fullmatch(text):
        return _make_date(int(match[1]), int(match[2]), int(match[3]), text)
    if match := _DMY.fullmatch(text):
        return _make_date(int(match[4]), int(match[3]), int(match[1]), text)
    if match := _DMONY.fullmatch(text):
        month = _MONTHS.get(match[2].lower())
        if month is None:
            raise ValueError(f"{text!r} is not a date: {match[2]!r} is not a month")
        year = int(match[3])
        if len(match[3]) == 2:
            year += 2000 if year < 50 else 1900
        return _make_date(year, month, int(match[1]), text)
    if match := _COMPACT.fullmatch(text):
        return _make_date(int(match[1]), int(match[2]), int(match[3]), text)
    if _SERIAL.fullmatch(text):
        return excel_serial_to_date(float(text))
    if _TWO_DIGIT_YEAR.fullmatch(text):
        raise ValueError(f"{text!r} has a two-digit year; write the year in full (e.g. 28/02/2001)")
    raise ValueError(f"{text!r} is not a date (expected e.g. 28/02/2001, 2001-02-28 or 28-FEB-2001)")


@functools.lru_cache(maxsize=65_536)
def _iso_date(text: str) -> str | None:
    # A file repeats the same dates (birthdays, fair days) many times: read each once.
    parsed = parse_spreadsheet_date(text)
    return parsed.isoformat() if parsed else None


def excel_date(value: object) -> str | None:
    """Value transform ``excel_date``: any spreadsheet date to ISO ``YYYY-MM-DD`` text."""
    if value is None:
        return None
    if isinstance(value, str):
        return _iso_date(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return excel_serial_to_date(value).isoformat()
    parsed = parse_spreadsheet_date(str(value))
    return parsed.isoformat() if parsed else None
