"""SITS value conventions: tolerant dates, zero-padded codes, and key values safe in RWS paths.

SITS sites export dates as ``07-JUN-24`` (Oracle), ``07-JUN-2024``, ``2024-06-07``, ``07/06/2024``
or a datetime; every form is read, and an unreadable one is an error naming the value.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote

__all__ = ["parse_sits_date", "path_segment", "zero_pad"]

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1
    )
}
_ORACLE = re.compile(r"^(\d{1,2})[-/ ]([A-Za-z]{3})[-/ ](\d{2}|\d{4})$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_UK = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})$")
_DATETIME = re.compile(r"^(.*?\S)[T ](\d{1,2}[:.]\d{2}.*)$")
_TIME = re.compile(r"^\d{1,2}[:.]\d{2}([:.]\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$")


def _pivot_year(two_digits: int, today: dt.date) -> int:
    """Two-digit years: the century that puts the date no more than 20 years ahead of today."""
    year = today.year - today.year % 100 + two_digits
    return year - 100 if year > today.year + 20 else year


def parse_sits_date(value: str, *, today: dt.date | None = None) -> dt.date:
    """Read a SITS date in any of the forms the module docstring lists; ``ValueError`` if none fits."""
    text = value.strip()
    if not (_ISO.match(text) or _UK.match(text) or _ORACLE.match(text)):
        timed = _DATETIME.match(text)
        if timed and _TIME.match(timed[2]):
            text = timed[1]
    try:
        if match := _ISO.match(text):
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        if match := _UK.match(text):
            return dt.date(int(match[3]), int(match[2]), int(match[1]))
        if match := _ORACLE.match(text):
            month = _MONTHS.get(match[2].upper())
            if month is None:
                raise ValueError(f"unknown month {match[2]!r}")
            year = int(match[3])
            if len(match[3]) == 2:
                year = _pivot_year(year, today or dt.date.today())
            return dt.date(year, month, int(match[1]))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date: {exc}") from None
    raise ValueError(f"{value!r} is not a date in a SITS format (07-JUN-24, 2024-06-07, 07/06/2024)")


def zero_pad(value: str, width: int) -> str:
    """A numeric code padded with leading zeros to ``width`` (MST codes are ``0000123456``)."""
    text = value.strip()
    return text.zfill(width) if text.isdigit() else text


def path_segment(value: str, slash: str = "-") -> str:
    """A key value made safe for one RWS path segment: ``/`` cannot appear in it (``2025/6`` ->
    ``2025-6``; sites choose their own replacement, e.g. ``&&`` or ``_``)."""
    return quote(value.replace("/", slash), safe="&-_.~")
