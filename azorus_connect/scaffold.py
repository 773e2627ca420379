"""``azorus-connect plugin new NAME``: start a connector plugin from the plugin template.

The template (``contrib/plugin-template/`` in a source checkout, or ``--template DIR``) is a
folder of files; a ``.jinja`` file is rendered and loses that suffix, and a ``{{ package }}``
folder name becomes the plugin's import package.  The generated plugin is a working
distribution: it passes the standard contract suite out of the box.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import jinja2

__all__ = ["PluginNames", "default_template_dir", "plugin_group", "render_plugin"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
_SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


@dataclass(frozen=True)
class PluginNames:
    """Every name the template needs, derived from the one the author chose."""

    name: str  # acme-sis
    distribution: str  # azorus-acme-sis
    package: str  # azorus_acme_sis
    type_name: str  # acme_sis
    title: str  # Acme SIS
    class_prefix: str  # AcmeSis
    env_prefix: str  # ACME_SIS

    @classmethod
    def from_name(cls, name: str) -> PluginNames:
        if not _NAME.match(name):
            raise ValueError(
                f"plugin name {name!r}: use lower-case letters, digits and single - or _ (e.g. acme-sis)"
            )
        if name.startswith("azorus"):
            raise ValueError(f"plugin name {name!r}: leave out the azorus prefix, it is added for you")
        words = re.split(r"[-_]", name)
        type_name = "_".join(words)
        return cls(
            name=name,
            distribution=f"azorus-{'-'.join(words)}",
            package=f"azorus_{type_name}",
            type_name=type_name,
            title=" ".join(w.upper() if len(w) <= 3 else w.capitalize() for w in words),
            class_prefix="".join(w.capitalize() for w in words),
            env_prefix=type_name.upper(),
        )


def default_template_dir() -> Path:
    """The template shipped in a source checkout of the hub."""
    return Path(__file__).resolve().parent.parent / "contrib" / "plugin-template"


def render_plugin(names: PluginNames, target: Path, template: Path | None = None) -> list[Path]:
    """Render the template into ``target`` (which must not exist yet); returns the files written."""
    source = template or default_template_dir()
    if not (source / "pyproject.toml.jinja").is_file():
        raise FileNotFoundError(f"no plugin template at {source} (give one with --template DIR)")
    if target.exists():
        raise FileExistsError(f"{target} already exists; choose another directory")
    env = jinja2.Environment(  # the output is Python and TOML, not HTML
        loader=jinja2.FileSystemLoader(str(source)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701
    )
    context = asdict(names)
    written: list[Path] = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or _SKIP & set(relative.parts) or path.suffix == ".pyc":
            continue
        out_relative = env.from_string(relative.as_posix()).render(context)
        out = target / out_relative
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jinja":
            out = out.with_suffix("")
            out.write_text(env.get_template(relative.as_posix()).render(context), encoding="utf-8")
        else:
            out.write_bytes(path.read_bytes())
        written.append(out)
    return written


@click.group("plugin")
def plugin_group() -> None:
    """Tools for plugin authors."""


@plugin_group.command("new")
@click.argument("name")
@click.option(
    "--directory",
    "-d",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to create the plugin (default: ./azorus-NAME).",
)
@click.option(
    "--template",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="A plugin template folder (default: the one shipped with the hub's source).",
)
def new_plugin(name: str, directory: Path | None, template: Path | None) -> None:
    """Create a connector plugin NAME (e.g. acme-sis) that passes the contract suite."""
    try:
        names = PluginNames.from_name(name)
        target = directory or Path(names.distribution)
        written = render_plugin(names, target, template)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Created {names.distribution} in {target} ({len(written)} files): connector type "
        f"{names.type_name!r}, package {names.package}."
    )
    click.echo("Next: pip install -e " + str(target) + " && pytest " + str(target / "tests"))
