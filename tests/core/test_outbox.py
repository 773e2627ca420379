from __future__ import annotations

from sqlalchemy import select

from azorus_connect import Person, PullResult, Source, SourceRecord
from azorus_connect.store.schema import identifier, outbox
from azorus_connect.testing.servers import recording_receiver
from azorus_connect.worker import Worker

from . import echo_plugin
from .conftest import echo_config


def statuses(hub, connection="right"):
    with hub.store.read() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(outbox.c.id, outbox.c.status)
                .where(outbox.c.connection == connection)
                .order_by(outbox.c.id)
            )
        ]


def test_sent_in_queue_order(echo_hub):
    with recording_receiver() as rx:
        hub = echo_hub(echo_config(rx.url))
        for n in range(5):
            hub.apply([Person(identifiers={"mst": f"{n:03d}"}, first_name=f"P{n}")], Source("left"))
        res = Worker(hub).drain("right")
        assert res.sent == 5
        assert [b["payload"]["identifiers"]["mst"] for b in rx.bodies()] == [
            "000",
            "001",
            "002",
            "003",
            "004",
        ]


def test_transient_failure_is_retried_in_order(echo_hub):
    with recording_receiver() as rx:
        hub = echo_hub(echo_config(rx.url))
        for n in range(3):
            hub.apply([Person(identifiers={"mst": str(n)})], Source("left"))
        rx.script = [503, 429]
        w = Worker(hub)
        first = w.drain("right")
        assert first.retried == 1 and first.sent == 0
        second = w.drain("right")
        assert second.retried == 1
        third = w.drain("right")
        assert third.sent == 3
        assert [b["payload"]["identifiers"]["mst"] for b in rx.bodies()] == ["0", "1", "2"]


def test_permanent_failure_holds_the_queue_until_retried(echo_hub):
    with recording_receiver() as rx:
        hub = echo_hub(echo_config(rx.url))
        for n in range(3):
            hub.apply([Person(identifiers={"mst": str(n)})], Source("left"))
        rx.script = [400]
        w = Worker(hub)
        res = w.drain("right")
        assert res.failed == 1 and res.held
        assert [s for _, s in statuses(hub)] == ["parked", "pending", "pending"]
        assert w.drain("right").held
        parked_id = statuses(hub)[0][0]
        assert hub.outbox.retry(parked_id)
        assert w.drain("right").sent == 3
        assert [b["payload"]["identifiers"]["mst"] for b in rx.bodies()] == ["0", "1", "2"]


def test_skip_policy_moves_on(echo_hub):
    with recording_receiver() as rx:
        cfg = echo_config(rx.url)
        cfg["connections"]["right"]["on_failure"] = "skip"
        hub = echo_hub(cfg)
        for n in range(3):
            hub.apply([Person(identifiers={"mst": str(n)})], Source("left"))
        rx.script = [400]
        assert Worker(hub).drain("right").sent == 2
        assert [s for _, s in statuses(hub)] == ["skipped", "sent", "sent"]


def test_external_ids_written_back_without_echo(echo_hub):
    with recording_receiver() as rx:
        hub = echo_hub(echo_config(rx.url))
        [r] = hub.apply([Person(identifiers={"mst": "9"})], Source("left"))
        assert Worker(hub).drain("right").sent == 1
        with hub.store.read() as conn:
            ids = dict(conn.execute(select(identifier.c.scheme, identifier.c.value)).all())
            queued = conn.execute(select(outbox.c.connection, outbox.c.status)).all()
        assert ids == {"mst": "9", "echo": f"E{r.hub_id}"}
        # the write-back goes to `left` (another sender) but never back to `right`
        assert sorted(queued) == [("left", "pending"), ("right", "sent")]


def test_unreachable_receiver_is_transient(echo_hub):
    hub = echo_hub(echo_config("http://127.0.0.1:9/"))
    hub.apply([Person(identifiers={"mst": "1"})], Source("left"))
    res = Worker(hub).drain("right")
    assert res.retried == 1
    with hub.store.read() as conn:
        row = conn.execute(select(outbox.c.attempts, outbox.c.last_error, outbox.c.status)).one()
    assert row.attempts == 1 and "Connection" in row.last_error and row.status == "pending"


def test_pull_pages_and_watermark(echo_hub):
    hub = echo_hub()
    echo_plugin.PULL_PAGES["left"] = [
        PullResult(records=[SourceRecord("person", {"MST": "1", "FIRST": "A"})]),
        PullResult(records=[SourceRecord("person", {"MST": "2"}), SourceRecord("person", {"DOB": "bad"})]),
    ]
    try:
        res = hub.sync("left")
        assert (res.pages, res.created, res.rejected, res.watermark) == (2, 2, 1, "2")
        assert hub.watermark("left") == "2"
        again = hub.sync("left")
        assert again.created == 0 and again.watermark == "2"
    finally:
        echo_plugin.PULL_PAGES.clear()


def test_worker_loop_pulls_and_sends_on_its_schedule(echo_hub):
    import threading
    import time

    with recording_receiver() as rx:
        cfg = echo_config(rx.url)
        cfg["connections"]["left"]["pull_interval"] = 0.05
        cfg["connections"]["right"]["poll_interval"] = 0.05
        hub = echo_hub(cfg)
        echo_plugin.PULL_PAGES["left"] = [
            PullResult(records=[SourceRecord("person", {"MST": "42", "FIRST": "Ada"})])
        ]
        worker = Worker(hub, connections=["left", "right"])
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not rx.bodies() and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            worker.stop()
            thread.join(timeout=10)
            echo_plugin.PULL_PAGES.clear()
        assert not thread.is_alive()
        body = rx.bodies()[0]
        assert body["payload"]["identifiers"] == {"mst": "42"} and body["payload"]["first_name"] == "Ada"
        assert hub.watermark("left") == "1"
