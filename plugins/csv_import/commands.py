"""The ``azorus-connect import`` command and its companions (profiles, runs, undo).

``import`` exits non-zero only when the run could not run (unreadable file, bad profile, no
database); rows that are invalid are reported, counted and written to the error report.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click
from sqlalchemy import select

from azorus_connect.exceptions import ConfigError
from azorus_connect.store.schema import import_run

from .profiles import (
    ImportProfile,
    delete_profile,
    list_profiles,
    load_profile,
    profile_from_toml,
    profile_to_toml,
    save_profile,
    suggest_profile,
)
from .reading import open_csv
from .running import DEFAULT_BATCH_SIZE, ImportRunner, RunProgress, resume_run
from .undo import undo_run

if TYPE_CHECKING:
    from azorus_connect.hub import Hub

__all__ = ["register"]


def _hub(obj: Any) -> Hub:
    """The hub the core's command group opened (``--config``, ``--database-url``), closed with the command."""
    hub: Hub = obj.hub()
    ctx = click.get_current_context()
    if not ctx.meta.get("azorus_csv_import.close"):
        ctx.meta["azorus_csv_import.close"] = True
        ctx.call_on_close(hub.close)
    return hub


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """A one-line progress bar with rows/s and an ETA, drawn only on a terminal."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.started = time.monotonic()
        self.drawn = False

    def update(self, progress: RunProgress, fraction: float) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        total = progress.total_rows or 0
        done = progress.rows_done
        if total:
            fraction = min(done / total, 1.0)
        rate = done / elapsed
        eta = (elapsed / fraction - elapsed) if fraction > 0 else 0.0
        width = 30
        filled = int(width * fraction)
        bar = "#" * filled + "." * (width - filled)
        line = f"\r[{bar}] {fraction:4.0%}  {done:,} rows  {rate:,.0f} rows/s  ETA {_duration(eta)}"
        self.stream.write(line)
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _summary(progress: RunProgress, errors: Path | None) -> str:
    verb = "would be" if progress.dry_run else "were"
    rows = [
        ("new", progress.created),
        ("updated", progress.updated),
        ("unchanged", progress.unchanged),
        ("invalid", progress.invalid),
        ("total", progress.rows_done),
    ]
    lines = [
        f"import run {progress.run_id} {'(dry run: nothing written) ' if progress.dry_run else ''}"
        f"{progress.status} in {progress.seconds:.1f}s",
        "",
        f"  {'rows':<10} {'count':>10}",
    ]
    lines += [f"  {label:<10} {count:>10,}" for label, count in rows]
    if progress.invalid and errors is not None:
        lines += ["", f"{progress.invalid:,} invalid rows {verb} left out: see {errors}"]
    return "\n".join(lines)


def _profile_for(
    hub: Hub, path: Path, profile_name: str | None, mapping: Path | None, entity: str
) -> ImportProfile:
    if profile_name and mapping:
        raise click.UsageError("give --profile or --mapping, not both")
    if profile_name:
        with hub.store.read() as conn:
            return load_profile(conn, profile_name)
    if mapping:
        return profile_from_toml(mapping.read_text(encoding="utf-8"), source=str(mapping))
    header = open_csv(path).header
    profile, suggestion = suggest_profile(header, entity, custom_fields=hub.config.custom_fields)
    click.echo("no profile given: columns mapped automatically", err=True)
    for match in suggestion.columns:
        target = match.target or "(not imported)"
        how = f"{match.method} {match.confidence:.0%}" if match.method else (match.note or "no match")
        click.echo(f"  {match.column!r:>28} -> {target:<24} {how}", err=True)
    return profile


def _import(
    obj: Any,
    file: Path | None,
    profile_name: str | None,
    mapping: Path | None,
    match_on: str | None,
    entity: str,
    dry_run: bool,
    errors: Path | None,
    batch_size: int,
    resume: int | None,
    save_as: str | None,
    as_json: bool,
) -> None:
    hub = _hub(obj)
    bar = ProgressBar(sys.stderr, enabled=sys.stderr.isatty() and not as_json)
    if resume is not None:
        runner, run_id = resume_run(hub, resume, file, errors_path=errors, on_progress=bar.update)
    else:
        if file is None:
            raise click.UsageError("give the FILE to import (or --resume RUN_ID)")
        profile = _profile_for(hub, file, profile_name, mapping, entity)
        if match_on:
            profile = profile.model_copy(
                update={"match_on": [s.strip().lower() for s in match_on.split(",") if s.strip()]}
            )
        if save_as:
            with hub.store.write() as conn:
                save_profile(conn, profile.model_copy(update={"name": save_as}))
        runner = ImportRunner(
            hub, profile, open_csv(file), batch_size=batch_size, errors_path=errors, on_progress=bar.update
        )
        run_id = runner.start(dry_run=dry_run, file_name=file.name)
    try:
        progress = runner.run(run_id)
    finally:
        bar.finish()
    if as_json:
        click.echo(
            json.dumps(
                {**progress.as_dict(), "errors": str(runner.errors_path) if progress.invalid else None}
            )
        )
    else:
        click.echo(_summary(progress, runner.errors_path))


def register(cli: click.Group) -> None:
    """Add ``import``, ``import-profile``, ``import-runs`` and ``import-undo`` to ``cli``."""

    @cli.command("import")
    @click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--profile", "profile_name", help="A saved import profile.")
    @click.option(
        "--mapping",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A profile as a TOML file.",
    )
    @click.option("--match-on", help="Identifier scheme(s) to match people on, e.g. mst or mst,email.")
    @click.option(
        "--entity",
        type=click.Choice(["person", "enquiry", "application"]),
        default="person",
        show_default=True,
        help="What the rows are, when mapping automatically.",
    )
    @click.option("--dry-run", is_flag=True, help="Classify every row; write nothing.")
    @click.option(
        "--errors",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the error report here (default: beside the database).",
    )
    @click.option(
        "--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(1, 100_000)
    )
    @click.option(
        "--resume", type=int, metavar="RUN_ID", help="Finish a run that was stopped, after its last batch."
    )
    @click.option("--save-profile", "save_as", metavar="NAME", help="Save the mapping used as a profile.")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @click.pass_obj
    def import_cmd(
        obj: Any,
        file: Path | None,
        profile_name: str | None,
        mapping: Path | None,
        match_on: str | None,
        entity: str,
        dry_run: bool,
        errors: Path | None,
        batch_size: int,
        resume: int | None,
        save_as: str | None,
        as_json: bool,
    ) -> None:
        """Import people, enquiries or applications from a CSV FILE."""
        _import(
            obj,
            file,
            profile_name,
            mapping,
            match_on,
            entity,
            dry_run,
            errors,
            batch_size,
            resume,
            save_as,
            as_json,
        )

    @cli.group("import-profile")
    def profile_group() -> None:
        """Saved import profiles: list, export to TOML, load from TOML, delete."""

    @profile_group.command("list")
    @click.pass_obj
    def profile_list(obj: Any) -> None:
        with _hub(obj).store.read() as conn:
            for p in list_profiles(conn):
                columns = len(p.mapped_columns())
                click.echo(f"{p.name}\t{p.entity}\tmatch on {','.join(p.match_on)}\t{columns} columns")

    @profile_group.command("export")
    @click.argument("name")
    @click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
    @click.pass_obj
    def profile_export(obj: Any, name: str, output: Path | None) -> None:
        with _hub(obj).store.read() as conn:
            text = profile_to_toml(load_profile(conn, name))
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            click.echo(text, nl=False)

    @profile_group.command("load")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--name", help="Save under this name instead of the one in the file.")
    @click.pass_obj
    def profile_load(obj: Any, file: Path, name: str | None) -> None:
        profile = profile_from_toml(file.read_text(encoding="utf-8"), source=str(file))
        if name:
            profile = profile.model_copy(update={"name": name})
        hub = _hub(obj)
        profile.record_mapping(hub.config.custom_fields)
        with hub.store.write() as conn:
            save_profile(conn, profile)
        click.echo(f"saved import profile {profile.name!r}")

    @profile_group.command("delete")
    @click.argument("name")
    @click.pass_obj
    def profile_delete(obj: Any, name: str) -> None:
        with _hub(obj).store.write() as conn:
            if not delete_profile(conn, name):
                raise ConfigError(f"no import profile named {name!r}", key="profile")
        click.echo(f"deleted import profile {name!r}")

    @cli.command("import-runs")
    @click.option("--limit", default=20, show_default=True)
    @click.pass_obj
    def runs(obj: Any, limit: int) -> None:
        """Recent import runs with their counts."""
        with _hub(obj).store.read() as conn:
            ids = (
                conn.execute(select(import_run.c.id).order_by(import_run.c.id.desc()).limit(limit))
                .scalars()
                .all()
            )
            for run_id in ids:
                p = RunProgress.load(conn, run_id)
                kind = "dry run" if p.dry_run else "run"
                click.echo(
                    f"{p.run_id}\t{p.status}\t{kind}\t{p.options.get('file_name')}\t"
                    f"new {p.created} updated {p.updated} unchanged {p.unchanged} invalid {p.invalid}"
                )

    @cli.command("import-undo")
    @click.argument("run_id", type=int)
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def undo(obj: Any, run_id: int, as_json: bool) -> None:
        """Undo import run RUN_ID, except where another source has changed a record since."""
        report = undo_run(_hub(obj), run_id)
        if as_json:
            click.echo(json.dumps(report.as_dict()))
            return
        removed = ", ".join(f"{n} {e}" for e, n in sorted(report.removed.items())) or "nothing"
        click.echo(
            f"run {run_id} undone: restored {report.restored_fields} fields on "
            f"{report.restored_records} records, removed {removed}"
        )
        for s in report.skipped:
            fields = f" ({', '.join(s.fields)})" if s.fields else ""
            click.echo(f"  left alone: {s.entity} {s.record_id}{fields}: {s.reason}")
