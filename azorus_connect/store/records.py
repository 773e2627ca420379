"""Batched reads and writes of stored records, with field-level change detection.

Used by the engine inside its transaction: each function issues a handful of set-based
statements for a whole batch, never one round trip per field.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from ..exceptions import InvalidRecord
from ..model import Application, Enquiry, EntityKind, Person, ReferenceValue
from .schema import application, change_log, enquiry, identifier, person, reference_list, reference_value
from .sql import bulk_insert, bulk_update, insert_tuples, json_encoder, next_ids, select_in

if TYPE_CHECKING:
    from ..engine import Action, RecordResult, Source

__all__ = [
    "PERSON_FIELDS",
    "PeopleState",
    "apply_links",
    "apply_references",
    "dump_value",
    "known_codes",
    "load_value",
    "log_changes",
    "person_snapshots",
]

_CHUNK = 400
PERSON_FIELDS = tuple(
    c.name for c in person.columns if c.name not in ("id", "custom", "created_at", "updated_at")
)


def dump_value(value: Any) -> str | None:
    """A field value as the change log stores it (JSON text; None stays NULL)."""
    if value is None:
        return None
    if type(value) is str:  # most values: the encoder's own string form, without its dispatch
        return _encode_string(value)
    return _encode_change(value)


def load_value(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


#: The change log's encoder: keys sorted, dates as ISO text.
_encode_change = json_encoder(sort_keys=True, default=_json_default)
_encode_string: Callable[[str], str] = json.encoder.encode_basestring


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# -- reference lists ---------------------------------------------------------------------------


def known_codes(conn: Connection, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (list, code) pairs exist."""
    found: set[tuple[str, str]] = set()
    groups = _group(pairs)
    if len(pairs) <= _CHUNK:
        # One indexed query for a small batch (an inbound request names a few codes in many
        # lists): list IN (...) AND code IN (...) walks the (list, code) index; extras are dropped.
        codes = sorted({code for _, code in pairs})
        matched = select_in(conn, reference_value, "code", codes, where={"list_name": sorted(groups)})
        return {(r["list_name"], r["code"]) for r in matched if (r["list_name"], r["code"]) in pairs}
    for list_name, codes in groups.items():
        for chunk in _chunks(codes):
            rows = conn.execute(
                select(reference_value.c.code).where(
                    reference_value.c.list_name == list_name, reference_value.c.code.in_(chunk)
                )
            )
            found.update((list_name, code) for (code,) in rows)
    return found


