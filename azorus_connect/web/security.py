"""Who may do what in the admin UI and the JSON API: sessions, API tokens, roles and CSRF.

Plugins that add admin pages use the same FastAPI dependencies as the core pages:

* ``require_viewer`` / ``require_admin`` return the :class:`Principal` (an admin is also a viewer;
  a viewer asking for an admin action gets 403; nobody signed in gets 401, or a redirect to the
  sign-in page when a browser asks for a page);
* ``csrf_protect`` refuses a changing request (POST, PUT, PATCH, DELETE) from a browser session
  unless it carries the session's CSRF token, as the form field ``csrf_token`` or the header
  ``X-CSRF-Token``; pages render the token with :func:`csrf_token`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response
from starlette.status import HTTP_303_SEE_OTHER

from ..admin import accounts
from ..admin.credentials import Principal, Role, csrf_token_for, csrf_token_matches, new_session_token

if TYPE_CHECKING:
    from ..store.db import Store

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "PRESESSION_COOKIE",
    "SESSION_COOKIE",
    "AdminUser",
    "Principal",
    "Role",
    "ViewerUser",
    "clear_session_cookie",
    "csrf_protect",
    "csrf_token",
    "current_principal",
    "ensure_presession",
    "require_admin",
    "require_viewer",
    "set_session_cookie",
]

SESSION_COOKIE = "azorus_session"
#: Seeds the CSRF token of the sign-in form, before there is a session.
PRESESSION_COOKIE = "azorus_presession"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def store_of(request: Request) -> Store:
    """The hub's store, as the web app keeps it."""
    return request.app.state.hub.store  # type: ignore[no-any-return]


def _is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """Send the session cookie: HttpOnly, SameSite=Lax, Secure when served over TLS."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_is_tls(request),
        path="/",
    )
    response.delete_cookie(PRESESSION_COOKIE, path="/")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def ensure_presession(request: Request, response: Response) -> str:
    """The pre-sign-in CSRF seed, setting its cookie when the browser has none yet."""
    seed = request.cookies.get(PRESESSION_COOKIE)
    if not seed or len(seed) > 100:
        seed = new_session_token()
        response.set_cookie(
            PRESESSION_COOKIE, seed, httponly=True, samesite="lax", secure=_is_tls(request), path="/"
        )
        request.state.presession = seed
    return seed


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def current_principal(request: Request) -> Principal | None:
    """The API client (bearer token) or signed-in user making ``request``, or None."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal: Principal | None = None
    token = _bearer(request)
    session = request.cookies.get(SESSION_COOKIE)
    if token is not None:
        now = _utcnow()
        with store_of(request).read() as conn:
            match = accounts.find_api_token(conn, token, now)
        if match is not None:
            principal = match.principal
            if match.stale:
                with store_of(request).write() as conn:
                    accounts.touch_api_token(conn, match.token_id, now)
    elif session:
        now = _utcnow()
        with store_of(request).read() as conn:
            found = accounts.find_session(conn, session, now)
        if found is not None:
            principal = found.principal
            if found.stale:
                with store_of(request).write() as conn:
                    accounts.touch_session(conn, session, now)
    request.state.principal = principal
    return principal


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def require_viewer(request: Request) -> Principal:
    """Any signed-in user or API client; otherwise 401 (a browser is sent to the sign-in page)."""
    principal = current_principal(request)
    if principal is not None:
        return principal
    if _wants_html(request) and request.method in _SAFE_METHODS:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            HTTP_303_SEE_OTHER, headers={"Location": f"/admin/sign-in?next={quote(target, safe='')}"}
        )
    if _bearer(request) is not None:
        raise HTTPException(
            401, "the API token is unknown or revoked", headers={"WWW-Authenticate": "Bearer"}
        )
    raise HTTPException(401, "sign in or send an API token", headers={"WWW-Authenticate": "Bearer"})


def require_admin(principal: Annotated[Principal, Depends(require_viewer)]) -> Principal:
    """An admin; a viewer gets 403 (checked here, on the server, for every changing action)."""
    if not principal.is_admin:
        raise HTTPException(403, "this action needs the admin role")
    return principal


def csrf_token(request: Request) -> str:
    """The CSRF token to put in forms rendered for ``request``."""
    seed = request.cookies.get(SESSION_COOKIE) or getattr(request.state, "presession", None)
    seed = seed or request.cookies.get(PRESESSION_COOKIE)
    return csrf_token_for(seed) if seed else ""


async def csrf_protect(request: Request) -> None:
    """Refuse a changing browser request (cookie-authenticated) without its CSRF token (403).

    Requests authenticated by a bearer token carry no ambient credentials and need no CSRF token.
    """
    if request.method in _SAFE_METHODS or _bearer(request) is not None:
        return
    seed = request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRESESSION_COOKIE)
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None and "form" in request.headers.get("content-type", ""):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    if not csrf_token_matches(seed, submitted):
        raise HTTPException(403, "the form's security token is missing or out of date: reload the page")


ViewerUser = Annotated[Principal, Depends(require_viewer)]
AdminUser = Annotated[Principal, Depends(require_admin)]
