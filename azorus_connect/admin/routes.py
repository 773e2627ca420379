"""The admin UI under ``/admin``: sign-in, dashboard, request log, outbox, people, reference lists,
connections and API tokens.  Pages read; every changing action is a POST that needs its CSRF token,
and the admin role unless noted."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from ..store.db import utcnow
from ..web.security import (
    AdminUser,
    ViewerUser,
    clear_session_cookie,
    csrf_protect,
    current_principal,
    ensure_presession,
    set_session_cookie,
)
from . import accounts, overview, people, request_log
from .credentials import Principal, Role
from .rendering import STATIC_DIR, pages

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["build_router"]

_STATIC_FILES = {"admin.css": "text/css"}
#: Fixed notices shown after an action (never text taken from the URL).
_NOTICES = {
    "retried": ("ok", "Message {id} is back in the queue and will be sent next."),
    "skipped": ("ok", "Message {id} was skipped."),
    "not-retried": ("error", "Message {id} is not parked or skipped any more."),
    "not-skipped": ("error", "Message {id} is not waiting or parked any more."),
    "revoked": ("ok", "Token {id} was revoked."),
    "signed-out": ("info", "You are signed out."),
}
CsrfChecked = Depends(csrf_protect)


def _notices(request: Request) -> list[tuple[str, str]]:
    key = request.query_params.get("notice", "")
    ident = request.query_params.get("id", "")
    if key not in _NOTICES:
        return []
    kind, text = _NOTICES[key]
    return [(kind, text.format(id=ident if ident.isdigit() else "?"))]


def _safe_next(target: str | None) -> str:
    """Only a local admin path may be a redirect target after sign-in."""
    if target and target.startswith("/admin") and not target.startswith(("//", "/\\")) and "\\" not in target:
        return target
    return "/admin/"


def _not_found(request: Request, principal: Principal, what: str) -> Response:
    return pages.render(
        request,
        "error.html",
        {"status_code": 404, "heading": "Not found", "message": what},
        principal=principal,
        status_code=404,
    )


_HEADINGS = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    429: "Slow down",
}


class _AdminRoute(APIRoute):
    """Answers a browser's refused request (403, 404, ...) with an HTML page instead of JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except HTTPException as exc:
                if exc.status_code < 400 or "text/html" not in request.headers.get("accept", ""):
                    raise
                principal = await run_in_threadpool(current_principal, request)
                context = {
                    "status_code": exc.status_code,
                    "heading": _HEADINGS.get(exc.status_code, "Something went wrong"),
                    "message": str(exc.detail),
                }
                return pages.render(
                    request,
                    "error.html",
                    context,
                    principal=principal,
                    status_code=exc.status_code,
                    headers=exc.headers,
                )

        return handler


