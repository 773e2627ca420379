"""Benchmark: draining the outbox to local HTTP receivers, against the same posts made directly.

(a) Throughput: 5,000 messages queued for one connection are drained by the worker to a local
    receiver; beside it, in the same run and to the same receiver, one ``requests.Session`` posts
    the very same bodies serially (the floor any sender pays for HTTP alone).
(b) Side by side: 50 messages on each of 20 connections whose receivers answer after 100 ms. Each
    connection must stay strictly serial, so the ideal is 20 x 10 = 200 messages/s.

The receivers run in a process of their own, as an external system would: in this process their
threads would compete with the sender for the interpreter lock. Runs on a temporary SQLite
database (the main job's store), or on ``--database-url``.

    python bench/outbound.py [--messages 5000] [--connections 20] [--per-connection 50]

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import requests
from pydantic import BaseModel
from sqlalchemy import func, select

from azorus_connect import Hub, hookimpl
from azorus_connect.connector import ConnectorType, OutboundMessage, SendOutcome
from azorus_connect.engine import Source
from azorus_connect.http import new_session, outcome_for_exception, outcome_for_response
from azorus_connect.model import CanonicalRecord, EntityKind, Person
from azorus_connect.plugins import PluginHost
from azorus_connect.store.db import utcnow
from azorus_connect.store.schema import outbox
from azorus_connect.testing.servers import recording_receiver
from azorus_connect.worker import Worker


class PostSettings(BaseModel):
    url: str


def message_body(message: OutboundMessage) -> dict[str, Any]:
    """What the bench connector posts for one message (the baseline posts the same)."""
    return {"id": message.id, "record_id": message.record_id, "payload": message.payload}


class BenchConnector:
    """A serial REST sender: one POST per message through the project's HTTP session helper."""

    TYPE = ConnectorType(
        name="bench_post",
        settings_model=PostSettings,
        capabilities=frozenset({"send"}),
        entity_kinds=frozenset({EntityKind.PERSON}),
    )

    def __init__(self) -> None:
        self.sessions: dict[str, requests.Session] = {}
        self.lock = threading.Lock()

    def session(self, name: str) -> requests.Session:
        with self.lock:
            if name not in self.sessions:
                self.sessions[name] = new_session()
            return self.sessions[name]

    @hookimpl
    def azorus_register_connector_types(self) -> list[ConnectorType]:
        return [self.TYPE]

    @hookimpl
    def azorus_send(self, connection: Any, messages: Sequence[OutboundMessage]) -> list[SendOutcome] | None:
        if connection.type != "bench_post":
            return None
        session = self.session(connection.name)
        out = []
        for m in messages:
            try:
                resp = session.post(connection.settings.url, json=message_body(m), timeout=30)
            except requests.RequestException as exc:
                out.append(outcome_for_exception(m.id, exc))
                continue
            out.append(outcome_for_response(m.id, resp))
        return out


def _serve_receivers(count: int, delay: float, pipe: Pipe) -> None:
    """In the receivers' process: serve ``count`` receivers and answer the bench's questions."""
    with ExitStack() as stack:
        receivers = [stack.enter_context(recording_receiver(delay=delay)) for _ in range(count)]
        pipe.send([rx.url for rx in receivers])
        while (command := pipe.recv()) != "stop":
            if command == "clear":
                for rx in receivers:
                    with rx.lock:
                        rx.received.clear()
                pipe.send(None)
            elif command == "report":  # per receiver: the message ids in arrival order, most in flight
                pipe.send([([b["id"] for b in rx.bodies()], rx.max_in_flight) for rx in receivers])


class Receivers:
    """Handle on the receivers' process."""

    def __init__(self, pipe: Pipe, urls: list[str]) -> None:
        self.pipe = pipe
        self.urls = urls

    def clear(self) -> None:
        self.pipe.send("clear")
        self.pipe.recv()

    def report(self) -> list[tuple[list[int], int]]:
        self.pipe.send("report")
        return list(self.pipe.recv())


@contextmanager
def receivers_process(count: int, delay: float = 0.0) -> Iterator[Receivers]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_receivers, args=(count, delay, theirs), daemon=True
    )
    process.start()
    try:
        yield Receivers(ours, ours.recv())
    finally:
        ours.send("stop")
        process.join(timeout=30)


def open_hub(database_url: str, urls: dict[str, str]) -> Hub:
    connections = {
        name: {
            "type": "bench_post",
            "directions": {"person": "send"},
            "settings": {"url": url},
            "poll_interval": 0.05,
        }
        for name, url in urls.items()
    }
    plugins = PluginHost.load(entry_points=False, extra=[BenchConnector()])
    return Hub.open({"connections": connections}, database_url=database_url, plugins=plugins, migrate=True)


def queue_people(hub: Hub, count: int, *, prefix: str, batch: int = 500) -> None:
    """Queue ``count`` new people: one message per person for every sending connection."""
    for start in range(0, count, batch):
        people: list[CanonicalRecord] = [
            Person(
                identifiers={"mst": f"{prefix}{n:07d}"},
                first_name=f"First{n}",
                last_name=f"Last{n}",
                email=f"p{n}@example.ac.uk",
            )
            for n in range(start, min(count, start + batch))
        ]
        hub.apply(people, Source("feed"))


