"""Running imports on a real database: outcomes per row, dry run == real run, custom fields, outbox."""

from __future__ import annotations

import datetime as dt
import gc
from pathlib import Path

import pytest
from azorus_csv_import.profiles import ImportProfile
from azorus_csv_import.reading import CsvFileError, open_csv
from azorus_csv_import.running import ImportRunner, RowOutcome
from sqlalchemy import select

from azorus_connect.exceptions import ConfigError, InvalidRecord
from azorus_connect.store.schema import change_log, outbox

from .conftest import FIXTURES, people, run_rows, table_counts, write_csv

PERSON = {
    "MST": "id:mst",
    "Forename": "first_name",
    "Surname": "last_name",
}


def profile(columns: dict[str, object] | None = None, **kw: object) -> ImportProfile:
    return ImportProfile.model_validate({"name": "", "columns": columns or PERSON, **kw})


def run(hub, path: Path, prof: ImportProfile, *, dry_run: bool = False, batch_size: int = 500):
    outcomes: list[RowOutcome] = []
    runner = ImportRunner(hub, prof, open_csv(path), batch_size=batch_size, on_row=outcomes.append)
    run_id = runner.start(dry_run=dry_run)
    progress = runner.run(run_id)
    return progress, outcomes, runner


def summary(outcomes: list[RowOutcome]) -> list[tuple[int, str]]:
    return [(o.number, o.status) for o in outcomes]


def test_new_then_unchanged_then_update_with_field_diff(csv_hub, tmp_path):
    path = write_csv(tmp_path / "a.csv", ["MST", "Forename", "Surname"], [["0000000001", "Ann", "Lee"]])
    progress, outcomes, _ = run(csv_hub, path, profile())
    assert (progress.created, progress.status) == (1, "finished")
    assert summary(outcomes) == [(2, "new")]
    progress, outcomes, _ = run(csv_hub, path, profile())
    assert summary(outcomes) == [(2, "unchanged")]
    write_csv(path, ["MST", "Forename", "Surname"], [["0000000001", "Anne", "Lee"]])
    progress, outcomes, _ = run(csv_hub, path, profile())
    assert summary(outcomes) == [(2, "update")]
    assert outcomes[0].changes == {"first_name": ("Ann", "Anne")}
    assert people(csv_hub)["0000000001"]["first_name"] == "Anne"


def test_every_write_is_stamped_with_the_run_and_logged_field_by_field(csv_hub, tmp_path):
    path = write_csv(tmp_path / "a.csv", ["MST", "Forename"], [["0000000001", "Ann"], ["0000000002", "Bob"]])
    first, _, _ = run(csv_hub, path, profile({"MST": "id:mst", "Forename": "first_name"}))
    write_csv(path, ["MST", "Forename"], [["0000000001", "Anne"], ["0000000002", "Bob"]])
    second, _, _ = run(csv_hub, path, profile({"MST": "id:mst", "Forename": "first_name"}))
    with csv_hub.store.read() as conn:
        log = conn.execute(select(change_log.c.import_run_id, change_log.c.action, change_log.c.field)).all()
    assert sorted(log) == sorted(
        [
            (first.run_id, "created", "*"),
            (first.run_id, "created", "*"),
            (second.run_id, "updated", "first_name"),
        ]
    )


