"""One worker draining many connections at once: every connection serial, none starved of a database link."""

from __future__ import annotations

from collections.abc import Callable

from azorus_connect.worker import Worker

from .conftest import ScaleRig
from .test_worker_processes import arrived, queue_people, queued_ids


def test_forty_connections_drain_side_by_side(scale_rig: Callable[..., ScaleRig]) -> None:
    # more connections draining at once than the store's connection pool holds (10 + 20 overflow)
    names = [f"c{n:02d}" for n in range(40)]
    rig = scale_rig(names, delay=0.05)
    queue_people(rig.hub, 0, 3)
    worker = Worker(rig.hub, max_parallel=len(names))
    results = worker.run_once()
    assert {n: r.sent for n, r in results.items()} == dict.fromkeys(names, 3)
    for name, rx in rig.receivers.items():
        assert arrived(rx) == queued_ids(rig.hub, name)
        assert rx.max_in_flight == 1
