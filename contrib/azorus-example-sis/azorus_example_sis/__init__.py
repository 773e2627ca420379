"""An example third-party azorus-connect plugin for Example SIS, a fictional student system.

It pulls students changed since a stored cursor and sends the hub's changes back in batches.
The hub finds it through the ``azorus_connect`` entry point in this distribution's pyproject.
"""

from .hooks import (
    azorus_check_connection,
    azorus_pull,
    azorus_register_connector_types,
    azorus_send,
)

__all__ = [
    "AZORUS_PLUGIN_API",
    "azorus_check_connection",
    "azorus_pull",
    "azorus_register_connector_types",
    "azorus_send",
]

#: The hub plugin API this plugin is written against.
AZORUS_PLUGIN_API = 1