def _group(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(a, x), (a, y), (b, z) -> {a: [x, y], b: [z]}: one indexed query per group (a row-value IN scans)."""
    out: dict[str, list[str]] = {}
    for first, second in sorted(set(pairs)):
        out.setdefault(first, []).append(second)
    return out


def apply_references(
    conn: Connection, refs: list[tuple[int, ReferenceValue]], source: Source, now: dt.datetime
) -> list[tuple[int, RecordResult]]:
    from ..engine import RecordResult

    names = {r.list_name for _, r in refs}
    have = {n for (n,) in conn.execute(select(reference_list.c.name).where(reference_list.c.name.in_(names)))}
    missing = [
        {"name": n, "label": n, "source": source.connection, "updated_at": now} for n in sorted(names - have)
    ]
    if missing:
        conn.execute(insert(reference_list), missing)
    existing: dict[tuple[str, str], dict[str, Any]] = {}
    for list_name, codes in _group((r.list_name, r.code) for _, r in refs).items():
        for chunk in _chunks(codes):
            for found in conn.execute(
                select(reference_value).where(
                    reference_value.c.list_name == list_name, reference_value.c.code.in_(chunk)
                )
            ).mappings():
                existing[(found["list_name"], found["code"])] = dict(found)
    out: list[tuple[int, RecordResult]] = []
    row: dict[str, Any] | None
    new_rows: list[dict[str, Any]] = []
    new_results: list[RecordResult] = []
    updates: list[dict[str, Any]] = []
    for i, ref in refs:
        key = (ref.list_name, ref.code)
        values = ref.set_fields()
        row = existing.get(key)
        if row is None:
            row = {
                "list_name": ref.list_name,
                "code": ref.code,
                "label": None,
                "short_label": None,
                "in_use": True,
                "source": source.connection,
                "updated_at": now,
                **values,
            }
            if row["in_use"] is None:
                row["in_use"] = True
            existing[key] = row
            res = RecordResult(
                i,
                EntityKind.REFERENCE,
                "created",
                key=f"{ref.list_name}:{ref.code}",
                changes={k: (None, v) for k, v in values.items()},
            )
            new_rows.append(row)
            new_results.append(res)
        else:
            changes = {k: (row.get(k), v) for k, v in values.items() if row.get(k) != v and v is not None}
            row.update({k: v for k, (_, v) in changes.items()})
            res = RecordResult(
                i,
                EntityKind.REFERENCE,
                "updated" if changes else "unchanged",
                hub_id=row.get("id"),
                key=f"{ref.list_name}:{ref.code}",
                changes=changes,
            )
            if changes and row.get("id") is not None:
                updates.append(dict(row))
        out.append((i, res))
    if new_rows:
        ids = next_ids(conn, reference_value, len(new_rows))
        for row, res, new_id in zip(new_rows, new_results, ids, strict=True):
            row["id"] = res.hub_id = new_id
        bulk_insert(conn, reference_value, new_rows)
    if updates:
        stmt = (
            update(reference_value)
            .where(reference_value.c.id == bindparam("_id"))
            .values(
                label=bindparam("label"),
                short_label=bindparam("short_label"),
                in_use=bindparam("in_use"),
                updated_at=now,
            )
        )
        conn.execute(
            stmt,
            [
                {"_id": r["id"], "label": r["label"], "short_label": r["short_label"], "in_use": r["in_use"]}
                for r in updates
            ],
        )
    return out


# -- people ------------------------------------------------------------------------------------


class _Keys(dict[str, str]):
    """``prefix + name``, made once per name: change keys such as ``custom:course`` for every row."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def __missing__(self, name: str) -> str:
        key = self[name] = self.prefix + name
        return key


_CUSTOM_KEY = _Keys("custom:")
_ID_KEY = _Keys("id:")
#: What a person's state holds: its values, not its time stamps (never compared nor shown).
_STATE_COLUMNS = ("id", *PERSON_FIELDS, "custom")
#: A new person's row before any value is applied.
_NEW_PERSON: dict[str, Any] = {"id": None, "custom": None, **dict.fromkeys(PERSON_FIELDS)}


class PeopleState:
    """The stored state of the people a batch touches, changed in memory, then written at once."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.ids: dict[int, dict[str, str]] = {}
        self.dirty: dict[int, set[str]] = defaultdict(set)
        self.id_deletes: list[tuple[int, str, str]] = []
        self.id_inserts: list[tuple[int, str, str]] = []
        #: New people no record has been applied to yet: every value set is a change, no diff needed.
        self.blank: set[int] = set()

    @classmethod
    def load(
        cls, conn: Connection, pids: set[int], known: dict[int, dict[str, str]] | None = None
    ) -> PeopleState:
        """Load people ``pids``; ``known`` gives, for some of them, every identifier that matters
        to the batch (already looked up), so theirs need not be read again."""
        state = cls()
        known = known or {}
        for chunk in _chunks(sorted(pids)):
            for data in select_in(conn, person, "id", chunk, columns=_STATE_COLUMNS):
                data["custom"] = dict(data.get("custom") or {})
                state.rows[data["id"]] = data
        for pid, ids in known.items():
            state.ids[pid] = dict(ids)
        for chunk in _chunks(sorted(pids - set(known))):
            cols = ("person_id", "scheme", "value")
            for found in select_in(conn, identifier, "person_id", chunk, columns=cols):
                state.ids.setdefault(found["person_id"], {})[found["scheme"]] = found["value"]
        return state

    def add_new(self, pid: int) -> None:
        row = _NEW_PERSON.copy()
        row["id"], row["custom"] = pid, {}
        self.rows[pid] = row
        self.ids[pid] = {}
        self.blank.add(pid)

    def apply(self, pid: int, rec: Person) -> dict[str, tuple[Any, Any]]:
        """Apply the fields ``rec`` carries to person ``pid``; return what changed."""
        if pid in self.blank:
            self.blank.discard(pid)
            return self._fill(pid, rec)
        row = self.rows[pid]
        changes: dict[str, tuple[Any, Any]] = {}
        dirty: list[str] = []
        for fname, value in rec.set_fields().items():
            old = row.get(fname)
            if old != value:
                changes[fname] = (old, value)
                row[fname] = value
                dirty.append(fname)
        if rec.custom:
            custom = row["custom"]
            changed: dict[str, Any] = {}
            for cname, value in rec.custom.items():
                old = custom.get(cname)
                if old != value:
                    changes[f"custom:{cname}"] = (old, value)
                    changed[cname] = value
            if changed:
                row["custom"] = {**custom, **changed}
                dirty.append("custom")
        if dirty and pid > 0:  # a new person is inserted whole: only stored ones need their columns
            self.dirty[pid].update(dirty)
        ids = self.ids.setdefault(pid, {})
        for scheme, value in rec.identifiers.items():
            old = ids.get(scheme)
            if old != value:
                changes[f"id:{scheme}"] = (old, value)
                if old is not None:
                    self.id_deletes.append((pid, scheme, old))
                self.id_inserts.append((pid, scheme, value))
                ids[scheme] = value
        return changes

    def _fill(self, pid: int, rec: Person) -> dict[str, tuple[Any, Any]]:
        """``apply`` on a blank new person: every value that is not None is new."""
        row = self.rows[pid]
        values = rec.set_fields()
        row.update(values)
        changes = {fname: (None, value) for fname, value in values.items() if value is not None}
        custom = {cname: value for cname, value in rec.custom.items() if value is not None}
        if custom:
            row["custom"] = custom
            for cname, value in custom.items():
                changes[_CUSTOM_KEY[cname]] = (None, value)
        self.ids[pid] = dict(rec.identifiers)
        for scheme, value in rec.identifiers.items():
            changes[_ID_KEY[scheme]] = (None, value)
            self.id_inserts.append((pid, scheme, value))
        return changes

    def write(self, conn: Connection, now: dt.datetime) -> dict[int, int]:
        """Insert new people, update changed ones, sync identifiers; return provisional -> real ids."""
        new = [pid for pid in self.rows if pid < 0]
        mapping: dict[int, int] = {}
        if new:
            rows = [self.rows.pop(p) for p in new]  # inserted as they are: every column, and stamped
            ids = next_ids(conn, person, len(rows))
            for row, new_id in zip(rows, ids, strict=True):
                row["id"] = new_id
            bulk_insert(conn, person, rows, {"created_at": now, "updated_at": now})
            mapping = dict(zip(new, ids, strict=True))
            for prov, real, row in zip(new, ids, rows, strict=True):
                self.rows[real] = row
                self.ids[real] = self.ids.pop(prov, {})
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for pid, fields in self.dirty.items():
            if pid < 0:
                continue
            cols = tuple(sorted(fields))
            groups[cols].append({"id": pid, "updated_at": now, **{c: self.rows[pid][c] for c in cols}})
        for cols, params in groups.items():
            bulk_update(conn, person, (*cols, "updated_at"), params)
        touched_ids = {p for p, *_ in self.id_deletes}
        if touched_ids:
            stale = [(mapping.get(p, p), s, v) for p, s, v in self.id_deletes]
            conn.execute(
                delete(identifier).where(
                    and_(
                        identifier.c.person_id == bindparam("p"),
                        identifier.c.scheme == bindparam("s"),
                        identifier.c.value == bindparam("v"),
                    )
                ),
                [{"p": p, "s": s, "v": v} for p, s, v in stale],
            )
        if self.id_inserts:
            insert_tuples(
                conn,
                identifier,
                ("person_id", "scheme", "value"),
                [(mapping.get(p, p), s, v) for p, s, v in _final_inserts(self.id_inserts)],
                {"created_at": now},
            )
        return mapping


def _final_inserts(inserts: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """Only the last value per (person, scheme), so a batch that changes a value twice inserts once."""
    last: dict[tuple[int, str], str] = {}
    for pid, scheme, value in inserts:
        last[(pid, scheme)] = value
    return [(pid, scheme, value) for (pid, scheme), value in last.items()]


def person_snapshots(conn: Connection, pids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The full current state of people, as JSON-able data with their identifiers."""
    state = PeopleState.load(conn, set(pids))
    out = {}
    for pid, row in state.rows.items():
        data = {k: _jsonable(row[k]) for k in PERSON_FIELDS}
        data.update(hub_id=pid, custom=row["custom"], identifiers=dict(state.ids.get(pid, {})))
        out[pid] = data
    return out


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


# -- enquiries and applications ----------------------------------------------------------------

_LINK_TABLES: dict[EntityKind, Table] = {EntityKind.ENQUIRY: enquiry, EntityKind.APPLICATION: application}


@functools.cache  # the schema is fixed: worked out once per kind
def link_fields(kind: EntityKind) -> tuple[str, ...]:
    table = _LINK_TABLES[kind]
    return tuple(
        c.name
        for c in table.columns
        if c.name not in ("id", "person_id", "key", "custom", "created_at", "updated_at")
    )


def apply_links(
    conn: Connection,
    kind: EntityKind,
    items: list[tuple[int, Enquiry | Application, int]],
    now: dt.datetime,
    *,
    may_create: bool,
    may_update: bool,
) -> list[tuple[int, RecordResult]]:
    """Upsert enquiries or applications by key.

    An enquiry without a key matches on person + course + entry year; a keyed enquiry that matches no
    key adopts a keyless one with the same person, course and year (the hub's own enquiry, coming back
    from the system that gave it its key).
    """
    from ..engine import RecordResult

    table = _LINK_TABLES[kind]
    fields = link_fields(kind)
    rows: dict[int, dict[str, Any]] = {}
    by_key: dict[str, int] = {}
    by_natural: dict[tuple[int, Any, Any], int] = {}
    keyless_natural: dict[tuple[int, Any, Any], int] = {}
    keys = [r.key for _, r, _ in items if r.key]
    for chunk in _chunks(sorted(set(keys))):
        for found in select_in(conn, table, "key", chunk):
            rows[found["id"]] = {**found, "custom": dict(found["custom"] or {})}
            by_key[found["key"]] = found["id"]
    people = sorted({pid for _, r, pid in items if not r.key or r.key not in by_key})
    if kind == EntityKind.ENQUIRY and people:
        for chunk in _chunks(people):
            for found in select_in(conn, table, "person_id", chunk):
                rows.setdefault(found["id"], {**found, "custom": dict(found["custom"] or {})})
                natural = (found["person_id"], found["course"], found["entry_year"])
                by_natural.setdefault(natural, found["id"])
                if found["key"] is None:
                    keyless_natural.setdefault(natural, found["id"])
    out: list[tuple[int, RecordResult]] = []
    next_new = -1
    dirty: dict[int, set[str]] = defaultdict(set)
    created: set[int] = set()
    for i, rec, pid in items:
        rid: int | None
        natural = (pid, getattr(rec, "course", None), getattr(rec, "entry_year", None))
        adopt = False
        if rec.key:
            rid = by_key.get(rec.key)
            if rid is None and (rid := keyless_natural.pop(natural, None)) is not None:
                adopt = True
                by_key[rec.key] = rid
        else:
            rid = by_natural.get(natural)
        if rid is None:
            if not may_create:
                res = RecordResult(
                    i,
                    kind,
                    "rejected",
                    error=InvalidRecord(f"no such {kind.value}, and this run only updates"),
                )
                out.append((i, res))
                continue
            rid = next_new
            next_new -= 1
            rows[rid] = {"id": rid, "person_id": pid, "key": rec.key, "custom": {}, **dict.fromkeys(fields)}
            if rec.key:
                by_key[rec.key] = rid
            else:
                by_natural[(pid, getattr(rec, "course", None), getattr(rec, "entry_year", None))] = rid
        elif not may_update:
            out.append((i, RecordResult(i, kind, "unchanged", hub_id=rid, person_id=pid, key=rec.key)))
            continue
        row = rows[rid]
        changes: dict[str, tuple[Any, Any]] = {}
        if adopt:
            changes["key"] = (None, rec.key)
            row["key"] = rec.key
            dirty[rid].add("key")
        if row["person_id"] != pid:
            changes["person_id"] = (row["person_id"], pid)
            row["person_id"] = pid
            dirty[rid].add("person_id")
        for fname, value in rec.set_fields().items():
            if row.get(fname) != value:
                changes[fname] = (row.get(fname), value)
                row[fname] = value
                dirty[rid].add(fname)
        for cname, value in rec.custom.items():
            if row["custom"].get(cname) != value:
                changes[f"custom:{cname}"] = (row["custom"].get(cname), value)
                row["custom"] = {**row["custom"], cname: value}
                dirty[rid].add("custom")
        action: Action
        if rid < 0 and rid not in created:
            action = "created"
            created.add(rid)
        else:
            action = "updated" if changes else "unchanged"
        out.append(
            (
                i,
                RecordResult(
                    i,
                    kind,
                    action,
                    hub_id=rid,
                    person_id=pid,
                    key=rec.key,
                    external={"key": rec.key} if rec.key else {},
                    changes=changes,
                ),
            )
        )
    new = sorted((rid for rid in rows if rid < 0), reverse=True)
    mapping: dict[int, int] = {}
    if new:
        params = [
            {k: rows[r][k] for k in ("person_id", "key", "custom", *fields)}
            | {"created_at": now, "updated_at": now}
            for r in new
        ]
        ids = next_ids(conn, table, len(params))
        for param, new_id in zip(params, ids, strict=True):
            param["id"] = new_id
        bulk_insert(conn, table, params)
        mapping = dict(zip(new, ids, strict=True))
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for rid, cols in dirty.items():
        if rid > 0:
            names = tuple(sorted(cols))
            groups[names].append({"id": rid, "updated_at": now, **{c: rows[rid][c] for c in names}})
    for names, params in groups.items():
        bulk_update(conn, table, (*names, "updated_at"), params)
    for _, res in out:
        if res.hub_id is not None and res.hub_id < 0:
            res.hub_id = mapping[res.hub_id]
    return out


def link_snapshots(conn: Connection, kind: EntityKind, rids: Iterable[int]) -> dict[int, dict[str, Any]]:
    table = _LINK_TABLES[kind]
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(rids))):
        for found in conn.execute(select(table).where(table.c.id.in_(chunk))).mappings():
            data = {k: _jsonable(v) for k, v in found.items() if k not in ("created_at", "updated_at")}
            data["hub_id"] = data.pop("id")
            out[data["hub_id"]] = data
    return out


