"""azorus-connect: the integration hub between a university's CRM data and the systems around it.

The public API for plugin authors and embedders is re-exported here; everything else is internal.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import Config, Connection, Direction
from .connector import (
    Affected,
    ChangeEvent,
    CheckResult,
    ConnectorType,
    InboundRequest,
    InboundResult,
    OutboundMessage,
    PullResult,
    Received,
    SendOutcome,
    SourceRecord,
)
from .engine import ApplyOptions, RecordResult, Source
from .hookspecs import PLUGIN_API_VERSION, hookimpl
from .hub import Hub
from .model import (
    Application,
    CanonicalRecord,
    CustomFieldDef,
    Enquiry,
    EntityKind,
    Person,
    PersonLink,
    ReferenceValue,
)
from .redaction import Secret

__all__ = [
    "PLUGIN_API_VERSION",
    "Affected",
    "Application",
    "ApplyOptions",
    "CanonicalRecord",
    "ChangeEvent",
    "CheckResult",
    "Config",
    "Connection",
    "ConnectorType",
    "CustomFieldDef",
    "Direction",
    "Enquiry",
    "EntityKind",
    "Hub",
    "InboundRequest",
    "InboundResult",
    "OutboundMessage",
    "Person",
    "PersonLink",
    "PullResult",
    "Received",
    "RecordResult",
    "ReferenceValue",
    "Secret",
    "SendOutcome",
    "Source",
    "SourceRecord",
    "__version__",
    "hookimpl",
]
