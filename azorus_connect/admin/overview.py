"""The hub at a glance: connection health, queue depth, recent traffic, the outbox and reference lists."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, case, func, select

from ..store.db import utcnow
from ..store.schema import outbox, person, reference_list, reference_value, request_log

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "OUTBOX_STATUSES",
    "dashboard",
    "list_values",
    "outbox_groups",
    "reference_lists",
]

#: Outbox filter values; "" means waiting or parked (what needs watching).
OUTBOX_STATUSES = ["", "pending", "parked", "skipped", "sent"]


def _depth(conn: Connection) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, status, count in conn.execute(
        select(outbox.c.connection, outbox.c.status, func.count())
        .where(outbox.c.status.in_(["pending", "parked"]))
        .group_by(outbox.c.connection, outbox.c.status)
    ):
        out.setdefault(name, {})[status] = int(count)
    return out


def _health(enabled: bool, on_failure: str, parked: int, ok: int, failed: int) -> str:
    if not enabled:
        return "off"
    if parked:
        return "held" if on_failure == "hold" else "warn"
    if failed and not ok:
        return "failed"
    if failed:
        return "warn"
    return "ok"


def dashboard(conn: Connection, config: Config, now: dt.datetime | None = None) -> dict[str, Any]:
    """What the dashboard shows: every connection's state, the last hour's traffic, recent failures."""
    now = now or utcnow()
    hour_ago = now - dt.timedelta(hours=1)
    depth = _depth(conn)
    recent = select(request_log.c.connection, request_log.c.status_code, request_log.c.received_at).where(
        request_log.c.received_at >= hour_ago
    )
    per_conn: dict[str, dict[str, int]] = {}
    by_status: dict[int, int] = {}
    for name, code, _at in conn.execute(recent):
        bucket = per_conn.setdefault(name, {"ok": 0, "failed": 0})
        bucket["failed" if code >= 400 else "ok"] += 1
        by_status[code] = by_status.get(code, 0) + 1
    # One index seek per connection (a GROUP BY would read the whole log).
    last_seen = {
        name: conn.execute(
            select(func.max(request_log.c.received_at)).where(request_log.c.connection == name)
        ).scalar()
        for name in config.connections
    }
    connections = []
    for name, c in config.connections.items():
        counts = depth.get(name, {})
        traffic = per_conn.get(name, {"ok": 0, "failed": 0})
        connections.append(
            {
                "name": name,
                "type": c.type,
                "enabled": c.enabled,
                "directions": {k.value: v.value for k, v in c.directions.items()},
                "pending": counts.get("pending", 0),
                "parked": counts.get("parked", 0),
                "health": _health(
                    c.enabled, c.on_failure, counts.get("parked", 0), traffic["ok"], traffic["failed"]
                ),
                "last_request_at": last_seen.get(name),
            }
        )
    failures = [
        dict(r._mapping)
        for r in conn.execute(
            select(
                request_log.c.id,
                request_log.c.received_at,
                request_log.c.connection,
                request_log.c.status_code,
                request_log.c.error,
            )
            .where(request_log.c.status_code >= 400)
            .order_by(request_log.c.received_at.desc())
            .limit(10)
        )
    ]
    totals = {
        "people": conn.execute(select(func.count()).select_from(person)).scalar_one(),
        "requests": conn.execute(select(func.count()).select_from(request_log)).scalar_one(),
        "pending": sum(d.get("pending", 0) for d in depth.values()),
        "parked": sum(d.get("parked", 0) for d in depth.values()),
    }
    return {
        "connections": connections,
        "requests_last_hour": sorted(by_status.items()),
        "recent_failures": failures,
        "totals": totals,
    }


def outbox_groups(
    conn: Connection, config: Config, connection: str | None, status: str | None, limit: int = 200
) -> list[dict[str, Any]]:
    """Messages per connection (waiting and parked unless ``status`` names one), oldest first."""
    q = select(
        outbox.c.id,
        outbox.c.connection,
        outbox.c.entity,
        outbox.c.record_id,
        outbox.c.person_id,
        outbox.c.operation,
        outbox.c.status,
        outbox.c.attempts,
        outbox.c.next_attempt_at,
        outbox.c.last_error,
        outbox.c.created_at.label("queued_at"),
        outbox.c.sent_at,
    )
    q = q.where(outbox.c.status == status) if status else q.where(outbox.c.status.in_(["pending", "parked"]))
    # Parked messages first: they are what someone has to act on.
    parked_first = case((outbox.c.status == "parked", 0), else_=1)
    depth = _depth(conn)
    names = [connection] if connection else sorted(set(config.connections) | set(depth))
    groups = []
    for name in names:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                q.where(outbox.c.connection == name).order_by(parked_first, outbox.c.id).limit(limit)
            )
        ]
        counts = depth.get(name, {})
        if rows or connection:
            groups.append(
                {
                    "connection": name,
                    "pending": counts.get("pending", 0),
                    "parked": counts.get("parked", 0),
                    "messages": rows,
                }
            )
    return groups


def reference_lists(conn: Connection) -> list[dict[str, Any]]:
    """Every reference list with its size and how many codes are in use."""
    counts = {
        name: (int(total), int(in_use or 0))
        for name, total, in_use in conn.execute(
            select(
                reference_value.c.list_name,
                func.count(),
                func.sum(case((reference_value.c.in_use.is_(True), 1), else_=0)),
            ).group_by(reference_value.c.list_name)
        )
    }
    out = []
    for row in conn.execute(select(reference_list).order_by(reference_list.c.name)):
        total, in_use = counts.get(row.name, (0, 0))
        out.append(
            {
                "name": row.name,
                "label": row.label or row.name,
                "source": row.source,
                "updated_at": row.updated_at,
                "codes": total,
                "in_use": in_use,
            }
        )
    return out


def list_values(conn: Connection, list_name: str) -> list[dict[str, Any]]:
    """The codes of one list, in code order."""
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(
                reference_value.c.code,
                reference_value.c.label,
                reference_value.c.short_label,
                reference_value.c.in_use,
                reference_value.c.source,
                reference_value.c.updated_at,
            )
            .where(reference_value.c.list_name == list_name)
            .order_by(reference_value.c.code)
        )
    ]
