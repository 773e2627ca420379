"""Undoing an import run from its change log: restore what it changed, remove what it created.

A field is restored, and a created record removed, only when nobody else has touched it since:
no later change-log entry from another source, and its value is still the one the run wrote.
Everything else is listed as skipped, never clobbered. The undo is one transaction, logged field
by field under the run's id, and the restored values are queued for the connections that send
that kind of record (a removal is not sent: the outbox carries upserts only).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Date, Table, delete, insert, or_, select, update

from azorus_connect.engine import RecordResult, Source
from azorus_connect.exceptions import ConfigError
from azorus_connect.model import EntityKind
from azorus_connect.store.db import utcnow
from azorus_connect.store.records import dump_value, load_value
from azorus_connect.store.schema import application, change_log, enquiry, identifier, import_run, person

if TYPE_CHECKING:
    from azorus_connect.hub import Hub

__all__ = ["Skipped", "UndoReport", "undo_run"]

_TABLES: dict[str, Table] = {"person": person, "enquiry": enquiry, "application": application}
_CHUNK = 400


@dataclass
class Skipped:
    """A record (or some of its fields) the undo left alone, and why."""

    entity: str
    record_id: int
    reason: str
    fields: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "record_id": self.record_id,
            "reason": self.reason,
            "fields": self.fields,
        }


@dataclass
class UndoReport:
    run_id: int
    restored_records: int = 0
    restored_fields: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "restored_records": self.restored_records,
            "restored_fields": self.restored_fields,
            "removed": self.removed,
            "skipped": [s.as_dict() for s in self.skipped],
        }


@dataclass
class _Touched:
    """What one run did to one record: created it, or changed fields (field -> first old, last new)."""

    entity: str
    record_id: int
    person_id: int | None
    first_id: int
    created: bool = False
    created_values: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _load_run_changes(conn: Connection, run_id: int) -> dict[tuple[str, int], _Touched]:
    touched: dict[tuple[str, int], _Touched] = {}
    rows = conn.execute(
        select(change_log)
        .where(change_log.c.import_run_id == run_id, change_log.c.action.in_(("created", "updated")))
        .order_by(change_log.c.id)
    ).mappings()
    for row in rows:
        key = (row["entity"], row["record_id"])
        item = touched.get(key)
        if item is None:
            item = touched[key] = _Touched(row["entity"], row["record_id"], row["person_id"], row["id"])
        if row["action"] == "created":
            item.created = True
            item.created_values = load_value(row["new_value"]) or {}
        elif row["field"] in item.fields:
            item.fields[row["field"]] = (item.fields[row["field"]][0], load_value(row["new_value"]))
        else:
            item.fields[row["field"]] = (load_value(row["old_value"]), load_value(row["new_value"]))
    return touched


def _later_changes(
    conn: Connection, run_id: int, touched: dict[tuple[str, int], _Touched]
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Change-log entries from other sources after the run first touched each record (or its person)."""
    found: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    if not touched:
        return found
    first = min(t.first_id for t in touched.values())
    # A run that was itself undone in full cancelled out; its entries do not block this undo.
    cancelled = [run_id]
    for rid, options in conn.execute(
        select(import_run.c.id, import_run.c.options).where(import_run.c.status == "undone")
    ):
        if not ((options or {}).get("undo") or {}).get("skipped"):
            cancelled.append(rid)
    other = or_(change_log.c.import_run_id.is_(None), change_log.c.import_run_id.not_in(cancelled))
    by_entity: dict[str, list[int]] = defaultdict(list)
    for entity, rid in touched:
        by_entity[entity].append(rid)
    created_people = sorted(t.record_id for t in touched.values() if t.entity == "person" and t.created)
    for entity, ids in by_entity.items():
        for chunk in _chunks(sorted(ids)):
            for row in conn.execute(
                select(change_log).where(
                    change_log.c.id > first,
                    other,
                    change_log.c.entity == entity,
                    change_log.c.record_id.in_(chunk),
                )
            ).mappings():
                item = touched[(entity, row["record_id"])]
                if row["id"] > item.first_id:
                    found[(entity, row["record_id"])].append(dict(row))
    for chunk in _chunks(created_people):
        for row in conn.execute(
            select(change_log).where(
                change_log.c.id > first,
                other,
                change_log.c.entity != "person",
                change_log.c.person_id.in_(chunk),
            )
        ).mappings():
            found[("person", row["person_id"])].append(dict(row))
    return found


