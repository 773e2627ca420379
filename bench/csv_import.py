"""Benchmark: CSV import through the hub against raw csv+sqlite3 and dlt ``merge``, on one file.

Generates a deterministic contacts CSV (mst, names, email, date of birth, nationality, course,
status, phone, postcode; ~1% invalid rows), imports it into SQLite through the real import path
(mapping, validation, identity resolution, change log, outbox), then imports an edited copy as a
pure update pass. Beside it, in the same process and on the same files: ``csv`` + ``sqlite3``
``executemany`` with ``INSERT ... ON CONFLICT DO UPDATE`` (the floor) and dlt's ``merge`` into
SQLite on the same key. Also the write floor: SQLite alone doing the rows a first pass must write in the
hub's schema (person, identifier, change log), from ready-made tuples. Finally the peak RSS of importing a
1,000,000-row file, in a subprocess.

    python bench/csv_import.py [--rows 200000] [--rss-rows 1000000] [--skip-dlt] [--skip-rss]

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

COLUMNS = [
    "MST code",
    "Forename",
    "Surname",
    "Email",
    "DOB",
    "Nationality",
    "Course code",
    "Status",
    "Phone",
    "Postcode",
]
NATIONALITIES = ["GB", "IE", "FR", "DE", "IN", "CN", "NG", "US", "ES", "IT"]
COURSES = [f"UG-{c}" for c in ("CS", "MA", "PH", "HI", "EN", "BI", "CH", "EC")]
STATUSES = ["new", "contacted", "applied", "withdrawn"]
FIRST = ["Ada", "Ben", "Cara", "Dev", "Eve", "Finn", "Gail", "Hal", "Ivy", "Jon", "Kim", "Lee"]
LAST = ["Smith", "Jones", "Patel", "Brown", "Nguyen", "Owen", "Murphy", "Kaur", "Evans", "Walsh"]


def contact_rows(n: int, *, seed: int = 4, edition: int = 0) -> Iterator[list[str]]:
    """``n`` contact rows, the same for the same seed; ``edition`` > 0 changes phone and status.

    Every 100th row is invalid (alternately an impossible date of birth and an unknown
    nationality code), so about 1% of rows end in the error report.
    """
    rng = random.Random(seed)
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1985, 2008)
        dob = f"{day:02d}/{month:02d}/{year}"
        nationality = rng.choice(NATIONALITIES)
        status = STATUSES[(i + edition) % len(STATUSES)]
        phone = f"07{rng.randint(100_000_000, 999_999_999)}"
        if edition:
            phone = phone[:-3] + f"{(int(phone[-3:]) + edition) % 1000:03d}"
        if i % 100 == 37:
            if (i // 100) % 2:
                dob = f"31/02/{year}"
            else:
                nationality = "XX"
        yield [
            f"{i + 1:010d}",
            first,
            last,
            f"{first.lower()}.{last.lower()}{i}@example.org",
            dob,
            nationality,
            rng.choice(COURSES),
            status,
            phone,
            f"AB{rng.randint(1, 99)} {rng.randint(1, 9)}CD",
        ]


def write_contacts(path: Path, n: int, *, edition: int = 0) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(contact_rows(n, edition=edition))
    return path


# -- baselines ------------------------------------------------------------------------------------


def raw_sqlite(db: Path, csv_path: Path) -> float:
    """The floor: csv.reader -> sqlite3 executemany upsert on mst, one transaction. Seconds."""
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS contact (mst TEXT PRIMARY KEY, first_name TEXT, last_name TEXT,"
        " email TEXT, dob TEXT, nationality TEXT, course TEXT, status TEXT, phone TEXT, postcode TEXT)"
    )
    with csv_path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        with conn:
            conn.executemany(
                "INSERT INTO contact VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(mst) DO UPDATE SET"
                " first_name=excluded.first_name, last_name=excluded.last_name, email=excluded.email,"
                " dob=excluded.dob, nationality=excluded.nationality, course=excluded.course,"
                " status=excluded.status, phone=excluded.phone, postcode=excluded.postcode",
                reader,
            )
    conn.close()
    return time.perf_counter() - started


def dlt_merge(db: Path, csv_path: Path, pipelines_dir: Path) -> float:
    """dlt's ``merge`` on ``mst`` into SQLite (through its sqlalchemy destination). Seconds."""
    import dlt

    started = time.perf_counter()

    @dlt.resource(name="contact", write_disposition="merge", primary_key="mst")
    def contacts() -> Iterator[dict[str, str]]:
        with csv_path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                yield {
                    "mst": row["MST code"],
                    "first_name": row["Forename"],
                    "last_name": row["Surname"],
                    "email": row["Email"],
                    "dob": row["DOB"],
                    "nationality": row["Nationality"],
                    "course": row["Course code"],
                    "status": row["Status"],
                    "phone": row["Phone"],
                    "postcode": row["Postcode"],
                }

    pipeline = dlt.pipeline(
        pipeline_name="bench_contacts",
        destination=dlt.destinations.sqlalchemy(credentials=f"sqlite:///{db}"),
        dataset_name="main",
        pipelines_dir=str(pipelines_dir),
    )
    pipeline.run(contacts())
    return time.perf_counter() - started


