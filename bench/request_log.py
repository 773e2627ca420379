"""Benchmark: finding requests in a large request log, as the admin UI and API do.

Fills a migrated SQLite database (or PostgreSQL with ``--database-url``) with ``--rows`` logged
requests, three identifiers each (MST, hub id, email), then times, through the hub's own page query:

* filtering by one identifier (the first page of matches), against the same query on a copy of the
  database without the ``request_key.value`` index (the baseline: what an unindexed log costs);
* a page deep in the log by its keyset cursor, against the same page by ``OFFSET``.

    python bench/request_log.py [--rows 300000] [--lookups 200] [--database-url URL]

Ends with one JSON line of figures (``ratio_vs_unindexed`` and ``ratio_vs_offset`` are how many
times faster the hub's query is than the baseline).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from azorus_connect.admin.request_log import RequestFilters, page_query
from azorus_connect.store.db import Store
from azorus_connect.store.schema import request_key, request_log

START = dt.datetime(2026, 1, 1)


def fill(store: Store, rows: int, batch: int = 20_000) -> None:
    for first in range(0, rows, batch):
        logs, keys = [], []
        for n in range(first, min(rows, first + batch)):
            rid = f"r-{n:020d}"
            logs.append(
                {
                    "id": rid,
                    "received_at": START + dt.timedelta(seconds=n),
                    "connection": ("sits", "crm", "portal")[n % 3],
                    "method": "POST",
                    "path": "/inbound/sits",
                    "headers": {"content-type": "application/xml"},
                    "body": b"<EXCHANGE><STU><STU.SRS/></STU></EXCHANGE>",
                    "body_truncated": False,
                    "status_code": 201 if n % 20 else 422,
                    "outcome": "created",
                    "duration_ms": 4.0,
                }
            )
            keys += [
                {"request_id": rid, "scheme": "mst", "value": f"{n:010d}"},
                {"request_id": rid, "scheme": "hub_person", "value": str(n + 1)},
                {"request_id": rid, "scheme": "email", "value": f"applicant{n}@example.ac.uk"},
            ]
        with store.write() as conn:
            conn.execute(insert(request_log), logs)
            conn.execute(insert(request_key), keys)
    with store.engine.connect() as conn:
        if store.is_sqlite:
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")


def timed(store: Store, statement: Any, repeat: int = 1) -> float:
    """Median milliseconds to run ``statement`` and fetch every row."""
    times = []
    with store.read() as conn:
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(statement).all()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def lookups(store: Store, values: list[str]) -> float:
    return statistics.median(timed(store, page_query(RequestFilters(identifier=v))) for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--database-url", help="PostgreSQL URL of an empty database (default: SQLite file)")
    args = parser.parse_args(argv)
    rng = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="azorus-bench-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'log.db'}"
        store = Store(url)
        store.migrate()
        started = time.perf_counter()
        fill(store, args.rows)
        took = time.perf_counter() - started
        print(f"filled {args.rows:,} requests ({3 * args.rows:,} identifiers) in {took:.1f} s")
        values = [
            rng.choice([f"{n:010d}", f"applicant{n}@example.ac.uk", str(n + 1)])
            for n in (rng.randrange(args.rows) for _ in range(args.lookups))
        ]
        ours = lookups(store, values)
        deep = args.rows * 9 // 10
        cursor = f"{(START + dt.timedelta(seconds=args.rows - deep)).isoformat()}~r-{args.rows - deep:020d}"
        keyset = timed(store, page_query(RequestFilters(), before=cursor), repeat=20)
        offset = timed(store, page_query(RequestFilters()).offset(deep), repeat=5)

        # The baseline: the same lookups where request_key.value has no index.
        if store.is_sqlite:
            store.dispose()
            copy = Path(tmp) / "unindexed.db"
            shutil.copyfile(Path(tmp) / "log.db", copy)
            base = Store(f"sqlite:///{copy}")
        else:
            base = store
        with base.engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_request_key_value"))
        sample = values[: max(5, args.lookups // 20)]  # each one is a full scan
        unindexed = lookups(base, sample)
        base.dispose()
        store.dispose()
    figures = {
        "rows": args.rows,
        "database": "sqlite" if url.startswith("sqlite") else "postgresql",
        "identifier_filter_ms_p50": round(ours, 3),
        "identifier_filter_unindexed_ms_p50": round(unindexed, 3),
        "ratio_vs_unindexed": round(unindexed / ours, 1),
        "deep_page_keyset_ms": round(keyset, 3),
        "deep_page_offset_ms": round(offset, 3),
        "ratio_vs_offset": round(offset / keyset, 1),
    }
    print(f"identifier filter: {ours:.2f} ms (unindexed baseline {unindexed:.1f} ms)")
    print(f"page at row {deep:,}: keyset {keyset:.2f} ms, OFFSET {offset:.1f} ms")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