def test_dry_run_writes_nothing_and_matches_the_real_run(csv_hub, tmp_path):
    seed = write_csv(tmp_path / "seed.csv", ["MST", "Forename", "Surname"], [["0000000001", "Ann", "Lee"]])
    run(csv_hub, seed, profile())
    rows = [
        ["0000000001", "Anne", "Lee"],  # update
        ["0000000002", "Bob", "Ray"],  # new
        ["0000000002", "Bob", "Ray"],  # the same person again: unchanged (seen in an earlier batch)
        ["", "Nobody", "Here"],  # invalid: nothing to match on
        ["0000000003", "Cy", "Do"],  # new
        ["0000000003", "Cyril", "Do"],  # update of a person this very file creates
        ["0000000001", "Anne", "Lee"],  # unchanged
    ]
    path = write_csv(tmp_path / "b.csv", ["MST", "Forename", "Surname"], rows)
    before = table_counts(csv_hub)
    snapshot = people(csv_hub)
    dry, dry_outcomes, _ = run(csv_hub, path, profile(), dry_run=True, batch_size=2)
    assert table_counts(csv_hub) == before
    assert people(csv_hub) == snapshot
    assert dry.dry_run and dry.status == "finished"
    real, real_outcomes, _ = run(csv_hub, path, profile(), batch_size=2)
    expected = [
        (2, "update"),
        (3, "new"),
        (4, "unchanged"),
        (5, "invalid"),
        (6, "new"),
        (7, "update"),
        (8, "unchanged"),
    ]
    assert summary(dry_outcomes) == summary(real_outcomes) == expected
    assert [o.reasons for o in dry_outcomes] == [o.reasons for o in real_outcomes]
    assert [o.changes for o in dry_outcomes] == [o.changes for o in real_outcomes]
    assert (dry.created, dry.updated, dry.unchanged, dry.invalid) == (2, 2, 2, 1)
    assert (real.created, real.updated, real.unchanged, real.invalid) == (2, 2, 2, 1)
    assert "no identifier to match on" in real_outcomes[3].reasons[0]


def test_run_record_holds_counts_and_timings(csv_hub, tmp_path):
    path = write_csv(tmp_path / "a.csv", ["MST", "Forename", "Surname"], [["1", "A", "B"], ["2", "C"]])
    progress, _, runner = run(csv_hub, path, profile())
    row = run_rows(csv_hub, progress.run_id)
    assert (row["status"], row["total_rows"], row["rows_done"], row["created"], row["invalid"]) == (
        "finished", 2, 2, 1, 1,
    )  # fmt: skip
    assert row["finished_at"] >= row["started_at"]
    assert row["entity"] == "person"
    assert runner.errors_path is not None and runner.errors_path.exists()


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("bom_utf8.csv", {"0000100001": "Zoë", "0000100002": "José"}),
        ("cp1252.csv", {"0000100003": "Renée", "0000100004": "Chloé"}),
        ("semicolon.csv", {"0000100005": "Anna", "0000100006": "Ben"}),
        ("utf16_tab.txt", {"0000100008": "Dafydd"}),
        ("quoted_newlines.csv", {"0000100009": "Eve", "0000100010": "Finn", "0000100011": "Gail"}),
        ("leading_zeros.csv", {"0000100026": "Wyn", "0000100027": "Xan"}),
    ],
)
def test_hostile_but_readable_files_import(csv_hub, fixture, expected):
    source = open_csv(FIXTURES / fixture)
    first = next(h for h in source.header if h in ("Forename", "First name"))
    last = next(h for h in source.header if h in ("Surname", "Last name"))
    columns = {source.header[0]: "id:mst", first: "first_name", last: "last_name"}
    progress, outcomes, _ = run(csv_hub, FIXTURES / fixture, profile(columns))
    assert progress.invalid == 0, [o.reasons for o in outcomes]
    assert {mst: p["first_name"] for mst, p in people(csv_hub).items()} == expected


def test_leading_zeros_survive_in_every_identifier_and_text_field(csv_hub):
    columns = {"MST": "id:mst", "UCAS ID": "id:ucas_pid", "Forename": "first_name", "Postcode": "postcode"}
    run(csv_hub, FIXTURES / "leading_zeros.csv", profile(columns))
    found = people(csv_hub)
    assert found["0000100026"]["identifiers"] == {"mst": "0000100026", "ucas_pid": "0012345678"}
    assert found["0000100027"]["identifiers"]["ucas_pid"] == "0098765432"
    assert found["0000100027"]["postcode"] == "00501"


def test_excel_serials_and_uk_dates_and_a_bad_date(csv_hub):
    columns = {"MST": "id:mst", "Forename": "first_name", "DOB": "date_of_birth"}
    progress, outcomes, _ = run(csv_hub, FIXTURES / "excel_serials.csv", profile(columns))
    found = people(csv_hub)
    assert found["0000100021"]["date_of_birth"] == dt.date(2001, 2, 28)
    assert found["0000100022"]["date_of_birth"] == dt.date(2002, 1, 1)
    assert found["0000100024"]["date_of_birth"] == dt.date(1999, 12, 31)
    assert found["0000100025"]["date_of_birth"] == dt.date(2001, 4, 3)
    assert "0000100023" not in found
    bad = [o for o in outcomes if o.status == "invalid"]
    assert [(o.number, o.reasons) for o in bad] == [
        (4, ["DOB: 'not a date' is not a date (expected e.g. 28/02/2001, 2001-02-28 or 28-FEB-2001)"])
    ]
    assert progress.invalid == 1


