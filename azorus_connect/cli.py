"""The ``azorus-connect`` command line.  Plugins add commands through ``azorus_register_commands``."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from . import __version__
from .admin.commands import admin as admin_commands
from .exceptions import AzorusError, ConfigError
from .hub import Hub
from .plugins import PluginHost
from .scaffold import plugin_group
from .store.schema import outbox, request_log

__all__ = ["cli", "main"]

STARTER_CONFIG = """\
# azorus-connect configuration. Secrets are given by reference only:
#   password = { env = "SITS_PASSWORD" }   or   password = { file = "secrets/sits.txt" }

[hub]
public_url = "http://127.0.0.1:8000"
unknown_codes = "lenient"          # or "strict": reject records with codes not in their list

# [custom_fields.ucas_points]
# type = "number"
# label = "UCAS tariff points"

# [connections.sits]
# type = "sits"
# match_on = ["mst", "sits_stu"]
# directions = { person = "receive", application = "receive", enquiry = "both", reference = "receive" }
"""


class _State:
    """What the group's options name; the hub is opened on first use."""

    def __init__(self, config: str | None, database_url: str | None) -> None:
        self.config = config
        self.database_url = database_url
        self._hub: Hub | None = None
        self.plugins: PluginHost | None = None

    def hub(self, *, migrate: bool = False) -> Hub:
        if self._hub is None:
            self._hub = Hub.open(
                self.config, database_url=self.database_url, plugins=self.plugins, migrate=migrate
            )
        return self._hub


def _fail(exc: AzorusError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    if exc.detail:
        click.echo(f"  {exc.detail}", err=True)
    raise SystemExit(2)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AzorusError as exc:
            _fail(exc)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="azorus-connect")
@click.option("--config", "config", envvar="AZORUS_CONFIG", help="Config file (default ./azorus.toml).")
@click.option(
    "--database-url", envvar="AZORUS_DATABASE_URL", help="Database URL (default sqlite:///azorus.db)."
)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def cli(ctx: click.Context, config: str | None, database_url: str | None, verbose: bool) -> None:
    """azorus-connect: keep a university's CRM data in step with SITS, Salesforce, Dynamics and CSV files."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose else logging.WARNING)
    state = _State(config, database_url)
    state.plugins = _PLUGINS
    ctx.obj = state


@cli.command()
@click.option(
    "--write-config/--no-write-config", default=True, help="Write a starter azorus.toml if none exists."
)
@click.pass_obj
def init(state: _State, write_config: bool) -> None:
    """Create or migrate the database (and a starter config file)."""
    if write_config and state.config is None and not Path("azorus.toml").exists():
        Path("azorus.toml").write_text(STARTER_CONFIG, encoding="utf-8")
        click.echo("wrote azorus.toml")
    hub = state.hub(migrate=True)
    click.echo(f"database ready: {hub.store.url.split('@')[-1]}")


def _start_worker(hub: Hub) -> tuple[Any, threading.Thread]:
    from .worker import Worker

    worker = Worker(hub)
    thread = threading.Thread(target=worker.run, name="azorus-worker", daemon=True)
    thread.start()
    return worker, thread


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Web processes.")
@click.option(
    "--no-worker", is_flag=True, help="Serve the web app only; run `azorus-connect worker` elsewhere."
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM).")
@click.pass_obj
def serve(
    state: _State,
    host: str,
    port: int,
    workers: int,
    no_worker: bool,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Serve the web app (inbound, API, admin UI) and run the outbox worker."""
    import uvicorn

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    hub = state.hub(migrate=True)
    worker = None
    if not no_worker:
        worker, _ = _start_worker(hub)
    scheme = "https" if tls_cert else "http"
    click.echo(
        f"azorus-connect {__version__} serving {scheme}://{host}:{port}"
        " (admin UI at /admin, API docs at /docs)"
    )
    if workers > 1:
        if state.config:
            os.environ["AZORUS_CONFIG"] = str(Path(state.config).resolve())
        os.environ["AZORUS_DATABASE_URL"] = hub.store.url
        uvicorn.run(
            "azorus_connect.web.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            timeout_graceful_shutdown=10,
        )
    else:
        from .web.app import create_app

        uvicorn.run(
            create_app(hub),
            host=host,
            port=port,
            log_level="warning",
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            timeout_graceful_shutdown=10,
        )
    if worker is not None:
        worker.stop()


@cli.command()
@click.option("--connection", "connections", multiple=True, help="Only these connections (repeatable).")
@click.option("--once", is_flag=True, help="Drain what is due once, then exit.")
@click.option(
    "--lease-seconds",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="SQLite: how long a dead worker's hold on a connection lasts before another worker takes over.",
)
@click.pass_obj
def worker(state: _State, connections: tuple[str, ...], once: bool, lease_seconds: float) -> None:
    """Run the outbox worker (and scheduled pulls) alone."""
    from .worker import Worker

    hub = state.hub()
    w = Worker(hub, connections=connections or None, lease_seconds=lease_seconds)
    if once:
        for name, res in w.run_once().items():
            click.echo(
                f"{name}: sent {res.sent}, retried {res.retried}, failed {res.failed}"
                + (" (held)" if res.held else "")
                + (" (busy elsewhere)" if res.busy else "")
            )
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: w.stop())
    click.echo(f"worker {w.owner} running; Ctrl-C to stop")
    w.run()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def plugins(state: _State, as_json: bool) -> None:
    """List plugins: name, version, hooks implemented, connector types."""
    host = state.plugins or PluginHost.load()
    infos = [i for i in host.infos if not i.builtin]
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    for info in infos:
        status = f"FAILED: {info.error}" if info.error else ", ".join(info.hooks)
        click.echo(
            f"{info.name} {info.version or ''}  types: {', '.join(info.connector_types) or '-'}\n  {status}"
        )


