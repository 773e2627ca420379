"""The durable outbox: messages written in the same transaction as the change that caused them.

Each connection's messages are sent serially, in queue (id) order.  Exactly one worker drains a
connection at a time: on PostgreSQL it holds an advisory lock (released by the server if the worker
dies); on SQLite it holds a lease row that it renews while it works and that expires if it dies.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.pool import NullPool

from .connector import OutboundMessage
from .model import EntityKind
from .store import records as rec_store
from .store.db import utcnow
from .store.schema import connection_state, outbox

if TYPE_CHECKING:
    from .config import Connection as HubConnection
    from .engine import RecordResult, Source
    from .hub import Hub
    from .store.db import Store

__all__ = ["Outbox", "OutcomeWriter", "worker_identity"]

PENDING, SENT, PARKED, SKIPPED = "pending", "sent", "parked", "skipped"

#: Renews a drain's hold on its connection; answers False when the hold was lost.
Renew = Callable[[], bool]

_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")

#: Built once: it runs for every message sent, and building it costs more than running it.
_MARK_SENT_SQLITE = (
    "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL,"
    " external_ids = ? WHERE id = ?"
)
_MARK_SENT_PG = (
    "UPDATE outbox SET status = 'sent', sent_at = %s, attempts = attempts + 1, last_error = NULL,"
    " external_ids = CAST(%s AS json) WHERE id = %s"
)


class OutcomeWriter:
    """Write transactions for one drain's outcomes, on a connection kept for the drain when there is one.

    On PostgreSQL an outcome commits without waiting for the WAL flush: a server crash may forget
    the last few outcomes, and those messages are sent again, in order (at least once, as
    always).  The changes and the messages they queue are committed durably; only "sent" can be lost.
    """

    def __init__(self, store: Store, kept: Connection | None) -> None:
        self.store = store
        self.kept = kept

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self._transaction() as conn:
            if not self.store.is_sqlite:
                conn.execute(_ASYNC_COMMIT)
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if self.kept is None:
            with self.store.write() as conn:
                yield conn
        else:
            with self.kept.begin():
                yield self.kept


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Outbox:
    """Queue operations for every connection."""

    #: How many drains at once may keep a store connection for their outcomes (one write per message
    #: costs less without a trip to the pool); the rest of the pool stays free for everything else.
    KEPT_CONNECTIONS = 4

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._kept_slots = threading.BoundedSemaphore(self.KEPT_CONNECTIONS)
        self._lock_engine: Engine | None = None
        self._lock_engine_guard = threading.Lock()

    # -- routing (inside the engine's transaction) ------------------------------------------------

    def targets(self, kind: EntityKind, source: Source) -> list[HubConnection]:
        """The connections a change of ``kind`` from ``source`` goes to (never back to its source)."""
        types = self.hub.plugins.connector_types()
        out = []
        for conn in self.hub.config.connections.values():
            ctype = types.get(conn.type)
            if (
                conn.enabled
                and conn.sends(kind)
                and conn.name != source.connection
                and ctype is not None
                and "send" in ctype.capabilities
            ):
                out.append(conn)
        return out

    def route(
        self, conn: Connection, changed: Sequence[RecordResult], source: Source, now: dt.datetime
    ) -> int:
        """Queue a message per changed record for every connection that sends its kind."""
        targets = {kind: self.targets(kind, source) for kind in {r.kind for r in changed}}
        work = [r for r in changed if targets[r.kind] and r.hub_id is not None]
        if not work:
            return 0
        snapshots = self._snapshots(conn, work)
        rows: list[dict[str, Any]] = []
        for r in work:
            assert r.hub_id is not None
            payload = snapshots.get((r.kind, r.hub_id))
            if payload is None:
                continue
            origin = r.source or source  # a shared batch's records keep their own request ids
            for target in targets[r.kind]:
                rows.append(
                    {
                        "connection": target.name,
                        "entity": r.kind.value,
                        "record_id": r.hub_id,
                        "person_id": r.person_id,
                        "operation": "upsert",
                        "payload": payload,
                        "changed": sorted(r.changes),
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "source_connection": origin.connection,
                        "request_id": origin.request_id,
                        "import_run_id": origin.import_run_id,
                        "created_at": now,
                    }
                )
        if rows:
            conn.execute(insert(outbox), rows)
        return len(rows)

    def _snapshots(self, conn: Connection, work: Sequence[RecordResult]) -> dict[tuple[EntityKind, int], Any]:
        people = {r.person_id for r in work if r.person_id is not None}
        persons = rec_store.person_snapshots(conn, people) if people else {}
        out: dict[tuple[EntityKind, int], Any] = {}
        for kind in (EntityKind.ENQUIRY, EntityKind.APPLICATION):
            ids = [r.hub_id for r in work if r.kind == kind and r.hub_id is not None]
            if ids:
                for rid, snap in rec_store.link_snapshots(conn, kind, ids).items():
                    snap["person"] = persons.get(snap["person_id"])
                    out[(kind, rid)] = snap
        for r in work:
            if r.kind == EntityKind.PERSON and r.hub_id in persons:
                out[(r.kind, r.hub_id)] = persons[r.hub_id]
            elif r.kind == EntityKind.REFERENCE and r.hub_id is not None:
                out[(r.kind, r.hub_id)] = {
                    "hub_id": r.hub_id,
                    "key": r.key,
                    **{k: new for k, (_, new) in r.changes.items()},
                }
        return out

    # -- reading the queue ------------------------------------------------------------------------

    def next_batch(
        self, conn: Connection, connection: str, limit: int, now: dt.datetime
    ) -> list[OutboundMessage]:
        """The head of the queue, in order, stopping at the first message not yet due."""
        rows = (
            conn.execute(
                select(outbox)
                .where(outbox.c.connection == connection, outbox.c.status == PENDING)
                .order_by(outbox.c.id)
                .limit(limit)
            )
            .mappings()
            .all()
        )
        out = []
        for row in rows:
            if row["next_attempt_at"] > now:
                break
            out.append(
                OutboundMessage(
                    id=row["id"],
                    connection=row["connection"],
                    entity=EntityKind(row["entity"]),
                    record_id=row["record_id"],
                    person_id=row["person_id"],
                    operation=row["operation"],
                    payload=row["payload"],
                    changed=list(row["changed"] or []),
                    attempts=row["attempts"],
                    queued_at=row["created_at"],
                )
            )
        return out

    def is_held(self, conn: Connection, connection: HubConnection) -> bool:
        """A parked message holds the queue when the connection's policy is ``hold``."""
        if connection.on_failure != "hold":
            return False
        return (
            conn.execute(
                select(outbox.c.id)
                .where(outbox.c.connection == connection.name, outbox.c.status == PARKED)
                .limit(1)
            ).first()
            is not None
        )

    def depth(self) -> dict[str, dict[str, int]]:
        """Messages per connection and status (pending, parked...)."""
        out: dict[str, dict[str, int]] = {}
        with self.hub.store.read() as conn:
            for name, status, count in conn.execute(
                select(outbox.c.connection, outbox.c.status, func.count())
                .where(outbox.c.status.in_([PENDING, PARKED]))
                .group_by(outbox.c.connection, outbox.c.status)
            ):
                out.setdefault(name, {})[status] = count
        return out

    # -- recording outcomes ---------------------------------------------------------------------

    def mark_sent(
        self, conn: Connection, message_id: int, external_ids: dict[str, str] | None, now: dt.datetime
    ) -> None:
        # Once per message on the send path: driver-level SQL, as the engine's hot path does.
        ids = json.dumps(external_ids) if external_ids else None
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(_MARK_SENT_SQLITE, (now.strftime("%Y-%m-%d %H:%M:%S.%f"), ids, message_id))
        else:
            conn.exec_driver_sql(_MARK_SENT_PG, (now, ids, message_id))

    def mark_retry(
        self, conn: Connection, message_id: int, reason: str, delay: float, now: dt.datetime
    ) -> None:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == message_id)
            .values(
                attempts=outbox.c.attempts + 1,
                last_error=reason,
                next_attempt_at=now + dt.timedelta(seconds=delay),
            )
        )

    def mark_failed(
        self, conn: Connection, message_id: int, reason: str, policy: str, now: dt.datetime
    ) -> None:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == message_id)
            .values(
                status=PARKED if policy == "hold" else SKIPPED,
                attempts=outbox.c.attempts + 1,
                last_error=reason,
                sent_at=None,
            )
        )

    # -- admin actions ----------------------------------------------------------------------------

    def retry(self, message_id: int) -> bool:
        """Put a parked (or skipped) message back at its place in the queue, due now."""
        with self.hub.store.write() as conn:
            res = conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id, outbox.c.status.in_([PARKED, SKIPPED]))
                .values(status=PENDING, next_attempt_at=utcnow())
            )
            return bool(res.rowcount)

    def skip(self, message_id: int) -> bool:
        """Give up on a parked or pending message; the queue moves on."""
        with self.hub.store.write() as conn:
            res = conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id, outbox.c.status.in_([PARKED, PENDING]))
                .values(status=SKIPPED, last_error=func.coalesce(outbox.c.last_error, "skipped by an admin"))
            )
            return bool(res.rowcount)

    @contextmanager
    def outcome_writer(self) -> Iterator[OutcomeWriter]:
        """Where a drain records its outcomes: a kept connection if a slot is free, else the pool."""
        if not self._kept_slots.acquire(blocking=False):
            yield OutcomeWriter(self.hub.store, None)
            return
        try:
            with self.hub.store.engine.connect() as kept:
                yield OutcomeWriter(self.hub.store, kept)
        finally:
            self._kept_slots.release()

    # -- who drains a connection ------------------------------------------------------------------

    @contextmanager
    def drain_lock(self, connection: str, owner: str, lease_seconds: float) -> Iterator[Renew | None]:
        """Hold the right to send ``connection``'s messages; yields a renew function, or None if busy."""
        if self.hub.store.is_sqlite:
            with self._lease(connection, owner, lease_seconds) as renew:
                yield renew
        else:
            with self._advisory(connection) as held:
                yield (lambda: True) if held else None

    def _lock_connections(self) -> Engine:
        """Where advisory locks are held: outside the store's pool, so that many drains holding locks
        at once can never leave the pool without a connection for their own reads and writes."""
        with self._lock_engine_guard:
            if self._lock_engine is None:
                self._lock_engine = create_engine(self.hub.store.url, poolclass=NullPool)
            return self._lock_engine

    @contextmanager
    def _advisory(self, connection: str) -> Iterator[bool]:
        key = zlib.crc32(f"azorus-outbox:{connection}".encode())
        with self._lock_connections().connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            try:
                yield held
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    @contextmanager
    def _lease(self, connection: str, owner: str, lease_seconds: float) -> Iterator[Renew | None]:
        def claim() -> bool:
            now = utcnow()
            with self.hub.store.write() as conn:
                exists = conn.execute(
                    select(connection_state.c.connection).where(connection_state.c.connection == connection)
                ).first()
                if exists is None:
                    conn.execute(insert(connection_state).values(connection=connection, updated_at=now))
                res = conn.execute(
                    update(connection_state)
                    .where(
                        connection_state.c.connection == connection,
                        or_(
                            connection_state.c.lease_owner.is_(None),
                            connection_state.c.lease_owner == owner,
                            connection_state.c.lease_expires_at < now,
                        ),
                    )
                    .values(
                        lease_owner=owner,
                        lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
                        updated_at=now,
                    )
                )
                return bool(res.rowcount)

        if not claim():
            yield None
            return
        try:
            yield claim
        finally:
            with self.hub.store.write() as conn:
                conn.execute(
                    update(connection_state)
                    .where(
                        and_(
                            connection_state.c.connection == connection,
                            connection_state.c.lease_owner == owner,
                        )
                    )
                    .values(lease_owner=None, lease_expires_at=None)
                )
