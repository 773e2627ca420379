"""The SITS connector's hook implementations: what the hub calls, each handing off to its module."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azorus_connect.config import Connection
from azorus_connect.connector import (
    CheckResult,
    ConnectorType,
    InboundRequest,
    InboundResult,
    OutboundMessage,
    Received,
    SendOutcome,
)
from azorus_connect.exceptions import UnknownConnection
from azorus_connect.hookspecs import hookimpl
from azorus_connect.model import EntityKind

from . import inbound, outbound
from .settings import SitsSettings

if TYPE_CHECKING:
    import click

__all__ = [
    "DEFAULT_MAPPING",
    "TYPE_NAME",
    "azorus_check_connection",
    "azorus_receive",
    "azorus_register_commands",
    "azorus_register_connector_types",
    "azorus_register_value_transforms",
    "azorus_render_response",
    "azorus_send",
]

TYPE_NAME = "sits"

#: The shipped default mapping (``mapping.toml`` next to this module).
DEFAULT_MAPPING: dict[str, Any] = tomllib.loads((Path(__file__).parent / "mapping.toml").read_text("utf-8"))


def _settings(connection: Connection) -> SitsSettings | None:
    if connection.type != TYPE_NAME:
        return None
    assert isinstance(connection.settings, SitsSettings)
    return connection.settings


@hookimpl
def azorus_register_connector_types() -> Sequence[ConnectorType]:
    return [
        ConnectorType(
            name=TYPE_NAME,
            settings_model=SitsSettings,
            capabilities=frozenset({"receive", "send"}),
            entity_kinds=frozenset(EntityKind),
            default_mapping=DEFAULT_MAPPING,
            send_batch_size=1,
            secret_headers=("PSWD", "PASSWORD"),
            description="Tribal SITS:Vision: StuTalk posts in, SIW_RWS REST calls out",
        )
    ]


def _hub_id(value: Any, *args: str) -> Any:
    """A hub id carried in a SITS UDF: digits only; anything else (another system's id) is ignored."""
    if value is None:
        return None
    text = str(value).strip()
    return int(text) if text.isdigit() else None


@hookimpl
def azorus_register_value_transforms() -> dict[str, Callable[..., Any]]:
    return {"sits_hub_id": _hub_id}


@hookimpl
def azorus_receive(connection: Connection, request: InboundRequest) -> Received | None:
    settings = _settings(connection)
    if settings is None:
        return None
    if settings.inbound is None:
        raise UnknownConnection(
            f"connection {connection.name!r} takes no StuTalk posts (no inbound settings)"
        )
    return inbound.receive(connection, settings.inbound, request)


@hookimpl
def azorus_render_response(
    connection: Connection, request: InboundRequest, result: InboundResult
) -> tuple[bytes, str] | None:
    if _settings(connection) is None:
        return None
    return inbound.render_response(request, result)


@hookimpl
def azorus_send(connection: Connection, messages: Sequence[OutboundMessage]) -> list[SendOutcome] | None:
    settings = _settings(connection)
    if settings is None:
        return None
    if settings.outbound is None:
        reason = f"connection {connection.name!r} has no outbound settings (settings.outbound)"
        return [SendOutcome.failed(m.id, reason) for m in messages]
    outcomes: list[SendOutcome] = []
    for message in messages:  # serially: the next one only after this one is settled
        outcome = outbound.send(connection, settings.outbound, message)
        outcomes.append(outcome)
        if outcome.status != "sent":
            break
    return outcomes


@hookimpl
def azorus_check_connection(connection: Connection) -> CheckResult | None:
    settings = _settings(connection)
    if settings is None:
        return None
    if settings.outbound is None:
        return CheckResult(True, f"inbound only: SITS posts to /inbound/{connection.name}")
    return outbound.check(connection, settings.outbound)


@hookimpl
def azorus_register_commands(cli: click.Group) -> None:
    from .demo import demo

    cli.add_command(demo)
