"""16 StuTalk monitors posting the same new MST at once create exactly one person (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from azorus_simulators.stutalk import StuTalkSender, TotEntry
from sqlalchemy import func, select

from azorus_connect import Hub
from azorus_connect.store.schema import application, identifier, person

from .conftest import BASIC_PASSWORD, BASIC_USER, fixture


def test_sixteen_concurrent_first_posts_of_one_mst_create_one_person(
    sits_hub: Callable[..., Hub], live_hub: Callable[[Hub], str]
) -> None:
    hub = sits_hub()
    url = live_hub(hub) + "/inbound/sits"
    sender = StuTalkSender(url, username=BASIC_USER, password=BASIC_PASSWORD, timeout=60)
    payload = fixture("stu_cap_short_tags.xml")
    start = threading.Barrier(16)
    entries: list[TotEntry] = []
    lock = threading.Lock()

    def monitor(n: int) -> None:
        start.wait()
        entry = sender.send(payload, name=f"monitor-{n}")
        with lock:
            entries.append(entry)

    threads = [threading.Thread(target=monitor, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(entries) == 16
    statuses = sorted(e.http_status or 0 for e in entries)
    assert statuses == [200] * 15 + [201], [(e.http_status, e.response[:200]) for e in entries]
    with hub.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(person)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(application)).scalar_one() == 1
        owners = conn.execute(
            select(identifier.c.person_id).where(
                identifier.c.scheme == "mst", identifier.c.value == "0000123456"
            )
        ).all()
    assert len(owners) == 1