def pending(hub: Hub) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).where(outbox.c.status == "pending")).scalar_one())


def throughput(database_url: str, messages: int, rounds: int) -> dict[str, float]:
    """(a): one connection, fast receiver; worker drain vs a bare session posting the same bodies.

    The two take turns, a slice of the queue each round (first one, then the other), so that a
    machine busy with other work slows both alike.
    """
    with receivers_process(1) as rxs:
        [url] = rxs.urls
        hub = open_hub(database_url, {"target": url})
        try:
            queue_people(hub, messages, prefix="A")
            with hub.store.read() as conn:
                queued = hub.outbox.next_batch(conn, "target", messages, now=utcnow())
            bodies = [message_body(m) for m in queued]
            assert len(bodies) == messages
            session = requests.Session()
            worker = Worker(hub)
            raw_seconds = ours_seconds = 0.0
            round_ratios: list[float] = []  # per round: raw time / our time
            size = -(-messages // rounds)
            for n, start in enumerate(range(0, messages, size)):
                part = bodies[start : start + size]
                ids = [b["id"] for b in part]
                took = {}
                for turn in ("raw", "ours") if n % 2 == 0 else ("ours", "raw"):
                    rxs.clear()
                    started = time.perf_counter()
                    if turn == "raw":
                        for body in part:
                            session.post(url, json=body, timeout=30).raise_for_status()
                        took[turn] = time.perf_counter() - started
                    else:
                        result = worker.drain("target", max_messages=len(part))
                        took[turn] = time.perf_counter() - started
                        assert result.sent == len(part), result
                    assert rxs.report()[0][0] == ids, f"{turn}: other messages, or out of order"
                raw_seconds += took["raw"]
                ours_seconds += took["ours"]
                round_ratios.append(took["raw"] / took["ours"])
            session.close()
            assert pending(hub) == 0
        finally:
            hub.close()
    raw_rate, ours_rate = messages / raw_seconds, messages / ours_seconds
    ratio = statistics.median(round_ratios)
    print(f"(a) {messages} messages, one connection, local receiver, {rounds} rounds taken in turn")
    print(f"    raw requests.Session, serial  {raw_rate:>8,.0f} messages/s")
    print(f"    outbox worker                 {ours_rate:>8,.0f} messages/s   ({ours_rate / raw_rate:.2f}x)")
    print(f"    median of the {len(round_ratios)} rounds' ratios       {ratio:.2f}x")
    return {
        "a_messages": messages,
        "a_raw_per_s": round(raw_rate, 1),
        "a_ours_per_s": round(ours_rate, 1),
        # the median round: a burst of other work on the machine skews one round, not the figure
        "ratio_vs_raw": round(ratio, 3),
        "ratio_vs_raw_overall": round(ours_rate / raw_rate, 3),
    }


def side_by_side(database_url: str, connections: int, per_connection: int, delay: float) -> dict[str, Any]:
    """(b): many slow connections drained at once, each strictly serial."""
    with receivers_process(connections, delay) as rxs:
        names = [f"c{n:02d}" for n in range(connections)]
        hub = open_hub(database_url, dict(zip(names, rxs.urls, strict=True)))
        try:
            queue_people(hub, per_connection, prefix="B")
            total = connections * per_connection
            assert pending(hub) == total
            worker = Worker(hub, max_parallel=connections)
            started = time.perf_counter()
            results = worker.run_once()
            seconds = time.perf_counter() - started
            assert sum(r.sent for r in results.values()) == total, results
            assert pending(hub) == 0
        finally:
            hub.close()
        report = rxs.report()
    serial = all(most == 1 for _, most in report)
    in_order = all(ids == sorted(ids) and len(ids) == per_connection for ids, _ in report)
    rate = total / seconds
    ideal = connections / delay
    print(f"(b) {connections} connections x {per_connection} messages, answered after {delay * 1000:.0f} ms")
    print(f"    ideal (each connection serial) {ideal:>8,.0f} messages/s")
    print(f"    outbox worker                  {rate:>8,.0f} messages/s   ({rate / ideal:.2f}x)")
    print(f"    every connection strictly serial: {serial}; each in queue order: {in_order}")
    return {
        "b_connections": connections,
        "b_per_connection": per_connection,
        "b_ideal_per_s": round(ideal, 1),
        "b_ours_per_s": round(rate, 1),
        "ratio_vs_ideal": round(rate / ideal, 3),
        "b_strictly_serial": serial,
        "b_in_order": in_order,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=25, help="Turns (a) takes between raw and ours.")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--per-connection", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.1, help="Seconds the slow receivers take.")
    parser.add_argument("--database-url", help="Default: a temporary SQLite file per part.")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="azorus-bench-") as tmp:
        url_a = args.database_url or f"sqlite:///{Path(tmp) / 'a.db'}"
        url_b = args.database_url or f"sqlite:///{Path(tmp) / 'b.db'}"
        figures: dict[str, Any] = {"bench": "outbound", "database": url_a.split(":", 1)[0]}
        figures |= throughput(url_a, args.messages, args.rounds)
        figures |= side_by_side(url_b, args.connections, args.per_connection, args.delay)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