def test_formula_cells_are_stored_as_text(csv_hub):
    columns = {"MST": "id:mst", "Forename": "first_name", "Surname": "last_name", "Notes": "custom:notes"}
    run(csv_hub, FIXTURES / "formulas.csv", profile(columns))
    found = people(csv_hub)
    assert found["0000100028"]["first_name"].startswith("=HYPERLINK(")
    assert found["0000100029"]["last_name"] == "-2+3"


def test_ragged_rows_are_invalid_and_the_rest_import(csv_hub, tmp_path):
    _progress, outcomes, runner = run(csv_hub, FIXTURES / "ragged.csv", profile())
    assert summary(outcomes) == [(2, "new"), (3, "invalid"), (4, "invalid"), (5, "new"), (8, "new")]
    assert sorted(people(csv_hub)) == ["0000100016", "0000100019", "0000100020"]
    report = runner.errors_path.read_text(encoding="utf-8-sig").splitlines()
    assert report[0] == "row,MST,Forename,Surname,reason"
    assert report[1].startswith("3,0000100017,Ned,,this row has 2 cells")


@pytest.mark.parametrize(
    ("fixture", "problem"),
    [
        ("empty.csv", "empty"),
        ("whitespace_only.csv", "empty"),
        ("binary.csv", "binary"),
        ("workbook.xlsx", "binary"),
        ("duplicate_headers.csv", "header"),
        ("blank_header.csv", "header"),
    ],
)
def test_unreadable_files_fail_before_anything_is_written(csv_hub, fixture, problem):
    before = table_counts(csv_hub)
    with pytest.raises(CsvFileError) as err:
        ImportRunner(csv_hub, profile(), open_csv(FIXTURES / fixture))
    assert err.value.problem == problem
    assert table_counts(csv_hub) == before


def test_header_only_file_runs_and_changes_nothing(csv_hub):
    before = table_counts(csv_hub)
    progress, outcomes, _ = run(csv_hub, FIXTURES / "header_only.csv", profile())
    assert (progress.status, progress.rows_done, outcomes) == ("finished", 0, [])
    assert table_counts(csv_hub) == before


def test_a_profile_column_missing_from_the_file_is_refused(csv_hub, tmp_path):
    path = write_csv(tmp_path / "a.csv", ["MST", "First"], [["1", "A"]])
    with pytest.raises(InvalidRecord, match="no column 'Forename'"):
        ImportRunner(csv_hub, profile(), open_csv(path))


def test_unknown_target_is_a_config_error(csv_hub, tmp_path):
    path = write_csv(tmp_path / "a.csv", ["MST", "X"], [["1", "A"]])
    with pytest.raises(ConfigError, match="unknown target 'favourite_colour'"):
        ImportRunner(csv_hub, profile({"MST": "id:mst", "X": "favourite_colour"}), open_csv(path))
    with pytest.raises(ConfigError, match="custom field 'nope' is not declared"):
        ImportRunner(csv_hub, profile({"MST": "id:mst", "X": "custom:nope"}), open_csv(path))