def _who(row: dict[str, Any]) -> str:
    if row.get("connection"):
        return f"connection {row['connection']}"
    if row.get("import_run_id"):
        return f"import run {row['import_run_id']}"
    return "another change"


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


def _column_value(table: Table, name: str, value: Any) -> Any:
    """A change-log value back in its column's type (dates are logged as ISO text)."""
    if value is not None and isinstance(table.c[name].type, Date):
        return dt.date.fromisoformat(str(value))
    return value


class _Undo:
    def __init__(self, conn: Connection, run_id: int, report: UndoReport) -> None:
        self.conn = conn
        self.run_id = run_id
        self.report = report
        self.now = utcnow()
        self.log: list[dict[str, Any]] = []
        self.routed: list[RecordResult] = []

    def _log(self, t: _Touched, action: str, fname: str, old: Any, new: Any) -> None:
        self.log.append(
            {
                "entity": t.entity,
                "record_id": t.record_id,
                "person_id": t.person_id,
                "action": action,
                "field": fname,
                "old_value": dump_value(old),
                "new_value": dump_value(new),
                "connection": None,
                "request_id": None,
                "import_run_id": self.run_id,
                "changed_at": self.now,
            }
        )

    def _current(self, t: _Touched) -> tuple[dict[str, Any] | None, dict[str, str]]:
        table = _TABLES[t.entity]
        row = self.conn.execute(select(table).where(table.c.id == t.record_id)).mappings().first()
        ids: dict[str, str] = {}
        if t.entity == "person" and row is not None:
            ids = dict(
                self.conn.execute(
                    select(identifier.c.scheme, identifier.c.value).where(
                        identifier.c.person_id == t.record_id
                    )
                ).all()
            )
        return (dict(row) if row is not None else None), ids

    @staticmethod
    def _value_of(row: dict[str, Any], ids: dict[str, str], fname: str) -> Any:
        if fname.startswith("id:"):
            return ids.get(fname[3:])
        if fname.startswith("custom:"):
            return (row.get("custom") or {}).get(fname[7:])
        return _plain(row.get(fname))

    def remove(self, t: _Touched, later: list[dict[str, Any]]) -> None:
        if later:
            fields = sorted({r["field"] for r in later})
            self.report.skipped.append(
                Skipped(
                    t.entity, t.record_id, f"created by this run, changed since by {_who(later[0])}", fields
                )
            )
            return
        row, ids = self._current(t)
        if row is None:
            return
        expected = {**t.created_values, **{f: new for f, (_, new) in t.fields.items()}}
        for fname, value in expected.items():
            if self._value_of(row, ids, fname) != value:
                self.report.skipped.append(
                    Skipped(t.entity, t.record_id, "created by this run, its values differ now", [fname])
                )
                return
        table = _TABLES[t.entity]
        if t.entity == "person":
            for link in (enquiry, application):
                if self.conn.execute(
                    select(link.c.id).where(link.c.person_id == t.record_id).limit(1)
                ).first():
                    self.report.skipped.append(
                        Skipped(
                            t.entity,
                            t.record_id,
                            f"created by this run, now has an {link.name} from elsewhere",
                        )
                    )
                    return
            self.conn.execute(delete(identifier).where(identifier.c.person_id == t.record_id))
        self.conn.execute(delete(table).where(table.c.id == t.record_id))
        self._log(t, "deleted", "*", expected, None)
        self.report.removed[t.entity] = self.report.removed.get(t.entity, 0) + 1

    def restore(self, t: _Touched, later: list[dict[str, Any]]) -> None:
        row, ids = self._current(t)
        if row is None:
            self.report.skipped.append(Skipped(t.entity, t.record_id, "the record no longer exists"))
            return
        blocked = {r["field"] for r in later}
        if "*" in blocked:
            blocked = set(t.fields)
        table = _TABLES[t.entity]
        columns: dict[str, Any] = {}
        custom = dict(row.get("custom") or {})
        custom_changed = False
        restored: dict[str, tuple[Any, Any]] = {}
        skipped: list[str] = []
        for fname, (old, new) in t.fields.items():
            now_value = self._value_of(row, ids, fname)
            if fname in blocked or now_value != new:
                skipped.append(fname)
                continue
            if fname.startswith("id:"):
                scheme = fname[3:]
                if old is not None:
                    owner = self.conn.execute(
                        select(identifier.c.person_id).where(
                            identifier.c.scheme == scheme, identifier.c.value == old
                        )
                    ).scalar()
                    if owner is not None and owner != t.record_id:
                        skipped.append(fname)
                        continue
                self.conn.execute(
                    delete(identifier).where(
                        identifier.c.person_id == t.record_id, identifier.c.scheme == scheme
                    )
                )
                if old is not None:
                    self.conn.execute(
                        insert(identifier).values(
                            person_id=t.record_id, scheme=scheme, value=old, created_at=self.now
                        )
                    )
            elif fname.startswith("custom:"):
                if old is None:
                    custom.pop(fname[7:], None)
                else:
                    custom[fname[7:]] = old
                custom_changed = True
            else:
                columns[fname] = _column_value(table, fname, old)
            restored[fname] = (now_value, old)
        if custom_changed:
            columns["custom"] = custom
        if columns:
            self.conn.execute(
                update(table).where(table.c.id == t.record_id).values(**columns, updated_at=self.now)
            )
        for fname, (now_value, old) in restored.items():
            self._log(t, "updated", fname, now_value, old)
        if restored:
            self.report.restored_records += 1
            self.report.restored_fields += len(restored)
            self.routed.append(
                RecordResult(
                    0,
                    EntityKind(t.entity),
                    "updated",
                    hub_id=t.record_id,
                    person_id=t.person_id,
                    changes=restored,
                )
            )
        if skipped:
            who = _who(later[0]) if later else "a later change"
            self.report.skipped.append(
                Skipped(t.entity, t.record_id, f"changed since by {who}", sorted(skipped))
            )


