"""Receiving inbound requests: plugin receive -> mapping -> engine -> request log -> response.

Requests are handled by :class:`InboundWriter`'s thread, several to a transaction when they queue up
(:func:`handle_group`).  Every request is logged (headers redacted, raw body, our answer, the
identifiers it touched, duration), whatever its outcome, in the same transaction as its changes;
a request that fails leaves nothing but its log entry.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from .connector import Affected, InboundRequest, InboundResult
from .engine import RecordResult, Source
from .exceptions import (
    AzorusError,
    EntityNotMapped,
    ExternalUnavailable,
    PayloadTooLarge,
    UnknownConnection,
)
from .model import Application, CanonicalRecord, Enquiry, Person
from .redaction import redact_headers
from .store.db import utcnow
from .store.schema import request_key, request_log
from .store.sql import bulk_insert

if TYPE_CHECKING:
    from .config import Connection as HubConnection
    from .hub import Hub

__all__ = ["LOGGED_BODY_LIMIT", "InboundWriter", "handle_group", "new_request_id"]

log = logging.getLogger(__name__)

#: The request log keeps at most this much of a body (the rest is marked truncated).
LOGGED_BODY_LIMIT = 2_000_000


def new_request_id() -> str:
    """``r-`` and 20 hex digits: the millisecond it was made, then 32 random bits.

    Ids so sort by arrival, and a new one lands at the end of the request log's key indexes
    rather than at a random place in them (which, once the log outgrows the page cache, is a read).
    An id names a request, it guards nothing, so its random part needs no system call (which
    would hand the interpreter to another thread mid-request).
    """
    return f"r-{time.time_ns() // 1_000_000:012x}{random.getrandbits(32):08x}"


Answer = tuple[int, bytes, str, InboundResult]


@dataclass
class _Inbound:
    """One request on its way through a group commit."""

    request: InboundRequest
    started: float
    too_large: bool = False
    request_id: str = field(default_factory=new_request_id)
    received_at: dt.datetime = field(default_factory=utcnow)
    connection: HubConnection | None = None
    records: list[CanonicalRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    results: list[RecordResult] = field(default_factory=list)
    error: AzorusError | None = None
    answer: Answer | None = None

    @property
    def source(self) -> Source:
        assert self.connection is not None
        return Source(connection=self.connection.name, request_id=self.request_id)


def handle_group(hub: Hub, items: list[_Inbound]) -> None:
    """Process several requests with one commit; each gets its own answer (``item.answer``).

    The requests' records are applied together when all of them are accepted, and one by one,
    each in its own savepoint, when not: a request that fails is rolled back alone and logged
    with its error.  The log rows of the group are written in the same transaction.  Nobody is
    answered before the commit, so an answer always describes what is stored; if the commit
    fails, every request of the group is answered 503 (nothing of theirs was stored) and logged
    alone.
    """
    for item in items:
        _prepare(hub, item)
    try:
        with hub.store.write() as conn:
            _apply(hub, conn, [item for item in items if item.error is None])
            for item in items:
                _answer(hub, item)
            _log(hub, conn, items)
    except Exception as exc:
        error = _database_error(exc)
        for item in items:
            item.error, item.results = error, []
            _log_alone(hub, item)
    for item in items:
        if item.error is None:
            hub.engine.emit(item.results, item.source)
        if item.connection is not None and item.answer is not None:
            _completed(hub, item.connection, item.answer[3])


def _prepare(hub: Hub, item: _Inbound) -> None:
    """Outside any transaction: the plugin reads the request and the records are mapped."""
    request = item.request
    connection = item.connection = hub.config.connections.get(request.connection)
    try:
        if connection is None or not connection.enabled:
            raise UnknownConnection(f"no connection named {request.connection!r}")
        if item.too_large:
            raise PayloadTooLarge(f"the body is larger than {connection.max_body_bytes} bytes")
        received = hub.plugins.hook.azorus_receive(connection=connection, request=request)
        if received is None:
            raise EntityNotMapped(
                f"connection {connection.name!r} ({connection.type}) does not receive requests"
            )
        item.warnings = list(received.warnings)
        item.records = hub.to_canonical(connection, received.records)
    except Exception as exc:
        item.error = _as_error(exc, request.connection)


def _apply(hub: Hub, conn: Connection, ready: list[_Inbound]) -> None:
    """Inside the group's transaction: the records of every request read without error."""
    if not ready:
        return
    connection = ready[0].connection
    assert connection is not None
    if len(ready) > 1 and all(item.connection is connection for item in ready):
        together = hub.engine.apply_together(
            conn, [(item.records, item.source) for item in ready], hub.apply_options(connection)
        )
        if together is not None:
            for item, results in zip(ready, together, strict=True):
                item.results = results
            return
    for item in ready:
        assert item.connection is not None
        try:
            options = hub.apply_options(item.connection)
            item.results = hub.engine.apply_nested(conn, item.records, item.source, options)
        except Exception as exc:
            item.error = _as_error(exc, item.request.connection)


