"""The canonical model: what every connector maps to and from.

Records are partial by design: a connector sets only the fields it knows, and the store
updates only the fields that were set (pydantic's ``model_fields_set``).  Identifiers are
strings so leading zeros survive.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "LIST_FIELDS",
    "NOT_STANDARD_FIELDS",
    "Application",
    "CanonicalRecord",
    "CustomFieldDef",
    "CustomFieldType",
    "Enquiry",
    "EntityKind",
    "Person",
    "PersonLink",
    "ReferenceValue",
    "record_class",
]


class EntityKind(StrEnum):
    """The kinds of record the hub stores; directions are set per kind."""

    PERSON = "person"
    ENQUIRY = "enquiry"
    APPLICATION = "application"
    REFERENCE = "reference"


#: Fields of a record that are not standard values: identity, links and custom fields.
NOT_STANDARD_FIELDS = frozenset({"custom", "identifiers", "person", "key", "list_name", "code", "hub_id"})


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: ClassVar[EntityKind]
    #: Standard fields whose value is a code from a reference list: field -> default list name.
    list_fields: ClassVar[dict[str, str]] = {}
    #: Fields stored as dates.
    date_fields: ClassVar[frozenset[str]] = frozenset()

    custom: dict[str, Any] = Field(default_factory=dict)

    def set_fields(self) -> dict[str, Any]:
        """The standard fields this record actually carries (not identifiers, links or custom)."""
        values = self.__dict__
        return {k: values[k] for k in self.model_fields_set if k not in NOT_STANDARD_FIELDS}


def _clean_identifiers(value: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for scheme, ident in value.items():
        if ident is None:
            continue
        text = str(ident).strip()
        if text:
            out[str(scheme).strip().lower()] = text
    return out


class Person(_Record):
    """An enquirer, applicant or student."""

    kind: ClassVar[EntityKind] = EntityKind.PERSON
    list_fields: ClassVar[dict[str, str]] = {
        "title": "title",
        "gender": "gender",
        "nationality": "nationality",
        "domicile": "country",
        "country": "country",
    }
    date_fields: ClassVar[frozenset[str]] = frozenset({"date_of_birth"})

    #: scheme -> value, e.g. {"mst": "0000123456", "sits_stu": "24001234", "email": "a@b.org"}
    identifiers: dict[str, str] = Field(default_factory=dict)
    #: The hub's own id, when the source already knows it (write-backs, the API, imports).
    hub_id: int | None = None
    title: str | None = None
    first_name: str | None = None
    middle_names: str | None = None
    last_name: str | None = None
    preferred_name: str | None = None
    date_of_birth: dt.date | None = None
    gender: str | None = None
    nationality: str | None = None
    domicile: str | None = None
    email: str | None = None
    phone: str | None = None
    mobile: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    address_line3: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None

    _clean_ids = field_validator("identifiers", mode="before")(
        classmethod(lambda cls, v: _clean_identifiers(v or {}))
    )


class PersonLink(BaseModel):
    """How an enquiry or application names its person: by identifiers, or by hub id."""

    model_config = ConfigDict(extra="forbid")

    identifiers: dict[str, str] = Field(default_factory=dict)
    hub_id: int | None = None

    _clean_ids = field_validator("identifiers", mode="before")(
        classmethod(lambda cls, v: _clean_identifiers(v or {}))
    )


class Enquiry(_Record):
    """An enquiry (SITS ESD): interest in a course for an entry year."""

    kind: ClassVar[EntityKind] = EntityKind.ENQUIRY
    list_fields: ClassVar[dict[str, str]] = {
        "course": "course",
        "entry_year": "academic_year",
        "source": "enquiry_source",
        "status": "enquiry_status",
    }
    date_fields: ClassVar[frozenset[str]] = frozenset({"enquiry_date"})

    person: PersonLink = Field(default_factory=PersonLink)
    #: The external key (e.g. the SITS ESD code); without one, an enquiry is matched on
    #: person + course + entry year.
    key: str | None = None
    course: str | None = None
    entry_year: str | None = None
    source: str | None = None
    enquiry_date: dt.date | None = None
    status: str | None = None


class Application(_Record):
    """An application (SITS CAP, keyed ``STU_CODE/CAP_SEQN``)."""

    kind: ClassVar[EntityKind] = EntityKind.APPLICATION
    list_fields: ClassVar[dict[str, str]] = {
        "course": "course",
        "route": "route",
        "academic_year": "academic_year",
        "status": "application_status",
        "decision": "decision",
        "response": "response",
    }
    date_fields: ClassVar[frozenset[str]] = frozenset({"application_date", "decision_date", "response_date"})

    person: PersonLink = Field(default_factory=PersonLink)
    key: str
    course: str | None = None
    route: str | None = None
    academic_year: str | None = None
    status: str | None = None
    decision: str | None = None
    response: str | None = None
    application_date: dt.date | None = None
    decision_date: dt.date | None = None
    response_date: dt.date | None = None


class ReferenceValue(_Record):
    """One code of a named reference list (nationality, course, ...)."""

    kind: ClassVar[EntityKind] = EntityKind.REFERENCE

    list_name: str
    code: str
    label: str | None = None
    short_label: str | None = None
    in_use: bool | None = None


CanonicalRecord = Person | Enquiry | Application | ReferenceValue

#: Every list-typed standard field, by entity kind.
LIST_FIELDS: dict[EntityKind, dict[str, str]] = {
    EntityKind.PERSON: Person.list_fields,
    EntityKind.ENQUIRY: Enquiry.list_fields,
    EntityKind.APPLICATION: Application.list_fields,
}


def record_class(kind: EntityKind | str) -> type[_Record]:
    """The model class for an entity kind."""
    classes: dict[EntityKind, type[_Record]] = {
        EntityKind.PERSON: Person,
        EntityKind.ENQUIRY: Enquiry,
        EntityKind.APPLICATION: Application,
        EntityKind.REFERENCE: ReferenceValue,
    }
    return classes[EntityKind(kind)]


class CustomFieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    BOOL = "bool"
    LIST = "list"


class CustomFieldDef(BaseModel):
    """A client-defined field, declared in the config file under ``[custom_fields.NAME]``."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    label: str | None = None
    type: CustomFieldType = CustomFieldType.TEXT
    #: For ``type = "list"``: the reference list the value must come from.
    list: str | None = None
    #: Which entity kind carries it.
    entity: Literal["person", "enquiry", "application"] = "person"
