"""The import wizard pages under ``/admin/imports``: server-rendered, plain forms, no script.

upload -> check the suggested mapping (edit, load or save a profile) -> dry run with a preview
of every outcome -> run for real -> result, error report, undo. A running run's page refreshes
itself. Pages need a signed-in user; every changing form needs the admin role and its CSRF token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from azorus_connect.admin.rendering import AdminPages
from azorus_connect.exceptions import AzorusError
from azorus_connect.store.schema import import_run
from azorus_connect.web.deps import get_hub
from azorus_connect.web.security import AdminUser, ViewerUser, csrf_protect

from .automapping import targets_for
from .jobs import jobs_for, load_upload, row_preview, save_upload
from .profiles import ColumnSpec, ImportProfile, list_profiles, load_profile, profile_from_data, save_profile
from .running import RESUMABLE, RunProgress

if TYPE_CHECKING:
    from azorus_connect.hub import Hub

__all__ = ["build_wizard_router"]

pages = AdminPages(Path(__file__).parent / "templates")
HubDep = Annotated["Hub", Depends(get_hub)]
ENTITIES = ("person", "enquiry", "application")
ENTITY_LABELS = {"person": "people", "enquiry": "enquiries", "application": "applications"}
ENCODING_LABELS = {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "cp1252": "Windows cp1252", "latin-1": "Latin-1"}
STATUSES = ("new", "update", "unchanged", "invalid")


def _recent_runs(hub: Hub, limit: int = 30) -> list[RunProgress]:
    with hub.store.read() as conn:
        ids = (
            conn.execute(select(import_run.c.id).order_by(import_run.c.id.desc()).limit(limit))
            .scalars()
            .all()
        )
    return [jobs_for(hub).progress(rid) for rid in ids]


def _index(
    request: Request, hub: Hub, principal: Any, *, error: str | None = None, status: int = 200
) -> Response:
    with hub.store.read() as conn:
        profiles = list_profiles(conn)
    context = {
        "runs": _recent_runs(hub),
        "profiles": profiles,
        "entities": ENTITIES,
        "entity_labels": ENTITY_LABELS,
        "error": error,
    }
    return pages.render(request, "import_index.html", context, principal=principal, status_code=status)


def _problem(request: Request, principal: Any, status: int, heading: str, message: str) -> Response:
    context = {"status_code": status, "heading": heading, "message": message}
    return pages.render(request, "error.html", context, principal=principal, status_code=status)


def _profile_from_form(form: Any, header: list[str]) -> ImportProfile:
    columns: dict[str, ColumnSpec] = {}
    for i, name in enumerate(header):
        target = str(form.get(f"col-{i}") or "-")
        transform = str(form.get(f"tr-{i}") or "").strip()
        columns[name] = ColumnSpec(to=target, transform=[t for t in transform.split(",") if t.strip()])
    return profile_from_data(
        {
            "name": str(form.get("save_as") or "").strip(),
            "entity": form.get("entity") or "person",
            "match_on": str(form.get("match_on") or "mst"),
            "mode": form.get("mode") or "create_and_update",
            "unknown_codes": form.get("unknown_codes") or "lenient",
            "blank": form.get("blank") or "ignore",
            "columns": {k: v.model_dump() for k, v in columns.items()},
        }
    )


def build_wizard_router() -> APIRouter:
    router = APIRouter(prefix="/admin/imports", include_in_schema=False)

    @router.get("")
    def index(request: Request, hub: HubDep, principal: ViewerUser) -> Response:
        return _index(request, hub, principal)

    @router.post("/upload", dependencies=[Depends(csrf_protect)])
    def upload(
        request: Request,
        hub: HubDep,
        principal: AdminUser,
        file: Annotated[UploadFile, File()],
        entity: Annotated[str, Form()] = "person",
    ) -> Response:
        try:
            stored = save_upload(hub, file.file, file.filename)
        except AzorusError as exc:
            return _index(
                request, hub, principal, error=f"{file.filename}: {exc.message}", status=exc.http_status
            )
        entity = entity if entity in ENTITIES else "person"
        return RedirectResponse(f"/admin/imports/uploads/{stored.upload_id}?entity={entity}", status_code=303)

    @router.get("/uploads/{upload_id}")
    def mapping(
        request: Request,
        hub: HubDep,
        principal: ViewerUser,
        upload_id: str,
        entity: str = "person",
        profile: str | None = None,
    ) -> Response:
        try:
            stored = load_upload(hub, upload_id)
        except AzorusError as exc:
            return _problem(request, principal, 404, "Not found", exc.message)
        notice = None
        if profile:
            with hub.store.read() as conn:
                try:
                    chosen = load_profile(conn, profile)
                except AzorusError as exc:
                    chosen, notice = None, exc.message
            if chosen is not None:
                entity = chosen.entity
        entity = entity if entity in ENTITIES else "person"
        suggested, suggestion = stored.suggest(hub, entity)
        current = chosen if profile and chosen is not None else suggested
        with hub.store.read() as conn:
            profiles = list_profiles(conn)
        rows = []
        for i, name in enumerate(stored.source.header):
            match = suggestion.columns[i]
            spec = current.columns.get(name, ColumnSpec(to="-"))
            rows.append({"index": i, "name": name, "spec": spec, "match": match})
        context = {
            "upload": stored,
            "sample": stored.sample(),
            "rows": rows,
            "targets": [("-", "(do not import)")]
            + [(t.target, t.label) for t in targets_for(entity, custom_fields=hub.config.custom_fields)],
            "profile": current,
            "profiles": profiles,
            "entity": entity,
            "entities": ENTITIES,
            "entity_labels": ENTITY_LABELS,
            "encoding_label": ENCODING_LABELS.get(stored.source.encoding, stored.source.encoding),
            "notice": notice,
            "error": None,
        }
        return pages.render(request, "import_mapping.html", context, principal=principal)

    @router.post("/uploads/{upload_id}/run", dependencies=[Depends(csrf_protect)])
    async def start(request: Request, hub: HubDep, principal: AdminUser, upload_id: str) -> Response:
        form = await request.form()

        def work() -> int:
            stored = load_upload(hub, upload_id)
            profile = _profile_from_form(form, stored.source.header)
            if profile.name:
                with hub.store.write() as conn:
                    save_profile(conn, profile)
            return jobs_for(hub).start(profile, stored, dry_run=form.get("action") != "run")

        try:
            run_id = await run_in_threadpool(work)
        except AzorusError as exc:
            return _problem(request, principal, 422, "This mapping cannot be used", exc.message)
        return RedirectResponse(f"/admin/imports/runs/{run_id}", status_code=303)

    @router.get("/runs/{run_id}")
    def run_page(
        request: Request, hub: HubDep, principal: ViewerUser, run_id: int, status: str | None = None
    ) -> Response:
        try:
            progress = jobs_for(hub).progress(run_id)
        except AzorusError as exc:
            return _problem(request, principal, 404, "Not found", exc.message)
        shown = status if status in STATUSES else None
        context = {
            "run": progress,
            "active": run_id in jobs_for(hub).active(),
            "rows": row_preview(hub, run_id, shown, 200),
            "shown": shown,
            "statuses": STATUSES,
            "resumable": not progress.dry_run
            and progress.status in RESUMABLE
            and run_id not in jobs_for(hub).active(),
            "undo": progress.options.get("undo"),
        }
        return pages.render(request, "import_run.html", context, principal=principal)

    @router.post("/runs/{run_id}/confirm", dependencies=[Depends(csrf_protect)])
    def confirm(request: Request, hub: HubDep, principal: AdminUser, run_id: int) -> Response:
        """Run for real what a dry run previewed: same upload, same profile."""
        try:
            dry = jobs_for(hub).progress(run_id)
            stored = load_upload(hub, str(dry.options.get("upload_id") or ""))
            profile = profile_from_data(dry.options["profile"])
            real = jobs_for(hub).start(profile, stored, dry_run=False)
        except AzorusError as exc:
            return _problem(request, principal, 409, "Cannot run this import", exc.message)
        return RedirectResponse(f"/admin/imports/runs/{real}", status_code=303)

    @router.post("/runs/{run_id}/undo", dependencies=[Depends(csrf_protect)])
    def undo(request: Request, hub: HubDep, principal: AdminUser, run_id: int) -> Response:
        from .undo import undo_run

        try:
            undo_run(hub, run_id)
        except AzorusError as exc:
            return _problem(request, principal, 409, "Cannot undo", exc.message)
        return RedirectResponse(f"/admin/imports/runs/{run_id}", status_code=303)

    @router.post("/runs/{run_id}/resume", dependencies=[Depends(csrf_protect)])
    def resume(request: Request, hub: HubDep, principal: AdminUser, run_id: int) -> Response:
        try:
            jobs_for(hub).resume(run_id)
        except AzorusError as exc:
            return _problem(request, principal, 409, "Cannot resume", exc.message)
        return RedirectResponse(f"/admin/imports/runs/{run_id}", status_code=303)

    return router
