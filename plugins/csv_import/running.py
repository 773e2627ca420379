"""Running an import: stream the file in batches through the hub's engine, stamped with the run.

Each batch is one transaction, and the run record (``import_run``) is updated inside it, so a
run killed at any moment shows exactly the batches it committed and resumes after them. A bad
row becomes an ``invalid`` outcome with its reason (and a line in the error report); it never
stops the run. A dry run goes through the very same code inside one transaction that is rolled
back, so what it reports is what the real run then does.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, String, insert, select, update

from azorus_connect.engine import ApplyOptions, RecordResult, Source
from azorus_connect.exceptions import ConfigError, InvalidRecord, RecordError
from azorus_connect.model import NOT_STANDARD_FIELDS, Application, CanonicalRecord, Enquiry, Person
from azorus_connect.store.db import Store, utcnow
from azorus_connect.store.schema import application, enquiry, identifier, import_run, person
from azorus_connect.transform.mapping import Mapper

from .error_report import ErrorReportWriter
from .profiles import ROW_ENTITY, ImportProfile, profile_from_data
from .reading import CsvFile, CsvRow, RowProblem, open_csv
from .rowmapping import RowMapper
from .values import clean_cell, looks_like_excel_mangled_number

if TYPE_CHECKING:
    from azorus_connect.hub import Hub

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ImportRunner",
    "RowOutcome",
    "RunProgress",
    "file_digest",
    "imports_dir",
    "resume_run",
    "start_run",
]

DEFAULT_BATCH_SIZE = 2000


#: Net new container objects between young collections during a run (Python's default: 700).
_RUN_GC_THRESHOLD = 100_000


class _YoungCollections:
    """The raised threshold of the young generation, shared by the runs in progress.

    Runs may overlap on a web server's threads: the first to start raises the threshold and the
    last to end restores the one it found, whatever order they end in.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs = 0
        self._saved = gc.get_threshold()

    def enter(self) -> None:
        with self._lock:
            if self._runs == 0:
                self._saved = gc.get_threshold()
                gc.set_threshold(max(self._saved[0], _RUN_GC_THRESHOLD), *self._saved[1:])
            self._runs += 1

    def leave(self) -> None:
        with self._lock:
            self._runs -= 1
            if self._runs == 0:
                gc.set_threshold(*self._saved)


_young_collections = _YoungCollections()


@contextmanager
def _collector_skips_older_objects() -> Iterator[None]:
    """Objects alive before the run are left out of garbage collection until it ends.

    Each batch's records outlive the young generations, so full collections come every batch or
    so, and each would walk every object of the process.  Freezing the older ones (thawed after)
    cuts import CPU by about a quarter; cyclic garbage among them waits at most until the run ends.
    A batch's objects are freed by reference counting when it ends, so during the run the young
    generation is collected only after many more allocations than usual: at the default threshold
    a batch's live records were walked and promoted a few hundred times per 50,000 rows, about 8%
    of import time. Cyclic garbage still triggers a collection once it reaches the threshold.
    """
    gc.freeze()
    _young_collections.enter()
    try:
        yield
    finally:
        _young_collections.leave()
        gc.unfreeze()


RowStatus = Literal["new", "update", "unchanged", "invalid"]
_ACTION_STATUS: dict[str, RowStatus] = {
    "created": "new",
    "updated": "update",
    "unchanged": "unchanged",
    "rejected": "invalid",
}
_COUNT_COLUMN: dict[RowStatus, str] = {
    "new": "created",
    "update": "updated",
    "unchanged": "unchanged",
    "invalid": "invalid",
}
#: A run in one of these states stopped before the end of its file and may be resumed.
RESUMABLE = ("running", "interrupted", "failed")


def _length(kind: object) -> int:
    return kind.length if isinstance(kind, String) and kind.length else 200


