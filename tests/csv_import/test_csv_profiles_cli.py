"""Import profiles (TOML and database) and the ``azorus-connect import`` family of commands."""

from __future__ import annotations

import json

import pytest
from azorus_csv_import.profiles import (
    ImportProfile,
    list_profiles,
    load_profile,
    profile_from_toml,
    profile_to_toml,
    save_profile,
    suggest_profile,
)
from click.testing import CliRunner

from azorus_connect.cli import cli
from azorus_connect.exceptions import ConfigError

from .conftest import FIXTURES, people, write_csv


def test_profile_round_trips_through_toml():
    profile = ImportProfile.model_validate(
        {
            "name": 'Open day "leads"',
            "entity": "enquiry",
            "match_on": "mst, email",
            "mode": "update_only",
            "unknown_codes": "strict",
            "blank": "clear",
            "columns": {
                "Student ID": "person.id:mst",
                "Date \u00e9": {"to": "enquiry_date", "transform": "excel_date"},
                "Notes\tx": "-",
            },
        }
    )
    text = profile_to_toml(profile)
    assert profile_from_toml(text) == profile
    assert 'match_on = ["mst", "email"]' in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[profile\n", "not valid TOML"),
        ("[profile]\nentity = 'alien'\n", "entity"),
        ("[extra]\n", "unknown section"),
        ("[columns]\nA = { too = 'x' }\n", "columns.A"),
    ],
)
def test_bad_profile_toml_says_where(text, message):
    with pytest.raises(ConfigError, match=message):
        profile_from_toml(text, source="p.toml")


def test_suggested_profile_reads_dates_and_lists_unmapped_columns_as_ignored(csv_hub):
    profile, suggestion = suggest_profile(
        ["Student ID", "Forename", "DOB", "Fair attended", "Shoe size"],
        custom_fields=csv_hub.config.custom_fields,
    )
    assert profile.columns["DOB"].transform == ["excel_date"]
    assert profile.columns["Fair attended"].to == "custom:fair"
    assert profile.columns["Shoe size"].to == "-"
    assert profile.match_on == ["mst"]
    assert suggestion.unmapped == ["Shoe size"]


def test_profiles_are_stored_by_name(csv_hub):
    profile = ImportProfile.model_validate({"name": "fair", "columns": {"MST": "id:mst"}})
    with csv_hub.store.write() as conn:
        save_profile(conn, profile)
        save_profile(conn, profile.model_copy(update={"match_on": ["email"]}))
    with csv_hub.store.read() as conn:
        assert load_profile(conn, "fair").match_on == ["email"]
        assert [p.name for p in list_profiles(conn)] == ["fair"]
        with pytest.raises(ConfigError, match=r"no import profile named 'nope' \(saved: fair\)"):
            load_profile(conn, "nope")


@pytest.fixture
def cli_env(csv_hub, tmp_path, monkeypatch):
    """Run the CLI against the test hub's database and a config declaring the same custom fields."""
    config = tmp_path / "azorus.toml"
    config.write_text(
        '[custom_fields.fair]\ntype = "list"\nlist = "fairs"\n[lists.fairs.values]\nLDN24 = "London"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("AZORUS_CONFIG", str(config))
    monkeypatch.setenv("AZORUS_DATABASE_URL", csv_hub.store.url)
    from azorus_connect import cli as cli_module

    cli_module._register_plugin_commands()
    return CliRunner()


def test_cli_import_dry_run_then_run_then_undo(cli_env, csv_hub, tmp_path):
    path = write_csv(
        tmp_path / "fair.csv",
        ["MST code", "Forename", "Surname", "DOB"],
        [["0000000001", "Ann", "Lee", "36950"], ["0000000002", "Bob", "Ray", "31/02/2001"]],
    )
    errors = tmp_path / "errors.csv"
    dry = cli_env.invoke(cli, ["import", str(path), "--dry-run", "--errors", str(errors)])
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing written" in dry.output
    assert "new                 1" in dry.output and "invalid             1" in dry.output
    assert people(csv_hub) == {}
    real = cli_env.invoke(cli, ["import", str(path), "--save-profile", "fair", "--json"])
    assert real.exit_code == 0, real.output
    result = json.loads(real.output.strip().splitlines()[-1])
    assert (result["new"], result["invalid"], result["status"]) == (1, 1, "finished")
    assert list(people(csv_hub)) == ["0000000001"]
    exported = cli_env.invoke(cli, ["import-profile", "export", "fair"])
    assert '"DOB" = { to = "date_of_birth", transform = ["excel_date"] }' in exported.output
    again = cli_env.invoke(cli, ["import", str(path), "--profile", "fair", "--json"])
    assert json.loads(again.output.strip().splitlines()[-1])["unchanged"] == 1
    undone = cli_env.invoke(cli, ["import-undo", str(result["run_id"])])
    assert undone.exit_code == 0 and "removed 1 person" in undone.output
    assert people(csv_hub) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["empty.csv"], "the file is empty"),
        (["binary.csv"], "binary data"),
        (["duplicate_headers.csv"], "duplicate header 'Forename'"),
        (["bom_utf8.csv", "--profile", "nope"], "no import profile named 'nope'"),
    ],
)
def test_cli_exits_non_zero_only_when_the_run_cannot_run(cli_env, csv_hub, args, message):
    result = cli_env.invoke(cli, ["import", str(FIXTURES / args[0]), *args[1:]])
    assert result.exit_code == 2
    assert message in result.output
    assert people(csv_hub) == {}


def test_cli_profile_load_and_match_on_override(cli_env, csv_hub, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text(
        '[profile]\nname = "x"\n[columns]\nEmail = "email"\nName = "first_name"\n', encoding="utf-8"
    )
    loaded = cli_env.invoke(cli, ["import-profile", "load", str(toml)])
    assert loaded.exit_code == 0, loaded.output
    path = write_csv(tmp_path / "a.csv", ["Email", "Name"], [["a@x.org", "A"]])
    result = cli_env.invoke(cli, ["import", str(path), "--profile", "x", "--match-on", "email", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["new"] == 1
    assert next(iter(people(csv_hub).values()))["identifiers"] == {"email": "a@x.org"}


def test_progress_bar_shows_rows_per_second_and_eta_only_on_a_terminal():
    import datetime as dt
    import io

    from azorus_csv_import.commands import ProgressBar
    from azorus_csv_import.running import RunProgress

    progress = RunProgress(
        run_id=1, dry_run=False, status="running", total_rows=1000, rows_done=250, created=250, updated=0,
        unchanged=0, invalid=0, started_at=dt.datetime(2026, 1, 1), finished_at=None, error=None, options={},
    )  # fmt: skip
    out = io.StringIO()
    bar = ProgressBar(out, enabled=True)
    bar.update(progress, 0.25)
    bar.finish()
    line = out.getvalue()
    assert line.startswith("\r[#######.") and " 25%" in line and "250 rows" in line
    assert "rows/s" in line and "ETA 0:" in line and line.endswith("\n")
    quiet = io.StringIO()
    off = ProgressBar(quiet, enabled=False)
    off.update(progress, 0.25)
    off.finish()
    assert quiet.getvalue() == ""
