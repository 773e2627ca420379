"""``azorus-connect demo``: the SITS connector end to end, with nothing to configure.

It starts the hub on a fresh SQLite file next to a local SITS simulator (the fake ``SIW_RWS``
service) and plays a SITS monitor: reference tables, a student with an application, a re-send, an
enquirer.  Then an enquiry made outside SITS goes out through the outbox and comes back with its new
MST code.  It prints the request log and where to look; ``--exit`` stops after the scenario.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import click
from lxml import etree
from sqlalchemy import select

from azorus_connect.engine import ApplyOptions, Source
from azorus_connect.hub import Hub
from azorus_connect.model import Enquiry, Person
from azorus_connect.store.db import utcnow
from azorus_connect.store.schema import identifier, outbox, reference_value, request_log

SAMPLES = Path(__file__).parent / "samples"
STUTALK_USER = "STUTALK"
RWS_USER = "STUTALK_AZORUS"

CONFIG = """\
# The demo's configuration: one SITS connection, StuTalk in, enquiries out to a local SITS simulator.
[hub]
public_url = "{public_url}"

[lists.response]
label = "Applicant response"
values = {{ F = "Firm", I = "Insurance", D = "Declined" }}

[connections.sits]
type = "sits"
description = "Demo SITS (local simulator)"
match_on = ["mst", "sits_stu", "sits_esd"]
poll_interval = 1
retry_delays = [1, 2, 5]

[connections.sits.directions]
person = "receive"
application = "receive"
reference = "receive"
enquiry = "both"

[connections.sits.settings.inbound]
username = "{stutalk_user}"
password = {{ file = "stutalk-password" }}
pswd = {{ file = "stutalk-password" }}

