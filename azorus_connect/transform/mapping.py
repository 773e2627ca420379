"""Declarative mappings: source fields -> canonical fields, through named value transforms.

A connector type ships a default mapping; a connection overrides it per source entity in its
``[connections.NAME.mapping.ENTITY]`` table.  The shape (TOML)::

    [mapping.STU]
    target = "person"            # person | enquiry | application | reference
    blank = "clear"              # an empty source value clears the field ("ignore": leaves it)
    [mapping.STU.fields]
    STU_CODE = "id:sits_stu"     # an identifier scheme (person)
    STU_FNM1 = { to = "first_name", transform = ["trim", "title"] }
    STU_DOB  = { to = "date_of_birth", transform = "date" }
    STU_GEND = { to = "gender", transform = "map:gender" }   # via value_maps.gender
    STU_UDF1 = "custom:ucas_points"
    [mapping.STU.value_maps.gender]
    M = "M"

Enquiries and applications link their person with ``person.id:<scheme>``; ``key = [A, B]`` builds
the record key from source fields joined by ``/``.  A reference mapping sets ``list = "NAME"`` and maps
to ``code``, ``label``, ``short_label`` and ``in_use``.  ``"-"`` ignores a source field on purpose.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..connector import SourceRecord
from ..exceptions import EntityNotMapped, InvalidRecord
from ..model import (
    Application,
    CanonicalRecord,
    CustomFieldDef,
    Enquiry,
    EntityKind,
    Person,
    PersonLink,
    ReferenceValue,
    record_class,
)
from .transforms import parse_bool, parse_date

__all__ = ["EntityRule", "FieldRule", "Mapper", "Mapping", "build_mapping", "target_choices"]

_LINK_FIELDS = {"identifiers", "person", "custom", "key", "list_name"}

#: A field the source record does not carry (None is a value: an empty element).
_ABSENT: Any = object()


@dataclass(frozen=True)
class FieldRule:
    source: str
    target: str
    transforms: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class EntityRule:
    entity: str
    kind: EntityKind
    fields: tuple[FieldRule, ...]
    key: tuple[str, ...] = ()
    list_name: str | None = None
    blank: str = "ignore"
    value_maps: MappingABC[str, MappingABC[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Mapping:
    """A connection's resolved mapping: one rule per source entity."""

    entities: MappingABC[str, EntityRule]

    def rule(self, entity: str) -> EntityRule:
        try:
            return self.entities[entity]
        except KeyError:
            raise EntityNotMapped(
                f"entity {entity!r} is not mapped for this connection",
                detail=f"mapped entities: {', '.join(sorted(self.entities)) or 'none'}",
            ) from None


def target_choices(kind: EntityKind, custom_fields: MappingABC[str, CustomFieldDef]) -> list[str]:
    """Every plain field name a mapping can target for ``kind`` (for UIs and validation)."""
    cls = record_class(kind)
    names = [n for n in cls.model_fields if n not in _LINK_FIELDS]
    if kind in (EntityKind.ENQUIRY, EntityKind.APPLICATION):
        names.append("key")
    names += [f"custom:{n}" for n, cf in custom_fields.items() if cf.entity == kind.value]
    return names


def _validate_target(
    entity: str, kind: EntityKind, target: str, custom: MappingABC[str, CustomFieldDef]
) -> None:
    if target == "-":
        return
    if target.startswith("id:") and kind == EntityKind.PERSON and len(target) > 3:
        return
    if target.startswith("person.id:") and kind in (EntityKind.ENQUIRY, EntityKind.APPLICATION):
        return
    if target == "person.hub_id" and kind in (EntityKind.ENQUIRY, EntityKind.APPLICATION):
        return
    if target.startswith("custom:"):
        name = target[7:]
        if name not in custom:
            raise ValueError(f"{entity}: custom field {name!r} is not declared under [custom_fields]")
        if custom[name].entity != kind.value:
            raise ValueError(
                f"{entity}: custom field {name!r} belongs to {custom[name].entity}, not {kind.value}"
            )
        return
    if target in target_choices(kind, custom) or (kind == EntityKind.REFERENCE and target == "code"):
        return
    raise ValueError(f"{entity}: unknown target {target!r} for a {kind.value}")


