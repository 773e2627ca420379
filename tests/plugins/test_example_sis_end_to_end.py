"""The example plugin end to end: pulled from its SIS, stored, changed elsewhere, sent back in a batch."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from azorus_connect.engine import Source
from azorus_connect.hub import Hub
from azorus_connect.model import Person
from azorus_connect.plugins import PluginHost
from azorus_connect.store.records import person_snapshots
from azorus_connect.store.schema import identifier, outbox
from azorus_connect.worker import Worker

if TYPE_CHECKING:
    from azorus_example_sis.server import ExampleSis

pytestmark = pytest.mark.usefixtures("example_sis_installed")


def _config(sis: ExampleSis) -> dict[str, Any]:
    return {
        "connections": {
            "sis": {
                "type": "example_sis",
                "match_on": ["example_sis", "mst"],
                "directions": {"person": "both"},
                "retry_delays": [0.0],
                "settings": {"base_url": sis.url, "api_key": {"env": "EXAMPLE_SIS_API_KEY"}, "page_size": 2},
            },
            "sits": {
                "type": "sits",
                "match_on": ["mst", "sits_stu"],
                "directions": {"person": "receive"},
                "settings": {"inbound": {"username": "STUTALK", "password": {"env": "E2E_STUTALK_PASSWORD"}}},
            },
        }
    }


STUTALK = """<?xml version="1.0" encoding="UTF-8"?>
<EXCHANGE><STU>
  <STU.SRS><STU_CODE>24000777</STU_CODE><STU_HAEM>Grace.Hopper@Navy.example</STU_HAEM>
    <MRE><MRE.MENSYS><MST><MST.SRS><MST_CODE>0000777</MST_CODE></MST.SRS></MST></MRE.MENSYS></MRE>
  </STU.SRS>
  <STU.SRS><STU_CODE>24000888</STU_CODE><STU_FNM1>Katherine</STU_FNM1><STU_SURN>Johnson</STU_SURN>
    <STU_DOB>26-AUG-2001</STU_DOB>
    <MRE><MRE.MENSYS><MST><MST.SRS><MST_CODE>0000888</MST_CODE></MST.SRS></MST></MRE.MENSYS></MRE>
  </STU.SRS>
