"""What the web side needs: uploaded files kept on disk, and runs carried out in the background.

An upload is stored under the imports directory with a small JSON note (original name, size);
it is checked (:func:`~.reading.open_csv`) as it arrives, so a file that cannot be imported is
refused at once. A run started from the web goes on in a thread; its progress is read from the
run record (or, for a dry run, from the runner, since a dry run writes nothing until it ends),
and a sample of its rows (up to :data:`PREVIEW_PER_STATUS` per status) is kept for the preview.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from azorus_connect.exceptions import InvalidRecord, PayloadTooLarge

from .automapping import SuggestedMapping
from .profiles import ImportProfile, suggest_profile
from .reading import CsvFile, CsvRow, open_csv
from .running import ImportRunner, RowOutcome, RunProgress, imports_dir, resume_run

if TYPE_CHECKING:
    from azorus_connect.hub import Hub

__all__ = ["PREVIEW_PER_STATUS", "Jobs", "Upload", "jobs_for", "load_upload", "row_preview", "save_upload"]

#: Rows kept per status (new, update, unchanged, invalid) for the preview of a run.
PREVIEW_PER_STATUS = 200
_MAX_BYTES_DEFAULT = 500 * 1024 * 1024
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_SAMPLE_ROWS = 5

log = logging.getLogger(__name__)


def max_upload_bytes() -> int:
    return int(os.environ.get("AZORUS_IMPORT_MAX_BYTES") or _MAX_BYTES_DEFAULT)


@dataclass
class Upload:
    """A stored, checked upload."""

    upload_id: str
    file_name: str
    size: int
    path: Path
    source: CsvFile
    #: Records after the header, counted once when the file arrived.
    rows: int

    def sample(self) -> list[list[str]]:
        rows: list[list[str]] = []
        with self.source.rows() as stream:
            for item in stream:
                if isinstance(item, CsvRow):
                    rows.append(item.cells)
                if len(rows) >= _SAMPLE_ROWS:
                    break
        return rows

    def suggest(self, hub: Hub, entity: str) -> tuple[ImportProfile, SuggestedMapping]:
        return suggest_profile(self.source.header, entity, custom_fields=hub.config.custom_fields)

    def describe(self, hub: Hub, entity: str = "person") -> dict[str, Any]:
        profile, suggestion = self.suggest(hub, entity)
        return {
            "upload_id": self.upload_id,
            "file_name": self.file_name,
            "size": self.size,
            "encoding": self.source.encoding,
            "delimiter": self.source.delimiter_name,
            "header": self.source.header,
            "rows": self.rows,
            "sample": self.sample(),
            "suggestion": [
                {
                    "column": m.column,
                    "target": m.target,
                    "confidence": m.confidence,
                    "method": m.method,
                    "label": m.label,
                    "note": m.note,
                }
                for m in suggestion.columns
            ],
            "unmapped": suggestion.unmapped,
            "profile": profile.model_dump(mode="json"),
        }


def _uploads_dir(hub: Hub) -> Path:
    path = imports_dir(hub) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _safe_name(name: str | None) -> str:
    base = Path(name or "upload.csv").name
    return re.sub(r"[^\w. ()-]+", "_", base)[:200] or "upload.csv"


def save_upload(hub: Hub, stream: IO[bytes], file_name: str | None) -> Upload:
    """Copy ``stream`` to disk (refusing more than the size limit) and check it as CSV."""
    upload_id = uuid.uuid4().hex
    folder = _uploads_dir(hub)
    path = folder / f"{upload_id}.csv"
    limit = max_upload_bytes()
    size = 0
    try:
        with path.open("wb") as out:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the file is larger than the limit of {limit:,} bytes")
                out.write(chunk)
        source = open_csv(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    name = _safe_name(file_name)
    rows = source.count_rows()
    note = {"file_name": name, "size": size, "rows": rows}
    (folder / f"{upload_id}.json").write_text(json.dumps(note), encoding="utf-8")
    return Upload(upload_id, name, size, path, source, rows)


def load_upload(hub: Hub, upload_id: str) -> Upload:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise InvalidRecord("no such upload")
    folder = _uploads_dir(hub)
    path, note_path = folder / f"{upload_id}.csv", folder / f"{upload_id}.json"
    if not path.exists() or not note_path.exists():
        raise InvalidRecord("no such upload (it may have been removed)")
    note = json.loads(note_path.read_text(encoding="utf-8"))
    source = open_csv(path)
    rows = note["rows"] if isinstance(note.get("rows"), int) else source.count_rows()
    return Upload(upload_id, note["file_name"], note["size"], path, source, rows)


# -- background runs ---------------------------------------------------------------------------------


def _preview_path(hub: Hub, run_id: int) -> Path:
    return imports_dir(hub) / f"run-{run_id}-rows.jsonl"


class _PreviewWriter:
    """Keeps the first rows of each status of a run, one JSON line each."""

    def __init__(self, path: Path, header: list[str], *, append: bool = False) -> None:
        self.header = header
        self.kept: dict[str, int] = {}
        if append and path.exists():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    status = json.loads(line)["status"]
                    self.kept[status] = self.kept.get(status, 0) + 1
        # Line-buffered: a page that sees the run finished also sees every kept row, even before
        # the worker thread gets to close the file.
        self.fh = path.open("a" if append else "w", encoding="utf-8", buffering=1)

    def __call__(self, outcome: RowOutcome) -> None:
        if self.kept.get(outcome.status, 0) >= PREVIEW_PER_STATUS:
            return
        self.kept[outcome.status] = self.kept.get(outcome.status, 0) + 1
        record = {
            "row": outcome.number,
            "status": outcome.status,
            "reasons": outcome.reasons,
            "changes": {k: [_plain(o), _plain(n)] for k, (o, n) in outcome.changes.items()},
            "hub_id": outcome.hub_id,
            "values": dict(zip(self.header, outcome.cells, strict=False)),
        }
        self.fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        self.fh.close()


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def row_preview(hub: Hub, run_id: int, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The kept rows of run ``run_id`` (optionally of one status), in file order."""
    path = _preview_path(hub, run_id)
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            if status is None or item["status"] == status:
                out.append(item)
    out.sort(key=lambda item: item["row"])
    return out[:limit]


