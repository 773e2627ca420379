"""The web app: ``POST /inbound/{connection}``, ``/api/`` (OpenAPI at ``/docs``), ``/admin``,
``/healthz`` and ``/metrics``.  Plugins add routes through ``azorus_register_routes``."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

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

    @app.post("/inbound/{connection}", tags=["inbound"], summary="Receive a payload for a connection")
    async def inbound(connection: str, request: Request) -> Response:
        """The body is handed to the connection's plugin; the status code says what happened."""
        started = time.perf_counter()
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
        answer = hub.inbound.submit(inbound_request, too_large=too_large, started=started)
        status, payload, media, result = await asyncio.wrap_future(answer)
        metrics.inbound.labels(connection if conn is not None else "-", str(status)).inc()
        metrics.inbound_seconds.labels(connection if conn is not None else "-").observe(
            time.perf_counter() - started
        )
        return Response(
            payload, status_code=status, media_type=media, headers={"X-Request-Id": result.request_id}
        )

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