</STU></EXCHANGE>"""


@pytest.fixture
def sis_hub(example_sis: ExampleSis, make_hub: Callable[..., Hub], monkeypatch: pytest.MonkeyPatch) -> Hub:
    monkeypatch.setenv("EXAMPLE_SIS_API_KEY", example_sis.state.api_key)
    monkeypatch.setenv("E2E_STUTALK_PASSWORD", "stutalk-e2e-password")
    example_sis.state.put_student({"given_name": "Grace", "family_name": "Hopper", "hub_ref": "0000777"})
    return make_hub(_config(example_sis), plugins=PluginHost.load())


def _people(hub: Hub) -> dict[str, dict[str, Any]]:
    """Everyone in the hub, by their example_sis id (or ``mst:...`` if they have none)."""
    with hub.store.read() as conn:
        pids = [p for (p,) in conn.execute(select(identifier.c.person_id).distinct())]
        people = person_snapshots(conn, pids)
    return {
        p["identifiers"].get("example_sis") or f"mst:{p['identifiers'].get('mst')}": p
        for p in people.values()
    }


def _queue(hub: Hub, connection: str) -> list[dict[str, Any]]:
    with hub.store.read() as conn:
        rows = conn.execute(select(outbox).where(outbox.c.connection == connection).order_by(outbox.c.id))
        return [dict(r._mapping) for r in rows]


def test_the_plugin_is_found_through_its_entry_point(
    example_sis_installed: importlib.metadata.Distribution,
) -> None:
    (entry,) = [e for e in example_sis_installed.entry_points if e.group == "azorus_connect"]
    assert (entry.name, entry.value) == ("example_sis", "azorus_example_sis")
    host = PluginHost.load()
    info = next(i for i in host.infos if i.name == "example_sis")
    assert info.version == example_sis_installed.version and info.error is None
    assert info.connector_types == ["example_sis"]
    assert {"azorus_pull", "azorus_send", "azorus_check_connection"} <= set(info.hooks)


def test_plugins_json_lists_it_with_its_hooks(tmp_path: Path) -> None:
    """``azorus-connect plugins --json``, run as a fresh process, finds the installed distribution."""
    done = subprocess.run(
        [sys.executable, "-m", "azorus_connect", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    listed = {p["name"]: p for p in json.loads(done.stdout)}
    example = listed["example_sis"]
    assert (
        example["module"] == "azorus_example_sis" and example["version"] == "0.1.0" and not example["error"]
    )
    assert example["connector_types"] == ["example_sis"]
    assert example["hooks"] == sorted(
        ["azorus_check_connection", "azorus_pull", "azorus_register_connector_types", "azorus_send"]
    )


def test_pull_store_change_elsewhere_send_back_in_one_batch(
    sis_hub: Hub, example_sis: ExampleSis, hub_client: Callable[[Hub], Any]
) -> None:
    hub, sis = sis_hub, example_sis

    pulled = hub.sync("sis")
    assert (pulled.pages, pulled.created, pulled.rejected) == (2, 3, 0)
    assert pulled.watermark == sis.state.cursor and hub.watermark("sis") == sis.state.cursor
    people = _people(hub)
    assert people["S000001"]["last_name"] == "Lovelace" and people["S000001"]["date_of_birth"] == "2006-12-10"
    assert people["S000003"]["identifiers"] == {"example_sis": "S000003", "mst": "0000777"}
    assert _queue(hub, "sis") == [], "what came from the SIS is not sent back to it"
    assert hub.sync("sis").records == 0, "nothing changed since the watermark"

    # SITS posts two students over StuTalk: Grace (matched by her MST code) and someone new.
    stutalk = hub_client(hub).post(
        "/inbound/sits",
        content=STUTALK.encode(),
        auth=("STUTALK", "stutalk-e2e-password"),
        headers={"Content-Type": "application/xml", "Accept": "application/json"},
    )
    assert stutalk.status_code == 201, stutalk.text
    assert sorted(r["action"] for r in stutalk.json()["records"]) == ["created", "updated"], stutalk.text
    assert [m["status"] for m in _queue(hub, "sis")] == ["pending", "pending"]
    assert _queue(hub, "sits") == [], "SITS only receives people"

    drained = Worker(hub, pulls=False).drain("sis")
    assert (drained.sent, drained.failed, drained.retried) == (2, 0, 0)
    assert len(sis.state.batches) == 1, "both messages went in one batch"
    (batch,) = sis.state.batches
    assert [item["student"].get("student_id") for item in batch] == ["S000003", None]
    assert sis.state.students["S000003"]["email"] == "grace.hopper@navy.example"
    assert sis.state.students["S000003"]["family_name"] == "Hopper", "what SITS did not send is kept"
    created = next(s for s in sis.state.students.values() if s.get("hub_ref") == "0000888")
    assert (created["given_name"], created["family_name"], created["birth_date"]) == (
        "Katherine",
        "Johnson",
        "2001-08-26",
    )
    katherine = _people(hub)[created["student_id"]]
    assert katherine["identifiers"] == {
        "example_sis": created["student_id"],
        "mst": "0000888",
        "sits_stu": "24000888",
    }
    assert [m["status"] for m in _queue(hub, "sis")] == ["sent", "sent"]

    again = hub.sync("sis")
    assert again.records == 2 and again.updated == 0, "the SIS's echo of our own change changes nothing"
    assert [m["status"] for m in _queue(hub, "sis")] == ["sent", "sent"], "and queues nothing"


def test_sis_failures_retry_in_order_and_a_refused_item_parks_with_its_reason(
    sis_hub: Hub, example_sis: ExampleSis
) -> None:
    hub, sis = sis_hub, example_sis
    hub.sync("sis")
    source = Source(connection="sits")
    options = hub.apply_options(hub.config.connection("sits"), match_on=("example_sis",))
    hub.apply([Person(identifiers={"example_sis": "S000001"}, phone="1")], source, options)
    hub.apply([Person(identifiers={"example_sis": "S000002"}, email="refuse@example.org")], source, options)
    hub.apply([Person(identifiers={"example_sis": "S000003"}, phone="3")], source, options)
    worker = Worker(hub, pulls=False)

    sis.state.fail_requests(503)
    first = worker.drain("sis")
    assert (first.sent, first.retried) == (0, 3), "a 503 for the batch is a retry for each message"
    assert sis.state.batches == [] and sis.state.students["S000001"].get("phone") is None

    sis.state.fail_requests(429, retry_after=0)
    assert worker.drain("sis").retried == 3
    assert [m["attempts"] for m in _queue(hub, "sis")] == [2, 2, 2]

    sis.state.reject_where("email", "refuse@example.org", "email domain not allowed")
    done = worker.drain("sis")
    assert (done.sent, done.failed, done.held) == (2, 1, True), "the SIS took the other two of the batch"
    queue = _queue(hub, "sis")
    assert [m["status"] for m in queue] == ["sent", "parked", "sent"]
    assert "email domain not allowed" in queue[1]["last_error"]
    assert [item["ref"] for item in sis.state.batches[-1]] == [str(m["id"]) for m in queue]

    hub.apply([Person(identifiers={"example_sis": "S000003"}, phone="4")], source, options)
    held = worker.drain("sis")
    assert (held.sent, held.held) == (0, True), "the queue holds behind the parked message"
    assert sis.state.students["S000003"]["phone"] == "3"

    sis.state.clear_faults()
    assert hub.outbox.retry(queue[1]["id"])
    resumed = worker.drain("sis")
    assert (resumed.sent, resumed.failed) == (2, 0)
    assert [
        item["student"].get("email") or item["student"].get("phone") for item in sis.state.batches[-1]
    ] == [
        "refuse@example.org",
        "4",
    ], "the retried message goes first, then the one queued behind it"
    assert sis.state.students["S000002"]["email"] == "refuse@example.org"
    assert sis.state.students["S000003"]["phone"] == "4"


def test_the_command_line_checks_and_syncs_a_third_party_connection(
    example_sis: ExampleSis, azorus_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "azorus.toml").write_text(
        f"""
