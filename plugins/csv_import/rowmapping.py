"""Turning CSV rows into people quickly, with exactly the core mapper's results.

The core :class:`~azorus_connect.transform.mapping.Mapper` is general (any source, value maps,
keys, every entity); a person import is the hot path of big files, so this compiles a profile's
person mapping once into steps over column positions, skipping the per-row dictionary and
target parsing. Other entities and value maps go through the core mapper, and a property test
holds the two to the same records and the same errors.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from azorus_connect.connector import SourceRecord
from azorus_connect.exceptions import InvalidRecord
from azorus_connect.model import CanonicalRecord, CustomFieldDef, CustomFieldType, EntityKind, Person
from azorus_connect.transform.mapping import EntityRule, Mapper
from azorus_connect.transform.transforms import parse_bool, parse_date

__all__ = ["RowMapper"]

_ID, _CUSTOM, _FIELD = 0, 1, 2

#: Person fields typed ``str | None``: pydantic keeps a ``str`` (or None) given to them as it is.
_TEXT_FIELDS = frozenset(n for n, f in Person.model_fields.items() if f.annotation == (str | None))
#: Other plain fields (a date of birth, the hub id): their value is pydantic's, read once per text.
_TYPED_FIELDS = frozenset(Person.model_fields) - _TEXT_FIELDS - {"identifiers", "custom"}
#: A person with every field at its default, copied as the start of each fast-built one.
_BLANK_STATE = Person().__dict__
_INVALID = object()


@dataclass(frozen=True)
class _Step:
    position: int
    source: str
    kind: int
    name: str
    transforms: tuple[tuple[Callable[..., Any], tuple[str, ...]], ...]
    #: A custom field kept as trimmed text (not a number, date or yes/no): no conversion to pick.
    text_custom: bool = False


class RowMapper:
    """Maps the cells of one CSV row (in header order) to a canonical record."""

    def __init__(
        self,
        mapper: Mapper,
        rule: EntityRule,
        header: Sequence[str],
        transforms: Mapping[str, Callable[..., Any]],
        custom_fields: Mapping[str, CustomFieldDef],
    ) -> None:
        self.mapper = mapper
        self.rule = rule
        self.header = list(header)
        self.custom_fields = custom_fields
        self.fast = rule.kind is EntityKind.PERSON and not rule.key and self._plannable(rule)
        self.steps: list[_Step] = []
        self.number = transforms.get("number")
        if self.fast:
            where = {name: i for i, name in enumerate(self.header)}
            for fr in rule.fields:
                if fr.target == "-" or fr.source not in where:
                    continue
                fns = tuple((transforms[name], args) for name, args in fr.transforms)
                if fr.target.startswith("id:"):
                    kind, name = _ID, fr.target[3:].strip().lower()
                elif fr.target.startswith("custom:"):
                    kind, name = _CUSTOM, fr.target[7:]
                else:
                    kind, name = _FIELD, fr.target
                text_custom = kind == _CUSTOM and self._converts_as_text(custom_fields[name])
                self.steps.append(_Step(where[fr.source], fr.source, kind, name, fns, text_custom))

    @staticmethod
    def _plannable(rule: EntityRule) -> bool:
        """Value maps (``map:NAME``) need the rule's tables: those rows take the core mapper."""
        return all(name != "map" for fr in rule.fields for name, _ in fr.transforms)

    def map(self, cells: list[str], line: int) -> CanonicalRecord:
        if not self.fast:
            return self.mapper.map(
                SourceRecord(self.rule.entity, dict(zip(self.header, cells, strict=True)), line)
            )
        ignore_blank = self.rule.blank == "ignore"
        data: dict[str, Any] = {}
        identifiers: dict[str, str] = {}
        custom: dict[str, Any] = {}
        for step in self.steps:
            value: Any = cells[step.position]
            if not value.strip():
                if ignore_blank:
                    continue
                value = None
            try:
                for fn, args in step.transforms:
                    value = fn(value, *args)
                if step.kind == _ID:
                    if value is not None and str(value).strip():
                        identifiers[step.name] = str(value).strip()
                elif step.text_custom:  # what _custom does for text, without choosing
                    custom[step.name] = None if value is None else (str(value).strip() or None)
                elif step.kind == _CUSTOM:
                    custom[step.name] = self._custom(self.custom_fields[step.name], value)
                elif isinstance(value, str):
                    data[step.name] = value.strip()
                else:
                    data[step.name] = value
            except (ValueError, TypeError) as exc:
                raise InvalidRecord(f"{step.source}: {exc}", field=step.source, line=line) from None
        values = _checked(data)
        if values is None:  # something pydantic must judge: it builds the record (or the error)
            return _validated(data, identifiers, custom, line)
        return _person(values, identifiers, custom)

    def _converts_as_text(self, defn: CustomFieldDef) -> bool:
        """True when ``_custom`` keeps a value of this field as trimmed text."""
        if defn.type == CustomFieldType.NUMBER and self.number is not None:
            return False
        return defn.type not in (CustomFieldType.DATE, CustomFieldType.BOOL)

    def _custom(self, defn: CustomFieldDef, value: Any) -> Any:
        # The same conversions the core mapper applies to custom fields.
        if value is None:
            return None
        if defn.type == CustomFieldType.NUMBER and self.number is not None:
            return self.number(value)
        if defn.type == CustomFieldType.DATE:
            parsed = parse_date(value)
            return parsed.isoformat() if parsed else None
        if defn.type == CustomFieldType.BOOL:
            return parse_bool(value)
        text = str(value).strip()
        return text or None


