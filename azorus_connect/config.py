"""The configuration file (``azorus.toml``): connections, directions, mappings, custom fields.

Secrets appear only by reference (see :mod:`azorus_connect.redaction`).  Every problem is a
:class:`~azorus_connect.exceptions.ConfigError` naming the file, the key and what is wrong.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .exceptions import ConfigError
from .model import CustomFieldDef, EntityKind

if TYPE_CHECKING:
    from .plugins import PluginHost
    from .transform.mapping import Mapping as RecordMapping

__all__ = ["Config", "Connection", "Direction", "HubSettings", "ListDef", "config_path", "load_config"]

DEFAULT_CONFIG = "azorus.toml"


class Direction(StrEnum):
    RECEIVE = "receive"
    SEND = "send"
    BOTH = "both"
    OFF = "off"


class HubSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The URL people use to reach the hub (shown by the CLI and the demo).
    public_url: str = "http://127.0.0.1:8000"
    #: Default for connections that do not set ``unknown_codes``.
    unknown_codes: Literal["strict", "lenient"] = "lenient"


class ListDef(BaseModel):
    """A reference list declared in the config (its values may also come from a connector)."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = None
    values: dict[str, str] = Field(default_factory=dict)


class _ConnectionFile(BaseModel):
    """A ``[connections.NAME]`` table as written."""

    model_config = ConfigDict(extra="forbid")

    type: str
    enabled: bool = True
    description: str | None = None
    directions: dict[EntityKind, Direction] = Field(default_factory=dict)
    #: Identifier schemes to match people on, in order.
    match_on: list[str] = Field(default_factory=lambda: ["mst"])
    #: Seconds between outbox polls for this connection.
    poll_interval: float = Field(5.0, gt=0)
    #: Seconds between automatic pulls (None: only ``azorus-connect sync``).
    pull_interval: float | None = Field(None, gt=0)
    #: A permanently failed message holds the queue (keeps order) or is skipped.
    on_failure: Literal["hold", "skip"] = "hold"
    unknown_codes: Literal["strict", "lenient"] | None = None
    max_attempts: int = Field(10, ge=1)
    #: Seconds to wait before each retry of a transient failure (the last one repeats).
    retry_delays: list[float] = Field(default_factory=lambda: [1.0, 5.0, 15.0, 60.0, 300.0])
    max_body_bytes: int = Field(10_000_000, gt=0)
    #: Plugin-specific settings, validated by the connector type's settings model.
    settings: dict[str, Any] = Field(default_factory=dict)
    #: Overrides of the connector type's default mapping, per source entity.
    mapping: dict[str, Any] = Field(default_factory=dict)