# -- change log --------------------------------------------------------------------------------


#: Change-log columns a row gives; a creation's rows stop before ``old_value`` (always NULL there).
_LOG_COLUMNS = ("entity", "record_id", "person_id", "action", "field", "new_value", "old_value")


def log_changes(conn: Connection, results: Sequence[RecordResult], source: Source, now: dt.datetime) -> None:
    """One row per changed field; a creation is one row (field ``*``) holding every value set.

    Rows are stamped with ``source``, or with the record's own (``RecordResult.source``) if it has one.
    """
    by_origin: dict[Source, list[RecordResult]] = {}
    for r in results:
        if r.hub_id is not None:
            by_origin.setdefault(r.source or source, []).append(r)
    for origin, mine in by_origin.items():
        _log_from(conn, mine, origin, now)


def _log_from(conn: Connection, results: Sequence[RecordResult], source: Source, now: dt.datetime) -> None:
    rows: list[tuple[Any, ...]] = []
    updates = False
    for r in results:
        entity, record_id, person_id = r.kind.value, r.hub_id, r.person_id
        if r.action == "created":
            values = {k: new for k, (_, new) in r.changes.items() if new is not None}
            rows.append((entity, record_id, person_id, "created", "*", _encode_change(values)))
        else:
            updates = True
            rows.extend(
                (entity, record_id, person_id, "updated", fname, dump_value(new), dump_value(old))
                for fname, (old, new) in r.changes.items()
            )
    if updates:  # one statement keeps the rows in order: creations get their NULL old value
        rows = [row if len(row) == 7 else (*row, None) for row in rows]
    fixed = {
        "connection": source.connection,
        "request_id": source.request_id,
        "import_run_id": source.import_run_id,
        "changed_at": now,
    }
    insert_tuples(conn, change_log, _LOG_COLUMNS if updates else _LOG_COLUMNS[:6], rows, fixed)