def hub_write_floor(db: Path, csv_path: Path) -> float:
    """SQLite alone doing the writes a first pass must make, in the hub's own schema. Seconds.

    One person row, one identifier row and one change-log row per contact, from tuples built
    before the clock starts: no reading, mapping, validation or identity resolution.  No import
    through the hub can be faster than this on the same machine.
    """
    open_hub(db).close()
    now = "2026-01-01 00:00:00.000000"
    with csv_path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        contacts = list(reader)
    people, identifiers, changes = [], [], []
    for n, (mst, first, last, email, dob, nationality, course, status, phone, postcode) in enumerate(
        contacts, 1
    ):
        custom = json.dumps({"course": course, "status": status})
        people.append((n, first, last, email, dob, nationality, phone, postcode, custom, now, now))
        identifiers.append((n, "mst", mst, now))
        values = {"first_name": first, "last_name": last, "email": email, "id:mst": mst}
        changes.append(("person", n, n, "created", "*", json.dumps(values), 1, now))
    statements = [
        (
            "INSERT INTO person (id, first_name, last_name, email, date_of_birth, nationality, phone,"
            " postcode, custom, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            people,
        ),
        ("INSERT INTO identifier (person_id, scheme, value, created_at) VALUES (?,?,?,?)", identifiers),
        (
            "INSERT INTO change_log (entity, record_id, person_id, action, field, new_value, import_run_id,"
            " changed_at) VALUES (?,?,?,?,?,?,?,?)",
            changes,
        ),
    ]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    started = time.perf_counter()
    for start in range(0, len(contacts), 2000):  # the import's batch size, one transaction each
        conn.execute("BEGIN IMMEDIATE")
        for sql, rows in statements:
            conn.executemany(sql, rows[start : start + 2000])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


# -- the hub's import path ----------------------------------------------------------------------------

HUB_CONFIG = {
    "custom_fields": {"course": {"type": "text"}, "status": {"type": "text"}},
    "lists": {"nationality": {"values": {code: code for code in NATIONALITIES}}},
}
PROFILE = {
    "name": "bench contacts",
    "match_on": ["mst"],
    "unknown_codes": "strict",
    "columns": {
        "MST code": "id:mst",
        "Forename": "first_name",
        "Surname": "last_name",
        "Email": "email",
        "DOB": "date_of_birth",
        "Nationality": "nationality",
        "Course code": "custom:course",
        "Status": "custom:status",
        "Phone": "phone",
        "Postcode": "postcode",
    },
}


def open_hub(db: Path) -> Any:
    from azorus_connect.hub import Hub

    return Hub.open(HUB_CONFIG, database_url=f"sqlite:///{db}", migrate=True)


def hub_import(hub: Any, csv_path: Path, errors: Path) -> tuple[float, Any]:
    """The real import path: profile mapping, validation, identity resolution, change log, outbox."""
    from azorus_csv_import.profiles import ImportProfile
    from azorus_csv_import.reading import open_csv
    from azorus_csv_import.running import ImportRunner

    started = time.perf_counter()
    runner = ImportRunner(hub, ImportProfile.model_validate(PROFILE), open_csv(csv_path), errors_path=errors)
    progress = runner.run(runner.start(file_name=csv_path.name))
    return time.perf_counter() - started, progress