def test_custom_fields_import_like_standard_ones_and_lists_are_checked(csv_hub, tmp_path):
    header = ["MST", "Fair", "Points", "Visited", "Nationality"]
    rows = [
        ["0000000001", "LDN24", "112", "03/04/2024", "GB"],
        ["0000000002", "XX99", "96", "45000", "ZZ"],
        ["0000000003", "MAN24", "lots", "", "FR"],
    ]
    path = write_csv(tmp_path / "c.csv", header, rows)
    columns = {
        "MST": "id:mst",
        "Fair": "custom:fair",
        "Points": "custom:ucas_points",
        "Visited": "custom:visit_date",
        "Nationality": "nationality",
    }
    _strict, outcomes, _ = run(csv_hub, path, profile(columns, unknown_codes="strict"), dry_run=True)
    assert summary(outcomes) == [(2, "new"), (3, "invalid"), (4, "invalid")]
    assert "custom:fair: code 'XX99' is not in list 'fairs'" in outcomes[1].reasons[0]
    assert "nationality: code 'ZZ' is not in list 'nationality'" in outcomes[1].reasons[0]
    assert "not a number" in outcomes[2].reasons[0]
    _lenient, outcomes, _ = run(csv_hub, path, profile(columns, unknown_codes="lenient"))
    assert summary(outcomes) == [(2, "new"), (3, "new"), (4, "invalid")]
    assert any("'XX99' is not in list 'fairs'" in r for r in outcomes[1].reasons)
    found = people(csv_hub)
    assert found["0000000001"]["custom"] == {"fair": "LDN24", "ucas_points": 112, "visit_date": "2024-04-03"}
    assert found["0000000002"]["custom"]["visit_date"] == "2023-03-15"
    assert found["0000000001"]["nationality"] == "GB"


def test_update_only_leaves_unknown_people_out_with_a_reason(csv_hub, tmp_path):
    run(csv_hub, write_csv(tmp_path / "a.csv", ["MST", "Forename", "Surname"], [["1", "A", "B"]]), profile())
    path = write_csv(tmp_path / "b.csv", ["MST", "Forename", "Surname"], [["1", "Al", "B"], ["2", "C", "D"]])
    _progress, outcomes, _ = run(csv_hub, path, profile(mode="update_only"))
    assert summary(outcomes) == [(2, "update"), (3, "invalid")]
    assert "only updates" in outcomes[1].reasons[0]
    assert sorted(people(csv_hub)) == ["1"]


def test_match_on_email_uses_the_email_column(csv_hub, tmp_path):
    header = ["Email", "Forename"]
    path = write_csv(tmp_path / "a.csv", header, [["Ann@Example.org", "Ann"]])
    prof = profile({"Email": "email", "Forename": "first_name"}, match_on=["email"])
    run(csv_hub, path, prof)
    write_csv(path, header, [["ann@example.org", "Anne"]])
    _, outcomes, _ = run(csv_hub, path, prof)
    assert summary(outcomes) == [(2, "update")]
    (only,) = people(csv_hub).values()
    assert only["identifiers"] == {"email": "ann@example.org"}


def test_identifier_mangled_by_excel_is_invalid(csv_hub, tmp_path):
    path = write_csv(tmp_path / "a.csv", ["MST", "Forename", "Surname"], [["1.23457E+11", "A", "B"]])
    _, outcomes, _ = run(csv_hub, path, profile())
    assert outcomes[0].status == "invalid"
    assert "format the column as text" in outcomes[0].reasons[0]


def test_imported_enquiries_go_to_the_outbox_of_connections_that_send_them(csv_hub, tmp_path):
    run(
        csv_hub,
        write_csv(tmp_path / "p.csv", ["MST", "Forename", "Surname"], [["0000000001", "A", "B"]]),
        profile(),
    )
    with csv_hub.store.read() as conn:
        assert conn.execute(select(outbox)).all() == []  # people are not sent by this connection
    header = ["Student ID", "Course", "Entry year"]
    path = write_csv(
        tmp_path / "e.csv", header, [["0000000001", "UG-CS", "2025"], ["0000000009", "UG-MA", "2025"]]
    )
    columns = {"Student ID": "person.id:mst", "Course": "course", "Entry year": "entry_year"}
    progress, outcomes, _ = run(csv_hub, path, profile(columns, entity="enquiry"))
    assert summary(outcomes) == [(2, "new"), (3, "invalid")]
    assert "no person found" in outcomes[1].reasons[0]
    with csv_hub.store.read() as conn:
        queued = conn.execute(select(outbox.c.connection, outbox.c.entity, outbox.c.import_run_id)).all()
    assert queued == [("sits_out", "enquiry", progress.run_id)]


