"""The JSON API of the import wizard, under ``/api/imports`` (listed in the OpenAPI at ``/docs``).

upload -> suggested mapping -> edit -> dry-run preview -> run -> progress -> result -> error CSV
-> undo. Reading needs any role; uploading, running, undoing and saving profiles need ``admin``
(and, from a browser session, the CSRF token). Problems answer 4xx with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from azorus_connect.exceptions import AzorusError, ConfigError
from azorus_connect.store.schema import import_run
from azorus_connect.web.deps import get_hub
from azorus_connect.web.security import csrf_protect, require_admin, require_viewer

from .automapping import targets_for
from .jobs import jobs_for, load_upload, row_preview, save_upload
from .profiles import (
    ImportProfile,
    delete_profile,
    list_profiles,
    load_profile,
    profile_from_data,
    profile_from_toml,
    profile_to_toml,
    save_profile,
)
from .running import RunProgress
from .undo import undo_run

if TYPE_CHECKING:
    from azorus_connect.hub import Hub

__all__ = ["build_router", "http_error"]

HubDep = Annotated["Hub", Depends(get_hub)]
_CHANGE = [Depends(require_admin), Depends(csrf_protect)]


def http_error(exc: AzorusError) -> HTTPException:
    """An error as the HTTP answer it deserves: the user's message, and a 4xx for their mistakes."""
    status = 422 if isinstance(exc, ConfigError) else exc.http_status
    if status >= 500 and not isinstance(exc, ConfigError):
        status = 422
    detail: dict[str, Any] = {"message": exc.message}
    problem = getattr(exc, "problem", None)
    if problem:
        detail["problem"] = problem
    if exc.context.get("details"):
        detail["details"] = exc.context["details"]
    return HTTPException(status, detail)


class RunRequest(BaseModel):
    """Start a run of an upload with a profile (as edited in the wizard)."""

    profile: dict[str, Any]
    dry_run: bool = True
    batch_size: int | None = Field(None, ge=1, le=100_000)


def _check_and_save(hub: Hub, read: Callable[[], ImportProfile]) -> dict[str, Any]:
    """Read a profile, check its mapping against the hub's fields, save it; errors become 4xx."""
    try:
        profile = read()
        profile.record_mapping(hub.config.custom_fields)
        with hub.store.write() as conn:
            save_profile(conn, profile)
    except AzorusError as exc:
        raise http_error(exc) from None
    return profile.model_dump(mode="json")