@cli.group(invoke_without_command=True)
@click.pass_context
def connections(ctx: click.Context) -> None:
    """List connections, or check one: `connections check NAME`."""
    if ctx.invoked_subcommand is None:
        hub = ctx.obj.hub()
        types = hub.plugins.connector_types()
        for c in hub.config.connections.values():
            dirs = ", ".join(f"{k.value}={v.value}" for k, v in c.directions.items()) or "no directions"
            caps = ",".join(sorted(types[c.type].capabilities))
            click.echo(f"{c.name}  type={c.type} ({caps})  {dirs}{'' if c.enabled else '  [disabled]'}")


@connections.command("check")
@click.argument("name")
@click.pass_obj
def connections_check(state: _State, name: str) -> None:
    """Check a connection's credentials and reachability (exit 1 if it fails)."""
    result = state.hub().check(name)
    click.echo(f"{name}: {'OK' if result.ok else 'FAILED'} - {result.detail}")
    if not result.ok:
        raise SystemExit(1)


@cli.command()
@click.argument("connection")
@click.pass_obj
def sync(state: _State, connection: str) -> None:
    """Pull changes from CONNECTION since its stored watermark."""
    res = state.hub().sync(connection)
    click.echo(
        f"{connection}: {res.records} records in {res.pages} pages: {res.created} created, "
        f"{res.updated} updated, {res.unchanged} unchanged, {res.rejected} rejected; "
        f"watermark {res.watermark}"
    )


@cli.command("log")
@click.option("--connection")
@click.option("--identifier", help="Any identifier: MST code, STU code, email, hub id.")
@click.option("--status", help="A status code, 4xx/5xx, or 'failed'.")
@click.option("--since", help="From this time (ISO, UTC).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def log_cmd(
    state: _State,
    connection: str | None,
    identifier: str | None,
    status: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show the request log, newest first (the same filters as the admin UI's)."""
    from .admin.request_log import FilterError, RequestFilters, requests_query

    hub = state.hub()
    try:
        filters = RequestFilters.parse(
            connection=connection, status=status, since=since, identifier=identifier
        )
    except FilterError as exc:
        raise click.UsageError(str(exc)) from None
    q = requests_query(filters).order_by(request_log.c.received_at.desc()).limit(limit)
    with hub.store.read() as conn:
        rows = conn.execute(q).mappings().all()
    if as_json:
        click.echo(json.dumps([{**r, "received_at": r["received_at"].isoformat()} for r in rows], indent=2))
        return
    for r in rows:
        click.echo(
            f"{r['received_at']:%Y-%m-%d %H:%M:%S}  {r['id']}  {r['connection']:<12} {r['status_code']} "
            f"{r['outcome']:<9} {r['duration_ms']:.0f} ms  {r['error'] or ''}"
        )


@cli.group("outbox", invoke_without_command=True)
@click.option("--status", default="parked", show_default=True, help="pending, parked, sent or skipped.")
@click.pass_context
def outbox_cmd(ctx: click.Context, status: str) -> None:
    """List outbox messages; `outbox retry ID` / `outbox skip ID` act on a parked one."""
    if ctx.invoked_subcommand is None:
        hub = ctx.obj.hub()
        with hub.store.read() as conn:
            rows = conn.execute(
                select(outbox).where(outbox.c.status == status).order_by(outbox.c.id).limit(200)
            )
            for r in rows.mappings():
                click.echo(
                    f"{r['id']}  {r['connection']:<12} {r['entity']:<11} record {r['record_id']}  "
                    f"attempts {r['attempts']}  {r['last_error'] or ''}"
                )


@outbox_cmd.command("retry")
@click.argument("message_id", type=int)
@click.pass_obj
def outbox_retry(state: _State, message_id: int) -> None:
    """Put a parked or skipped message back in its place in the queue."""
    if not state.hub().outbox.retry(message_id):
        raise click.ClickException(f"message {message_id} is not parked or skipped")
    click.echo(f"message {message_id} will be retried")


@outbox_cmd.command("skip")
@click.argument("message_id", type=int)
@click.pass_obj
def outbox_skip(state: _State, message_id: int) -> None:
    """Give up on a parked or pending message so the queue moves on."""
    if not state.hub().outbox.skip(message_id):
        raise click.ClickException(f"message {message_id} is not parked or pending")
    click.echo(f"message {message_id} skipped")


cli.add_command(admin_commands)
cli.add_command(plugin_group)

_PLUGINS: PluginHost | None = None


def _register_plugin_commands() -> None:
    global _PLUGINS
    try:
        _PLUGINS = PluginHost.load()
    except AzorusError as exc:
        click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(2) from None
    _PLUGINS.call_each("azorus_register_commands", cli=cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``azorus-connect`` script and ``python -m azorus_connect``."""
    _register_plugin_commands()
    try:
        cli.main(args=argv, prog_name="azorus-connect")
    except ConfigError as exc:
        _fail(exc)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