def test_other_writers_go_on_while_a_dry_run_runs(csv_hub, tmp_path):
    import threading

    from azorus_connect.engine import Source
    from azorus_connect.model import Person

    path = write_csv(tmp_path / "a.csv", ["MST", "Forename", "Surname"], [["0000000001", "Ann", "Lee"]] * 3)
    finished: list[bool] = []

    def write_meanwhile(outcome: RowOutcome) -> None:
        if finished:
            return
        other = threading.Thread(
            target=csv_hub.apply,
            args=(
                [Person(identifiers={"mst": "0000000099"}, first_name="Wyn")],
                Source(connection="sits_out"),
            ),
        )
        other.start()
        other.join(timeout=20)
        finished.append(not other.is_alive())

    runner = ImportRunner(csv_hub, profile(), open_csv(path), on_row=write_meanwhile)
    result = runner.run(runner.start(dry_run=True))
    assert finished == [True]
    assert result.created == 1 and result.unchanged == 2
    assert sorted(people(csv_hub)) == ["0000000099"]  # the other write is in; the dry run wrote nothing


def test_the_error_report_keeps_cells_as_the_file_had_them(csv_hub, tmp_path):
    path = write_csv(tmp_path / "a.csv", ["MST", "Forename", "Surname"], [['="0012"', " Ann ", "x" * 300]])
    _, outcomes, runner = run(csv_hub, path, profile())
    assert outcomes[0].status == "invalid"
    assert outcomes[0].reasons == ["Surname: 300 characters, more than the 200 it may have"]
    line = runner.errors_path.read_text(encoding="utf-8-sig").splitlines()[1]
    assert line.startswith('2,"\'=""0012""", Ann ,xxx')


def test_values_too_long_for_their_column_are_row_errors_and_the_run_goes_on(csv_hub, tmp_path):
    rows = [["1" * 201, "A", "B"], ["0000000002", "B" * 201, "C"], ["0000000003", "Cy", "Do"]]
    path = write_csv(tmp_path / "a.csv", ["MST", "Forename", "Surname"], rows)
    progress, outcomes, _ = run(csv_hub, path, profile())
    assert summary(outcomes) == [(2, "invalid"), (3, "invalid"), (4, "new")]
    assert outcomes[0].reasons == ["MST: 201 characters, more than the 200 it may have"]
    assert progress.status == "finished"
    assert sorted(people(csv_hub)) == ["0000000003"]


def test_a_nul_character_deep_in_the_file_is_a_row_error(csv_hub, tmp_path):
    path = tmp_path / "nul.csv"
    body = "MST,Forename,Surname\n" + "".join(f"{i:010d},A,B\n" for i in range(1, 8000))
    path.write_bytes(body.encode() + b"0000009999,Nu\x00l,C\n0000010000,Z,Z\n")
    progress, outcomes, _ = run(csv_hub, path, profile(), batch_size=1000)
    assert outcomes[-2].status == "invalid" and "NUL" in outcomes[-2].reasons[0]
    assert (progress.status, progress.created, progress.invalid) == ("finished", 8000, 1)


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_run_leaves_no_object_frozen_out_of_garbage_collection(csv_hub, tmp_path, dry_run):
    path = write_csv(tmp_path / "a.csv", ["MST", "Forename"], [["0000000001", "Ann"], ["", "Nobody"]])
    before = gc.get_freeze_count()
    progress, _, _ = run(csv_hub, path, profile({"MST": "id:mst", "Forename": "first_name"}), dry_run=dry_run)
    assert (progress.created, progress.invalid) == (1, 1)
    assert gc.get_freeze_count() == before


def test_runs_that_overlap_restore_the_collection_threshold_they_found(csv_hub, tmp_path):
    from azorus_csv_import import running

    path = write_csv(tmp_path / "a.csv", ["MST", "Forename"], [["0000000001", "Ann"]])
    before = gc.get_threshold()
    inner_threshold = []

    def nested(_outcome):
        inner_threshold.append(gc.get_threshold())
        run(csv_hub, path, profile({"MST": "id:mst", "Forename": "first_name"}))  # a second run meanwhile
        inner_threshold.append(gc.get_threshold())

    runner = ImportRunner(csv_hub, profile({"MST": "id:mst", "Forename": "first_name"}), open_csv(path))
    runner.on_row = nested
    runner.run(runner.start())
    raised = (max(before[0], running._RUN_GC_THRESHOLD), *before[1:])
    assert inner_threshold == [raised, raised]  # the inner run ending does not lower it under the outer
    assert gc.get_threshold() == before