class Connection(BaseModel):
    """A configured connection, as hooks see it."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    type: str
    enabled: bool
    description: str | None
    directions: dict[EntityKind, Direction]
    match_on: list[str]
    poll_interval: float
    pull_interval: float | None
    on_failure: Literal["hold", "skip"]
    unknown_codes: Literal["strict", "lenient"]
    max_attempts: int
    retry_delays: list[float]
    max_body_bytes: int
    settings: Any
    mapping: Any  # azorus_connect.transform.mapping.Mapping

    def direction(self, kind: EntityKind | str) -> Direction:
        return self.directions.get(EntityKind(kind), Direction.OFF)

    def receives(self, kind: EntityKind | str) -> bool:
        return self.direction(kind) in (Direction.RECEIVE, Direction.BOTH)

    def sends(self, kind: EntityKind | str) -> bool:
        return self.direction(kind) in (Direction.SEND, Direction.BOTH)

    @property
    def record_mapping(self) -> RecordMapping:
        return self.mapping  # type: ignore[no-any-return]


class Config(BaseModel):
    """The whole configuration, with connections validated against their connector types."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: Path | None = None
    hub: HubSettings = Field(default_factory=HubSettings)
    custom_fields: dict[str, CustomFieldDef] = Field(default_factory=dict)
    lists: dict[str, ListDef] = Field(default_factory=dict)
    connections: dict[str, Connection] = Field(default_factory=dict)

    def connection(self, name: str) -> Connection:
        from .exceptions import UnknownConnection

        try:
            return self.connections[name]
        except KeyError:
            raise UnknownConnection(f"no connection named {name!r}") from None

    def redacted(self) -> dict[str, Any]:
        """The configuration as data with every secret masked: safe to show in the UI."""
        out: dict[str, Any] = {"hub": self.hub.model_dump(), "connections": {}}
        for name, conn in self.connections.items():
            settings = conn.settings.model_dump(mode="json") if isinstance(conn.settings, BaseModel) else {}
            out["connections"][name] = {
                "type": conn.type,
                "enabled": conn.enabled,
                "directions": {k.value: v.value for k, v in conn.directions.items()},
                "match_on": conn.match_on,
                "poll_interval": conn.poll_interval,
                "on_failure": conn.on_failure,
                "unknown_codes": conn.unknown_codes,
                "settings": settings,
            }
        out["custom_fields"] = {k: v.model_dump() for k, v in self.custom_fields.items()}
        return out


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config``, else ``AZORUS_CONFIG``, else ``./azorus.toml``."""
    return Path(explicit or os.environ.get("AZORUS_CONFIG") or DEFAULT_CONFIG)


def _key(loc: tuple[Any, ...], prefix: str) -> str:
    return ".".join([prefix, *(str(p) for p in loc)]) if prefix else ".".join(str(p) for p in loc)


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None,
    plugins: PluginHost,
    *,
    base_dir: Path | None = None,
) -> Config:
    """Read and validate the config file (or an already-parsed mapping) against the loaded plugins.

    A missing default file gives an empty configuration; a missing explicit file is an error.
    """
    from .transform.mapping import build_mapping

    file_label: str | None
    if source is None or isinstance(source, (str, os.PathLike)):
        path = config_path(source)
        file_label = str(path)
        if not path.exists():
            if source is None and not os.environ.get("AZORUS_CONFIG"):
                return Config(path=None)
            raise ConfigError("file not found", file=file_label)
        try:
            data: Mapping[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", file=file_label) from None
        base_dir = base_dir or path.parent
    else:
        path, file_label, data = None, None, source

    known = {"hub", "custom_fields", "lists", "connections"}
    for top in data:
        if top not in known:
            raise ConfigError(f"unknown section (expected one of {sorted(known)})", file=file_label, key=top)

    try:
        hub = HubSettings.model_validate(data.get("hub", {}))
        custom = {
            name: CustomFieldDef.model_validate({**spec, "name": name})
            for name, spec in (data.get("custom_fields") or {}).items()
        }
        lists = {name: ListDef.model_validate(spec) for name, spec in (data.get("lists") or {}).items()}
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(err["msg"], file=file_label, key=_key(err["loc"], "")) from None
    for name, cf in custom.items():
        if cf.type == "list" and not cf.list:
            raise ConfigError(
                'a list-typed custom field needs list = "NAME"',
                file=file_label,
                key=f"custom_fields.{name}.list",
            )

    types = plugins.connector_types()
    connections: dict[str, Connection] = {}
    for name, raw in (data.get("connections") or {}).items():
        prefix = f"connections.{name}"
        try:
            spec = _ConnectionFile.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(err["msg"], file=file_label, key=_key(err["loc"], prefix)) from None
        ctype = types.get(spec.type)
        if ctype is None:
            raise ConfigError(
                f"unknown connector type {spec.type!r} (installed: {', '.join(sorted(types)) or 'none'})",
                file=file_label,
                key=f"{prefix}.type",
            )
        for kind in spec.directions:
            if kind not in ctype.entity_kinds and spec.directions[kind] != Direction.OFF:
                raise ConfigError(
                    f"connector type {spec.type!r} does not handle {kind.value!r}",
                    file=file_label,
                    key=f"{prefix}.directions.{kind.value}",
                )
        try:
            settings = ctype.settings_model.model_validate(spec.settings, context={"base_dir": base_dir})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                err["msg"], file=file_label, key=_key(err["loc"], f"{prefix}.settings")
            ) from None
        try:
            mapping = build_mapping(ctype.default_mapping, spec.mapping, custom_fields=custom)
        except ValueError as exc:
            raise ConfigError(str(exc), file=file_label, key=f"{prefix}.mapping") from None
        connections[name] = Connection(
            name=name,
            type=spec.type,
            enabled=spec.enabled,
            description=spec.description,
            directions=dict(spec.directions),
            match_on=[s.lower() for s in spec.match_on],
            poll_interval=spec.poll_interval,
            pull_interval=spec.pull_interval,
            on_failure=spec.on_failure,
            unknown_codes=spec.unknown_codes or hub.unknown_codes,
            max_attempts=spec.max_attempts,
            retry_delays=spec.retry_delays,
            max_body_bytes=spec.max_body_bytes,
            settings=settings,
            mapping=mapping,
        )
    return Config(path=path, hub=hub, custom_fields=custom, lists=lists, connections=connections)
