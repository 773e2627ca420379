"""SITS:Vision connector over StuTalk: XET posts in (STU, CAP, ESD, MST, reference tables), enquiries
out to the site's ``SIW_RWS`` services.  Loaded through the ``azorus_connect`` entry point ``sits``."""

from .hooks import (
    azorus_check_connection,
    azorus_receive,
    azorus_register_commands,
    azorus_register_connector_types,
    azorus_register_value_transforms,
    azorus_render_response,
    azorus_send,
)

AZORUS_PLUGIN_API = 1

__all__ = [
    "AZORUS_PLUGIN_API",
    "azorus_check_connection",
    "azorus_receive",
    "azorus_register_commands",
    "azorus_register_connector_types",
    "azorus_register_value_transforms",
    "azorus_render_response",
    "azorus_send",
]
