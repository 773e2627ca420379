"""The running hub: configuration, plugins, store, engine and outbox, wired together once."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from .config import Config, Connection, load_config
from .connector import CheckResult, SourceRecord
from .engine import ApplyOptions, Engine, RecordResult, Source
from .exceptions import AzorusError, EntityNotMapped, RecordError
from .model import CanonicalRecord
from .outbox import Outbox
from .plugins import PluginHost
from .store.db import Store, utcnow
from .store.schema import connection_state, custom_field, reference_list, reference_value
from .transform.mapping import Mapper

if TYPE_CHECKING:
    from .receive import InboundWriter

__all__ = ["Hub", "SyncResult"]

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    connection: str
    pages: int = 0
    records: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    watermark: str | None = None


class Hub:
    """Everything a web process, a worker or a CLI command needs."""

    def __init__(self, config: Config, plugins: PluginHost, store: Store) -> None:
        self.config = config
        self.plugins = plugins
        self.store = store
        self.engine = Engine(self)
        self.outbox = Outbox(self)
        self._mappers: dict[str, Mapper] = {}
        self._inbound: InboundWriter | None = None
        self._inbound_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        database_url: str | None = None,
        plugins: PluginHost | None = None,
        migrate: bool = False,
        base_dir: Path | None = None,
    ) -> Hub:
        """Load plugins and config, open the database (and migrate it when asked)."""
        host = plugins or PluginHost.load()
        cfg = load_config(config, host, base_dir=base_dir)
        hub = cls(cfg, host, Store(database_url))
        if migrate:
            hub.store.migrate()
            hub.sync_config_to_db()
        return hub

    @property
    def inbound(self) -> InboundWriter:
        """The thread that commits inbound requests (started on first use, stopped by :meth:`close`)."""
        with self._inbound_lock:
            if self._inbound is None:
                from .receive import InboundWriter

                self._inbound = InboundWriter(self)
            return self._inbound

    def close(self) -> None:
        with self._inbound_lock:
            writer, self._inbound = self._inbound, None
        if writer is not None:
            writer.close()
        self.store.dispose()

    # -- configuration mirrored into the database -----------------------------------------------

    def sync_config_to_db(self) -> None:
        """Mirror custom-field definitions and config-declared reference lists into the database."""
        now = utcnow()
        with self.store.write() as conn:
            conn.execute(delete(custom_field))
            if self.config.custom_fields:
                conn.execute(
                    insert(custom_field),
                    [
                        {
                            "name": n,
                            "entity": d.entity,
                            "label": d.label or n,
                            "type": d.type.value,
                            "list_name": d.list,
                        }
                        for n, d in self.config.custom_fields.items()
                    ],
                )
            for name, spec in self.config.lists.items():
                if (
                    conn.execute(select(reference_list.c.name).where(reference_list.c.name == name)).first()
                    is None
                ):
                    conn.execute(
                        insert(reference_list).values(
                            name=name, label=spec.label or name, source="config", updated_at=now
                        )
                    )
                elif spec.label:
                    conn.execute(
                        update(reference_list).where(reference_list.c.name == name).values(label=spec.label)
                    )
                have = {
                    c
                    for (c,) in conn.execute(
                        select(reference_value.c.code).where(reference_value.c.list_name == name)
                    )
                }
                new = [
                    {
                        "list_name": name,
                        "code": code,
                        "label": label,
                        "in_use": True,
                        "source": "config",
                        "updated_at": now,
                    }
                    for code, label in spec.values.items()
                    if code not in have
                ]
                if new:
                    conn.execute(insert(reference_value), new)

    # -- mapping ----------------------------------------------------------------------------------

    def mapper(self, connection: Connection) -> Mapper:
        mapper = self._mappers.get(connection.name)
        if mapper is None:
            mapper = Mapper(
                connection.record_mapping, self.plugins.value_transforms(), self.config.custom_fields
            )
            self._mappers[connection.name] = mapper
        return mapper

    def to_canonical(
        self,
        connection: Connection,
        items: Iterable[SourceRecord | CanonicalRecord],
        *,
        check_direction: bool = True,
    ) -> list[CanonicalRecord]:
        """Map source records, let plugins adjust them, and check the connection receives each kind."""
        mapper = self.mapper(connection)
        hook = self.plugins.hook.azorus_transform_record
        has_transform = bool(hook.get_hookimpls())
        out: list[CanonicalRecord] = []
        for item in items:
            if isinstance(item, SourceRecord):
                record = mapper.map(item)
                source_fields: dict[str, Any] = dict(item.fields)
            else:
                record, source_fields = item, {}
            if has_transform:
                for replacement in hook(connection=connection, record=record, source=source_fields):
                    if replacement is not None:
                        record = replacement
            if check_direction and not connection.receives(record.kind):
                raise EntityNotMapped(
                    f"connection {connection.name!r} does not receive {record.kind.value} records"
                    f" (directions.{record.kind.value} is {connection.direction(record.kind).value!r})"
                )
            out.append(record)
        return out

    def apply_options(self, connection: Connection, **overrides: Any) -> ApplyOptions:
        """The connection's matching and code-list policy, with ``overrides``."""
        base = ApplyOptions(match_on=tuple(connection.match_on), unknown_codes=connection.unknown_codes)
        return dataclasses.replace(base, **overrides)

    # -- pulling ------------------------------------------------------------------------------------

    def watermark(self, name: str) -> str | None:
        with self.store.read() as conn:
            row = conn.execute(
                select(connection_state.c.watermark).where(connection_state.c.connection == name)
            ).first()
        return row[0] if row else None

    def sync(self, name: str, *, max_pages: int = 10_000) -> SyncResult:
        """Pull changes since the stored watermark, page by page; each page and its watermark commit together.

        Records a page cannot use are skipped and counted, never blocking the rest.
        """
        connection = self.config.connection(name)
        result = SyncResult(name, watermark=self.watermark(name))
        for _ in range(max_pages):
            page = self.plugins.hook.azorus_pull(connection=connection, watermark=result.watermark)
            if page is None:
                raise EntityNotMapped(f"connection {name!r} ({connection.type}) cannot be pulled from")
            records: list[CanonicalRecord] = []
            for item in page.records:
                try:
                    records.extend(self.to_canonical(connection, [item]))
                except RecordError as exc:
                    result.rejected += 1
                    log.warning("sync %s: record skipped: %s", name, exc)
            new_mark = page.watermark if page.watermark is not None else result.watermark

            def save_mark(conn: Any, _results: list[RecordResult], mark: str | None = new_mark) -> None:
                self._save_watermark(conn, name, mark)

            applied = self.engine.apply(
                records,
                Source(connection=name),
                self.apply_options(connection, all_or_nothing=False),
                before_commit=save_mark,
            )
            result.pages += 1
            result.records += len(page.records)
            for r in applied:
                setattr(result, r.action, getattr(result, r.action) + 1)
            result.watermark = new_mark
            if not page.more:
                break
        return result

    def _save_watermark(self, conn: Any, name: str, mark: str | None) -> None:
        now = utcnow()
        res = conn.execute(
            update(connection_state)
            .where(connection_state.c.connection == name)
            .values(watermark=mark, last_pull_at=now, updated_at=now)
        )
        if not res.rowcount:
            conn.execute(
                insert(connection_state).values(
                    connection=name, watermark=mark, last_pull_at=now, updated_at=now
                )
            )

    # -- checking --------------------------------------------------------------------------------------

    def check(self, name: str) -> CheckResult:
        """Ask the connection's plugin whether its credentials and endpoint work."""
        connection = self.config.connection(name)
        try:
            result = self.plugins.hook.azorus_check_connection(connection=connection)
        except AzorusError as exc:
            return CheckResult(False, exc.message)
        except Exception as exc:
            return CheckResult(False, f"{type(exc).__name__}: {exc}")
        return result or CheckResult(False, f"no plugin checks connections of type {connection.type!r}")

    def apply(
        self, records: list[CanonicalRecord], source: Source, options: ApplyOptions | None = None
    ) -> list[RecordResult]:
        """Shorthand for ``hub.engine.apply``."""
        return self.engine.apply(records, source, options)
