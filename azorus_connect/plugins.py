"""Finding and loading plugins: entry points in the group ``azorus_connect``.

Loading is resilient: a plugin that fails to import or register is reported and skipped, unless
``AZORUS_STRICT_PLUGINS=1`` (for plugin authors), which makes it fatal.  ``AZORUS_PLUGINS`` (allow
list) and ``AZORUS_DISABLE_PLUGINS`` (block list), both comma-separated names, select plugins.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .connector import ConnectorType
from .exceptions import PluginError

__all__ = ["ENTRY_POINT_GROUP", "PluginHost", "PluginInfo"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "azorus_connect"

#: Behaviour the core itself provides through the same hooks as any plugin.
BUILTIN_PLUGINS = ("azorus_connect.transform.transforms",)


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin, as ``azorus-connect plugins`` shows it."""

    name: str
    version: str | None
    module: str
    hooks: list[str] = field(default_factory=list)
    connector_types: list[str] = field(default_factory=list)
    builtin: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "module": self.module,
            "hooks": self.hooks,
            "connector_types": self.connector_types,
            "builtin": self.builtin,
            "error": self.error,
        }


def _names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


class PluginHost:
    """The pluggy manager plus what the hub needs to know about each plugin."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("azorus_connect")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self._types: dict[str, ConnectorType] | None = None
        self._transforms: dict[str, Any] | None = None

    @property
    def hook(self) -> Any:
        return self.pm.hook

    @classmethod
    def load(cls, *, entry_points: bool = True, extra: Iterable[ModuleType | object] = ()) -> PluginHost:
        """Load the built-in plugins, then every installed entry point (filtered), then ``extra``."""
        host = cls()
        strict = os.environ.get("AZORUS_STRICT_PLUGINS", "") not in ("", "0", "false")
        for modname in BUILTIN_PLUGINS:
            module = importlib.import_module(modname)
            host._register(module, name=modname.rsplit(".", 1)[-1], version=None, builtin=True)
        if entry_points:
            allow, block = _names("AZORUS_PLUGINS"), _names("AZORUS_DISABLE_PLUGINS") or set()
            for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                if ep.name in block or (allow is not None and ep.name not in allow):
                    continue
                version = ep.dist.version if ep.dist else None
                try:
                    obj = ep.load()
                    _check_api_version(ep.name, obj)
                    host._register(obj, name=ep.name, version=version)
                except Exception as exc:
                    if strict:
                        raise PluginError(f"plugin {ep.name!r} failed to load: {exc}") from exc
                    log.error("plugin %s failed to load and is skipped: %s", ep.name, exc)
                    host.infos.append(PluginInfo(ep.name, version, ep.value, error=str(exc)))
        for obj in extra:
            name = getattr(obj, "__name__", type(obj).__name__)
            host._register(obj, name=name, version=None)
        try:
            host.connector_types()
        except PluginError:
            if strict:
                raise
        return host

    def _register(self, obj: object, *, name: str, version: str | None, builtin: bool = False) -> None:
        self.pm.register(obj, name=name)
        hooks = sorted(h.name for h in self.pm.get_hookcallers(obj) or [])
        module = getattr(obj, "__name__", type(obj).__module__)
        self.infos.append(PluginInfo(name, version, module, hooks=hooks, builtin=builtin))
        self._types = None
        self._transforms = None

    def connector_types(self) -> dict[str, ConnectorType]:
        """Every connector type, by name; a name claimed twice is a plugin error."""
        if self._types is None:
            types: dict[str, ConnectorType] = {}
            for impl in self.pm.hook.azorus_register_connector_types.get_hookimpls():
                plugin_name = impl.plugin_name
                declared: Iterable[ConnectorType] = impl.function() or ()  # type: ignore[assignment]
                for ctype in declared:
                    if ctype.name in types:
                        raise PluginError(f"connector type {ctype.name!r} is declared twice")
                    types[ctype.name] = ctype
                    for info in self.infos:
                        if info.name == plugin_name:
                            info.connector_types.append(ctype.name)
            self._types = types
        return self._types

    def value_transforms(self) -> dict[str, Any]:
        """Every named value transform; a later plugin may not silently replace an earlier one."""
        if self._transforms is None:
            found: dict[str, Any] = {}
            for result in reversed(self.pm.hook.azorus_register_value_transforms()):
                for name, fn in (result or {}).items():
                    if name in found:
                        raise PluginError(f"value transform {name!r} is registered twice")
                    found[name] = fn
            self._transforms = found
        return self._transforms

    def admin_links(self) -> list[tuple[str, str]]:
        return [link for links in self.call_each("azorus_register_admin_links") for link in (links or ())]

    def call_each(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of a ``register_*`` hook; one that fails is logged and left out
        (fatal under ``AZORUS_STRICT_PLUGINS=1``), so one broken plugin cannot take the hub down."""
        strict = os.environ.get("AZORUS_STRICT_PLUGINS", "") not in ("", "0", "false")
        results = []
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            args = {name: kwargs[name] for name in impl.argnames}
            try:
                results.append(impl.function(**args))
            except Exception as exc:
                if strict:
                    raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook_name}: {exc}") from exc
                log.error("plugin %s failed in %s and is left out: %s", impl.plugin_name, hook_name, exc)
        return results


def _check_api_version(name: str, obj: Any) -> None:
    wanted = getattr(obj, "AZORUS_PLUGIN_API", None)
    if wanted is not None and int(wanted) != hookspecs.PLUGIN_API_VERSION:
        raise PluginError(
            f"plugin {name!r} targets plugin API {wanted}, this hub provides {hookspecs.PLUGIN_API_VERSION}"
        )
