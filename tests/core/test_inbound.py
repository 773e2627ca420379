from __future__ import annotations

import asyncio
import json
import threading
from contextlib import contextmanager

from sqlalchemy import func, select

from azorus_connect.connector import InboundRequest
from azorus_connect.store.schema import change_log, identifier, outbox, person, request_key, request_log

from . import echo_plugin
from .conftest import echo_config


def post(client, conn="left", records=None, raw=None, **headers):
    body = raw if raw is not None else json.dumps({"records": records or []}).encode()
    return client.post(
        f"/inbound/{conn}", content=body, headers={"content-type": "application/json", **headers}
    )


def logged(hub):
    with hub.store.read() as conn:
        return conn.execute(select(request_log).order_by(request_log.c.received_at)).mappings().all()


def test_created_then_unchanged_then_updated(echo_hub, hub_client, monkeypatch):
    hub = echo_hub()
    client = hub_client(hub)
    rec = {"entity": "person", "fields": {"MST": "0000123", "FIRST": "Jane", "DOB": "14-MAY-06"}}
    r1 = post(client, records=[rec])
    assert r1.status_code == 201, r1.text
    body = r1.json()
    assert body["outcome"] == "created" and body["affected"][0]["external"] == {"mst": "0000123"}
    assert post(client, records=[rec]).status_code == 200
    assert post(client, records=[rec]).json()["outcome"] == "unchanged"
    rec["fields"]["FIRST"] = "Janet"
    r3 = post(client, records=[rec])
    assert r3.status_code == 200 and r3.json()["outcome"] == "updated"
    rows = logged(hub)
    assert [r["status_code"] for r in rows] == [201, 200, 200, 200]
    with hub.store.read() as conn:
        ids = (
            conn.execute(select(request_key.c.request_id).where(request_key.c.value == "0000123"))
            .scalars()
            .all()
        )
    assert len(ids) == 4


def test_error_statuses_store_only_the_log_entry(echo_hub, hub_client):
    hub = echo_hub()
    client = hub_client(hub)
    assert post(client, conn="nope", records=[]).status_code == 404
    assert post(client, raw=b"not json").status_code == 400
    assert post(client, records=[{"entity": "martian", "fields": {}}]).status_code == 406
    bad_date = {"entity": "person", "fields": {"MST": "1", "DOB": "31-FOO-99"}}
    r = post(client, records=[{"entity": "person", "fields": {"MST": "2"}}, bad_date])
    assert r.status_code == 422 and "DOB" in r.json()["error"]
    with hub.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(person)).scalar_one() == 0
    assert [row["status_code"] for row in logged(hub)] == [404, 400, 406, 422]


def test_oversized_body_is_413(echo_hub, hub_client):
    cfg = echo_config()
    cfg["connections"]["left"]["max_body_bytes"] = 100
    hub = echo_hub(cfg)
    r = post(hub_client(hub), records=[{"entity": "person", "fields": {"MST": "1", "FIRST": "x" * 200}}])
    assert r.status_code == 413
    assert logged(hub)[0]["status_code"] == 413


def test_conflict_is_409(echo_hub, hub_client):
    hub = echo_hub()
    client = hub_client(hub)
    post(
        client,
        records=[
            {"entity": "person", "fields": {"MST": "1"}},
            {"entity": "person", "fields": {"MST": "2", "EMAIL": "a@x.org"}},
        ],
    )
    r = post(client, records=[{"entity": "person", "fields": {"MST": "1", "EMAIL": "a@x.org"}}])
    assert r.status_code == 409


def test_secrets_are_redacted_in_the_request_log(echo_hub, hub_client, monkeypatch):
    monkeypatch.setenv("ECHO_TOKEN", "s3cret-token-value")
    cfg = echo_config()
    cfg["connections"]["left"]["settings"]["token"] = {"env": "ECHO_TOKEN"}
    hub = echo_hub(cfg)
    client = hub_client(hub)
    assert post(client, records=[], **{"X-Echo-Token": "wrong"}).status_code == 401
    ok = post(
        client,
        records=[{"entity": "person", "fields": {"MST": "1"}}],
        **{"X-Echo-Token": "s3cret-token-value", "Authorization": "Basic dXNlcjpwYXNz"},
    )
    assert ok.status_code == 201
    for row in logged(hub):
        dumped = json.dumps(row["headers"])
        assert "s3cret-token-value" not in dumped and "dXNlcjpwYXNz" not in dumped and "wrong" not in dumped
    assert logged(hub)[1]["headers"]["x-echo-token"] == "********"


