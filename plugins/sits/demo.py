"""``azorus-connect demo``: the SITS connector end to end on a fresh SQLite file (being written)."""

from __future__ import annotations

import click


@click.command()
@click.option("--exit", "exit_after", is_flag=True, help="Stop after the scenario instead of serving on.")
def demo(exit_after: bool) -> None:
    """Run the SITS demo: StuTalk in, enquiries out to a local SITS simulator."""
    raise click.ClickException("the demo is not available yet")
