"""The named value transforms every mapping can use, registered like any plugin's.

A transform is ``fn(value, *args) -> value``; a mapping names it as ``"name"`` or ``"name:arg"``.
``None`` passes through every transform untouched.  A value a transform cannot read raises
``ValueError`` with a reason fit for a row-level error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl

__all__ = ["parse_bool", "parse_date"]

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
}
_DMY_MON = re.compile(r"^(\d{1,2})[-/ ]([A-Za-z]{3})[A-Za-z]*[-/ ](\d{2}|\d{4})$")
_DMY = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")


def _year(text: str) -> int:
    """Four-digit years as they are; two-digit ones by Oracle's RR rule (00-49 -> 20xx)."""
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < 50 else 1900
    return year


def parse_date(value: Any) -> dt.date | None:
    """Read ``DD-MON-YY``, ``DD-MON-YYYY``, ``DD/MM/YYYY``, ``DD-MM-YYYY`` and ISO dates (UK order)."""
    if value is None or isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    text = str(value).strip()
    if not text:
        return None
    try:
        if m := _ISO.match(text):
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DMY_MON.match(text):
            month = _MONTHS.get(m[2].upper())
            if month is None:
                raise ValueError
            return dt.date(_year(m[3]), month, int(m[1]))
        if m := _DMY.match(text):
            return dt.date(int(m[3]), int(m[2]), int(m[1]))
    except ValueError:
        pass
    raise ValueError(f"not a date: {text!r} (expected DD-MON-YY, DD/MM/YYYY or YYYY-MM-DD)")


_TRUE = {"y", "yes", "true", "t", "1"}
_FALSE = {"n", "no", "false", "f", "0"}


def parse_bool(value: Any) -> bool | None:
    """Y/N, yes/no, true/false, 1/0 (any case); blank is None."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


def _number(value: Any) -> int | float | None:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    text = str(value).strip().replace(",", "")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None


def _text(fn: Callable[[str], str]) -> Callable[..., Any]:
    def apply(value: Any, *args: str) -> Any:
        return None if value is None else fn(str(value))

    apply.__doc__ = fn.__doc__
    return apply


def _zero_pad(value: Any, width: str = "0") -> Any:
    if value is None:
        return None
    text = str(value).strip()
    return text.zfill(int(width)) if text else text


def _default(value: Any, fallback: str = "") -> Any:
    return fallback if value is None or str(value).strip() == "" else value


def _blank_to_none(value: Any) -> Any:
    return None if value is None or str(value).strip() == "" else value


def _slash_to(value: Any, replacement: str = "-") -> Any:
    return None if value is None else str(value).replace("/", replacement)


@hookimpl
def azorus_register_value_transforms() -> dict[str, Callable[..., Any]]:
    return {
        "trim": _text(str.strip),
        "upper": _text(str.upper),
        "lower": _text(str.lower),
        "title": _text(lambda s: s.title()),
        "email": _text(lambda s: s.strip().lower()),
        "digits": _text(lambda s: re.sub(r"\D", "", s)),
        "collapse_spaces": _text(lambda s: " ".join(s.split())),
        "date": lambda v, *a: parse_date(v),
        "sits_date": lambda v, *a: parse_date(v),
        "bool": lambda v, *a: parse_bool(v),
        "number": lambda v, *a: _number(v),
        "zero_pad": _zero_pad,
        "default": _default,
        "blank_to_none": _blank_to_none,
        "slash_to": _slash_to,
    }