def test_direction_off_is_406(echo_hub, hub_client):
    cfg = echo_config()
    cfg["connections"]["left"]["directions"]["application"] = "off"
    hub = echo_hub(cfg)
    r = post(
        hub_client(hub),
        records=[
            {"entity": "person", "fields": {"MST": "1"}},
            {"entity": "application", "fields": {"MST": "1", "SEQ": "01"}},
        ],
    )
    assert r.status_code == 406 and "application" in r.json()["error"]


def test_healthz_and_metrics(echo_hub, hub_client):
    hub = echo_hub()
    client = hub_client(hub)
    assert client.get("/healthz").json()["status"] == "ok"
    post(client, records=[{"entity": "person", "fields": {"MST": "1"}}])
    text = client.get("/metrics").text
    assert 'azorus_inbound_requests_total{connection="left",status="201"} 1.0' in text
    assert 'azorus_outbox_messages{connection="right",status="pending"} 1.0' in text
    assert client.get("/docs").status_code == 200


def submit(hub, records, **extra):
    """Queue a request for the hub's inbound writer, without HTTP; returns its future."""
    body = json.dumps({"records": records, **extra}).encode()
    return hub.inbound.submit(
        InboundRequest("left", "POST", "/inbound/left", {}, {}, body, "application/json", None)
    )


def one(mst, **fields):
    return [{"entity": "person", "fields": {"MST": mst, **fields}}]


@contextmanager
def writer_held(hub):
    """Keep the inbound writer busy with a held request while the block queues more behind it."""
    echo_plugin.HELD.clear()
    echo_plugin.RELEASE.clear()
    held = submit(hub, one("10"), hold=True)
    try:
        assert echo_plugin.HELD.wait(timeout=30)
        yield held
    finally:
        echo_plugin.RELEASE.set()


def test_queued_requests_share_a_commit_and_fail_alone(echo_hub, hub_client):
    """Requests queued behind a busy writer are committed together, each succeeding or failing alone."""
    hub = echo_hub()
    client = hub_client(hub)
    assert post(client, records=one("5", EMAIL="a@x.org")).is_success
    with writer_held(hub) as held:
        queued = [
            submit(hub, one("1")),
            submit(hub, one("2", DOB="31-FOO-99")),  # unmappable: 422 before any write
            submit(hub, one("3")),
            submit(hub, one("1", EMAIL="a@x.org")),  # person 1 (same group) and 5 both match: 409
            submit(hub, one("1", FIRST="Jan")),  # sees the group's earlier request: an update
            submit(hub, one("4")),
        ]
    answers = [future.result(timeout=30) for future in (held, *queued)]
    assert [status for status, *_ in answers] == [201, 201, 422, 201, 409, 200, 201]
    assert answers[5][3].outcome == "updated"
    assert hub.inbound.group_sizes[len(queued)] == 1

    with hub.store.read() as conn:
        people = {
            row.value: row.first_name
            for row in conn.execute(
                select(identifier.c.value, person.c.first_name)
                .join(person, person.c.id == identifier.c.person_id)
                .where(identifier.c.scheme == "mst")
            )
        }
        emails = conn.execute(
            select(func.count()).select_from(identifier).where(identifier.c.scheme == "email")
        ).scalar_one()
    assert people == {"5": None, "10": None, "1": "Jan", "3": None, "4": None}
    assert emails == 1  # the conflicting request left nothing behind
    statuses = {row["id"]: row["status_code"] for row in logged(hub)}
    assert sorted(statuses[answer[3].request_id] for answer in answers) == sorted(
        status for status, *_ in answers
    )
    text = client.get("/metrics").text
    assert "azorus_inbound_committed_requests_total 8.0" in text
    assert "azorus_inbound_transactions_total 3.0" in text