def _answer(hub: Hub, item: _Inbound) -> None:
    """The request's answer: what its records did, or its error."""
    if item.error is None:
        result = _result(item.request_id, item.results, item.warnings)
    else:
        status = item.error.http_status
        result = InboundResult(item.request_id, status, "rejected", error=item.error.message)
    item.answer = (*_render(hub, item.connection, item.request, result), result)


def _as_error(exc: Exception, connection: str) -> AzorusError:
    if isinstance(exc, AzorusError):
        return exc
    if isinstance(exc, OperationalError):
        return _database_error(exc)
    log.error("inbound %s: unexpected error", connection, exc_info=exc)
    return AzorusError(f"internal error ({type(exc).__name__})")


def _database_error(exc: Exception) -> AzorusError:
    """Database locked or unreachable: SITS should try again later."""
    if isinstance(exc, AzorusError):
        return exc
    log.warning("inbound: database unavailable: %s", exc)
    return ExternalUnavailable("the hub's database is temporarily unavailable; try again")


def _log_alone(hub: Hub, item: _Inbound) -> None:
    """The log row of a request whose group could not be committed, in its own transaction."""
    _answer(hub, item)
    try:
        with hub.store.write() as conn:
            _log(hub, conn, [item])
    except Exception:
        log.exception("could not write the request log for %s", item.request_id)


def _result(request_id: str, results: list[RecordResult], warnings: list[str]) -> InboundResult:
    affected = [
        Affected(
            r.kind,
            r.hub_id,
            r.action,
            external=dict(r.external),
            key=r.key,
            changed=sorted(r.changes),
            warnings=list(r.warnings),
        )
        for r in results
    ]
    actions = {r.action for r in results}
    outcome = "created" if "created" in actions else "updated" if "updated" in actions else "unchanged"
    status = 201 if outcome == "created" else 200
    all_warnings = list(warnings) + [w for r in results for w in r.warnings]
    return InboundResult(request_id, status, outcome, affected, all_warnings)  # type: ignore[arg-type]


def _render(
    hub: Hub, connection: HubConnection | None, request: InboundRequest, result: InboundResult
) -> tuple[int, bytes, str]:
    rendered = None
    if connection is not None:
        try:
            rendered = hub.plugins.hook.azorus_render_response(
                connection=connection, request=request, result=result
            )
        except Exception:
            log.exception("azorus_render_response failed; answering in JSON")
    if rendered is None:
        rendered = (json.dumps(result_as_json(result)).encode(), "application/json")
    return result.status_code, rendered[0], rendered[1]


def result_as_json(result: InboundResult) -> dict[str, Any]:
    """The default (JSON) response body."""
    data = asdict(result)
    data["affected"] = [
        {**a, "entity": a["entity"].value if hasattr(a["entity"], "value") else a["entity"]}
        for a in data["affected"]
    ]
    return data


