"""Self-service CSV import: hostile files read safely, columns auto-mapped into saved profiles,
dry runs, batched and resumable runs stamped with their run, error reports and undo.
Loaded through the ``azorus_connect`` entry point ``csv_import``."""

from .hooks import (
    azorus_register_admin_links,
    azorus_register_commands,
    azorus_register_routes,
    azorus_register_value_transforms,
)

AZORUS_PLUGIN_API = 1

__all__ = [
    "AZORUS_PLUGIN_API",
    "azorus_register_admin_links",
    "azorus_register_commands",
    "azorus_register_routes",
    "azorus_register_value_transforms",
]