def test_requests_applied_together_keep_their_own_ids_in_the_change_log_and_outbox(echo_hub):
    """When every queued request is accepted their records are applied as one batch, with the
    outcome one-by-one would give, and each change still names the request that made it."""
    hub = echo_hub()
    with writer_held(hub):
        queued = [
            submit(hub, one("1", FIRST="Ann")),
            submit(hub, one("1", FIRST="Anna")),  # the person the request before created
            submit(hub, [*one("2"), {"entity": "enquiry", "fields": {"MST": "1", "CODE": "E1"}}]),
        ]
    answers = [future.result(timeout=30) for future in queued]
    assert [(status, result.outcome) for status, _, _, result in answers] == [
        (201, "created"),
        (200, "updated"),
        (201, "created"),
    ]
    ids = [result.request_id for *_, result in answers]
    with hub.store.read() as conn:
        changes = conn.execute(
            select(change_log.c.request_id, change_log.c.entity, change_log.c.field, change_log.c.new_value)
            .where(change_log.c.request_id.in_(ids))
            .order_by(change_log.c.id)
        ).all()
        queued_for = conn.execute(
            select(outbox.c.request_id, outbox.c.entity).where(
                outbox.c.connection == "right", outbox.c.request_id.in_(ids)
            )
        ).all()
    assert [(rid, entity, field) for rid, entity, field, _ in changes] == [
        (ids[0], "person", "*"),
        (ids[1], "person", "first_name"),
        (ids[2], "person", "*"),
        (ids[2], "enquiry", "*"),
    ]
    assert changes[1][3] == '"Anna"'
    assert sorted(queued_for) == sorted(
        [(ids[0], "person"), (ids[1], "person"), (ids[2], "person"), (ids[2], "enquiry")]
    )


def test_a_waiter_that_gave_up_does_not_stop_the_writer(echo_hub):
    hub = echo_hub()
    with writer_held(hub):
        abandoned = submit(hub, one("1"))
        assert abandoned.cancel()
    assert submit(hub, one("2")).result(timeout=30)[0] == 201
    with hub.store.read() as conn:
        stored = set(conn.execute(select(identifier.c.value).where(identifier.c.scheme == "mst")).scalars())
    assert stored == {"10", "1", "2"}  # the abandoned request was still stored and logged
    assert len(logged(hub)) == 3


def test_the_writer_lets_the_event_loop_send_a_groups_answers_before_the_next_group(echo_hub):
    """Once a group is committed, the coroutines it answered run (and send) before the writer
    reads the next group: the loop does not have to wrest the interpreter from it to do so."""
    hub = echo_hub()
    hub.inbound.LOOP_TURN = 30.0  # this test is about order, not about the wait being short
    seen = echo_plugin.READ
    seen.clear()
    loop = asyncio.new_event_loop()
    running = threading.Thread(target=loop.run_forever)
    running.start()

    async def post_and_note() -> int:
        body = json.dumps({"records": one("1"), "hold": True, "mark": "first read"}).encode()
        request = InboundRequest("left", "POST", "/inbound/left", {}, {}, body, "application/json", None)
        status = (await hub.inbound.answer(request))[0]
        seen.append("first answered")
        return status

    try:
        echo_plugin.HELD.clear()
        echo_plugin.RELEASE.clear()
        first = asyncio.run_coroutine_threadsafe(post_and_note(), loop)
        assert echo_plugin.HELD.wait(timeout=30)
        second = submit(hub, one("2"), mark="second read")  # queued behind the held request
        echo_plugin.RELEASE.set()
        assert first.result(timeout=30) == 201
        assert second.result(timeout=30)[0] == 201
    finally:
        echo_plugin.RELEASE.set()
        loop.call_soon_threadsafe(loop.stop)
        running.join(timeout=30)
        loop.close()
    assert seen == ["first read", "first answered", "second read"]
    assert hub.inbound.group_sizes[1] == 2  # two transactions of one request each
