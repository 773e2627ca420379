"""Guessing which field each CSV column holds, with how sure we are and why.

Each column is matched against the fields of the entity being imported (standard fields,
identifiers, custom fields) by, in falling confidence: the exact target name or label,
the normalised name (case, spacing, punctuation and accents ignored), a synonym from the
table below, the same after dropping filler words ("Student Surname"), and a close spelling.
A target is given to one column only; every column left over is listed, never dropped.
Targets use the mapping syntax: ``first_name``, ``id:mst``, ``custom:NAME``, ``person.id:mst``.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from azorus_connect.model import CustomFieldDef, EntityKind, record_class

__all__ = [
    "DEFAULT_SCHEMES",
    "ColumnMatch",
    "MatchMethod",
    "SuggestedMapping",
    "Target",
    "normalise_header",
    "suggest_mapping",
    "targets_for",
]

MatchMethod = Literal["exact", "normalised", "synonym", "filler", "fuzzy"]

#: Identifier schemes offered for every import; a site's own schemes are added by the caller.
DEFAULT_SCHEMES = ("mst", "sits_stu", "ucas_pid", "salesforce", "dynamics", "email")

_CONFIDENCE: dict[MatchMethod, float] = {
    "exact": 1.0,
    "normalised": 0.9,
    "synonym": 0.8,
    "filler": 0.7,
    "fuzzy": 0.6,
}
_FUZZY_CUTOFF = 0.85
#: Words that decorate a header without changing its meaning ("Applicant Surname").
_FILLER = ("student", "applicant", "enquirer", "contact", "candidate", "person", "your", "the", "persons")

_SCHEME_SYNONYMS: dict[str, tuple[str, ...]] = {
    "mst": (
        "mst code",
        "master code",
        "master student code",
        "mst number",
        "student id",
        "student number",
        "student no",
        "sits id",
        "sits code",
    ),
    "sits_stu": ("stu code", "stu", "student code", "sits student code", "stu number"),
    "ucas_pid": ("ucas id", "ucas personal id", "personal id", "pid", "ucas number", "ucas no", "ucas pid"),
    "salesforce": ("salesforce id", "sf id", "sfid", "salesforce contact id"),
    "dynamics": ("dynamics id", "crm id", "dynamics contact id", "contactid"),
    "email": ("email id",),
}

_FIELD_SYNONYMS: dict[str, tuple[str, ...]] = {
    # Person
    "title": ("salutation", "honorific", "prefix", "name title"),
    "first_name": (
        "forename",
        "forenames",
        "given name",
        "given names",
        "first",
        "fname",
        "christian name",
        "first names",
    ),
    "middle_names": ("middle name", "middle names", "other names", "middle", "middle initial"),
    "last_name": ("surname", "family name", "last", "lname", "second name"),
    "preferred_name": ("known as", "nickname", "preferred forename", "chosen name", "preferred first name"),
    "date_of_birth": ("dob", "birth date", "birthdate", "birthday", "date born", "born"),
    "gender": ("sex", "gender identity"),
    "nationality": ("nationality code", "citizenship", "nat", "nation"),
    "domicile": ("country of domicile", "domicile code", "dom", "country of residence", "residence"),
    "email": ("e mail", "email address", "e mail address", "personal email", "mail"),
    "phone": ("telephone", "tel", "home phone", "landline", "phone number", "telephone number", "tel no"),
    "mobile": ("mobile phone", "mobile number", "cell", "cell phone", "mob", "mobile no", "cellphone"),
    "address_line1": ("address 1", "address line 1", "addr1", "address1", "street", "address"),
    "address_line2": ("address 2", "address line 2", "addr2", "address2"),
    "address_line3": ("address 3", "address line 3", "addr3", "address3"),
    "city": ("town", "town city", "city town", "locality"),
    "postcode": ("post code", "postal code", "zip", "zip code", "zipcode"),
    "country": ("address country", "country code", "country of address"),
    # Enquiry and application
    "course": ("course code", "programme", "program", "course of interest", "programme code", "subject"),
    "entry_year": ("year of entry", "entry", "intake", "start year", "intake year", "entry year"),
    "source": ("enquiry source", "lead source", "channel", "how did you hear about us"),
    "enquiry_date": ("date of enquiry", "enquiry received", "enquired on"),
    "status": ("enquiry status", "application status", "stage"),
    "route": ("application route", "ucas route", "route code"),
    "academic_year": ("ayr", "ayr code", "academic year code", "year"),
    "decision": ("offer decision", "decision code", "offer"),
    "response": ("applicant response", "response code", "reply"),
    "application_date": ("date applied", "applied on", "date of application"),
    "decision_date": ("date of decision", "decided on", "offer date"),
    "response_date": ("date of response", "responded on", "reply date"),
}

_KEY_SYNONYMS: dict[EntityKind, tuple[str, ...]] = {
    EntityKind.ENQUIRY: ("enquiry id", "enquiry code", "esd code", "enquiry reference", "enquiry number"),
    EntityKind.APPLICATION: (
        "application id",
        "application key",
        "application number",
        "application reference",
        "cap key",
    ),
}

#: Fields of the models that are not columns (structure, not data).
_NOT_COLUMNS = frozenset({"custom", "identifiers", "person", "list_name", "code"})
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_header(text: str) -> str:
    """``text`` reduced to lower-case letters and digits: "D.O.B." -> "dob", "E-mail" -> "email"."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_ALNUM.sub("", plain.casefold().replace("&", "and"))


