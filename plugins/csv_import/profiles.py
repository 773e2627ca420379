"""Import profiles: which column goes to which field, how to match people, what a run may do.

A profile is named and stored in the database (``import_profile``), and moves between
environments as TOML::

    [profile]
    name = "Open day leads"
    entity = "person"                    # person | enquiry | application
    match_on = ["mst", "email"]          # identifier schemes, in order
    mode = "create_and_update"           # or "update_only"
    unknown_codes = "lenient"            # or "strict": a code not in its list rejects the row
    blank = "ignore"                     # an empty cell leaves the field alone ("clear" empties it)

    [columns]
    "MST code" = "id:mst"
    "DOB" = { to = "date_of_birth", transform = "excel_date" }
    "Notes" = "-"                        # read but not imported, on purpose

Targets use the core's mapping syntax; a date target gets ``excel_date`` unless told otherwise.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, delete, insert, select, update

from azorus_connect.exceptions import ConfigError, InvalidRecord
from azorus_connect.model import CustomFieldDef, CustomFieldType, EntityKind, record_class
from azorus_connect.store.db import utcnow
from azorus_connect.store.schema import import_profile
from azorus_connect.transform.mapping import EntityRule, FieldRule, build_mapping
from azorus_connect.transform.mapping import Mapping as RecordMapping

from .automapping import DEFAULT_SCHEMES, SuggestedMapping, suggest_mapping

__all__ = [
    "ROW_ENTITY",
    "ColumnSpec",
    "ImportProfile",
    "delete_profile",
    "list_profiles",
    "load_profile",
    "profile_from_suggestion",
    "profile_from_toml",
    "profile_to_toml",
    "save_profile",
]

#: The source entity name a CSV row has in the mapping.
ROW_ENTITY = "row"
DATE_TRANSFORM = "excel_date"


class ColumnSpec(BaseModel):
    """Where one column goes: a target (``"-"`` to leave it out) and optional value transforms."""

    model_config = ConfigDict(extra="forbid")

    to: str
    transform: list[str] = Field(default_factory=list)

    @field_validator("transform", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ImportProfile(BaseModel):
    """A saved way of importing a kind of file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=100)
    entity: Literal["person", "enquiry", "application"] = "person"
    match_on: list[str] = Field(default_factory=lambda: ["mst"])
    mode: Literal["create_and_update", "update_only"] = "create_and_update"
    unknown_codes: Literal["strict", "lenient"] = "lenient"
    blank: Literal["ignore", "clear"] = "ignore"
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)

    @field_validator("columns", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): {"to": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("match_on", mode="before")
    @classmethod
    def _schemes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        return [str(s).strip().lower() for s in value if str(s).strip()]

    @property
    def kind(self) -> EntityKind:
        return EntityKind(self.entity)

    def mapped_columns(self) -> dict[str, ColumnSpec]:
        """The columns that are imported (not ``"-"``)."""
        return {c: s for c, s in self.columns.items() if s.to != "-"}

    def check_against(self, header: Sequence[str]) -> None:
        """Refuse a file that lacks a column the profile maps (a renamed column must not vanish)."""
        have = set(header)
        missing = [c for c in self.mapped_columns() if c not in have]
        if missing:
            raise InvalidRecord(
                "the file has no column " + ", ".join(repr(c) for c in missing) + " that the profile maps",
                missing=missing,
            )

    def record_mapping(self, custom_fields: Mapping[str, CustomFieldDef]) -> RecordMapping:
        """The core mapping for this profile's rows; unknown targets are a :class:`ConfigError`."""
        fields: dict[str, Any] = {}
        for column, spec in self.columns.items():
            transforms = list(spec.transform)
            if not transforms and _is_date_target(self.kind, spec.to, custom_fields):
                transforms = [DATE_TRANSFORM]
            fields[column] = {"to": spec.to, "transform": transforms} if transforms else spec.to
        table = {"target": self.entity, "blank": self.blank, "fields": fields}
        try:
            mapping = build_mapping({ROW_ENTITY: table}, custom_fields=custom_fields)
        except ValueError as exc:
            raise ConfigError(
                str(exc).removeprefix(f"{ROW_ENTITY}: "), key=f"profile {self.name!r}"
            ) from None
        if not self.match_on:
            raise ConfigError("the profile needs at least one identifier to match on", key="match_on")
        rule = mapping.entities[ROW_ENTITY]
        return RecordMapping({ROW_ENTITY: _with_email_identifier(rule, self.kind, self.match_on)})


def _is_date_target(kind: EntityKind, target: str, custom: Mapping[str, CustomFieldDef]) -> bool:
    if target.startswith("custom:"):
        cf = custom.get(target[7:])
        return cf is not None and cf.type == CustomFieldType.DATE
    return target in record_class(kind).date_fields


def _with_email_identifier(rule: EntityRule, kind: EntityKind, match_on: Sequence[str]) -> EntityRule:
    """Matching people on ``email`` uses the email column as the identifier when none is mapped."""
    prefix = "id:" if kind is EntityKind.PERSON else "person.id:"
    if "email" not in match_on or any(f.target == f"{prefix}email" for f in rule.fields):
        return rule
    if kind is not EntityKind.PERSON:
        return rule
    extra = [FieldRule(f.source, "id:email", (("email", ()),)) for f in rule.fields if f.target == "email"]
    if not extra:
        return rule
    return EntityRule(
        entity=rule.entity,
        kind=rule.kind,
        fields=(*rule.fields, *extra),
        key=rule.key,
        list_name=rule.list_name,
        blank=rule.blank,
        value_maps=rule.value_maps,
    )


def profile_from_suggestion(
    suggestion: SuggestedMapping,
    entity: EntityKind | str = EntityKind.PERSON,
    *,
    name: str = "",
    custom_fields: Mapping[str, CustomFieldDef] | None = None,
) -> ImportProfile:
    """A profile from an auto-mapping: unmatched columns are listed as ``"-"``, date targets read dates."""
    kind = EntityKind(entity)
    custom = custom_fields or {}
    columns: dict[str, ColumnSpec] = {}
    for match in suggestion.columns:
        target = match.target or "-"
        transforms = [DATE_TRANSFORM] if _is_date_target(kind, target, custom) else []
        columns[match.column] = ColumnSpec(to=target, transform=transforms)
    schemes = [t[len("person.id:") :] if t.startswith("person.") else t[3:] for t in _id_targets(columns)]
    return ImportProfile(name=name, entity=kind.value, match_on=schemes or ["mst"], columns=columns)


def _id_targets(columns: Mapping[str, ColumnSpec]) -> list[str]:
    return [s.to for s in columns.values() if s.to.startswith(("id:", "person.id:"))]


def suggest_profile(
    header: Sequence[str],
    entity: EntityKind | str = EntityKind.PERSON,
    *,
    custom_fields: Mapping[str, CustomFieldDef] | None = None,
    schemes: Sequence[str] = DEFAULT_SCHEMES,
) -> tuple[ImportProfile, SuggestedMapping]:
    """Auto-map ``header`` and turn the suggestion into a profile, ready for a person to edit."""
    suggestion = suggest_mapping(header, entity, custom_fields=custom_fields or {}, schemes=schemes)
    return profile_from_suggestion(suggestion, entity, custom_fields=custom_fields), suggestion


# -- TOML ------------------------------------------------------------------------------------------


def _toml_string(text: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(text, ensure_ascii=False)


def profile_to_toml(profile: ImportProfile) -> str:
    """The profile as a TOML document (see the module docstring for its shape)."""
    lines = ["[profile]"]
    lines.append(f"name = {_toml_string(profile.name)}")
    lines.append(f"entity = {_toml_string(profile.entity)}")
    lines.append("match_on = [" + ", ".join(_toml_string(s) for s in profile.match_on) + "]")
    lines.append(f"mode = {_toml_string(profile.mode)}")
    lines.append(f"unknown_codes = {_toml_string(profile.unknown_codes)}")
    lines.append(f"blank = {_toml_string(profile.blank)}")
    lines.append("")
    lines.append("[columns]")
    for column, spec in profile.columns.items():
        if spec.transform:
            transforms = ", ".join(_toml_string(t) for t in spec.transform)
            value = f"{{ to = {_toml_string(spec.to)}, transform = [{transforms}] }}"
        else:
            value = _toml_string(spec.to)
        lines.append(f"{_toml_string(column)} = {value}")
    return "\n".join(lines) + "\n"


def profile_from_toml(text: str, *, source: str = "profile") -> ImportProfile:
    """Read a profile from TOML; every problem is a :class:`ConfigError` naming the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from None
    unknown = set(data) - {"profile", "columns"}
    if unknown:
        raise ConfigError("unknown section (expected [profile] and [columns])", file=source, key=min(unknown))
    return profile_from_data({**data.get("profile", {}), "columns": data.get("columns", {})}, source=source)


def profile_from_data(data: Mapping[str, Any], *, source: str = "profile") -> ImportProfile:
    """Validate a profile given as data (JSON from the wizard, or parsed TOML)."""
    try:
        return ImportProfile.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(err["msg"], file=source, key=key) from None


# -- database --------------------------------------------------------------------------------------


def save_profile(conn: Connection, profile: ImportProfile) -> None:
    """Insert or replace the profile named ``profile.name``."""
    if not profile.name.strip():
        raise ConfigError("a saved profile needs a name", key="name")
    now = utcnow()
    definition = profile.model_dump(mode="json")
    found = conn.execute(select(import_profile.c.name).where(import_profile.c.name == profile.name)).first()
    if found is None:
        conn.execute(
            insert(import_profile).values(
                name=profile.name, definition=definition, created_at=now, updated_at=now
            )
        )
    else:
        conn.execute(
            update(import_profile)
            .where(import_profile.c.name == profile.name)
            .values(definition=definition, updated_at=now)
        )


def load_profile(conn: Connection, name: str) -> ImportProfile:
    """The stored profile ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
    row = conn.execute(select(import_profile.c.definition).where(import_profile.c.name == name)).first()
    if row is None:
        known = [n for (n,) in conn.execute(select(import_profile.c.name).order_by(import_profile.c.name))]
        raise ConfigError(
            f"no import profile named {name!r} (saved: {', '.join(known) or 'none'})", key="profile"
        )
    return profile_from_data(row[0], source=f"profile {name!r}")


def list_profiles(conn: Connection) -> list[ImportProfile]:
    rows = conn.execute(select(import_profile.c.definition).order_by(import_profile.c.name))
    return [profile_from_data(definition) for (definition,) in rows]


def delete_profile(conn: Connection, name: str) -> bool:
    return bool(conn.execute(delete(import_profile).where(import_profile.c.name == name)).rowcount)
