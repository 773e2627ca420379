from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from azorus_connect import Application, ApplyOptions, Enquiry, Person, PersonLink, ReferenceValue, Source
from azorus_connect.exceptions import IdentityConflict, InvalidRecord
from azorus_connect.store.schema import change_log, identifier, outbox, person


def count(hub, table) -> int:
    with hub.store.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_create_then_identical_payload_changes_nothing(echo_hub):
    hub = echo_hub()
    rec = Person(identifiers={"mst": "0000123"}, first_name="Jane", date_of_birth=dt.date(2006, 5, 14))
    [first] = hub.apply([rec], Source("left"))
    assert first.action == "created" and first.hub_id
    logged, queued = count(hub, change_log), count(hub, outbox)
    [again] = hub.apply([rec], Source("left"))
    assert again.action == "unchanged" and again.hub_id == first.hub_id
    assert count(hub, change_log) == logged and count(hub, outbox) == queued
    assert count(hub, person) == 1


def test_update_logs_each_field_with_its_source(echo_hub):
    hub = echo_hub()
    [_r] = hub.apply([Person(identifiers={"mst": "007"}, first_name="Jane", last_name="Doe")], Source("left"))
    [u] = hub.apply(
        [Person(identifiers={"mst": "007"}, first_name="Janet", last_name="Doe")],
        Source("left", request_id="r-1"),
    )
    assert u.action == "updated" and u.changes == {"first_name": ("Jane", "Janet")}
    with hub.store.read() as conn:
        rows = conn.execute(select(change_log).where(change_log.c.request_id == "r-1")).mappings().all()
    assert [(x["field"], x["old_value"], x["new_value"], x["connection"]) for x in rows] == [
        ("first_name", '"Jane"', '"Janet"', "left")
    ]


def test_leading_zeros_survive(echo_hub):
    hub = echo_hub()
    hub.apply([Person(identifiers={"mst": "0000000042"})], Source("left"))
    with hub.store.read() as conn:
        assert conn.execute(select(identifier.c.value)).scalar_one() == "0000000042"


def test_match_on_two_people_is_a_conflict_not_a_merge(echo_hub):
    hub = echo_hub()
    hub.apply(
        [Person(identifiers={"mst": "1"}), Person(identifiers={"mst": "2", "email": "b@x.org"})],
        Source("left"),
    )
    with pytest.raises(IdentityConflict):
        hub.apply(
            [Person(identifiers={"mst": "1", "email": "b@x.org"})],
            Source("left"),
            ApplyOptions(match_on=("mst", "email")),
        )
    # an identifier outside match_on that belongs to someone else is a conflict too
    with pytest.raises(IdentityConflict):
        hub.apply([Person(identifiers={"mst": "3", "email": "b@x.org"})], Source("left"))
    assert count(hub, person) == 2


def test_batch_rejects_bad_records_individually_when_asked(echo_hub):
    hub = echo_hub()
    hub.apply(
        [Person(identifiers={"mst": "1"}), Person(identifiers={"mst": "2", "email": "c@x.org"})],
        Source("left"),
    )
    results = hub.apply(
        [
            Person(identifiers={"mst": "9"}, first_name="Ok"),
            Person(identifiers={"mst": "1", "email": "c@x.org"}),
            Person(first_name="no identifier"),
        ],
        Source("left"),
        ApplyOptions(all_or_nothing=False),
    )
    assert [r.action for r in results] == ["created", "rejected", "rejected"]
    assert isinstance(results[1].error, IdentityConflict) and isinstance(results[2].error, InvalidRecord)
    assert count(hub, person) == 3


def test_same_person_twice_in_one_batch(echo_hub):
    hub = echo_hub()
    results = hub.apply(
        [Person(identifiers={"mst": "5"}, first_name="A"), Person(identifiers={"mst": "5"}, last_name="B")],
        Source("left"),
    )
    assert [r.action for r in results] == ["created", "updated"]
    assert results[0].hub_id == results[1].hub_id
    with hub.store.read() as conn:
        row = conn.execute(select(person)).mappings().one()
    assert (row["first_name"], row["last_name"]) == ("A", "B")


def test_outbox_gets_every_sending_connection_except_the_source(echo_hub):
    hub = echo_hub()
    hub.apply([Person(identifiers={"mst": "1"}, first_name="A")], Source("left"))
    with hub.store.read() as conn:
        rows = conn.execute(select(outbox.c.connection, outbox.c.entity, outbox.c.payload)).all()
    assert [(r[0], r[1]) for r in rows] == [("right", "person")]
    assert rows[0][2]["identifiers"] == {"mst": "1"} and rows[0][2]["first_name"] == "A"


def test_enquiry_and_application_link_to_their_person(echo_hub):
    hub = echo_hub()
    results = hub.apply(
        [
            Person(identifiers={"mst": "77"}, first_name="Sam"),
            Enquiry(person=PersonLink(identifiers={"mst": "77"}), key="E1", course="CS", entry_year="2026/7"),
            Application(person=PersonLink(identifiers={"mst": "77"}), key="77/01", course="CS", status="A"),
        ],
        Source("left"),
    )
    assert [r.action for r in results] == ["created"] * 3
    assert results[1].person_id == results[0].hub_id == results[2].person_id
    [again] = hub.apply(
        [Application(person=PersonLink(identifiers={"mst": "77"}), key="77/01", status="U")], Source("left")
    )
    assert again.action == "updated" and again.changes == {"status": ("A", "U")}
    with pytest.raises(InvalidRecord, match="no person found"):
        hub.apply([Application(person=PersonLink(identifiers={"mst": "404"}), key="404/01")], Source("left"))