class Jobs:
    """The runs this process is carrying out in the background."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._lock = threading.Lock()
        self._running: dict[int, tuple[threading.Thread, ImportRunner]] = {}

    def start(
        self, profile: ImportProfile, upload: Upload, *, dry_run: bool, batch_size: int | None = None
    ) -> int:
        options: dict[str, Any] = {"batch_size": batch_size} if batch_size else {}
        runner = ImportRunner(self.hub, profile, upload.source, **options)
        run_id = runner.start(
            dry_run=dry_run, file_name=upload.file_name, note={"upload_id": upload.upload_id}
        )
        self._launch(run_id, runner, append=False)
        return run_id

    def resume(self, run_id: int) -> int:
        with self._lock:
            if run_id in self._running and self._running[run_id][0].is_alive():
                raise InvalidRecord(f"run {run_id} is running now")
        runner, _ = resume_run(self.hub, run_id)
        self._launch(run_id, runner, append=True)
        return run_id

    def _launch(self, run_id: int, runner: ImportRunner, *, append: bool) -> None:
        preview = _PreviewWriter(_preview_path(self.hub, run_id), runner.source.header, append=append)
        runner.on_row = preview

        def work() -> None:
            try:
                runner.run(run_id)
            except Exception:  # the run record says "failed", with the error
                log.exception("import run %s failed", run_id)
            finally:
                preview.close()

        thread = threading.Thread(target=work, name=f"azorus-import-{run_id}", daemon=True)
        with self._lock:
            self._running[run_id] = (thread, runner)
        thread.start()

    def progress(self, run_id: int) -> RunProgress:
        with self._lock:
            entry = self._running.get(run_id)
        if entry is not None and entry[1].live is not None:
            return entry[1].live
        with self.hub.store.read() as conn:
            return RunProgress.load(conn, run_id)

    def wait(self, run_id: int, timeout: float | None = None) -> None:
        with self._lock:
            entry = self._running.get(run_id)
        if entry is not None:
            entry[0].join(timeout)

    def active(self) -> Iterable[int]:
        with self._lock:
            return [rid for rid, (thread, _) in self._running.items() if thread.is_alive()]


_JOBS_LOCK = threading.Lock()


def jobs_for(hub: Hub) -> Jobs:
    """The background runs of ``hub`` (one registry per hub)."""
    with _JOBS_LOCK:
        jobs: Jobs | None = getattr(hub, "_csv_import_jobs", None)
        if jobs is None:
            jobs = Jobs(hub)
            hub._csv_import_jobs = jobs  # type: ignore[attr-defined]
        return jobs