[connections.sis]
type = "example_sis"
match_on = ["example_sis"]
directions = {{ person = "both" }}
settings = {{ base_url = "{example_sis.url}", api_key = {{ env = "EXAMPLE_SIS_API_KEY" }}, page_size = 1 }}
""",
        encoding="utf-8",
    )
    env = {**os.environ, "AZORUS_DATABASE_URL": azorus_database_url, "AZORUS_CONFIG": "azorus.toml"}

    def cli(*args: str, key: str = example_sis.state.api_key) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "azorus_connect", *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            env={**env, "EXAMPLE_SIS_API_KEY": key},
            timeout=60,
        )

    check = cli("connections", "check", "sis")
    assert check.returncode == 0 and check.stdout.startswith("sis: OK"), check.stdout + check.stderr
    refused = cli("connections", "check", "sis", key="not-the-key")
    assert refused.returncode == 1 and "refused the API key" in refused.stdout
    assert "not-the-key" not in refused.stdout + refused.stderr

    first = cli("sync", "sis")
    assert "2 records in 2 pages: 2 created" in first.stdout, first.stdout + first.stderr
    assert "0 records" in cli("sync", "sis").stdout
    example_sis.state.put_student({"phone": "+44 20 7946 0000"}, student_id="S000002")
    assert "1 records in 1 pages: 0 created, 1 updated" in cli("sync", "sis").stdout
