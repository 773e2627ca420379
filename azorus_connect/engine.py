"""The pipeline's middle: resolve identity -> store with change detection -> change log -> outbox.

One call to :meth:`Engine.apply` is one transaction over a batch of canonical records.  An
identical payload changes nothing and queues nothing.  Every change is logged field by field with
its source, and queued for every connection that sends that kind of record, except the one it
came from (loop prevention).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from .connector import ChangeEvent
from .exceptions import AzorusError, IdentityConflict, InvalidRecord, RecordError
from .model import Application, CanonicalRecord, Enquiry, EntityKind, Person, ReferenceValue
from .resolve import IdentityIndex
from .store import records as rec_store
from .store.db import utcnow
from .store.sql import savepoint

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["ApplyOptions", "Engine", "RecordResult", "Source"]

log = logging.getLogger(__name__)

Action = Literal["created", "updated", "unchanged", "rejected"]


@dataclass(frozen=True)
class Source:
    """Where a change came from: stamped on every change-log row and outbox message."""

    connection: str | None = None
    request_id: str | None = None
    import_run_id: int | None = None


@dataclass(frozen=True)
class ApplyOptions:
    #: Identifier schemes to match people on, in order.
    match_on: Sequence[str] = ("mst",)
    unknown_codes: Literal["strict", "lenient"] = "lenient"
    create: bool = True
    update: bool = True
    #: True: one bad record rejects the whole batch (inbound requests).  False: it is skipped.
    all_or_nothing: bool = True
    #: Work everything out, then roll back: nothing is written.
    dry_run: bool = False


@dataclass
class RecordResult:
    """What happened to one record of the batch."""

    index: int
    kind: EntityKind
    action: Action
    hub_id: int | None = None
    person_id: int | None = None
    key: str | None = None
    external: dict[str, str] = field(default_factory=dict)
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: AzorusError | None = None
    #: Where the record came from, when its batch mixed several sources (see ``apply_together``).
    source: Source | None = None


class Engine:
    """Applies batches of canonical records to the store."""

    #: How often a batch is retried when a concurrent writer claimed the same identifier first.
    RETRIES = 5

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def apply(
        self,
        records: Sequence[CanonicalRecord],
        source: Source,
        options: ApplyOptions | None = None,
        *,
        before_commit: Callable[[Connection, list[RecordResult]], None] | None = None,
    ) -> list[RecordResult]:
        """Apply ``records`` in one transaction and return one result per record, in order.

        With ``all_or_nothing`` the first record error is raised and nothing is written;
        otherwise rejected records carry their error and the rest is written.
        ``before_commit`` runs inside the transaction (the request log uses it).
        """
        opts = options or ApplyOptions()
        for attempt in self._attempts():
            with attempt, self.hub.store.engine.connect() as conn:
                trans = conn.begin()
                try:
                    results = _Batch(self.hub, conn, source, opts).run(records)
                    if before_commit is not None:
                        before_commit(conn, results)
                    if opts.dry_run:
                        trans.rollback()
                        return results
                    trans.commit()
                except BaseException:
                    if trans.is_active:
                        trans.rollback()
                    raise
                break
        self.emit(results, source)
        return results

    def apply_nested(
        self,
        conn: Connection,
        records: Sequence[CanonicalRecord],
        source: Source,
        options: ApplyOptions | None = None,
    ) -> list[RecordResult]:
        """Apply ``records`` in a savepoint of the caller's open transaction on ``conn``.

        Several callers' batches can so share one commit (group commit): a batch that fails is
        rolled back to its savepoint and raises, leaving no trace, and the transaction goes on.
        The caller commits, then passes each batch's results to :meth:`emit`.
        """
        opts = options or ApplyOptions()
        for attempt in self._attempts():
            with attempt, savepoint(conn):
                results = _Batch(self.hub, conn, source, opts).run(records)
                break
        return results

    def apply_together(
        self,
        conn: Connection,
        batches: Sequence[tuple[Sequence[CanonicalRecord], Source]],
        options: ApplyOptions,
    ) -> list[list[RecordResult]] | None:
        """Apply several callers' batches (same options) as one, in a savepoint of ``conn``'s transaction.

        One set of statements serves them all, and the outcome is the one applying them one after
        another would give.  That holds only if every record is accepted: when one is rejected,
        or the shared batch fails, nothing is left behind and None is returned, and the caller
        applies the batches one by one with :meth:`apply_nested` so each gets its own outcome.
        """
        records = [record for batch, _ in batches for record in batch]
        sources = [source for batch, source in batches for _ in batch]
        shared = dataclasses.replace(options, all_or_nothing=False)
        try:
            with savepoint(conn):
                results = _Batch(self.hub, conn, batches[0][1], shared, sources).run(records)
                if any(r.action == "rejected" for r in results):
                    raise _Rejected
        except (_Rejected, AzorusError, IntegrityError):
            return None
        out: list[list[RecordResult]] = []
        start = 0
        for batch, _ in batches:
            part = results[start : start + len(batch)]
            for r in part:
                r.index -= start
            out.append(part)
            start += len(batch)
        return out

    def apply_in(
        self,
        conn: Connection,
        records: Sequence[CanonicalRecord],
        source: Source,
        options: ApplyOptions | None = None,
    ) -> list[RecordResult]:
        """Apply ``records`` inside the caller's open transaction on ``conn``: no commit, no events.

        A dry run over many batches uses it so later batches see what earlier ones would do,
        then rolls the one transaction back.
        """
        return _Batch(self.hub, conn, source, options or ApplyOptions()).run(records)

    def _attempts(self) -> Iterator[_Attempt]:
        """Tries of one batch: an IntegrityError (a concurrent writer claimed the same identifier
        first) is swallowed and the batch tried again, up to :attr:`RETRIES` times."""
        for number in range(1, self.RETRIES + 1):
            yield _Attempt(last=number == self.RETRIES)

    def emit(self, results: list[RecordResult], source: Source) -> None:
        """Tell ``azorus_record_changed`` listeners about the committed changes among ``results``."""
        hook = self.hub.plugins.hook.azorus_record_changed
        if not hook.get_hookimpls():
            return
        for r in results:
            if r.action in ("created", "updated") and r.hub_id is not None:
                event = ChangeEvent(
                    r.kind,
                    r.hub_id,
                    r.person_id,
                    r.action,
                    dict(r.changes),
                    source.connection,
                    source.request_id,
                    source.import_run_id,
                )
                try:
                    hook(event=event)
                except Exception:  # a plugin's listener must not undo a committed change
                    log.exception("azorus_record_changed listener failed")


class _Rejected(Exception):
    """A record of a shared batch was rejected: the batch is undone and applied one by one."""


class _Attempt:
    """One try of a batch (see :meth:`Engine._attempts`): a context that swallows a retryable
    IntegrityError, except on the last try, where it becomes an :class:`IdentityConflict`."""

    def __init__(self, *, last: bool) -> None:
        self.last = last

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> bool:
        if not isinstance(exc, IntegrityError):
            return False
        if self.last:
            raise IdentityConflict(
                "a concurrent change claimed the same identifiers", detail=str(exc.orig)
            ) from exc
        log.debug("batch retried after a concurrent insert: %s", exc.orig)
        return True


class _Batch:
    """The work of one apply call, inside its transaction."""

    def __init__(
        self,
        hub: Hub,
        conn: Connection,
        source: Source,
        opts: ApplyOptions,
        sources: Sequence[Source] | None = None,
    ) -> None:
        self.hub = hub
        self.conn = conn
        self.source = source
        #: Per record, when the batch joins several sources' records (they share one connection).
        self.sources = sources
        self.opts = opts
        self.now = utcnow()
        self.index = IdentityIndex(conn)
        self.results: list[RecordResult | None] = []

    # -- helpers ---------------------------------------------------------------------------

    def _reject(self, i: int, kind: EntityKind, error: AzorusError) -> None:
        if self.opts.all_or_nothing:
            raise error
        self.results[i] = RecordResult(i, kind, "rejected", error=error)

    def run(self, records: Sequence[CanonicalRecord]) -> list[RecordResult]:
        self.results = [None] * len(records)
        refs = [(i, r) for i, r in enumerate(records) if isinstance(r, ReferenceValue)]
        people = [(i, r) for i, r in enumerate(records) if isinstance(r, Person)]
        links = [(i, r) for i, r in enumerate(records) if isinstance(r, (Enquiry, Application))]
        if refs:
            for i, res in rec_store.apply_references(self.conn, refs, self.source, self.now):
                self.results[i] = res
        warnings = self._check_lists([(i, r) for i, r in (*people, *links)])
        if people:
            self._apply_people(people)
        if links:
            self._apply_links(links)
        out = [r for r in self.results if r is not None]
        assert len(out) == len(records)
        for i, found in warnings.items():
            out[i].warnings.extend(found)
        if self.sources is not None:
            for r in out:
                r.source = self.sources[r.index]
        changed = [r for r in out if r.action in ("created", "updated")]
        if changed:
            rec_store.log_changes(self.conn, changed, self.source, self.now)
            self.hub.outbox.route(self.conn, changed, self.source, self.now)
        return out

    def _check_lists(self, items: list[tuple[int, CanonicalRecord]]) -> dict[int, list[str]]:
        """Validate list-typed values against their reference lists (strict: reject; lenient: warn)."""
        custom_lists = {name: d.list for name, d in self.hub.config.custom_fields.items() if d.list}
        wanted: dict[int, list[tuple[str, str, str]]] = {}
        for i, rec in items:
            fields_set = rec.model_fields_set
            checks = [
                (fname, list_name, str(value))
                for fname, list_name in rec.list_fields.items()
                if fname in fields_set and (value := getattr(rec, fname)) is not None
            ]
            if custom_lists and rec.custom:
                checks.extend(
                    (f"custom:{cname}", custom_lists[cname], str(value))
                    for cname, value in rec.custom.items()
                    if cname in custom_lists and value is not None
                )
            if checks:
                wanted[i] = checks
        if not wanted:
            return {}
        pairs = {(ln, code) for checks in wanted.values() for _, ln, code in checks}
        unknown = pairs - rec_store.known_codes(self.conn, pairs)
        if not unknown:
            return {}
        warnings: dict[int, list[str]] = {}
        records = dict(items)
        for i, checks in wanted.items():
            bad = [
                f"{f}: code {code!r} is not in list {ln!r}" for f, ln, code in checks if (ln, code) in unknown
            ]
            if not bad:
                continue
            if self.opts.unknown_codes == "strict":
                self._reject(i, records[i].kind, InvalidRecord("; ".join(bad)))
            else:
                warnings[i] = [b + " (stored as is)" for b in bad]
        return warnings

    # -- people ------------------------------------------------------------------------------

    def _apply_people(self, people: list[tuple[int, Person]]) -> None:
        match_on = list(self.opts.match_on)
        self.index.load((s, v) for _, p in people for s, v in p.identifiers.items())
        hub_ids = {p.hub_id for _, p in people if p.hub_id is not None}
        known_ids = self.index.load_ids(hub_ids) if hub_ids else set()
        resolved: list[tuple[int, Person, int, bool]] = []
        # People whose every identifier in the batch is already theirs: their identifiers need no reload.
        known: dict[int, dict[str, str]] = {}
        unsure: set[int] = set()
        results, index, opts = self.results, self.index, self.opts  # looked up once: a loop per record
        for i, rec in people:
            if results[i] is not None:
                continue  # already rejected (list check)
            try:
                pid = index.resolve(rec.identifiers, match_on, hub_id=rec.hub_id, known_ids=known_ids)
            except RecordError as exc:
                self._reject(i, rec.kind, exc)
                continue
            new = pid is None
            if new:
                if not opts.create:
                    self._reject(i, rec.kind, InvalidRecord("no matching person, and this run only updates"))
                    continue
                pid = index.new_person()
            elif not opts.update:
                results[i] = RecordResult(i, rec.kind, "unchanged", hub_id=pid, person_id=pid)
                continue
            assert pid is not None
            if pid > 0:
                if all(index.owner(s, v) == pid for s, v in rec.identifiers.items()):
                    known.setdefault(pid, {}).update(rec.identifiers)
                else:
                    unsure.add(pid)
            index.claim(pid, rec.identifiers)
            resolved.append((i, rec, pid, new))
        for pid in unsure:
            known.pop(pid, None)
        pids = {pid for _, _, pid, _ in resolved if pid > 0}
        state = rec_store.PeopleState.load(self.conn, pids, known)
        created: set[int] = set()
        provisional: list[RecordResult] = []
        for i, rec, pid, new in resolved:
            if new and pid not in state.rows:
                state.add_new(pid)
            changes = state.apply(pid, rec)
            if new and pid not in created:
                action: Action = "created"
                created.add(pid)
            else:
                action = "updated" if changes else "unchanged"
            result = results[i] = RecordResult(
                i,
                rec.kind,
                action,
                hub_id=pid,
                person_id=pid,
                external=dict(rec.identifiers),
                changes=changes,
            )
            if pid < 0:
                provisional.append(result)
        mapping = state.write(self.conn, self.now)
        self.index.rebind(mapping)
        for result in provisional:
            assert result.hub_id is not None
            result.hub_id = result.person_id = mapping[result.hub_id]

    # -- enquiries and applications ------------------------------------------------------------

    def _apply_links(self, links: list[tuple[int, Enquiry | Application]]) -> None:
        self.index.load((s, v) for _, r in links for s, v in r.person.identifiers.items())
        hub_ids = {r.person.hub_id for _, r in links if r.person.hub_id is not None}
        known_ids = self.index.load_ids(hub_ids) if hub_ids else set()
        resolved: list[tuple[int, Enquiry | Application, int]] = []
        for i, rec in links:
            if self.results[i] is not None:
                continue
            owners = {self.index.owner(s, v) for s, v in rec.person.identifiers.items()}
            if rec.person.hub_id is not None:
                owners.add(rec.person.hub_id if rec.person.hub_id in known_ids else None)
            found = {o for o in owners if o is not None}
            if len(found) > 1:
                self._reject(
                    i,
                    rec.kind,
                    IdentityConflict(
                        f"the {rec.kind.value}'s person identifiers match {len(found)} different people",
                        person_ids=sorted(found),
                    ),
                )
                continue
            if not found:
                shown = ", ".join(f"{s}={v}" for s, v in rec.person.identifiers.items()) or "none given"
                self._reject(i, rec.kind, InvalidRecord(f"{rec.kind.value}: no person found ({shown})"))
                continue
            resolved.append((i, rec, found.pop()))
        for kind in (EntityKind.ENQUIRY, EntityKind.APPLICATION):
            items = [(i, r, pid) for i, r, pid in resolved if r.kind == kind]
            if not items:
                continue
            for i, res in rec_store.apply_links(
                self.conn, kind, items, self.now, may_create=self.opts.create, may_update=self.opts.update
            ):
                if res.error is not None:
                    self._reject(i, kind, res.error)
                else:
                    self.results[i] = res