def build_router(hub: Hub) -> APIRouter:
    """The admin pages for ``hub``."""
    router = APIRouter(prefix="/admin", include_in_schema=False, route_class=_AdminRoute)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in _STATIC_FILES:
            raise HTTPException(404, "no such file")
        return FileResponse(
            STATIC_DIR / name, media_type=_STATIC_FILES[name], headers={"Cache-Control": "max-age=3600"}
        )

    # -- signing in and out -----------------------------------------------------------------------

    @router.get("/sign-in")
    def sign_in_page(request: Request, next: str | None = None) -> Response:
        if current_principal(request) is not None:
            return RedirectResponse(_safe_next(next), status_code=303)
        response = Response()
        ensure_presession(request, response)
        page = pages.render(
            request,
            "signin.html",
            {"next_url": _safe_next(next), "error": None, "flashes": _notices(request)},
            principal=None,
        )
        page.raw_headers.extend(h for h in response.raw_headers if h[0] == b"set-cookie")
        return page

    @router.post("/sign-in", dependencies=[CsrfChecked])
    def sign_in(
        request: Request,
        username: Annotated[str, Form(max_length=200)],
        password: Annotated[str, Form(max_length=1000)],
        next: Annotated[str, Form(max_length=2000)] = "/admin/",
    ) -> Response:
        client_ip = request.client.host if request.client else None
        now = utcnow()
        with hub.store.write() as conn:
            outcome = accounts.sign_in(conn, username, password, client_ip, now)
            token = (
                accounts.start_session(conn, outcome.user_id, now) if outcome.user_id is not None else None
            )
        if token is None:
            if outcome.retry_after > 0:
                wait = int(outcome.retry_after) + 1
                error, status, headers = (
                    f"Too many failed sign-ins. Try again in {wait} seconds.",
                    429,
                    {"Retry-After": str(wait)},
                )
            else:
                error, status, headers = "The username or password is not right.", 401, {}
            return pages.render(
                request,
                "signin.html",
                {"next_url": _safe_next(next), "error": error, "username": username},
                principal=None,
                status_code=status,
                headers=headers,
            )
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_session_cookie(response, request, token)
        return response

    @router.post("/sign-out", dependencies=[CsrfChecked])
    def sign_out(request: Request, principal: ViewerUser) -> Response:
        session = request.cookies.get("azorus_session")
        if session:
            with hub.store.write() as conn:
                accounts.end_session(conn, session)
        response = RedirectResponse("/admin/sign-in?notice=signed-out", status_code=303)
        clear_session_cookie(response)
        return response

    # -- pages ------------------------------------------------------------------------------------

    @router.get("")
    def admin_root() -> Response:
        return RedirectResponse("/admin/", status_code=307)

    @router.get("/")
    def dashboard(request: Request, principal: ViewerUser) -> Response:
        with hub.store.read() as conn:
            data = overview.dashboard(conn, hub.config)
        return pages.render(request, "dashboard.html", data, principal=principal)

    @router.get("/requests")
    def requests_page(
        request: Request,
        principal: ViewerUser,
        connection: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        identifier: str | None = None,
        before: str | None = None,
        after: str | None = None,
    ) -> Response:
        flashes: list[tuple[str, str]] = []
        try:
            filters = request_log.RequestFilters.parse(connection, status, since, until, identifier)
            with hub.store.read() as conn:
                page = request_log.request_page(conn, filters, before=before, after=after)
            code = 200
        except request_log.FilterError as exc:
            filters, page, code = request_log.RequestFilters(), request_log.RequestPage([], None, None), 400
            flashes.append(("error", str(exc)))
        names = sorted(hub.config.connections)
        return pages.render(
            request,
            "requests.html",
            {
                "filters": filters,
                "page": page,
                "connection_names": names,
                "status_choices": request_log.STATUS_CHOICES,
                "flashes": flashes,
            },
            principal=principal,
            status_code=code,
        )

    @router.get("/requests/{request_id}")
    def request_page(request: Request, request_id: str, principal: ViewerUser) -> Response:
        with hub.store.read() as conn:
            detail = request_log.request_detail(conn, request_id[:40])
        if detail is None:
            return _not_found(request, principal, "There is no logged request with that id.")
        return pages.render(request, "request_detail.html", {"req": detail}, principal=principal)

    @router.get("/outbox")
    def outbox_page(
        request: Request, principal: ViewerUser, connection: str | None = None, status: str | None = None
    ) -> Response:
        status = status if status in overview.OUTBOX_STATUSES else ""
        with hub.store.read() as conn:
            groups = overview.outbox_groups(conn, hub.config, connection or None, status or None)
        return pages.render(
            request,
            "outbox.html",
            {
                "groups": groups,
                "filters": {"connection": connection or "", "status": status},
                "connection_names": sorted(hub.config.connections),
                "status_choices": overview.OUTBOX_STATUSES,
                "flashes": _notices(request),
            },
            principal=principal,
        )

    def _back_to_outbox(request: Request, notice: str, message_id: int) -> Response:
        target = request.headers.get("referer", "")
        path = "/admin/outbox"
        if "/admin/outbox?" in target:
            query = target.split("/admin/outbox?", 1)[1]
            kept = "&".join(p for p in query.split("&") if p.startswith(("connection=", "status=")))
            path = f"/admin/outbox?{kept}&" if kept else "/admin/outbox?"
        else:
            path += "?"
        return RedirectResponse(f"{path}notice={notice}&id={message_id}", status_code=303)

    @router.post("/outbox/{message_id}/retry", dependencies=[CsrfChecked])
    def retry_message(request: Request, message_id: int, principal: AdminUser) -> Response:
        done = hub.outbox.retry(message_id)
        return _back_to_outbox(request, "retried" if done else "not-retried", message_id)

    @router.post("/outbox/{message_id}/skip", dependencies=[CsrfChecked])
    def skip_message(request: Request, message_id: int, principal: AdminUser) -> Response:
        done = hub.outbox.skip(message_id)
        return _back_to_outbox(request, "skipped" if done else "not-skipped", message_id)

    @router.get("/people")
    def people_page(request: Request, principal: ViewerUser, q: str = "") -> Response:
        q = q.strip()[:200]
        with hub.store.read() as conn:
            exact = people.people_by_identifier(conn, q) if q else []
            found = people.search_people(conn, q) if q and len(exact) != 1 else []
        if len(exact) == 1:
            return RedirectResponse(f"/admin/people/{exact[0]}", status_code=303)
        return pages.render(request, "people.html", {"q": q, "people": found}, principal=principal)

    @router.get("/people/{person_id}")
    def person_page(request: Request, person_id: int, principal: ViewerUser) -> Response:
        with hub.store.read() as conn:
            detail = people.person_detail(conn, person_id, hub.config.custom_fields)
        if detail is None:
            return _not_found(request, principal, f"There is no person #{person_id}.")
        return pages.render(request, "person.html", {"person": detail}, principal=principal)

    @router.get("/reference-lists")
    def reference_lists_page(request: Request, principal: ViewerUser, list: str | None = None) -> Response:
        with hub.store.read() as conn:
            lists = overview.reference_lists(conn)
            names = {item["name"] for item in lists}
            selected = list if list in names else None
            values = overview.list_values(conn, selected) if selected else []
        return pages.render(
            request,
            "reference_lists.html",
            {"lists": lists, "selected": selected, "values": values},
            principal=principal,
        )

    def _connections_page(
        request: Request, principal: Principal, checked: dict[str, object] | None
    ) -> Response:
        redacted = hub.config.redacted()["connections"]
        items = [
            {
                "name": name,
                "type": data["type"],
                "config_text": json.dumps(data, indent=2, sort_keys=True, default=str),
                "check": checked if checked and checked.get("name") == name else None,
            }
            for name, data in redacted.items()
        ]
        return pages.render(request, "connections.html", {"connections": items}, principal=principal)

    @router.get("/connections")
    def connections_page(request: Request, principal: ViewerUser) -> Response:
        return _connections_page(request, principal, None)

    @router.post("/connections/{name}/check", dependencies=[CsrfChecked])
    def check_connection(request: Request, name: str, principal: ViewerUser) -> Response:
        """Viewers may check too: it reads, and changes nothing."""
        if name not in hub.config.connections:
            return _not_found(request, principal, "There is no connection with that name.")
        result = hub.check(name)
        return _connections_page(request, principal, {"name": name, "ok": result.ok, "detail": result.detail})

    # -- API tokens (admins only) -----------------------------------------------------------------

    def _tokens_page(request: Request, principal: Principal, new_token: str | None = None) -> Response:
        with hub.store.read() as conn:
            tokens = accounts.list_api_tokens(conn)
        return pages.render(
            request,
            "tokens.html",
            {
                "tokens": tokens,
                "new_token": new_token,
                "roles": [r.value for r in Role],
                "flashes": _notices(request),
            },
            principal=principal,
        )

    @router.get("/tokens")
    def tokens_page(request: Request, principal: AdminUser) -> Response:
        return _tokens_page(request, principal)

    @router.post("/tokens", dependencies=[CsrfChecked])
    def create_token(
        request: Request,
        principal: AdminUser,
        name: Annotated[str, Form(max_length=100)],
        role: Annotated[str, Form(max_length=20)] = "viewer",
    ) -> Response:
        try:
            with hub.store.write() as conn:
                token = accounts.create_api_token(conn, name, role, principal.username, utcnow())
        except accounts.AccountError as exc:
            raise HTTPException(400, str(exc)) from None
        return _tokens_page(request, principal, new_token=token)

    @router.post("/tokens/{token_id}/revoke", dependencies=[CsrfChecked])
    def revoke_token(request: Request, token_id: int, principal: AdminUser) -> Response:
        with hub.store.write() as conn:
            accounts.revoke_api_token(conn, token_id, utcnow())
        return RedirectResponse(f"/admin/tokens?notice=revoked&id={token_id}", status_code=303)

    return router