def _checked(data: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` with pydantic's value for each field (in place), or None when pydantic must see it.

    Text (or None) in a text field is already valid; a typed field given text or a date takes the
    value pydantic gives that field alone, remembered per value (a file repeats its birthdays). An
    unknown name, another type or an invalid value returns None, so the full validation decides
    and reports exactly as it always has.
    """
    typed: list[tuple[str, Any]] = []
    for name, value in data.items():
        if name in _TEXT_FIELDS and (value is None or type(value) is str):
            continue
        if name not in _TYPED_FIELDS:
            return None
        if value is None:
            continue
        if type(value) not in (str, dt.date):
            return None
        checked = _field_value(name, value)
        if checked is _INVALID:
            return None
        typed.append((name, checked))
    for name, checked in typed:  # only now: an early None leaves ``data`` as the mapper made it
        data[name] = checked
    return data


@functools.lru_cache(maxsize=16_384)
def _field_value(name: str, value: str | dt.date) -> Any:
    """What pydantic makes of ``value`` for field ``name`` of a person (``_INVALID`` if it refuses)."""
    try:
        return getattr(Person(**{name: value}), name)
    except ValidationError:
        return _INVALID


def _person(values: dict[str, Any], identifiers: dict[str, str], custom: dict[str, Any]) -> Person:
    """The person ``Person(identifiers=..., custom=..., **values)`` gives, for values already valid.

    As pydantic's ``model_construct`` does, without its per-field default walk (twice the cost of
    validating): the identifiers are already clean (lower-case schemes, trimmed non-empty text)
    and ``custom`` is a fresh dict, which is what the validators would have made of them.
    """
    state = _BLANK_STATE.copy()
    state.update(values)
    state["identifiers"] = identifiers
    state["custom"] = custom
    person = Person.__new__(Person)
    object.__setattr__(person, "__dict__", state)
    object.__setattr__(person, "__pydantic_fields_set__", {"identifiers", "custom", *values})
    object.__setattr__(person, "__pydantic_extra__", None)
    object.__setattr__(person, "__pydantic_private__", None)
    return person


def _validated(
    data: dict[str, Any], identifiers: dict[str, str], custom: dict[str, Any], line: int
) -> Person:
    try:
        return Person(identifiers=identifiers, custom=custom, **data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidRecord(f"{where}: {err['msg']}", field=where, line=line) from None