def test_list_codes_strict_and_lenient(echo_hub):
    hub = echo_hub()
    hub.apply([ReferenceValue(list_name="nationality", code="000", label="British")], Source("left"))
    [ok] = hub.apply(
        [Person(identifiers={"mst": "1"}, nationality="000")],
        Source("left"),
        ApplyOptions(unknown_codes="strict"),
    )
    assert ok.warnings == []
    [lenient] = hub.apply([Person(identifiers={"mst": "2"}, nationality="ZZZ")], Source("left"))
    assert lenient.action == "created" and "not in list" in lenient.warnings[0]
    with pytest.raises(InvalidRecord, match="ZZZ"):
        hub.apply(
            [Person(identifiers={"mst": "3"}, nationality="ZZZ")],
            Source("left"),
            ApplyOptions(unknown_codes="strict"),
        )


def test_dry_run_writes_nothing_and_predicts_the_run(echo_hub):
    hub = echo_hub()
    hub.apply([Person(identifiers={"mst": "1"}, first_name="A")], Source("left"))
    batch = [Person(identifiers={"mst": "1"}, first_name="B"), Person(identifiers={"mst": "2"})]
    before = (count(hub, person), count(hub, change_log), count(hub, outbox))
    dry = hub.apply(batch, Source("left"), ApplyOptions(dry_run=True))
    assert (count(hub, person), count(hub, change_log), count(hub, outbox)) == before
    real = hub.apply(batch, Source("left"))
    assert [r.action for r in dry] == [r.action for r in real] == ["updated", "created"]


def test_identifier_value_change_replaces_it(echo_hub):
    hub = echo_hub()
    [_r] = hub.apply([Person(identifiers={"mst": "1", "email": "old@x.org"})], Source("left"))
    [u] = hub.apply([Person(identifiers={"mst": "1", "email": "new@x.org"})], Source("left"))
    assert u.changes == {"id:email": ("old@x.org", "new@x.org")}
    with hub.store.read() as conn:
        assert sorted(conn.execute(select(identifier.c.value)).scalars()) == ["1", "new@x.org"]


def test_keyed_enquiry_adopts_the_hubs_keyless_one(echo_hub):
    hub = echo_hub()
    link = PersonLink(identifiers={"mst": "77"})
    first = hub.apply(
        [Person(identifiers={"mst": "77"}), Enquiry(person=link, course="CS", entry_year="2026/7")],
        Source("left"),
    )
    back = hub.apply([Enquiry(person=link, key="E9", course="CS", entry_year="2026/7")], Source("right"))
    assert back[0].hub_id == first[1].hub_id and back[0].changes == {"key": (None, "E9")}
    again = hub.apply(
        [Enquiry(person=link, key="E9", course="CS", entry_year="2026/7", status="A")], Source("right")
    )
    assert again[0].hub_id == first[1].hub_id and again[0].changes == {"status": (None, "A")}
    other = hub.apply([Enquiry(person=link, key="E10", course="MA", entry_year="2026/7")], Source("right"))
    assert other[0].action == "created"


def test_concurrent_first_writes_of_one_identifier_make_one_person(echo_hub):
    import threading

    hub = echo_hub()
    barrier = threading.Barrier(8)
    results, errors = [], []

    def write() -> None:
        barrier.wait()
        try:
            results.extend(
                hub.apply([Person(identifiers={"mst": "0000000001", "email": "a@x.org"})], Source("left"))
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(r.action for r in results) == ["created"] + ["unchanged"] * 7
    assert count(hub, person) == 1 and count(hub, identifier) == 2


def test_batches_applied_together_give_each_its_results_or_nothing(echo_hub):
    """apply_together: one shared batch with per-batch results; any rejection leaves no trace."""
    hub = echo_hub()
    hub.apply([Person(identifiers={"mst": "9", "email": "b@x.org"})], Source("left"))
    options = ApplyOptions(match_on=("mst", "email"))
    first = [Person(identifiers={"mst": "1"}, first_name="Ann")]
    second = [Person(identifiers={"mst": "1"}, first_name="Anna"), Person(identifiers={"mst": "2"})]
    with hub.store.write() as conn:
        together = hub.engine.apply_together(
            conn,
            [(first, Source("left", request_id="r-a")), (second, Source("left", request_id="r-b"))],
            options,
        )
    assert together is not None
    [[a], [b, c]] = together
    assert (a.index, a.action, b.index, b.action, c.index, c.action) == (
        0,
        "created",
        0,
        "updated",
        1,
        "created",
    )
    assert b.hub_id == a.hub_id and b.changes == {"first_name": ("Ann", "Anna")}
    with hub.store.read() as conn:
        stamped = conn.execute(
            select(change_log.c.request_id, change_log.c.field).order_by(change_log.c.id)
        ).all()
    assert stamped[-3:] == [("r-a", "*"), ("r-b", "first_name"), ("r-b", "*")]

    people = count(hub, person)
    clash = [Person(identifiers={"mst": "3"}), Person(identifiers={"mst": "1", "email": "b@x.org"})]
    with hub.store.write() as conn:
        assert (
            hub.engine.apply_together(conn, [(first, Source("left")), (clash, Source("left"))], options)
            is None
        )
        [ok] = hub.engine.apply_nested(conn, [Person(identifiers={"mst": "4"})], Source("left"), options)
    assert ok.action == "created"
    assert count(hub, person) == people + 1  # the shared batch left nothing; the nested one stayed