def imports_dir(hub: Hub) -> Path:
    """Where uploads and error reports live: ``AZORUS_IMPORT_DIR``, else beside a SQLite database."""
    explicit = os.environ.get("AZORUS_IMPORT_DIR")
    if explicit:
        path = Path(explicit)
    elif hub.store.is_sqlite and hub.store.engine.url.database not in (None, "", ":memory:"):
        path = Path(str(hub.store.engine.url.database)).resolve().parent / "azorus-imports"
    else:
        path = Path("azorus-imports").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class RowOutcome:
    """What happened (or, in a dry run, would happen) to one row."""

    number: int
    status: RowStatus
    reasons: list[str] = field(default_factory=list)
    #: For updates: field -> (old, new).
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    hub_id: int | None = None
    cells: list[str] = field(default_factory=list)


@dataclass
class RunProgress:
    """Where a run has got to, as the run record holds it."""

    run_id: int
    dry_run: bool
    status: str
    total_rows: int | None
    rows_done: int
    created: int
    updated: int
    unchanged: int
    invalid: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None
    options: dict[str, Any]

    @property
    def seconds(self) -> float:
        end = self.finished_at or utcnow()
        return max((end - self.started_at).total_seconds(), 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "status": self.status,
            "total_rows": self.total_rows,
            "rows_done": self.rows_done,
            "new": self.created,
            "update": self.updated,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "profile": self.options.get("profile", {}).get("name") or None,
            "file_name": self.options.get("file_name"),
        }

    @classmethod
    def load(cls, conn: Connection, run_id: int) -> RunProgress:
        row = conn.execute(select(import_run).where(import_run.c.id == run_id)).mappings().first()
        if row is None:
            raise InvalidRecord(f"no import run {run_id}")
        return cls(
            run_id=row["id"],
            dry_run=bool(row["dry_run"]),
            status=row["status"],
            total_rows=row["total_rows"],
            rows_done=row["rows_done"],
            created=row["created"],
            updated=row["updated"],
            unchanged=row["unchanged"],
            invalid=row["invalid"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            error=row["error"],
            options=dict(row["options"] or {}),
        )


class ImportRunner:
    """Imports one checked CSV file with one profile, as one import run."""

    def __init__(
        self,
        hub: Hub,
        profile: ImportProfile,
        source: CsvFile,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        errors_path: Path | None = None,
        on_progress: Callable[[RunProgress, float], None] | None = None,
        on_row: Callable[[RowOutcome], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("the batch size must be at least 1", key="batch_size")
        self.hub = hub
        self.profile = profile
        self.source = source
        self.batch_size = batch_size
        self.errors_path = errors_path
        self.on_progress = on_progress
        self.on_row = on_row
        #: A dry run's progress, which only this process can see until it ends.
        self.live: RunProgress | None = None
        profile.check_against(source.header)
        mapping = profile.record_mapping(hub.config.custom_fields)
        transforms = hub.plugins.value_transforms()
        try:
            self.mapper = Mapper(mapping, transforms, hub.config.custom_fields)
        except InvalidRecord as exc:
            raise ConfigError(exc.message.removeprefix(f"{ROW_ENTITY}."), key="columns") from None
        self.row_mapper = RowMapper(
            self.mapper, mapping.entities[ROW_ENTITY], source.header, transforms, hub.config.custom_fields
        )
        self.options = ApplyOptions(
            match_on=tuple(profile.match_on),
            unknown_codes=profile.unknown_codes,
            create=profile.mode == "create_and_update",
            update=True,
            all_or_nothing=False,
        )
        table = {"person": person, "enquiry": enquiry, "application": application}[profile.entity]
        #: Column lengths of the standard fields (those ``set_fields`` gives) a record may set.
        self._field_limits = {
            c.name: c.type.length
            for c in table.columns
            if isinstance(c.type, String) and c.type.length and c.name not in NOT_STANDARD_FIELDS
        }
        self._id_limit = _length(identifier.c.value.type)
        self._column_of = {spec.to: column for column, spec in profile.columns.items()}
        self._identifier_columns = [
            i
            for i, name in enumerate(source.header)
            if (spec := profile.columns.get(name)) is not None and spec.to.startswith(("id:", "person.id:"))
        ]

    # -- rows -> records ---------------------------------------------------------------------------

    def _record(self, row: CsvRow) -> CanonicalRecord:
        joined = "\x1f" + "\x1f".join(row.cells) + "\x1f"
        if "\x00" in joined:  # cleaning never adds or removes one
            raise InvalidRecord("this row holds a NUL character, which is not text")
        cells = row.cells
        # A cell starting with "=" or " " or ending with " " or a tab shows next to a separator.
        if "\x1f=" in joined or "\x1f " in joined or " \x1f" in joined or "\t\x1f" in joined:
            cells = [clean_cell(c) if c[:1] in ("=", " ") or c[-1:] in (" ", "\t") else c for c in cells]
        for i in self._identifier_columns:
            if looks_like_excel_mangled_number(cells[i]):
                raise InvalidRecord(
                    f"{self.source.header[i]}: {cells[i]!r} looks like a long code a spreadsheet turned into"
                    " a rounded number; format the column as text and export again"
                )
        record = self.row_mapper.map(cells, row.number)
        self._check_lengths(record)
        return record

    def _check_lengths(self, record: CanonicalRecord) -> None:
        """A value longer than its column holds is this row's error, not the batch's (PostgreSQL)."""
        values = record.__dict__
        for name in record.model_fields_set:
            limit = self._field_limits.get(name)
            if limit is not None and isinstance(value := values[name], str) and len(value) > limit:
                column = self._column_of.get(name, name)
                raise InvalidRecord(f"{column}: {len(value)} characters, more than the {limit} it may have")
        if isinstance(record, Person):
            identifiers = record.identifiers
        elif isinstance(record, (Enquiry, Application)):
            identifiers = record.person.identifiers
        else:
            identifiers = {}
        for scheme, value in identifiers.items():
            if len(value) > self._id_limit:
                column = self._column_of.get(f"id:{scheme}", f"identifier {scheme}")
                raise InvalidRecord(
                    f"{column}: {len(value)} characters, more than the {self._id_limit} it may have"
                )

    def _prepare(
        self, items: list[CsvRow | RowProblem]
    ) -> tuple[list[RowOutcome], list[CanonicalRecord], list[int]]:
        outcomes: list[RowOutcome] = []
        records: list[CanonicalRecord] = []
        positions: list[int] = []
        for item in items:
            if isinstance(item, RowProblem):
                outcomes.append(RowOutcome(item.number, "invalid", [item.reason], cells=item.cells))
                continue
            try:
                record = self._record(item)
            except RecordError as exc:
                outcomes.append(RowOutcome(item.number, "invalid", [exc.message], cells=item.cells))
                continue
            positions.append(len(outcomes))
            outcomes.append(RowOutcome(item.number, "unchanged", cells=item.cells))
            records.append(record)
        return outcomes, records, positions

    @staticmethod
    def _settle(outcomes: list[RowOutcome], positions: list[int], results: list[RecordResult]) -> None:
        for pos, result in zip(positions, results, strict=True):
            outcome = outcomes[pos]
            outcome.status = _ACTION_STATUS[result.action]
            outcome.hub_id = result.hub_id
            if result.error is not None:
                outcome.reasons.append(result.error.message)
            outcome.reasons.extend(result.warnings)
            if result.action == "updated":
                outcome.changes = dict(result.changes)

    # -- the run -----------------------------------------------------------------------------------

    def start(
        self, *, dry_run: bool = False, file_name: str | None = None, note: dict[str, Any] | None = None
    ) -> int:
        """Create the run record (status ``running``) and return its id; ``note`` is kept in its options."""
        total = self.source.count_rows()
        options = {
            **(note or {}),
            "profile": self.profile.model_dump(mode="json"),
            "file_name": file_name or self.source.path.name,
            "file_path": str(self.source.path.resolve()),
            "sha256": file_digest(self.source.path),
            "batch_size": self.batch_size,
            "errors_path": str(self.errors_path) if self.errors_path else None,
            "last_row": 1,
            "encoding": self.source.encoding,
            "delimiter": self.source.delimiter,
        }
        with self.hub.store.write() as conn:
            run_id = conn.execute(
                insert(import_run)
                .values(
                    profile=self.profile.name or None,
                    file_name=options["file_name"],
                    entity=self.profile.entity,
                    status="running",
                    dry_run=dry_run,
                    options=options,
                    total_rows=total,
                    rows_done=0,
                    created=0,
                    updated=0,
                    unchanged=0,
                    invalid=0,
                    started_at=utcnow(),
                )
                .returning(import_run.c.id)
            ).scalar_one()
        return int(run_id)

    def run(self, run_id: int) -> RunProgress:
        """Import the file as run ``run_id`` (fresh or resumed); return the finished run."""
        with self.hub.store.read() as conn:
            progress = RunProgress.load(conn, run_id)
        errors_path = self.errors_path or Path(progress.options.get("errors_path") or "") or None
        if not errors_path or str(errors_path) == ".":
            errors_path = imports_dir(self.hub) / f"run-{run_id}-errors.csv"
        self.errors_path = errors_path
        self._set(run_id, options={**progress.options, "errors_path": str(errors_path)}, status="running")
        try:
            with _collector_skips_older_objects():
                if progress.dry_run:
                    final = self._dry_run(run_id, errors_path)
                else:
                    final = self._real_run(run_id, progress, errors_path)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            self._set(run_id, status=status, error=str(exc) or type(exc).__name__)
            raise
        return final

    def _batches(self, skip: int) -> Iterator[tuple[list[CsvRow | RowProblem], float]]:
        with self.source.rows() as stream:
            if skip:
                for _ in islice(stream, skip):
                    pass
            while batch := list(islice(stream, self.batch_size)):
                yield batch, stream.fraction_done

    def _real_run(self, run_id: int, progress: RunProgress, errors_path: Path) -> RunProgress:
        previous = errors_path.with_suffix(".previous.csv")
        resuming = progress.rows_done > 0 and errors_path.exists()
        if resuming:
            errors_path.replace(previous)
        source = Source(import_run_id=run_id)
        with ErrorReportWriter(errors_path, self.source.header, delimiter=self.source.delimiter) as report:
            if resuming:
                report.copy_from(previous, up_to_row=int(progress.options.get("last_row", 1)))
                previous.unlink()
            for batch, fraction in self._batches(progress.rows_done):
                outcomes, records, positions = self._prepare(batch)
                last_row = batch[-1].number

                def record_progress(
                    conn: Connection,
                    results: list[RecordResult],
                    outcomes: list[RowOutcome] = outcomes,
                    positions: list[int] = positions,
                    size: int = len(batch),
                    last_row: int = last_row,
                ) -> None:
                    self._settle(outcomes, positions, results)
                    self._count(conn, run_id, outcomes, size, last_row)

                self.hub.engine.apply(records, source, self.options, before_commit=record_progress)
                self._after_batch(run_id, outcomes, report, fraction)
        self._set(run_id, status="finished", finished_at=utcnow())
        return self.progress(run_id)

    def _dry_run(self, run_id: int, errors_path: Path) -> RunProgress:
        """The whole file in one transaction that is rolled back; only the run record is kept.

        On a SQLite file that transaction would hold the hub's only write lock for the whole
        file, so it runs on a snapshot copy instead and the hub keeps taking writes meanwhile.
        """
        path = self.hub.store.engine.url.database if self.hub.store.is_sqlite else None
        if not path or path == ":memory:":
            return self._dry_run_on(self.hub, run_id, errors_path)
        with tempfile.TemporaryDirectory(prefix="dry-run-", dir=imports_dir(self.hub)) as tmp:
            copy = Path(tmp) / "snapshot.db"
            with closing(sqlite3.connect(path)) as live_db, closing(sqlite3.connect(copy)) as snapshot:
                live_db.backup(snapshot)
            shadow = type(self.hub)(self.hub.config, self.hub.plugins, Store(f"sqlite:///{copy}", pool=False))
            try:
                return self._dry_run_on(shadow, run_id, errors_path)
            finally:
                shadow.close()

    def _dry_run_on(self, target: Hub, run_id: int, errors_path: Path) -> RunProgress:
        counts: dict[str, int] = {"created": 0, "updated": 0, "unchanged": 0, "invalid": 0}
        done = 0
        source = Source(import_run_id=run_id)
        live = self.progress(run_id)
        self.live = live
        report = ErrorReportWriter(errors_path, self.source.header, delimiter=self.source.delimiter)
        with report, target.store.engine.connect() as conn:
            trans = conn.begin()
            try:
                for batch, fraction in self._batches(0):
                    outcomes, records, positions = self._prepare(batch)
                    results = target.engine.apply_in(conn, records, source, self.options) if records else []
                    self._settle(outcomes, positions, results)
                    done += len(batch)
                    for o in outcomes:
                        counts[_COUNT_COLUMN[o.status]] += 1
                    # Progress is kept here (the run record is written once, at the end).
                    live.rows_done = done
                    live.created, live.updated = counts["created"], counts["updated"]
                    live.unchanged, live.invalid = counts["unchanged"], counts["invalid"]
                    self._after_batch(run_id, outcomes, report, fraction)
            finally:
                trans.rollback()
        self._set(run_id, status="finished", finished_at=utcnow(), rows_done=done, **counts)
        self.live = None
        return self.progress(run_id)

    def _after_batch(
        self, run_id: int, outcomes: list[RowOutcome], report: ErrorReportWriter, fraction: float
    ) -> None:
        for outcome in outcomes:
            if outcome.status == "invalid":
                report.write(outcome.number, outcome.cells, "; ".join(outcome.reasons))
            if self.on_row is not None:
                self.on_row(outcome)
        report.flush()
        if self.on_progress is not None:
            self.on_progress(self.live or self.progress(run_id), fraction)

    def _count(
        self, conn: Connection, run_id: int, outcomes: list[RowOutcome], size: int, last_row: int
    ) -> None:
        """Add a batch's counts to the run record, inside the batch's own transaction."""
        delta = {"created": 0, "updated": 0, "unchanged": 0, "invalid": 0}
        for o in outcomes:
            delta[_COUNT_COLUMN[o.status]] += 1
        options = conn.execute(select(import_run.c.options).where(import_run.c.id == run_id)).scalar_one()
        conn.execute(
            update(import_run)
            .where(import_run.c.id == run_id)
            .values(
                rows_done=import_run.c.rows_done + size,
                created=import_run.c.created + delta["created"],
                updated=import_run.c.updated + delta["updated"],
                unchanged=import_run.c.unchanged + delta["unchanged"],
                invalid=import_run.c.invalid + delta["invalid"],
                options={**(options or {}), "last_row": last_row},
            )
        )

    def _set(self, run_id: int, **values: Any) -> None:
        with self.hub.store.write() as conn:
            conn.execute(update(import_run).where(import_run.c.id == run_id).values(**values))

    def progress(self, run_id: int) -> RunProgress:
        with self.hub.store.read() as conn:
            return RunProgress.load(conn, run_id)


def start_run(
    hub: Hub,
    profile: ImportProfile,
    path: Path,
    *,
    dry_run: bool = False,
    file_name: str | None = None,
    **runner_options: Any,
) -> tuple[ImportRunner, int]:
    """Check the file, build the runner and create the run record."""
    runner = ImportRunner(hub, profile, open_csv(path), **runner_options)
    return runner, runner.start(dry_run=dry_run, file_name=file_name)


def resume_run(
    hub: Hub, run_id: int, path: Path | None = None, **runner_options: Any
) -> tuple[ImportRunner, int]:
    """A runner to finish run ``run_id`` after its last committed batch, on the very same file."""
    with hub.store.read() as conn:
        progress = RunProgress.load(conn, run_id)
    if progress.dry_run:
        raise ConfigError(f"run {run_id} is a dry run; start a new one instead", key="resume")
    if progress.status not in RESUMABLE:
        raise ConfigError(f"run {run_id} is {progress.status}, not resumable", key="resume")
    options = progress.options
    file_path = path or Path(options["file_path"])
    if not file_path.exists():
        raise ConfigError(f"the file of run {run_id} is gone: {file_path}", key="resume")
    if file_digest(file_path) != options.get("sha256"):
        raise ConfigError(
            f"{file_path} is not the file run {run_id} was importing (its content differs)", key="resume"
        )
    profile = profile_from_data(options["profile"])
    runner_options.setdefault("batch_size", int(options.get("batch_size") or DEFAULT_BATCH_SIZE))
    runner = ImportRunner(
        hub, profile, open_csv(file_path, delimiter=options.get("delimiter")), **runner_options
    )
    return runner, run_id
