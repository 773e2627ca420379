"""Every hook a plugin can implement. The argument names are the contract.

Hooks are synchronous. ``register_*`` hooks return things to add; the others are called for a
connection and answer ``None`` when the connection is not of their type (first answer wins).
A test fails if a hook or an argument here is not described in ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from .config import Connection
    from .connector import (
        ChangeEvent,
        CheckResult,
        ConnectorType,
        InboundRequest,
        InboundResult,
        OutboundMessage,
        PullResult,
        Received,
        SendOutcome,
    )
    from .model import CanonicalRecord

#: Bumped when a hook's arguments change incompatibly; plugins may declare ``AZORUS_PLUGIN_API``.
PLUGIN_API_VERSION = 1

hookspec = pluggy.HookspecMarker("azorus_connect")
hookimpl = pluggy.HookimplMarker("azorus_connect")


@hookspec
def azorus_register_connector_types() -> Sequence[ConnectorType]:
    """Return the connector types this plugin provides (name, settings, capabilities, default mapping)."""


@hookspec
def azorus_register_value_transforms() -> dict[str, Callable[..., Any]]:
    """Return named value transforms usable in mappings: ``name -> fn(value, *args) -> value``."""


@hookspec
def azorus_register_routes() -> Sequence[APIRouter]:
    """Return FastAPI routers to mount in the web app (paths are the plugin's own)."""


@hookspec
def azorus_register_admin_links() -> Sequence[tuple[str, str]]:
    """Return ``(label, path)`` entries to add to the admin UI's navigation (pages come from routes)."""


@hookspec
def azorus_register_commands(cli: click.Group) -> None:
    """Add click commands to the ``azorus-connect`` command group ``cli``."""


@hookspec(firstresult=True)
def azorus_receive(connection: Connection, request: InboundRequest) -> Received | None:
    """Turn an inbound HTTP ``request`` for ``connection`` into records (authenticate it first)."""


@hookspec(firstresult=True)
def azorus_render_response(
    connection: Connection, request: InboundRequest, result: InboundResult
) -> tuple[bytes, str] | None:
    """Render ``result`` as the response body for ``request``: ``(body, media_type)``."""


@hookspec(firstresult=True)
def azorus_pull(connection: Connection, watermark: str | None) -> PullResult | None:
    """Fetch the changes made in the external system since ``watermark`` (None: from the start)."""


@hookspec
def azorus_transform_record(
    connection: Connection, record: CanonicalRecord, source: dict[str, Any]
) -> CanonicalRecord | None:
    """Adjust a ``record`` after declarative mapping of ``source`` fields; return a replacement or None."""


@hookspec(firstresult=True)
def azorus_send(connection: Connection, messages: Sequence[OutboundMessage]) -> list[SendOutcome] | None:
    """Send ``messages`` (in queue order) to ``connection``'s system; one outcome per message."""


@hookspec(firstresult=True)
def azorus_check_connection(connection: Connection) -> CheckResult | None:
    """Check ``connection``'s credentials and that its system is reachable."""


@hookspec
def azorus_record_changed(event: ChangeEvent) -> None:
    """Called after a change to a record is committed (``event`` names fields, old and new values)."""


@hookspec
def azorus_request_completed(connection: Connection, result: InboundResult) -> None:
    """Called after an inbound request for ``connection`` has been answered and logged with ``result``."""