[connections.sits.settings.outbound]
base_url = "{rws_url}"
username = "{rws_user}"
password = {{ file = "rws-password" }}
"""


def _secret_file(path: Path) -> str:
    """A new random secret in a file only its owner reads; the config refers to the file."""
    value = secrets.token_urlsafe(12)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def _port(wanted: int) -> int:
    """``wanted`` if it is free on 127.0.0.1, else any free port."""
    for candidate in (wanted, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise click.ClickException("no free local port")


@contextmanager
def _serving(hub: Hub, port: int) -> Iterator[str]:
    """The hub's web app on 127.0.0.1:``port`` in a thread; yields its base URL."""
    import uvicorn

    from azorus_connect.web.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(hub), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="demo-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise click.ClickException(f"the hub did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def _working(hub: Hub) -> Iterator[None]:
    from azorus_connect.worker import Worker

    worker = Worker(hub, pulls=False)
    thread = threading.Thread(target=worker.run, name="demo-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(timeout=10)


def _summary(response_body: str) -> list[str]:
    """One line per record of a StuTalk answer."""
    try:
        root = etree.fromstring(response_body.encode("utf-8"))
    except etree.XMLSyntaxError:
        return [response_body[:200]]
    lines = []
    for record in root.findall("record"):
        sits = f"{record.get('sitsEntity', '?')} {record.get('sitsKey', '')}".strip()
        if record.get("mst"):
            sits += f" (MST {record.get('mst')})"
        lines.append(f"{sits} -> {record.get('type')} #{record.get('hubId')} {record.get('action')}")
    lines += [f"warning: {w.text}" for w in root.findall("warning")]
    if root.findtext("error"):
        lines.append(f"error: {root.findtext('error')}")
    return lines


def _echo_tot(entry: Any, *, detail: bool = True) -> None:
    click.echo(f"   TOT {entry.number}  HTTP {entry.status_text}  {entry.name}")
    if detail:
        for line in _summary(entry.response)[:8]:
            click.echo(f"          {line}")


def _admin_user(hub: Hub) -> tuple[str, str] | None:
    """A demo admin account for the admin UI, when the hub has one."""
    try:
        from azorus_connect.admin import accounts

        password = secrets.token_urlsafe(9)
        with hub.store.write() as conn:
            accounts.create_user(conn, "demo", password, "admin", utcnow())
        return "demo", password
    except Exception:
        return None


def _wait_for(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return bool(condition())


def _scenario(hub: Hub, base_url: str, rws: Any, sender: Any, timeout: float) -> bool:
    """Steps 1-6; True when every expectation held."""
    ok = True
    click.echo("\n1. The SITS monitor posts reference tables (the Core Connector)")
    entry = sender.send(SAMPLES / "1-reference-tables.xml")
    _echo_tot(entry, detail=False)
    ok &= entry.http_status == 201
    with hub.store.read() as conn:
        lists: dict[str, list[str]] = {}
        for name, code, label in conn.execute(
            select(reference_value.c.list_name, reference_value.c.code, reference_value.c.label).order_by(
                reference_value.c.list_name, reference_value.c.code
            )
        ):
            lists.setdefault(name, []).append(f"{label} ({code})")
    for name, values in lists.items():
        click.echo(f"          list {name}: {', '.join(values)}")

    click.echo("\n2. A student with an application arrives (STU with a nested CAP, long tags)")
    entry = sender.send(SAMPLES / "2-student-with-application.xml")
    _echo_tot(entry)
    ok &= entry.http_status == 201

    click.echo("\n3. SITS sends the same message again: nothing changes")
    entry = sender.send(
        SAMPLES / "2-student-with-application.xml", name="2-student-with-application.xml (again)"
    )
    _echo_tot(entry)
    ok &= entry.http_status == 200

    click.echo("\n4. An enquirer arrives from SITS (ESD)")
    entry = sender.send(SAMPLES / "3-enquirer.xml")
    _echo_tot(entry)
    ok &= entry.http_status == 201

    click.echo("\n5. An enquiry comes in from the university's web form and goes out to SITS")
    email = "ada@example.org"
    results = hub.apply(
        [
            Person(
                identifiers={"email": email}, title="MS", first_name="Ada", last_name="Lovelace", email=email
            ),
            Enquiry(person={"identifiers": {"email": email}}, course="UBSCCS01", entry_year="2026/7"),
        ],
        Source(connection="web-form"),
        ApplyOptions(match_on=("email",)),
    )
    person_id = results[0].hub_id
    click.echo(f"   person #{person_id} and enquiry #{results[1].hub_id} created; queued for connection sits")

    def sent() -> bool:
        with hub.store.read() as conn:
            row = conn.execute(select(outbox.c.status).where(outbox.c.connection == "sits")).first()
        return row is not None and row[0] == "sent"

    if not _wait_for(sent, timeout):
        click.echo("   the enquiry was not sent in time (see `azorus-connect outbox`)")
        return False
    request = rws.requests[-1]
    click.echo(
        f"   worker -> {request.method} {request.path} -> HTTP {request.status}, MST {request.mst_code}"
    )
    with hub.store.read() as conn:
        ids = {
            scheme: value
            for scheme, value in conn.execute(
                select(identifier.c.scheme, identifier.c.value).where(identifier.c.person_id == person_id)
            )
        }
        pending = conn.execute(
            select(outbox.c.id).where(outbox.c.connection == "sits", outbox.c.status != "sent")
        ).all()
    click.echo(f"   person #{person_id} now has identifiers {ids}")
    click.echo(f"   messages queued back to SITS after the write-back: {len(pending)} (no echo)")
    ok &= ids.get("mst") == request.mst_code and not pending

    click.echo("\n6. The request log (newest last)")
    with hub.store.read() as conn:
        rows = conn.execute(select(request_log).order_by(request_log.c.received_at)).mappings().all()
    for row in rows:
        when = row["received_at"].strftime("%H:%M:%S")
        click.echo(
            f"   {when}  {row['status_code']}  {row['outcome']:<9}  {row['id']}  "
            f"{len(row['body'] or b'')} bytes  {row['duration_ms']:.0f} ms"
        )
    return bool(ok)


@click.command()
@click.option("--exit", "exit_after", is_flag=True, help="Stop after the scenario instead of serving on.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the demo's config and database (default: a new temporary folder).",
)
@click.option(
    "--port", type=int, default=8000, show_default=True, help="Port for the hub (any free one if taken)."
)
@click.option(
    "--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the round trip."
)
def demo(exit_after: bool, directory: Path | None, port: int, timeout: float) -> None:
    """Run the SITS demo: StuTalk in, an enquiry out to a local SITS simulator and back."""
    from azorus_simulators.sits_rws import FakeSitsRws
    from azorus_simulators.stutalk import StuTalkSender

    folder = directory or Path(tempfile.mkdtemp(prefix="azorus-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "azorus-demo.db"
    for stale in folder.glob("azorus-demo.db*"):
        stale.unlink()
    stutalk_password = _secret_file(folder / "stutalk-password")
    rws_password = _secret_file(folder / "rws-password")
    port = _port(port)
    with ExitStack() as stack:
        rws = stack.enter_context(
            FakeSitsRws(username=RWS_USER, password=rws_password, services=("CRM_ESD_IN",))
        )
        config = folder / "azorus.toml"
        config.write_text(
            CONFIG.format(
                public_url=f"http://127.0.0.1:{port}",
                stutalk_user=STUTALK_USER,
                rws_url=rws.url,
                rws_user=RWS_USER,
            ),
            encoding="utf-8",
        )
        hub = Hub.open(config, database_url=f"sqlite:///{database}", migrate=True)
        stack.callback(hub.close)
        base_url = stack.enter_context(_serving(hub, port))
        stack.enter_context(_working(hub))
        click.echo("azorus-connect demo: SITS:Vision over StuTalk, on a fresh database")
        click.echo(f"   folder     {folder}  (azorus.toml, azorus-demo.db)")
        click.echo(f"   hub        {base_url}   StuTalk EOR URL: {base_url}/inbound/sits")
        click.echo(f"   SITS RWS   {rws.url}  (local simulator)")
        sender = StuTalkSender(
            f"{base_url}/inbound/sits",
            username=STUTALK_USER,
            password=stutalk_password,
            pswd=stutalk_password,
        )
        stack.callback(sender.close)
        ok = _scenario(hub, base_url, rws, sender, timeout)
        account = _admin_user(hub)
        click.echo("\n7. Where to look")
        click.echo(
            f"   admin UI        {base_url}/admin"
            + (f"  (user {account[0]}, password {account[1]})" if account else "")
        )
        click.echo(f"   request log     {base_url}/admin/requests")
        click.echo(f"   API docs        {base_url}/docs")
        click.echo(
            f"   from a shell    azorus-connect --config {config} --database-url sqlite:///{database} log"
        )
        if not ok:
            raise click.ClickException("the demo scenario did not go as expected (see above)")
        if exit_after:
            click.echo("\nDemo finished.")
            return
        click.echo("\nServing until Ctrl-C. Post your own XET with the simulator:")
        click.echo(f"   export SITS_PASSWORD=$(cat {folder / 'stutalk-password'})")
        click.echo(
            f"   python -m azorus_simulators.stutalk {base_url}/inbound/sits FILE.xml "
            f"--username {STUTALK_USER} --password-env SITS_PASSWORD"
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("\nStopping.")
