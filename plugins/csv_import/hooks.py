"""The CSV import plugin's hook implementations: commands, value transforms, API and wizard pages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from azorus_connect.hookspecs import hookimpl

from .values import excel_date

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

__all__ = [
    "azorus_register_admin_links",
    "azorus_register_commands",
    "azorus_register_routes",
    "azorus_register_value_transforms",
]


@hookimpl
def azorus_register_value_transforms() -> dict[str, Callable[..., Any]]:
    return {"excel_date": lambda value, *args: excel_date(value)}


@hookimpl
def azorus_register_commands(cli: click.Group) -> None:
    from .commands import register

    register(cli)


@hookimpl
def azorus_register_routes() -> Sequence[APIRouter]:
    from .api import build_router
    from .wizard import build_wizard_router

    return [build_router(), build_wizard_router()]


@hookimpl
def azorus_register_admin_links() -> Sequence[tuple[str, str]]:
    return [("Imports", "/admin/imports")]
