"""Rendering admin pages: one Jinja2 environment, the shared base template and what every page needs.

A plugin adding admin pages makes its own :class:`AdminPages` with its template folder; its
templates can ``{% extends "base.html" %}`` and get the navigation, the signed-in user and the
``csrf_token`` for their forms::

    pages = AdminPages(Path(__file__).parent / "templates")
    return pages.render(request, "wizard.html", {"title": "Import"}, principal=principal)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from .. import __version__
from ..web.security import csrf_token

if TYPE_CHECKING:
    from .credentials import Principal

__all__ = ["CORE_LINKS", "STATIC_DIR", "TEMPLATE_DIR", "AdminPages", "nav_links", "pages"]

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/admin/static"

#: The core's navigation; plugins' links (``azorus_register_admin_links``) come after these.
CORE_LINKS: list[tuple[str, str]] = [
    ("Dashboard", "/admin/"),
    ("Request log", "/admin/requests"),
    ("Outbox", "/admin/outbox"),
    ("People", "/admin/people"),
    ("Reference lists", "/admin/reference-lists"),
    ("Connections", "/admin/connections"),
]
_ADMIN_ONLY_LINKS: list[tuple[str, str]] = [("API tokens", "/admin/tokens")]


def nav_links(request: Request, principal: Principal | None) -> list[tuple[str, str]]:
    """The navigation for this app: core pages, then every plugin's links (computed once per app)."""
    state = request.app.state
    plugin_links: list[tuple[str, str]] | None = getattr(state, "admin_plugin_links", None)
    if plugin_links is None:
        plugin_links = []
        hub = getattr(state, "hub", None)
        if hub is not None:
            for links in hub.plugins.hook.azorus_register_admin_links():
                for label, path in links or ():
                    if isinstance(path, str) and path.startswith("/") and not path.startswith("//"):
                        plugin_links.append((str(label), path))
        state.admin_plugin_links = plugin_links
    extra = _ADMIN_ONLY_LINKS if principal is not None and principal.is_admin else []
    return CORE_LINKS + plugin_links + extra


class AdminPages:
    """Renders admin templates; ``extra_dirs`` are searched before the core's templates."""

    def __init__(self, *extra_dirs: Path | str) -> None:
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(d)) for d in extra_dirs]
        loaders.append(jinja2.FileSystemLoader(str(TEMPLATE_DIR)))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def context(self, request: Request, principal: Principal | None) -> dict[str, Any]:
        """What the base template needs: user, navigation, CSRF token, static URL."""
        return {
            "request": request,
            "principal": principal,
            "csrf_token": csrf_token(request),
            "nav_links": nav_links(request, principal) if principal is not None else [],
            "current_path": request.url.path,
            "static_url": STATIC_URL,
            "version": __version__,
            "flashes": [],
        }

    def render(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        principal: Principal | None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """Render ``name`` with the base context plus ``context``."""
        data = self.context(request, principal)
        data.update(context or {})
        html = self.env.get_template(name).render(data)
        response = HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


#: The core's pages.
pages = AdminPages()
