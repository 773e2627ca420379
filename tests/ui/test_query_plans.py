"""The request-log identifier filter is answered from an index, on SQLite and on PostgreSQL.

The plan is read from the database itself (``EXPLAIN``) over enough rows, with statistics, that a
planner would rather scan if no usable index existed.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, text

from azorus_connect.admin.people import identifier_query
from azorus_connect.admin.request_log import RequestFilters, page_query
from azorus_connect.store.db import Store
from azorus_connect.store.schema import identifier, person, request_key, request_log

ROWS = 20_000


@pytest.fixture(scope="module")
def filled_store(azorus_databases):
    """A migrated database holding ROWS logged requests, three identifiers each, with statistics."""
    url = azorus_databases.new()
    store = Store(url)
    start = dt.datetime(2026, 1, 1)
    logs, keys = [], []
    for n in range(ROWS):
        rid = f"r-{n:020d}"
        logs.append(
            {
                "id": rid,
                "received_at": start + dt.timedelta(seconds=n),
                "connection": ("sits", "crm", "csv")[n % 3],
                "method": "POST",
                "path": "/inbound/sits",
                "headers": {},
                "body": b"<EXCHANGE/>",
                "body_truncated": False,
                "status_code": 201 if n % 10 else 422,
                "outcome": "created",
                "duration_ms": 3.0,
            }
        )
        keys += [
            {"request_id": rid, "scheme": "mst", "value": f"{n:010d}"},
            {"request_id": rid, "scheme": "hub_person", "value": str(n)},
            {"request_id": rid, "scheme": "email", "value": f"p{n}@example.ac.uk"},
        ]
    people = [
        {"id": n + 1, "last_name": f"P{n}", "custom": {}, "created_at": start, "updated_at": start}
        for n in range(ROWS)
    ]
    idents = [
        {"person_id": n + 1, "scheme": scheme, "value": value, "created_at": start}
        for n in range(ROWS)
        for scheme, value in (
            ("mst", f"{n:010d}"),
            ("email", f"p{n}@example.ac.uk"),
            ("sits_stu", f"{n:08d}"),
        )
    ]
    with store.write() as conn:
        conn.execute(insert(request_log), logs)
        conn.execute(insert(request_key), keys)
        conn.execute(insert(person), people)
        conn.execute(insert(identifier), idents)
    with store.engine.connect() as conn:
        if store.is_sqlite:
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    yield store
    store.dispose()
    azorus_databases.drop(url)


def _plan(store: Store, statement) -> str:
    sql = str(statement.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        if store.is_sqlite:
            return "\n".join(row[-1] for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
        return "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {sql}")))


def test_identifier_filter_uses_the_request_key_value_index(filled_store):
    statement = page_query(RequestFilters(identifier="0000012345"))
    plan = _plan(filled_store, statement)
    assert "ix_request_key_value" in plan, plan
    if filled_store.is_sqlite:
        assert "SCAN request_key" not in plan and "SCAN request_log" not in plan, plan
    else:
        assert "Seq Scan" not in plan, plan


def test_identifier_and_connection_filter_with_a_cursor_still_use_the_index(filled_store):
    filters = RequestFilters(identifier="p77@example.ac.uk", connection="sits", status="failed")
    statement = page_query(filters, before=f"{dt.datetime(2026, 1, 2).isoformat()}~r-9")
    plan = _plan(filled_store, statement)
    assert "ix_request_key_value" in plan, plan
    assert "Seq Scan" not in plan and "SCAN request_log" not in plan, plan


def test_unfiltered_first_page_reads_the_time_index(filled_store):
    plan = _plan(filled_store, page_query(RequestFilters()))
    assert "ix_request_log_received_at" in plan, plan


def test_a_page_deep_in_the_log_is_a_range_on_the_time_index(filled_store):
    cursor = f"{dt.datetime(2026, 1, 1, 1).isoformat()}~r-{3600:020d}"
    plan = _plan(filled_store, page_query(RequestFilters(), before=cursor))
    assert "ix_request_log_received_at" in plan, plan
    if filled_store.is_sqlite:
        assert "received_at<" in plan.replace(" ", ""), plan  # a bounded range, not a scan from the top
    else:
        assert "Index Cond" in plan and "received_at <=" in plan, plan


def test_person_lookup_by_any_identifier_seeks_the_scheme_value_index(filled_store):
    plan = _plan(filled_store, identifier_query(["email", "mst", "sits_stu"], "0000012345"))
    if filled_store.is_sqlite:  # the unique constraint's index is SQLite's autoindex
        assert "USING INDEX sqlite_autoindex_identifier_1 (scheme=? AND value=?)" in plan, plan
    else:
        assert "uq_identifier_scheme_value" in plan and "Seq Scan" not in plan, plan
