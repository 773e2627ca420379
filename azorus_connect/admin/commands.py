"""``azorus-connect admin ...``: users and API tokens from the command line.

Passwords are prompted for (or read from standard input with ``--password-stdin``), never taken
as an argument, so they do not end up in shell history or process listings.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..hub import Hub
from ..store.db import utcnow
from . import accounts
from .credentials import Role

__all__ = ["admin"]

_ROLES = click.Choice([r.value for r in Role])


@contextmanager
def _hub(state: Any, *, migrate: bool = False) -> Iterator[Hub]:
    """The hub the group's options name, closed (its connections released) when the command ends."""
    hub = Hub.open(state.config, database_url=state.database_url, plugins=state.plugins, migrate=migrate)
    try:
        yield hub
    finally:
        hub.close()


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def admin() -> None:
    """Admin UI users and API tokens."""


@admin.command("create-user")
@click.argument("username")
@click.option("--role", type=_ROLES, default=Role.VIEWER.value, show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_obj
def create_user(state: Any, username: str, role: str, password_stdin: bool) -> None:
    """Add a user who can sign in to the admin UI (admins can also change things)."""
    password = _read_password(password_stdin)
    try:
        with _hub(state, migrate=True) as hub, hub.store.write() as conn:
            accounts.create_user(conn, username, password, role, utcnow())
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {username} created with role {role}")


@admin.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_obj
def set_password(state: Any, username: str, password_stdin: bool) -> None:
    """Change a user's password (signs them out everywhere)."""
    password = _read_password(password_stdin)
    try:
        with _hub(state) as hub, hub.store.write() as conn:
            accounts.set_password(conn, username, password, utcnow())
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"password of {username} changed")


@admin.command("users")
@click.pass_obj
def users(state: Any) -> None:
    """List the admin UI's users."""
    with _hub(state) as hub, hub.store.read() as conn:
        rows = accounts.list_users(conn)
    for row in rows:
        seen = row["last_sign_in_at"] or "never"
        state_text = " (disabled)" if row["disabled"] else ""
        click.echo(f"{row['username']:<24} {row['role']:<7} last sign-in {seen}{state_text}")


@admin.command("create-token")
@click.argument("name")
@click.option("--role", type=_ROLES, default=Role.VIEWER.value, show_default=True)
@click.pass_obj
def create_token(state: Any, name: str, role: str) -> None:
    """Create an API token; it is printed once (only its hash is stored)."""
    try:
        with _hub(state, migrate=True) as hub, hub.store.write() as conn:
            token = accounts.create_api_token(conn, name, role, "cli", utcnow())
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)


@admin.command("tokens")
@click.pass_obj
def tokens(state: Any) -> None:
    """List API tokens (never their values)."""
    with _hub(state) as hub, hub.store.read() as conn:
        rows = accounts.list_api_tokens(conn)
    for row in rows:
        revoked = f" revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else ""
        created = f"{row['created_at']:%Y-%m-%d}"
        click.echo(f"{row['id']:>4}  {row['name']:<24} {row['role']:<7} created {created}{revoked}")


@admin.command("revoke-token")
@click.argument("token_id", type=int)
@click.pass_obj
def revoke_token(state: Any, token_id: int) -> None:
    """Revoke an API token by its number."""
    with _hub(state) as hub, hub.store.write() as conn:
        if not accounts.revoke_api_token(conn, token_id, utcnow()):
            raise click.ClickException(f"no active token {token_id}")
    click.echo(f"token {token_id} revoked")
