"""The settings of a ``type = "sits"`` connection: how SITS authenticates to us, how we reach SITS.

Written under ``[connections.NAME.settings]``; secrets only by reference (``{ env = "NAME" }``)::

    [connections.sits.settings.inbound]
    username = "STUTALK"
    password = { env = "SITS_INBOUND_PASSWORD" }   # HTTP Basic
    pswd = { env = "SITS_EOR_PASSWORD" }           # the EOR password, sent as the PSWD header
    allowed_ips = ["10.1.2.0/24"]

    [connections.sits.settings.outbound]
    base_url = "https://evision.example.ac.uk/urd/sits.urd/run/SIW_RWS/"
    username = "STUTALK_AZORUS"
    password = { env = "SITS_RWS_PASSWORD" }
    services = { enquiry = "CRM_ESD_IN" }
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from azorus_connect.redaction import SENSITIVE_HEADERS, Secret

__all__ = ["BodyTemplate", "InboundSettings", "OutboundSettings", "SitsSettings"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class InboundSettings(BaseModel):
    """What a StuTalk EOR must present, and how its payload is read."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    #: HTTP Basic user name and password (both, or neither).
    username: str | None = None
    password: Secret | None = None
    #: The shared secret SITS sends in a header (the EOR's password arrives as ``PSWD``).
    pswd: Secret | None = None
    pswd_header: str = "PSWD"
    #: How the header carries it: as written, or as the MD5 hex of the secret (either case).
    pswd_format: Literal["plain", "md5"] = "plain"
    #: ``any``: one configured method that matches is enough; ``all``: every configured one must.
    require: Literal["any", "all"] = "any"
    #: Client addresses or networks allowed to post (empty: any address).
    allowed_ips: list[IPNetwork] = Field(default_factory=list)
    #: For ``application/x-www-form-urlencoded`` posts: the form field holding the XML.
    form_field: str = "DATA"
    max_depth: int = Field(32, ge=4, le=200)
    max_rows: int = Field(10_000, ge=1)
    #: Child entities whose fields belong to the row they are nested in (``STU.SRS/MRE/MST``).
    merge_nested: list[str] = Field(default_factory=lambda: ["MRE", "MST"])
    #: Reference tables not named in the mapping fill a list of this name (``{table}`` = the table code).
    reference_list_name: str = "{table}"

    @field_validator("allowed_ips", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        try:
            return [ipaddress.ip_network(str(v), strict=False) for v in value]
        except ValueError as exc:
            raise ValueError(f"allowed_ips: {exc}") from None

    @field_validator("pswd_header")
    @classmethod
    def _masked_header(cls, value: str) -> str:
        if value.lower() not in SENSITIVE_HEADERS:
            allowed = ", ".join(sorted(h for h in SENSITIVE_HEADERS if "cookie" not in h))
            raise ValueError(f"pswd_header must be a header the request log masks: one of {allowed}")
        return value

    @model_validator(mode="after")
    def _one_method(self) -> InboundSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("inbound: give both username and password for HTTP Basic, or neither")
        if self.username is None and self.pswd is None:
            raise ValueError("inbound: configure HTTP Basic (username + password) and/or pswd")
        return self


class BodyTemplate(BaseModel):
    """The XML body posted for one entity kind: root and item tags, and tag -> value path.

    A path names a value of the queued record: ``hub_id``, ``course``, ``person.first_name``,
    ``person.identifiers.mst``, ``person.custom.NAME``.  Empty values are left out.
    """

    model_config = ConfigDict(extra="forbid")

    root: str
    item: str | None = None
    tags: dict[str, str]

    @field_validator("root", "item", "tags")
    @classmethod
    def _xml_names(cls, value: object) -> object:
        names = list(value) if isinstance(value, dict) else [value] if isinstance(value, str) else []
        for name in names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
                raise ValueError(f"{name!r} is not an XML tag name")
        return value


def _default_bodies() -> dict[str, BodyTemplate]:
    return {
        "enquiry": BodyTemplate(
            root="EnquirerList",
            item="Enquirer",
            tags={
                "CrmId": "person.hub_id",
                "MasterStudentCode": "person.identifiers.mst",
                "EnquiryCode": "key",
                "Title": "person.title",
                "Forename1": "person.first_name",
                "Surname": "person.last_name",
                "DateOfBirth": "person.date_of_birth",
                "EmailAddress": "person.email",
                "CourseCode": "course",
                "AcademicYear": "entry_year",
                "Source": "source",
            },
        ),
        "person": BodyTemplate(
            root="PersonList",
            item="Person",
            tags={
                "CrmId": "hub_id",
                "MasterStudentCode": "identifiers.mst",
                "Title": "title",
                "Forename1": "first_name",
                "Surname": "last_name",
                "DateOfBirth": "date_of_birth",
                "EmailAddress": "email",
            },
        ),
    }


class OutboundSettings(BaseModel):
    """How the hub writes into SITS: its ``SIW_RWS`` REST services."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    #: The RWS root, e.g. ``https://host/urd/sits.urd/run/SIW_RWS/``.
    base_url: str
    #: The RWS service that takes each entity kind.
    services: dict[str, str] = Field(default_factory=lambda: {"enquiry": "CRM_ESD_IN"})
    #: The URL posted to: ``{base_url}``, ``{service}``, and any value path in braces (``{key}``,
    #: ``{person.identifiers.mst}``); values are made safe for one path segment.
    url_template: str = "{base_url}{service}/"
    #: What replaces ``/`` inside a path value (SITS keys like ``2025/6`` cannot contain one).
    slash_replacement: str = "-"
    method: Literal["POST", "PUT"] = "POST"
    username: str
    password: Secret
    success_codes: list[int] = Field(default_factory=lambda: [200, 201])
    #: Regular expressions (case-insensitive) that mark a 200 body as a failure.
    error_patterns: list[str] = Field(
        default_factory=lambda: [
            r"<status>\s*-\d+\s*</status>",
            r"<messagebuffer>\s*error",
            r'"status"\s*:\s*-\d',
        ]
    )
    bodies: dict[str, BodyTemplate] = Field(default_factory=_default_bodies)
    #: The reply tag carrying the master code SITS assigned, written back as identifier ``mst``.
    mst_tag: str = "MasterStudentCode"
    mst_scheme: str = "mst"
    timeout: float = Field(30.0, gt=0)
    verify_tls: bool = True

    @field_validator("error_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"error_patterns: {pattern!r} is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _bodies_for_services(self) -> OutboundSettings:
        missing = sorted(set(self.services) - set(self.bodies))
        if missing:
            raise ValueError(f"outbound: no body template for {', '.join(missing)} (add bodies.{missing[0]})")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("outbound.base_url must start with http:// or https://")
        return self


class SitsSettings(BaseModel):
    """A SITS connection: ``inbound`` (StuTalk posting to us) and/or ``outbound`` (we post to RWS)."""

    model_config = ConfigDict(extra="forbid")

    inbound: InboundSettings | None = None
    outbound: OutboundSettings | None = None
