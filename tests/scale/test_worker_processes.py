"""Several worker processes on one database: each message once, in queue order, one sender per connection.

Runs on the suite's database: SQLite (the lease row) or PostgreSQL (advisory locks) when
``AZORUS_TEST_DATABASE_URL`` names one.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from sqlalchemy import select

from azorus_connect import Hub, Person, Source
from azorus_connect.model import CanonicalRecord
from azorus_connect.store.schema import outbox
from azorus_connect.testing.servers import RecordingReceiver

from .conftest import ScaleRig, wait_for

pytestmark = pytest.mark.slow


def queue_people(hub: Hub, first: int, count: int) -> None:
    """Queue ``count`` new people in one transaction: one message each for every connection."""
    people: list[CanonicalRecord] = [
        Person(identifiers={"mst": f"{n:06d}"}, first_name=f"P{n}") for n in range(first, first + count)
    ]
    hub.apply(people, Source("feed"))


def queued_ids(hub: Hub, connection: str) -> list[int]:
    with hub.store.read() as db:
        return list(
            db.execute(select(outbox.c.id).where(outbox.c.connection == connection).order_by(outbox.c.id))
            .scalars()
            .all()
        )


def statuses(hub: Hub) -> set[str]:
    with hub.store.read() as db:
        return set(db.execute(select(outbox.c.status).distinct()).scalars())


def arrived(rx: RecordingReceiver) -> list[int]:
    return [b["id"] for b in rx.bodies()]


def test_three_worker_processes_send_each_message_once_in_order(scale_rig: Callable[..., ScaleRig]) -> None:
    rig = scale_rig(["c1", "c2", "c3"], delay=0.003)
    workers = [rig.start_worker() for _ in range(3)]
    for w in workers:
        rig.wait_ready(w)

    # 100 people x 3 connections = 300 messages, queued while the workers run; each chunk is
    # drained before the next is queued, so every chunk is a fresh race for each connection.
    for first in range(0, 100, 5):
        queue_people(rig.hub, first, 5)
        total = (first + 5) * 3

        def caught_up(total: int = total) -> bool:
            return sum(len(rx.received) for rx in rig.receivers.values()) >= total

        wait_for(caught_up, f"{total} messages to arrive")
    wait_for(lambda: statuses(rig.hub) == {"sent"}, "every message to be marked sent")

    senders: set[int] = set()
    for name, rx in rig.receivers.items():
        expected = queued_ids(rig.hub, name)
        assert len(expected) == 100
        assert arrived(rx) == expected, f"{name}: not exactly once in queue order"
        assert rx.max_in_flight == 1, f"{name}: {rx.max_in_flight} requests were in flight at once"
        assert {b["connection"] for b in rx.bodies()} == {name}
        senders |= {b["worker"] for b in rx.bodies()}
    # the workers really took turns: more than one process sent messages
    assert senders <= {w.process.pid for w in workers}
    assert len(senders) >= 2, senders
    assert all(w.process.poll() is None for w in workers), "a worker died"


def collapse_repeats(ids: list[int]) -> tuple[list[int], int]:
    """``ids`` with adjacent repeats removed, and how many were removed."""
    out: list[int] = []
    for i in ids:
        if not out or out[-1] != i:
            out.append(i)
    return out, len(ids) - len(out)


def test_a_worker_killed_mid_send_loses_nothing_and_keeps_order(scale_rig: Callable[..., ScaleRig]) -> None:
    rig = scale_rig(["slow"], delay=0.1)
    queue_people(rig.hub, 0, 30)
    expected = queued_ids(rig.hub, "slow")
    rx = rig.receivers["slow"]
    # a short lease: on SQLite the dead worker's hold must expire before another may send
    first = rig.start_worker(lease_seconds=2.0)

    def mid_send() -> bool:
        with rx.lock:
            return len(rx.received) >= 8 and rx.in_flight == 1

    wait_for(mid_send, "the first worker to be mid-send")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=15)
    assert first.process.returncode == -signal.SIGKILL
    killed_at = len(rx.received)
    assert killed_at < len(expected), "everything was sent before the kill"

    second = rig.start_worker(lease_seconds=2.0)
    rig.wait_ready(second)
    wait_for(lambda: statuses(rig.hub) == {"sent"}, "the restarted worker to send the rest")

    got = arrived(rx)
    unique, repeats = collapse_repeats(got)
    assert unique == expected, "a message was lost or sent out of order"
    assert repeats <= 1, f"{repeats} messages were sent twice"
    assert rx.max_in_flight == 1
    senders = [b["worker"] for b in rx.bodies()]
    # the killed worker sent a prefix, the restarted one the rest
    assert set(senders) == {first.process.pid, second.process.pid}
    assert senders == sorted(senders, key=lambda pid: pid != first.process.pid)
