"""SITS value conventions: the date forms sites export, padded codes, RWS path segments."""

from __future__ import annotations

import datetime as dt

import pytest
from azorus_sits.values import parse_sits_date, path_segment, zero_pad

TODAY = dt.date(2026, 12, 4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("07-JUN-24", dt.date(2024, 6, 7)),
        ("07-jun-2024", dt.date(2024, 6, 7)),
        ("14-MAY-06", dt.date(2006, 5, 14)),
        ("19-NOV-87", dt.date(1987, 11, 19)),
        ("01-JAN-46", dt.date(2046, 1, 1)),
        ("01-JAN-47", dt.date(1947, 1, 1)),
        ("1987-11-19", dt.date(1987, 11, 19)),
        ("16/07/2019", dt.date(2019, 7, 16)),
        ("16.07.2019", dt.date(2019, 7, 16)),
        (" 2024-06-07T10:30:00Z ", dt.date(2024, 6, 7)),
        ("07-JUN-2024 10:30:00", dt.date(2024, 6, 7)),
        ("2024-06-07 10:30:00.123 +01:00", dt.date(2024, 6, 7)),
    ],
)
def test_every_sits_date_form_is_read(text: str, expected: dt.date) -> None:
    assert parse_sits_date(text, today=TODAY) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("31-FEB-24", "day is out of range"),
        ("2024-13-01", "month must be in 1..12"),
        ("07-XYZ-24", "unknown month 'XYZ'"),
        ("07/06/24", "not a date in a SITS format"),
        ("", "not a date in a SITS format"),
    ],
)
def test_unreadable_dates_name_the_value(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sits_date(text, today=TODAY)


def test_zero_pad_keeps_non_numeric_codes() -> None:
    assert zero_pad("123456", 10) == "0000123456"
    assert zero_pad("0000123456", 10) == "0000123456"
    assert zero_pad("E000981", 10) == "E000981"


def test_path_segment_never_contains_a_slash() -> None:
    assert path_segment("2025/6") == "2025-6"
    assert path_segment("2025/6", slash="&&") == "2025&&6"
    assert path_segment("A B?") == "A%20B%3F"
