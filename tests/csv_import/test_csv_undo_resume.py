"""Undo of a run, and a run killed midway then resumed (a real SIGKILL of the CLI process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azorus_csv_import.profiles import ImportProfile
from azorus_csv_import.reading import open_csv
from azorus_csv_import.running import ImportRunner, resume_run
from azorus_csv_import.undo import undo_run
from sqlalchemy import func, select

from azorus_connect.engine import Source
from azorus_connect.exceptions import ConfigError
from azorus_connect.model import Enquiry, Person, PersonLink
from azorus_connect.store.schema import enquiry, identifier, import_run, person

from .conftest import people, run_rows, table_counts, write_csv

HEADER = ["MST", "Forename", "Surname", "Fair", "Email"]
COLUMNS = {
    "MST": "id:mst",
    "Forename": "first_name",
    "Surname": "last_name",
    "Fair": "custom:fair",
    "Email": "id:email",
}


def run(hub, path: Path, *, batch_size: int = 500):
    prof = ImportProfile.model_validate({"columns": COLUMNS})
    runner = ImportRunner(hub, prof, open_csv(path), batch_size=batch_size)
    return runner.run(runner.start())


def snapshot(hub):
    return {k: {f: v for f, v in p.items() if f != "id"} for k, p in people(hub).items()}


def test_undo_restores_the_state_before_the_run(csv_hub, tmp_path):
    seed = [["0000000001", "Ann", "Lee", "LDN24", "ann@x.org"], ["0000000002", "Bob", "Ray", "", ""]]
    run(csv_hub, write_csv(tmp_path / "seed.csv", HEADER, seed))
    before = snapshot(csv_hub)
    counts = table_counts(csv_hub)
    rows = [
        ["0000000001", "Anne", "Lee", "MAN24", "anne@x.org"],  # field, custom field and identifier changed
        ["0000000002", "Bob", "Ray-Jones", "LDN24", "bob@x.org"],  # new identifier and custom field
        ["0000000003", "Cy", "Do", "", ""],  # created
        ["0000000003", "Cyril", "Do", "", ""],  # created, then changed by the same run
    ]
    progress = run(csv_hub, write_csv(tmp_path / "b.csv", HEADER, rows), batch_size=2)
    assert (progress.created, progress.updated) == (1, 3)
    assert snapshot(csv_hub) != before
    report = undo_run(csv_hub, progress.run_id)
    assert snapshot(csv_hub) == before
    assert report.removed == {"person": 1}
    assert report.skipped == []
    assert report.restored_records == 2
    assert run_rows(csv_hub, progress.run_id)["status"] == "undone"
    after = table_counts(csv_hub)
    assert after["person"] == counts["person"] and after["identifier"] == counts["identifier"]
    with pytest.raises(ConfigError, match="already been undone"):
        undo_run(csv_hub, progress.run_id)


def test_undo_leaves_what_another_source_changed_since_and_lists_it(csv_hub, tmp_path):
    run(csv_hub, write_csv(tmp_path / "seed.csv", HEADER, [["0000000001", "Ann", "Lee", "", ""]]))
    rows = [["0000000001", "Anne", "Leigh", "", ""], ["0000000002", "Bob", "Ray", "", ""]]
    progress = run(csv_hub, write_csv(tmp_path / "b.csv", HEADER, rows))
    # Another source (a connection) changes Ann's surname and gives Bob an enquiry.
    csv_hub.apply(
        [Person(identifiers={"mst": "0000000001"}, last_name="Lee-Smith")], Source(connection="sits_out")
    )
    csv_hub.apply(
        [Enquiry(person=PersonLink(identifiers={"mst": "0000000002"}), course="UG-CS", entry_year="2025")],
        Source(connection="sits_out"),
    )
    report = undo_run(csv_hub, progress.run_id)
    found = people(csv_hub)
    assert found["0000000001"]["first_name"] == "Ann"  # restored: nobody else touched it
    assert found["0000000001"]["last_name"] == "Lee-Smith"  # not clobbered
    assert "0000000002" in found  # not removed: it has an enquiry from elsewhere
    skipped = {(s.entity, s.record_id): s for s in report.skipped}
    ann, bob = found["0000000001"]["id"], found["0000000002"]["id"]
    assert skipped[("person", ann)].fields == ["last_name"]
    assert "connection sits_out" in skipped[("person", ann)].reason
    assert "changed since" in skipped[("person", bob)].reason


def test_undo_ignores_a_later_run_that_was_itself_undone(csv_hub, tmp_path):
    first = run(csv_hub, write_csv(tmp_path / "a.csv", HEADER, [["0000000001", "Ann", "Lee", "", ""]]))
    second = run(csv_hub, write_csv(tmp_path / "b.csv", HEADER, [["0000000001", "Anne", "Lee", "", ""]]))
    undo_run(csv_hub, second.run_id)
    report = undo_run(csv_hub, first.run_id)
    assert report.removed == {"person": 1} and report.skipped == []
    assert people(csv_hub) == {}


def test_a_dry_run_cannot_be_undone(csv_hub, tmp_path):
    prof = ImportProfile.model_validate({"columns": COLUMNS})
    path = write_csv(tmp_path / "a.csv", HEADER, [["1", "A", "B", "", ""]])
    runner = ImportRunner(csv_hub, prof, open_csv(path))
    run_id = runner.start(dry_run=True)
    runner.run(run_id)
    with pytest.raises(ConfigError, match="dry run"):
        undo_run(csv_hub, run_id)


def _person_count(hub) -> int:
    with hub.store.read() as conn:
        return conn.execute(select(func.count()).select_from(person)).scalar_one()


@pytest.mark.slow
def test_a_run_killed_midway_keeps_its_batches_and_resumes_without_duplicates(csv_hub, tmp_path):
    rows = [[f"{i:010d}", f"Name{i}", "Surname", "", f"p{i}@x.org"] for i in range(1, 15_001)]
    rows[99][3] = "NOPE"  # a list code the hub does not know: stored as is (lenient), with a warning
    rows[150][0] = ""  # invalid: nothing to match on
    path = write_csv(tmp_path / "big.csv", HEADER, rows)
    mapping = tmp_path / "profile.toml"
    mapping.write_text(
        '[profile]\nname = "big"\nmatch_on = ["mst"]\n[columns]\n'
        + "".join(f'"{c}" = "{t}"\n' for c, t in COLUMNS.items()),
        encoding="utf-8",
    )
    env = {**os.environ, "AZORUS_IMPORT_DIR": str(tmp_path / "imports")}
    url = csv_hub.store.url
    errors = str(tmp_path / "errors.csv")
    cmd = [sys.executable, "-m", "azorus_connect", "--database-url", url, "import", str(path),
           "--mapping", str(mapping), "--batch-size", "50", "--errors", errors]  # fmt: skip
    # The hub's config (custom field "fair") comes from a file the child reads too.
    config = tmp_path / "azorus.toml"
    config.write_text('[custom_fields.fair]\ntype = "list"\nlist = "fairs"\n', encoding="utf-8")
    cmd[3:3] = ["--config", str(config)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline:
            with csv_hub.store.read() as conn:
                done = conn.execute(select(func.coalesce(func.max(import_run.c.rows_done), 0))).scalar_one()
            if done >= 500 or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    (run_id,) = [r for (r,) in _scalars(csv_hub, select(import_run.c.id))]
    killed = run_rows(csv_hub, run_id)
    assert killed["status"] == "running"
    assert 500 <= killed["rows_done"] < 15_000
    assert killed["rows_done"] % 50 == 0  # only whole batches
    # Exactly the committed batches are in the database: no half batch.
    assert _person_count(csv_hub) == killed["created"] == killed["rows_done"] - killed["invalid"]
    runner, same = resume_run(csv_hub, run_id, errors_path=tmp_path / "errors.csv")
    final = runner.run(same)
    assert final.status == "finished"
    assert final.rows_done == 15_000
    assert (final.created, final.invalid) == (14_999, 1)
    assert _person_count(csv_hub) == 14_999
    with csv_hub.store.read() as conn:
        dupes = conn.execute(
            select(identifier.c.value)
            .group_by(identifier.c.scheme, identifier.c.value)
            .having(func.count() > 1)
        ).all()
    assert dupes == []
    report = (tmp_path / "errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(report) == 2 and report[1].startswith("152,,Name151,")


def _scalars(hub, stmt):
    with hub.store.read() as conn:
        return conn.execute(stmt).all()


def test_resume_refuses_a_different_file(csv_hub, tmp_path):
    path = write_csv(tmp_path / "a.csv", HEADER, [["1", "A", "B", "", ""]])
    prof = ImportProfile.model_validate({"columns": COLUMNS})
    runner = ImportRunner(csv_hub, prof, open_csv(path))
    run_id = runner.start()
    write_csv(path, HEADER, [["2", "A", "B", "", ""]])
    with pytest.raises(ConfigError, match="content differs"):
        resume_run(csv_hub, run_id)


def test_undo_of_an_enquiry_import_removes_the_enquiries_it_created(csv_hub, tmp_path):
    run(csv_hub, write_csv(tmp_path / "p.csv", HEADER, [["0000000001", "Ann", "Lee", "", ""]]))
    header = ["Student ID", "Course", "Entry year", "Status"]
    columns = {
        "Student ID": "person.id:mst",
        "Course": "course",
        "Entry year": "entry_year",
        "Status": "status",
    }
    prof = ImportProfile.model_validate({"entity": "enquiry", "columns": columns})
    first = write_csv(tmp_path / "e1.csv", header, [["0000000001", "UG-CS", "2025", "open"]])
    runner = ImportRunner(csv_hub, prof, open_csv(first))
    created = runner.run(runner.start())
    second = write_csv(tmp_path / "e2.csv", header, [["0000000001", "UG-CS", "2025", "closed"]])
    runner = ImportRunner(csv_hub, prof, open_csv(second))
    updated = runner.run(runner.start())
    assert (created.created, updated.updated) == (1, 1)
    assert undo_run(csv_hub, updated.run_id).restored_fields == 1
    with csv_hub.store.read() as conn:
        assert conn.execute(select(enquiry.c.status)).scalars().all() == ["open"]
    assert undo_run(csv_hub, created.run_id).removed == {"enquiry": 1}
    assert table_counts(csv_hub)["enquiry"] == 0
    assert list(people(csv_hub)) == ["0000000001"]  # the person came from another run