def _progress_out(hub: Hub, progress: RunProgress) -> dict[str, Any]:
    data = progress.as_dict()
    data["links"] = {
        "self": f"/api/imports/runs/{progress.run_id}",
        "rows": f"/api/imports/runs/{progress.run_id}/rows",
        "errors": f"/api/imports/runs/{progress.run_id}/errors.csv",
    }
    if "undo" in progress.options:
        data["undo"] = progress.options["undo"]
    data["upload_id"] = progress.options.get("upload_id")
    return data


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/imports", tags=["imports"], dependencies=[Depends(require_viewer)])

    @router.post("/uploads", status_code=201, dependencies=_CHANGE, summary="Upload a CSV file")
    def upload(
        hub: HubDep,
        file: Annotated[UploadFile, File(description="The CSV file")],
        entity: Annotated[Literal["person", "enquiry", "application"], Form()] = "person",
    ) -> dict[str, Any]:
        """Store and check the file; answer its columns, a sample and the suggested mapping."""
        try:
            stored = save_upload(hub, file.file, file.filename)
            return stored.describe(hub, entity)
        except AzorusError as exc:
            raise http_error(exc) from None

    @router.get("/uploads/{upload_id}", summary="An upload with its suggested mapping")
    def upload_detail(
        hub: HubDep, upload_id: str, entity: Literal["person", "enquiry", "application"] = "person"
    ) -> dict[str, Any]:
        try:
            return load_upload(hub, upload_id).describe(hub, entity)
        except AzorusError as exc:
            raise HTTPException(404, {"message": exc.message}) from None

    @router.get("/targets", summary="Where a column can go, for an entity")
    def targets(
        hub: HubDep, entity: Literal["person", "enquiry", "application"] = "person"
    ) -> list[dict[str, str]]:
        found = targets_for(entity, custom_fields=hub.config.custom_fields)
        return [{"target": "-", "label": "(do not import)"}] + [
            {"target": t.target, "label": t.label} for t in found
        ]

    @router.post(
        "/uploads/{upload_id}/runs", status_code=202, dependencies=_CHANGE, summary="Dry-run or run an upload"
    )
    def start_run(hub: HubDep, upload_id: str, request: RunRequest) -> dict[str, Any]:
        try:
            stored = load_upload(hub, upload_id)
        except AzorusError as exc:
            raise HTTPException(404, {"message": exc.message}) from None
        try:
            profile = profile_from_data(request.profile)
            run_id = jobs_for(hub).start(
                profile, stored, dry_run=request.dry_run, batch_size=request.batch_size
            )
        except AzorusError as exc:
            raise http_error(exc) from None
        return _progress_out(hub, jobs_for(hub).progress(run_id))

    @router.get("/runs", summary="Recent import runs")
    def runs(hub: HubDep, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[dict[str, Any]]:
        with hub.store.read() as conn:
            ids = (
                conn.execute(select(import_run.c.id).order_by(import_run.c.id.desc()).limit(limit))
                .scalars()
                .all()
            )
        return [_progress_out(hub, jobs_for(hub).progress(rid)) for rid in ids]

    @router.get("/runs/{run_id}", summary="Progress and result of a run")
    def run_detail(hub: HubDep, run_id: int) -> dict[str, Any]:
        try:
            return _progress_out(hub, jobs_for(hub).progress(run_id))
        except AzorusError as exc:
            raise HTTPException(404, {"message": exc.message}) from None

    @router.get("/runs/{run_id}/rows", summary="Rows of a run with their outcome, reasons and field changes")
    def run_rows(
        hub: HubDep,
        run_id: int,
        status: Literal["new", "update", "unchanged", "invalid"] | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return row_preview(hub, run_id, status, limit)

    @router.get("/runs/{run_id}/errors.csv", summary="The error report of a run", response_class=FileResponse)
    def errors_csv(hub: HubDep, run_id: int) -> FileResponse:
        try:
            progress = jobs_for(hub).progress(run_id)
        except AzorusError as exc:
            raise HTTPException(404, {"message": exc.message}) from None
        path = progress.options.get("errors_path")
        if not path or not Path(path).exists():
            raise HTTPException(404, {"message": "this run has no error report yet"})
        return FileResponse(
            path,
            media_type="text/csv; charset=utf-8",
            filename=f"import-{run_id}-errors.csv",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    @router.post("/runs/{run_id}/undo", dependencies=_CHANGE, summary="Undo a run")
    def undo(hub: HubDep, run_id: int) -> dict[str, Any]:
        try:
            return undo_run(hub, run_id).as_dict()
        except AzorusError as exc:
            raise http_error(exc) from None

    @router.post(
        "/runs/{run_id}/resume", status_code=202, dependencies=_CHANGE, summary="Resume a stopped run"
    )
    def resume(hub: HubDep, run_id: int) -> dict[str, Any]:
        try:
            jobs_for(hub).resume(run_id)
        except AzorusError as exc:
            raise http_error(exc) from None
        return _progress_out(hub, jobs_for(hub).progress(run_id))

    # -- profiles ----------------------------------------------------------------------------------

    @router.get("/profiles", summary="Saved import profiles")
    def profiles(hub: HubDep) -> list[dict[str, Any]]:
        with hub.store.read() as conn:
            return [p.model_dump(mode="json") for p in list_profiles(conn)]

    @router.get("/profiles/{name}", summary="One saved profile")
    def profile_detail(hub: HubDep, name: str) -> dict[str, Any]:
        try:
            with hub.store.read() as conn:
                return load_profile(conn, name).model_dump(mode="json")
        except AzorusError as exc:
            raise HTTPException(404, {"message": exc.message}) from None

    @router.get("/profiles/{name}/toml", summary="A saved profile as TOML", response_class=PlainTextResponse)
    def profile_toml(hub: HubDep, name: str) -> PlainTextResponse:
        try:
            with hub.store.read() as conn:
                text = profile_to_toml(load_profile(conn, name))
        except AzorusError as exc:
            raise HTTPException(404, {"message": exc.message}) from None
        return PlainTextResponse(text, media_type="application/toml")

    @router.put("/profiles/{name}", dependencies=_CHANGE, summary="Save a profile under a name")
    def put_profile(hub: HubDep, name: str, definition: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return _check_and_save(hub, lambda: profile_from_data({**definition, "name": name}))

    @router.post("/profiles/toml", status_code=201, dependencies=_CHANGE, summary="Load a profile from TOML")
    def load_toml(hub: HubDep, text: Annotated[str, Body(media_type="application/toml")]) -> dict[str, Any]:
        return _check_and_save(hub, lambda: profile_from_toml(text))

    @router.delete("/profiles/{name}", dependencies=_CHANGE, summary="Delete a saved profile")
    def remove_profile(hub: HubDep, name: str) -> dict[str, Any]:
        with hub.store.write() as conn:
            if not delete_profile(conn, name):
                raise HTTPException(404, {"message": f"no import profile named {name!r}"})
        return {"deleted": name}

    return router
