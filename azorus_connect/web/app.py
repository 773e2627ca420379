"""The web app: ``POST /inbound/{connection}``, ``/api/`` (OpenAPI at ``/docs``), ``/admin``,
``/healthz`` and ``/metrics``.  Plugins add routes through ``azorus_register_routes``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import text

from .. import __version__
from ..connector import InboundRequest
from .metrics import Metrics

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["app_from_env", "create_app"]

#: Bodies are read up to the connection's limit; an unknown connection gets this much.
_UNKNOWN_CONNECTION_LIMIT = 1_000_000


_INBOUND_RESPONSES = {
    200: "Applied: the records were updated or were already as sent",
    201: "Applied: at least one record was created",
    400: "The payload could not be read",
    401: "Missing or wrong credentials",
    403: "The client address is not allowed",
    404: "No enabled connection of that name",
    406: "The connection does not receive this kind of record",
    409: "The identifiers match more than one person",
    413: "The body is larger than the connection accepts",
    415: "The content type is not one the connection reads",
    422: "A record is invalid (the answer names it); nothing was stored",
    503: "The hub cannot store it now; send it again later",
}

_INBOUND_MEDIA = ("text/xml", "application/xml", "application/x-www-form-urlencoded", "application/json")

#: The inbound route as the API documentation shows it (the route itself is a Starlette route).
INBOUND_OPENAPI: dict[str, Any] = {
    "post": {
        "tags": ["inbound"],
        "summary": "Receive a payload for a connection",
        "description": (
            "The body is handed to the connection's plugin (StuTalk XML for SITS), its records are "
            "stored and the request is logged. The body of the answer is the plugin's (XML for SITS); "
            "the `X-Request-Id` header names the request log entry."
        ),
        "operationId": "inbound",
        "parameters": [{"name": "connection", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string"}}
                for media in (
                    "text/xml",
                    "application/xml",
                    "application/x-www-form-urlencoded",
                    "application/json",
                )
            },
        },
        "responses": {str(code): {"description": text} for code, text in _INBOUND_RESPONSES.items()},
    }
}


def _document_inbound(app: FastAPI) -> None:
    """Add the inbound route to the OpenAPI document FastAPI builds (it lists only its own routes)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["paths"] = {"/inbound/{connection}": INBOUND_OPENAPI, **schema["paths"]}
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(hub: Hub) -> FastAPI:
    """Build the ASGI app serving ``hub``."""
    app = FastAPI(
        title="azorus-connect",
        version=__version__,
        description="Integration hub for university CRM data: inbound StuTalk, JSON API, admin UI.",
    )
    app.state.hub = hub
    metrics = Metrics(hub)
    app.state.metrics = metrics

    async def inbound(request: Request) -> Response:
        """The body is handed to the connection's plugin; the status code says what happened."""
        started = time.perf_counter()
        connection = request.path_params["connection"]
        conn = hub.config.connections.get(connection)
        limit = conn.max_body_bytes if conn is not None else _UNKNOWN_CONNECTION_LIMIT
        too_large = False
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            too_large = True
            body = b""
        else:
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    too_large = True
                    break
                chunks.append(chunk)
            body = b"".join(chunks)
        inbound_request = InboundRequest(
            connection=connection,
            method=request.method,
            path=request.url.path,
            headers=request.headers,
            query=dict(request.query_params),
            body=body,
            content_type=request.headers.get("content-type", ""),
            client_ip=request.client.host if request.client else None,
        )
        status, payload, media, result = await hub.inbound.answer(
            inbound_request, too_large=too_large, started=started
        )
        metrics.inbound.labels(connection if conn is not None else "-", str(status)).inc()
        metrics.inbound_seconds.labels(connection if conn is not None else "-").observe(
            time.perf_counter() - started
        )
        return Response(
            payload, status_code=status, media_type=media, headers={"X-Request-Id": result.request_id}
        )

    # The busiest route is a plain Starlette route: FastAPI's parameter and response handling,
    # which it would not use, cost more per request than the rest of the HTTP stack.
    app.add_route("/inbound/{connection}", inbound, methods=["POST"], include_in_schema=False)
    _document_inbound(app)

    @app.get("/healthz", tags=["operations"], summary="Liveness and database reachability")
    def healthz() -> JSONResponse:
        try:
            with hub.store.read() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse(
            {"status": "ok", "version": __version__, "connections": len(hub.config.connections)}
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/admin")

    from ..admin.routes import build_router as admin_router
    from .api import build_router as api_router

    app.include_router(api_router(hub))
    app.include_router(admin_router(hub))
    for routers in hub.plugins.call_each("azorus_register_routes"):
        for router in routers or ():
            app.include_router(router)
    return app


def app_from_env() -> FastAPI:
    """App factory for multi-process serving: config and database from the environment."""
    from ..hub import Hub

    return create_app(Hub.open())
