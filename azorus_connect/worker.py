"""The worker: drains each connection's outbox serially, connections side by side, and runs pulls.

Each connection is polled every ``poll_interval`` seconds (5 by default).  Transient failures are
retried after the connection's ``retry_delays``; permanent ones park the message and, under the
``hold`` policy, stop that connection's queue until an admin retries or skips it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .connector import OutboundMessage, SendOutcome
from .engine import ApplyOptions, Source
from .exceptions import AzorusError, PermanentExternalError, RetryableError
from .model import Person
from .outbox import OutcomeWriter, worker_identity
from .store.db import utcnow

if TYPE_CHECKING:
    from .config import Connection
    from .hub import Hub

__all__ = ["DrainResult", "Worker"]

log = logging.getLogger(__name__)


@dataclass
class DrainResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: bool = False
    busy: bool = False


class Worker:
    """Sends queued messages. Run :meth:`run` in a thread or process, or :meth:`drain` from tests."""

    #: Messages read ahead from the head of a queue, and for how long that read stays good (an
    #: admin's skip or retry is seen within this time).
    READ_AHEAD = 50
    READ_AHEAD_SECONDS = 1.0

    def __init__(
        self,
        hub: Hub,
        *,
        max_parallel: int = 32,
        lease_seconds: float = 60.0,
        connections: Sequence[str] | None = None,
        pulls: bool = True,
    ) -> None:
        self.hub = hub
        self.owner = worker_identity()
        self.lease_seconds = lease_seconds
        self.max_parallel = max_parallel
        self.only = set(connections) if connections else None
        self.pulls = pulls
        self.stop_event = threading.Event()

    # -- one connection ---------------------------------------------------------------------------

    def drain(self, name: str, *, max_messages: int | None = None) -> DrainResult:
        """Send what is due for one connection, in order, until its queue is empty or must wait."""
        conn = self.hub.config.connection(name)
        ctype = self.hub.plugins.connector_types()[conn.type]
        result = DrainResult()
        with self.hub.store.read() as db:  # most polls find nothing to do: skip taking the hold
            if self.hub.outbox.is_held(db, conn):
                result.held = True
                return result
            if not self.hub.outbox.next_batch(db, name, 1, utcnow()):
                return result
        with self.hub.outbox.drain_lock(name, self.owner, self.lease_seconds) as renew:
            if renew is None:
                result.busy = True
                return result
            with self.hub.outbox.outcome_writer() as outcomes:
                self._drain_held(conn, max(1, ctype.send_batch_size), renew, outcomes, result, max_messages)
        return result

    def _drain_held(
        self,
        conn: Connection,
        batch_size: int,
        renew: Callable[[], bool],
        outcomes: OutcomeWriter,
        result: DrainResult,
        max_messages: int | None,
    ) -> None:
        """The drain loop, run while this worker holds the connection's queue."""
        last_renew = time.monotonic()
        # the head of the queue, read ahead so a message costs one write, not a read and a write
        window: list[OutboundMessage] = []
        window_until = 0.0
        while not self.stop_event.is_set():
            if max_messages is not None and result.sent + result.failed >= max_messages:
                break
            if not window or time.monotonic() > window_until:
                with self.hub.store.read() as db:
                    if self.hub.outbox.is_held(db, conn):
                        result.held = True
                        break
                    window = self.hub.outbox.next_batch(
                        db, conn.name, max(batch_size, self.READ_AHEAD), utcnow()
                    )
                window_until = time.monotonic() + self.READ_AHEAD_SECONDS
            if not window:
                break
            batch, window = window[:batch_size], window[batch_size:]
            if not self._send(conn, batch, result, outcomes):
                break
            if time.monotonic() - last_renew > self.lease_seconds / 3:
                if not renew():
                    log.warning("lost the hold on %s; another worker takes over", conn.name)
                    break
                last_renew = time.monotonic()

    def _send(
        self, conn: Connection, batch: list[OutboundMessage], result: DrainResult, outcomes: OutcomeWriter
    ) -> bool:
        """Send one batch and record each outcome; False when the queue must stop for now."""
        try:
            answers = self.hub.plugins.hook.azorus_send(connection=conn, messages=batch)
            if answers is None:
                raise PermanentExternalError(f"no plugin sends for connection type {conn.type!r}")
        except RetryableError as exc:
            answers = [SendOutcome.retry(m.id, exc.message, exc.retry_after) for m in batch]
        except AzorusError as exc:
            answers = [SendOutcome.failed(m.id, exc.message) for m in batch]
        except Exception as exc:  # a plugin bug: keep the message, retry later, say why
            log.exception("azorus_send failed for %s", conn.name)
            answers = [SendOutcome.retry(m.id, f"plugin error: {type(exc).__name__}: {exc}") for m in batch]
        by_id = {o.message_id: o for o in answers}
        keep_going = True
        for msg in batch:
            outcome = by_id.get(msg.id) or SendOutcome.retry(msg.id, "the plugin returned no outcome")
            now = utcnow()
            if outcome.status == "sent":
                self._record_sent(conn, msg, outcome, outcomes)
                result.sent += 1
            elif outcome.status == "retry" and msg.attempts + 1 < conn.max_attempts:
                delay = (
                    outcome.retry_after
                    if outcome.retry_after is not None
                    else self._delay(conn, msg.attempts)
                )
                with outcomes.write() as db:
                    self.hub.outbox.mark_retry(db, msg.id, outcome.reason or "retry", delay, now)
                result.retried += 1
                keep_going = False  # later messages wait behind this one
            else:
                reason = outcome.reason or "failed"
                if outcome.status == "retry":
                    reason = f"gave up after {msg.attempts + 1} attempts: {reason}"
                with outcomes.write() as db:
                    self.hub.outbox.mark_failed(db, msg.id, reason, conn.on_failure, now)
                result.failed += 1
                if conn.on_failure == "hold":
                    result.held = True
                    keep_going = False
        return keep_going

    def _record_sent(
        self, conn: Connection, msg: OutboundMessage, outcome: SendOutcome, outcomes: OutcomeWriter
    ) -> None:
        """Mark sent; keys the other system assigned are written to the person in the same transaction."""
        now = utcnow()
        if outcome.external_ids and msg.person_id is not None:
            write_back = Person(hub_id=msg.person_id, identifiers=outcome.external_ids)
            self.hub.engine.apply(
                [write_back],
                Source(connection=conn.name),
                ApplyOptions(match_on=(), unknown_codes="lenient", create=False),
                before_commit=lambda db, _r: self.hub.outbox.mark_sent(db, msg.id, outcome.external_ids, now),
            )
        else:
            with outcomes.write() as db:
                self.hub.outbox.mark_sent(db, msg.id, None, now)

    @staticmethod
    def _delay(conn: Connection, attempts: int) -> float:
        delays = conn.retry_delays or [5.0]
        base = delays[min(attempts, len(delays) - 1)]
        return base * (1 + random.uniform(0, 0.1)) if base else 0.0

    def pull(self, name: str) -> object:
        """Pull changes for one connection, unless another worker is pulling it right now."""
        with self.hub.outbox.drain_lock(f"pull:{name}", self.owner, self.lease_seconds) as held:
            if held is None:
                return None
            return self.hub.sync(name)

    # -- every connection -------------------------------------------------------------------------

    def sending_connections(self) -> list[str]:
        types = self.hub.plugins.connector_types()
        return [
            c.name
            for c in self.hub.config.connections.values()
            if c.enabled
            and (self.only is None or c.name in self.only)
            and "send" in types[c.type].capabilities
        ]

    def pulling_connections(self) -> list[str]:
        types = self.hub.plugins.connector_types()
        return [
            c.name
            for c in self.hub.config.connections.values()
            if c.enabled
            and c.pull_interval
            and (self.only is None or c.name in self.only)
            and "pull" in types[c.type].capabilities
        ]

    def run_once(self) -> dict[str, DrainResult]:
        """Drain every sending connection once, side by side; returns what each did."""
        names = self.sending_connections()
        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=min(self.max_parallel, len(names))) as pool:
            futures = {n: pool.submit(self.drain, n) for n in names}
            return {n: f.result() for n, f in futures.items()}

    def run(self) -> None:
        """Poll until :meth:`stop`: sends every ``poll_interval`` s, pulls every ``pull_interval`` s."""
        log.info("worker %s started", self.owner)
        due: dict[tuple[str, str], float] = {}
        running: dict[tuple[str, str], Future[object]] = {}
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="azorus-send") as pool:
            while not self.stop_event.is_set():
                now = time.monotonic()
                jobs = [("send", n) for n in self.sending_connections()]
                if self.pulls:
                    jobs += [("pull", n) for n in self.pulling_connections()]
                for job in jobs:
                    fut = running.get(job)
                    if fut is not None and not fut.done():
                        continue
                    if fut is not None:
                        running.pop(job)
                        if (exc := fut.exception()) is not None:
                            log.error("%s %s failed: %s", job[0], job[1], exc)
                    if now >= due.get(job, 0.0):
                        conn = self.hub.config.connections[job[1]]
                        interval = conn.poll_interval if job[0] == "send" else (conn.pull_interval or 60.0)
                        due[job] = now + interval
                        task = self.drain if job[0] == "send" else self.pull
                        running[job] = pool.submit(task, job[1])
                next_due = min(due.values(), default=now + 1.0)
                self.stop_event.wait(max(0.05, min(1.0, next_due - time.monotonic())))
            for fut in running.values():
                fut.cancel()
        log.info("worker %s stopped", self.owner)

    def stop(self) -> None:
        self.stop_event.set()