def _keys(records: Iterable[CanonicalRecord], results: list[RecordResult]) -> set[tuple[str, str]]:
    """Every identifier the request named or touched, for searching the log."""
    keys: set[tuple[str, str]] = set()
    for rec in records:
        if isinstance(rec, Person):
            keys.update(rec.identifiers.items())
        elif isinstance(rec, (Enquiry, Application)):
            keys.update(rec.person.identifiers.items())
            if rec.key:
                keys.add((f"{rec.kind.value}_key", rec.key))
    for r in results:
        if r.hub_id is not None:
            keys.add((f"hub_{r.kind.value}", str(r.hub_id)))
        if r.person_id is not None:
            keys.add(("hub_person", str(r.person_id)))
    return {(s[:40], v[:200]) for s, v in keys}


def _log(hub: Hub, conn: Connection, items: list[_Inbound]) -> None:
    """The requests' log rows: headers redacted, body, our answer, and the identifiers they named."""
    rows: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for item in items:
        assert item.answer is not None
        request, connection = item.request, item.connection
        _status, body, media, result = item.answer
        ctype = hub.plugins.connector_types().get(connection.type) if connection is not None else None
        rows.append(
            {
                "id": item.request_id,
                "received_at": item.received_at,
                "connection": request.connection[:60],
                "method": request.method,
                "path": request.path[:500],
                "client_ip": request.client_ip,
                "headers": redact_headers(request.headers.items(), ctype.secret_headers if ctype else ()),
                "content_type": request.content_type[:200] if request.content_type else None,
                "body": request.body[:LOGGED_BODY_LIMIT],
                "body_truncated": len(request.body) > LOGGED_BODY_LIMIT,
                "status_code": result.status_code,
                "outcome": result.outcome,
                "response_body": body.decode("utf-8", "replace"),
                "response_type": media,
                "error": result.error,
                "duration_ms": (time.perf_counter() - item.started) * 1000,
            }
        )
        keys.extend(
            {"request_id": item.request_id, "scheme": s, "value": v}
            for s, v in _keys(item.records, item.results)
        )
    bulk_insert(conn, request_log, rows)
    bulk_insert(conn, request_key, keys)


def _completed(hub: Hub, connection: HubConnection, result: InboundResult) -> None:
    hook = hub.plugins.hook.azorus_request_completed
    if hook.get_hookimpls():
        try:
            hook(connection=connection, result=result)
        except Exception:
            log.exception("azorus_request_completed listener failed")


#: Who waits for a request's answer: a thread (a concurrent future) or a coroutine on an event loop.
_Waiter = Future[Answer] | tuple[asyncio.AbstractEventLoop, "asyncio.Future[Answer]"]
#: A waiter with its answer or error.
_Outcome = tuple[_Waiter, Answer | None, BaseException | None]
#: A coroutine's future with its answer or error, settled on its loop.
_OnLoop = tuple["asyncio.Future[Answer]", Answer | None, BaseException | None]