def undo_run(hub: Hub, run_id: int) -> UndoReport:
    """Undo import run ``run_id`` in one transaction; return what was restored, removed and skipped."""
    report = UndoReport(run_id)
    with hub.store.write() as conn:
        run = conn.execute(select(import_run).where(import_run.c.id == run_id)).mappings().first()
        if run is None:
            raise ConfigError(f"no import run {run_id}", key="run")
        if run["dry_run"]:
            raise ConfigError(f"run {run_id} was a dry run: it changed nothing", key="run")
        if run["status"] == "undone":
            raise ConfigError(f"run {run_id} has already been undone", key="run")
        if run["status"] == "running":
            raise ConfigError(f"run {run_id} is still running (or was killed: resume it first)", key="run")
        touched = _load_run_changes(conn, run_id)
        later = _later_changes(conn, run_id, touched)
        work = _Undo(conn, run_id, report)
        # Links before people, so a person's own enquiries from this run go first.
        order = {"application": 0, "enquiry": 1, "person": 2}
        for key in sorted(touched, key=lambda k: (order.get(k[0], 3), -k[1])):
            t = touched[key]
            if t.created:
                work.remove(t, later.get(key, []))
            else:
                work.restore(t, later.get(key, []))
        if work.log:
            conn.execute(insert(change_log), work.log)
        if work.routed:
            hub.outbox.route(conn, work.routed, Source(import_run_id=run_id), work.now)
        options = dict(run["options"] or {})
        options["undo"] = report.as_dict()
        conn.execute(
            update(import_run).where(import_run.c.id == run_id).values(status="undone", options=options)
        )
    return report