def _transforms(spec: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    items = [spec] if isinstance(spec, str) else list(spec or [])
    out = []
    for item in items:
        name, *args = str(item).split(":")
        out.append((name, tuple(args)))
    return tuple(out)


def _merge(default: MappingABC[str, Any], override: MappingABC[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: dict(v) for k, v in default.items()}
    for entity, table in override.items():
        if table in (False, "-"):
            merged.pop(entity, None)
            continue
        base = merged.setdefault(entity, {})
        for key, value in table.items():
            if key in ("fields", "value_maps") and isinstance(value, MappingABC):
                inner = dict(base.get(key, {}))
                inner.update(value)
                base[key] = inner
            else:
                base[key] = value
    return merged


def build_mapping(
    default: MappingABC[str, Any],
    override: MappingABC[str, Any] | None = None,
    *,
    custom_fields: MappingABC[str, CustomFieldDef] | None = None,
) -> Mapping:
    """Merge a connection's overrides over a default mapping and check every target."""
    custom = custom_fields or {}
    entities: dict[str, EntityRule] = {}
    for entity, table in _merge(default, override or {}).items():
        try:
            kind = EntityKind(table.get("target", ""))
        except ValueError:
            raise ValueError(
                f"{entity}: target must be one of person, enquiry, application, reference"
            ) from None
        rules = []
        for source, spec in (table.get("fields") or {}).items():
            if isinstance(spec, str):
                target, transforms = spec, tuple[tuple[str, tuple[str, ...]], ...]()
            elif isinstance(spec, MappingABC) and "to" in spec:
                target, transforms = str(spec["to"]), _transforms(spec.get("transform"))
            else:
                raise ValueError(
                    f"{entity}.fields.{source}: expected a target string or {{ to = ..., transform = ... }}"
                )
            _validate_target(entity, kind, target, custom)
            rules.append(FieldRule(source, target, transforms))
        key = table.get("key") or ()
        key = (key,) if isinstance(key, str) else tuple(key)
        blank = table.get("blank", "ignore")
        if blank not in ("ignore", "clear"):
            raise ValueError(f"{entity}.blank: expected 'ignore' or 'clear'")
        if kind == EntityKind.REFERENCE and not table.get("list"):
            raise ValueError(f'{entity}: a reference mapping needs list = "NAME"')
        entities[entity] = EntityRule(
            entity=entity,
            kind=kind,
            fields=tuple(rules),
            key=key,
            list_name=table.get("list"),
            blank=blank,
            value_maps={k: dict(v) for k, v in (table.get("value_maps") or {}).items()},
        )
    return Mapping(entities)


def _custom_value(defn: CustomFieldDef, value: Any) -> Any:
    if value is None:
        return None
    if defn.type == "number":
        from .transforms import _number

        return _number(value)
    if defn.type == "date":
        d = parse_date(value)
        return d.isoformat() if d else None
    if defn.type == "bool":
        return parse_bool(value)
    text = str(value).strip()
    return text or None


#: Where a compiled step puts its value (see :class:`Mapper`).
_DATA, _IDENTIFIER, _LINK, _LINK_HUB, _CUSTOM = range(5)

#: One field rule made ready to run: (source field, where, target name, transforms as one-argument
#: callables).  A plain tuple: the steps run for every field of every record.
_Step = tuple[str, int, str, tuple[Callable[[Any], Any], ...]]


@dataclass(frozen=True)
class _Plan:
    """An entity rule compiled once: its steps in rule order, and whether blanks are skipped."""

    rule: EntityRule
    steps: tuple[_Step, ...]
    ignore_blank: bool


def _value_map(table: MappingABC[str, str]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        return value if value is None else table.get(str(value), table.get("*", value))

    return apply


def _with_args(fn: Callable[..., Any], args: tuple[str, ...]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        return fn(value, *args)

    return apply


class Mapper:
    """Applies a connection's mapping to source records, producing canonical records.

    Each entity rule is compiled once into steps (target parsed, transforms looked up and bound
    to their arguments), since every inbound request maps its records through the same rules.
    """

    def __init__(
        self,
        mapping: Mapping,
        transforms: MappingABC[str, Callable[..., Any]],
        custom_fields: MappingABC[str, CustomFieldDef] | None = None,
    ) -> None:
        self.mapping = mapping
        self.transforms = transforms
        self.custom_fields = custom_fields or {}
        for rule in mapping.entities.values():
            for fr in rule.fields:
                for name, args in fr.transforms:
                    if name == "map":
                        if not args or args[0] not in rule.value_maps:
                            raise InvalidRecord(f"{rule.entity}.{fr.source}: value map {args} is not defined")
                    elif name not in transforms:
                        raise InvalidRecord(f"{rule.entity}.{fr.source}: unknown value transform {name!r}")
        self._plans: dict[str, _Plan] = {}

    def _plan(self, entity: str) -> _Plan:
        """The compiled rule for ``entity`` (compiled again if the mapping's rule was replaced)."""
        rule = self.mapping.rule(entity)
        plan = self._plans.get(entity)
        if plan is not None and plan.rule is rule:
            return plan
        steps: list[_Step] = []
        for fr in rule.fields:
            target = fr.target
            if target == "-":
                continue
            if target.startswith("id:"):
                where, name = _IDENTIFIER, target[3:]
            elif target.startswith("person.id:"):
                where, name = _LINK, target[10:]
            elif target == "person.hub_id":
                where, name = _LINK_HUB, target
            elif target.startswith("custom:"):
                where, name = _CUSTOM, target[7:]
            else:
                where, name = _DATA, target
            fns = tuple(
                _value_map(rule.value_maps[args[0]])
                if transform == "map"
                else _with_args(self.transforms[transform], args)
                if args
                else self.transforms[transform]
                for transform, args in fr.transforms
            )
            steps.append((fr.source, where, name, fns))
        plan = _Plan(rule, tuple(steps), rule.blank == "ignore")
        self._plans[entity] = plan
        return plan

    def map(self, record: SourceRecord) -> CanonicalRecord:
        """Map one source record; a value that cannot be read is an :class:`InvalidRecord`."""
        plan = self._plan(record.entity)
        rule = plan.rule
        fields = record.fields
        data: dict[str, Any] = {}
        identifiers: dict[str, str] = {}
        link: dict[str, str] = {}
        link_hub: int | None = None
        custom: dict[str, Any] = {}
        for source, where, name, fns in plan.steps:
            raw = fields.get(source, _ABSENT)
            if raw is _ABSENT:
                continue
            if isinstance(raw, str) and raw.strip() == "":
                raw = None
            if raw is None and plan.ignore_blank:
                continue
            try:
                value = raw
                for fn in fns:
                    value = fn(value)
                if where == _DATA:
                    data[name] = value.strip() if isinstance(value, str) else value
                elif where == _IDENTIFIER:
                    if value is not None and str(value).strip():
                        identifiers[name] = str(value).strip()
                elif where == _LINK:
                    if value is not None and str(value).strip():
                        link[name] = str(value).strip()
                elif where == _LINK_HUB:
                    link_hub = int(value) if value is not None else None
                else:
                    custom[name] = _custom_value(self.custom_fields[name], value)
            except (ValueError, TypeError) as exc:
                raise InvalidRecord(f"{source}: {exc}", field=source, line=record.line) from None
        if rule.key:
            parts = [fields.get(k) for k in rule.key]
            if any(p is None or not str(p).strip() for p in parts):
                raise InvalidRecord(f"{rule.entity}: the key needs {', '.join(rule.key)}", line=record.line)
            data["key"] = "/".join(str(p).strip() for p in parts)
        return self._build(rule, data, identifiers, link, link_hub, custom, record.line)

    def _build(
        self,
        rule: EntityRule,
        data: dict[str, Any],
        identifiers: dict[str, str],
        link: dict[str, str],
        link_hub: int | None,
        custom: dict[str, Any],
        line: int | None,
    ) -> CanonicalRecord:
        try:
            if rule.kind == EntityKind.PERSON:
                return Person(identifiers=identifiers, custom=custom, **data)
            if rule.kind == EntityKind.REFERENCE:
                if "in_use" in data and not isinstance(data["in_use"], bool):
                    try:
                        data["in_use"] = parse_bool(data["in_use"])
                    except ValueError as exc:
                        raise InvalidRecord(f"in_use: {exc}", field="in_use", line=line) from None
                return ReferenceValue(list_name=rule.list_name or "", **data)
            person = {"identifiers": link, "hub_id": link_hub}
            if rule.kind == EntityKind.ENQUIRY:
                return Enquiry(person=PersonLink.model_validate(person), custom=custom, **data)
            if "key" not in data:
                raise InvalidRecord(f"{rule.entity}: an application needs a key", line=line)
            return Application(person=PersonLink.model_validate(person), custom=custom, **data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InvalidRecord(f"{where}: {err['msg']}", field=where, line=line) from None


def json_value(value: Any) -> Any:
    """A field value as JSON-able data (dates as ISO text)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