class InboundWriter:
    """Runs inbound requests on one thread, committing the ones that queue up together.

    Writes to the store are one at a time anyway (SQLite has a single writer), so requests that
    arrive while a transaction is open wait for the next one and share it: one commit for the
    group instead of one each, and no threads contending for the write lock.  A lone request is
    committed at once.  Each request still succeeds or fails alone (see :func:`handle_group`).

    Once a group is answered, the thread waits for each event loop it answered to send those
    answers before it starts the next group.  Both threads need the interpreter lock; were the
    next group started at once, the loop would send the answers and read the next requests in
    the gaps the writer leaves it, each a hand-over of the lock, and fewer of the next requests
    would have arrived when the writer looked.  Taking turns, the loop sends and reads in one
    go, and the next group is larger: at 16 connections about 15 requests a transaction
    instead of 9, and a quarter more requests a second (``bench/inbound.py``).
    """

    #: At most this many requests, and about this many body bytes, share one transaction.
    MAX_GROUP = 32
    MAX_GROUP_BYTES = 8_000_000
    #: The longest the thread waits for an event loop to send a group's answers (seconds); a
    #: loop busy with something else, or closing, does not hold up the next group for longer.
    LOOP_TURN = 0.005

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._queue: queue.SimpleQueue[tuple[_Inbound, _Waiter] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        #: How many transactions committed how many requests: {requests in the group: groups}.
        self.group_sizes: collections.Counter[int] = collections.Counter()

    def submit(
        self, request: InboundRequest, *, too_large: bool = False, started: float | None = None
    ) -> Future[Answer]:
        """Queue ``request``; the future gives (status, body, media type, result) once committed."""
        future: Future[Answer] = Future()
        self._put(request, too_large, started, future)
        return future

    async def answer(
        self, request: InboundRequest, *, too_large: bool = False, started: float | None = None
    ) -> Answer:
        """Queue ``request`` and wait, without blocking the event loop, for its answer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        self._put(request, too_large, started, (loop, future))
        return await future

    def _put(self, request: InboundRequest, too_large: bool, started: float | None, waiter: _Waiter) -> None:
        item = _Inbound(request, started if started is not None else time.perf_counter(), too_large)
        with self._lock:
            if self._closed:
                raise RuntimeError("the inbound writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="azorus-inbound", daemon=True)
                self._thread.start()
            self._queue.put((item, waiter))

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group, size = [first], len(first[0].request.body)
            while len(group) < self.MAX_GROUP and size < self.MAX_GROUP_BYTES:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is None:
                    stopping = True
                    break
                group.append(queued)
                size += len(queued[0].request.body)
            self._handle(group)
            self.group_sizes[len(group)] += 1

    def _handle(self, group: list[tuple[_Inbound, _Waiter]]) -> None:
        outcomes: list[_Outcome]
        try:
            handle_group(self.hub, [item for item, _ in group])
        except BaseException as exc:  # handle_group answers every request; this is a last resort
            log.exception("inbound group failed")
            outcomes = [(waiter, None, exc) for _, waiter in group]
        else:
            outcomes = [(waiter, item.answer, None) for item, waiter in group]
        deadline = time.monotonic() + self.LOOP_TURN
        for sent in _settle(outcomes):  # the loops' turn (see the class notes)
            sent.wait(max(0.0, deadline - time.monotonic()))


def _settle(outcomes: list[_Outcome]) -> list[threading.Event]:
    """Hand each waiter its answer (or error): threads directly, and each event loop's coroutines
    in one callback, so a group costs a loop one wake-up rather than one per request.

    Returns an event per loop, set once the loop has run the coroutines it woke: their answers
    are then sent, as far as the sockets took them.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[_OnLoop]] = {}
    for waiter, answer, error in outcomes:
        if isinstance(waiter, Future):
            if not waiter.cancelled():  # else its caller gave up waiting
                _resolve(waiter, answer, error)
        else:
            loop, future = waiter
            by_loop.setdefault(loop, []).append((future, answer, error))
    sent: list[threading.Event] = []
    for loop, pending in by_loop.items():
        done = threading.Event()
        try:
            loop.call_soon_threadsafe(_settle_on_loop, loop, pending, done)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            log.debug("inbound answers for a closed event loop dropped")
        else:
            sent.append(done)
    return sent


def _settle_on_loop(loop: asyncio.AbstractEventLoop, pending: list[_OnLoop], done: threading.Event) -> None:
    for future, answer, error in pending:
        if not future.done():  # else the client went away and the request was cancelled
            _resolve(future, answer, error)
    # Each woken coroutine was scheduled by its future; this runs after them.
    loop.call_soon(done.set)


def _resolve(
    future: Future[Answer] | asyncio.Future[Answer], answer: Answer | None, error: BaseException | None
) -> None:
    if error is not None:
        future.set_exception(error)
    else:
        assert answer is not None
        future.set_result(answer)