def _words(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return [w for w in _NON_ALNUM.split(plain.casefold()) if w]


@dataclass(frozen=True)
class Target:
    """Somewhere a column can go: ``target`` in mapping syntax, a label for people, synonyms."""

    target: str
    label: str
    name: str
    synonyms: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """Normalised names that count as a normalised (not synonym) match."""
        return [normalise_header(self.name), normalise_header(self.label)]


@dataclass(frozen=True)
class ColumnMatch:
    """The suggestion for one column: a target (or None), how sure (0-1) and by which rule."""

    column: str
    target: str | None
    confidence: float
    method: MatchMethod | None
    label: str | None = None
    #: Why an unmapped column was left out although it looked like something.
    note: str | None = None


@dataclass
class SuggestedMapping:
    """A suggestion for every column, in the file's column order."""

    columns: list[ColumnMatch] = field(default_factory=list)

    @property
    def unmapped(self) -> list[str]:
        """Columns with no suggestion: shown to the person, who maps them or leaves them out."""
        return [c.column for c in self.columns if c.target is None]

    def as_mapping(self) -> dict[str, str]:
        """``column -> target`` for the columns that have a suggestion."""
        return {c.column: c.target for c in self.columns if c.target is not None}


def _label(name: str) -> str:
    return re.sub(r"(?<=\D)(\d)$", r" \1", name.replace("_", " ").capitalize())


def targets_for(
    entity: EntityKind | str,
    *,
    custom_fields: Mapping[str, CustomFieldDef] | Iterable[CustomFieldDef] = (),
    schemes: Sequence[str] = DEFAULT_SCHEMES,
) -> list[Target]:
    """Every target a column can be mapped to when importing ``entity``, standard fields first."""
    kind = EntityKind(entity)
    model = record_class(kind)
    targets: list[Target] = []
    for name in model.model_fields:
        if name in _NOT_COLUMNS:
            continue
        if name == "key":
            label = f"{kind.value.capitalize()} key"
            targets.append(Target("key", label, "key", _KEY_SYNONYMS.get(kind, ())))
            continue
        targets.append(Target(name, _label(name), name, _FIELD_SYNONYMS.get(name, ())))
    prefix = "id:" if kind is EntityKind.PERSON else "person.id:"
    for scheme in dict.fromkeys(s.lower() for s in schemes):
        label = f"Identifier ({scheme})"
        targets.append(Target(f"{prefix}{scheme}", label, scheme, _SCHEME_SYNONYMS.get(scheme, ())))
    defs = custom_fields.values() if isinstance(custom_fields, Mapping) else custom_fields
    for cf in defs:
        if cf.entity == kind.value:
            targets.append(Target(f"custom:{cf.name}", cf.label or _label(cf.name), cf.name))
    return targets


def _candidates(column: str, targets: Sequence[Target]) -> list[tuple[float, MatchMethod, int]]:
    """``(confidence, method, target index)`` for every target the column could mean."""
    found: dict[int, tuple[float, MatchMethod]] = {}

    def offer(index: int, method: MatchMethod) -> None:
        score = _CONFIDENCE[method]
        if index not in found or found[index][0] < score:
            found[index] = (score, method)

    stripped = column.strip()
    norm = normalise_header(stripped)
    words = _words(stripped)
    trimmed = "".join(w for w in words if w not in _FILLER)
    for i, target in enumerate(targets):
        if stripped in (target.target, target.label):
            offer(i, "exact")
        names = target.names()
        synonyms = [normalise_header(s) for s in target.synonyms]
        if norm in names:
            offer(i, "normalised")
        elif norm in synonyms:
            offer(i, "synonym")
        elif trimmed and trimmed != norm and (trimmed in names or trimmed in synonyms):
            offer(i, "filler")
    if not found and len(norm) >= 6:
        for i, target in enumerate(targets):
            for candidate in (*target.names(), *(normalise_header(s) for s in target.synonyms)):
                if len(candidate) >= 6:
                    ratio = difflib.SequenceMatcher(None, norm, candidate).ratio()
                    if ratio >= _FUZZY_CUTOFF:
                        offer(i, "fuzzy")
    return sorted(((score, method, i) for i, (score, method) in found.items()), key=lambda c: (-c[0], c[2]))


def suggest_mapping(
    columns: Sequence[str],
    entity: EntityKind | str = EntityKind.PERSON,
    *,
    custom_fields: Mapping[str, CustomFieldDef] | Iterable[CustomFieldDef] = (),
    schemes: Sequence[str] = DEFAULT_SCHEMES,
) -> SuggestedMapping:
    """Suggest a target for each of ``columns``; the surest claim on a target wins it."""
    targets = targets_for(entity, custom_fields=custom_fields, schemes=schemes)
    claims: list[tuple[float, int, int, MatchMethod]] = []
    wanted: dict[int, list[int]] = {}
    for position, column in enumerate(columns):
        for rank, (score, method, index) in enumerate(_candidates(column, targets)):
            wanted.setdefault(position, []).append(index)
            # Earlier candidates of one column and earlier columns win ties.
            claims.append((score - rank * 1e-6, position, index, method))
    claims.sort(key=lambda c: (-c[0], c[1], c[2]))
    chosen: dict[int, tuple[int, float, MatchMethod]] = {}
    taken: dict[int, int] = {}
    for score, position, index, method in claims:
        if position in chosen or index in taken:
            continue
        chosen[position] = (index, round(score, 2), method)
        taken[index] = position
    matches: list[ColumnMatch] = []
    for position, column in enumerate(columns):
        if position in chosen:
            index, score, method = chosen[position]
            target = targets[index]
            matches.append(ColumnMatch(column, target.target, score, method, target.label))
        elif position in wanted:
            index = wanted[position][0]
            note = f"looks like {targets[index].label}, already matched to column {columns[taken[index]]!r}"
            matches.append(ColumnMatch(column, None, 0.0, None, note=note))
        else:
            matches.append(ColumnMatch(column, None, 0.0, None))
    return SuggestedMapping(matches)