def peak_rss_kb() -> int:
    """This process's peak resident memory, in kB.

    ``VmHWM`` belongs to the process's own memory map; ``ru_maxrss`` on Linux also counts the
    parent's memory that a child started with before it ran this program, which would inflate it.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_child(csv_path: Path, db: Path) -> None:
    """Run in a subprocess: import ``csv_path`` and print the peak RSS in MB."""
    hub = open_hub(db)
    _, progress = hub_import(hub, csv_path, db.with_suffix(".errors.csv"))
    peak_kb = peak_rss_kb()
    print(
        json.dumps(
            {"rows": progress.rows_done, "created": progress.created, "peak_rss_mb": round(peak_kb / 1024, 1)}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rss-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--dlt-update", action="store_true", help="Also time dlt's update pass (slow).")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--rss-child", nargs=2, metavar=("CSV", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(Path(args.rss_child[0]), Path(args.rss_child[1]))
        return
    rows = args.rows
    with tempfile.TemporaryDirectory(prefix="azorus-bench-") as tmp:
        work = Path(tmp)
        first = write_contacts(work / "contacts.csv", rows)
        second = write_contacts(work / "contacts-updated.csv", rows, edition=1)
        figures: dict[str, Any] = {"rows": rows}

        raw1 = raw_sqlite(work / "raw.db", first)
        raw2 = raw_sqlite(work / "raw.db", second)
        figures["raw_rows_per_s"] = round(rows / raw1)
        figures["raw_update_rows_per_s"] = round(rows / raw2)
        print(f"raw csv+sqlite3 upsert  first pass {rows / raw1:>9,.0f} rows/s", end="")
        print(f"  update pass {rows / raw2:>9,.0f} rows/s")

        hub = open_hub(work / "hub.db")
        hub1, p1 = hub_import(hub, first, work / "errors-1.csv")
        hub2, p2 = hub_import(hub, second, work / "errors-2.csv")
        hub.close()
        figures["hub_rows_per_s"] = round(rows / hub1)
        figures["hub_update_rows_per_s"] = round(rows / hub2)
        figures["hub_first_pass"] = {"new": p1.created, "invalid": p1.invalid}
        figures["hub_update_pass"] = {"updated": p2.updated, "unchanged": p2.unchanged, "invalid": p2.invalid}
        print(f"hub import (real path)  first pass {rows / hub1:>9,.0f} rows/s", end="")
        print(f"  update pass {rows / hub2:>9,.0f} rows/s  (new {p1.created:,}, invalid {p1.invalid:,})")
        figures["ratio_vs_raw"] = round(raw1 / hub1, 3)
        figures["update_ratio_vs_raw"] = round(raw2 / hub2, 3)

        floor = hub_write_floor(work / "floor.db", first)
        figures["write_floor_rows_per_s"] = round(rows / floor)
        figures["write_floor_ratio_vs_raw"] = round(raw1 / floor, 3)
        print(f"SQLite alone, the writes (person, identifier, change log) {rows / floor:>9,.0f} rows/s")

        if not args.skip_dlt:
            os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
            dlt1 = dlt_merge(work / "dlt.db", first, work / "dlt")
            figures["dlt_rows_per_s"] = round(rows / dlt1)
            figures["ratio_vs_dlt"] = round(dlt1 / hub1, 3)
            line = f"dlt merge into SQLite   first pass {rows / dlt1:>9,.0f} rows/s"
            if args.dlt_update:
                dlt2 = dlt_merge(work / "dlt.db", second, work / "dlt")
                figures["dlt_update_rows_per_s"] = round(rows / dlt2)
                figures["update_ratio_vs_dlt"] = round(dlt2 / hub2, 3)
                line += f"  update pass {rows / dlt2:>9,.0f} rows/s"
            print(line)

        if not args.skip_rss:
            big = write_contacts(work / "big.csv", args.rss_rows)
            child = subprocess.run(
                [sys.executable, __file__, "--rss-child", str(big), str(work / "big.db")],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            rss = json.loads(child.stdout.strip().splitlines()[-1])
            figures["rss_rows"] = rss["rows"]
            figures["peak_rss_mb"] = rss["peak_rss_mb"]
            print(f"peak RSS importing {rss['rows']:,} rows: {rss['peak_rss_mb']} MB")
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
