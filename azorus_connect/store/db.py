"""Opening the database: SQLite (WAL, one writer at a time) or PostgreSQL, and migrating it.

Writes go through :meth:`Store.write` (on SQLite a ``BEGIN IMMEDIATE`` transaction, so a read
that decides a write cannot be overtaken); pages and reports use :meth:`Store.read`.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

__all__ = ["DEFAULT_DATABASE_URL", "Store", "database_url", "utcnow"]

DEFAULT_DATABASE_URL = "sqlite:///azorus.db"
_MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> dt.datetime:
    """Now, as the naive UTC the store keeps."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def database_url(explicit: str | None = None) -> str:
    """``explicit``, else ``AZORUS_DATABASE_URL``, else ``sqlite:///azorus.db``."""
    url = explicit or os.environ.get("AZORUS_DATABASE_URL") or DEFAULT_DATABASE_URL
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class _Checkpointer(threading.Thread):
    """Copies the SQLite write-ahead log back into the database file every ``interval`` seconds.

    SQLite would otherwise do all of it inside whichever commit crosses its threshold, adding the
    copy and an fsync to that request's latency; this leaves it only what arrived since the last
    round.  A PASSIVE checkpoint never blocks readers or writers.
    """

    def __init__(self, path: str, interval: float = 1.0) -> None:
        super().__init__(name="azorus-sqlite-checkpoint", daemon=True)
        self.path = path
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            while not self.stopped.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    continue  # busy or gone for a moment: the next round catches up
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopped.set()


def _sqlite_engine(url: str, **kw: Any) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Savepoint and statement journals in memory: a request's savepoint (group commit) would
        # otherwise copy every page it first touches to a temporary file (a 3x dearer insert).
        cur.execute("PRAGMA temp_store=MEMORY")
        # Checkpoints mostly run on a background thread (see _Checkpointer), not inside a commit.
        # Under a steady stream of writes those never catch the end of the log, so it would grow
        # without bound (hundreds of MB a minute of inbound traffic) and every page lookup would
        # search more of it; SQLite's own checkpoint after a commit past 1000 pages then finishes
        # the little left to copy and lets the log start over.
        cur.execute("PRAGMA wal_autocheckpoint=1000")
        cur.close()

    # SQLite takes one writer at a time.  Writers of this process queue on a lock instead of
    # polling the file lock (its busy handler sleeps up to 100 ms a try, which stretches tail
    # latency under concurrent posts); other processes still meet the file lock and busy_timeout.
    write_lock = threading.Lock()

    def _raw(conn: Connection, sql: str) -> None:
        # BEGIN and COMMIT run for every transaction: straight on the driver connection.
        try:
            conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            raise OperationalError(sql, None, exc) from exc

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("azorus_read"):
            _raw(conn, "BEGIN DEFERRED")
            return
        if not write_lock.acquire(timeout=30):
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
        conn.info["azorus_write_lock"] = True
        try:
            _raw(conn, "BEGIN IMMEDIATE")
        except BaseException:
            conn.info.pop("azorus_write_lock", None)
            write_lock.release()
            raise

    def _release(info: dict[Any, Any]) -> None:
        if info.pop("azorus_write_lock", False):
            write_lock.release()

    @event.listens_for(engine, "commit")
    def _on_commit(conn: Connection) -> None:
        _raw(conn, "COMMIT")  # commit now, then let the next writer in
        _release(conn.info)

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Connection) -> None:
        _release(conn.info)

    @event.listens_for(engine, "reset")
    def _on_reset(_dbapi_conn: Any, record: Any, _state: Any) -> None:
        _release(record.info)

    return engine


class Store:
    """The hub's database."""

    def __init__(self, url: str | None = None, *, pool: bool = True) -> None:
        self.url = database_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self._checkpointer: _Checkpointer | None = None
        if self.dialect == "sqlite":
            db = parsed.database or ""
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(self.url, **({} if pool else {"poolclass": NullPool}))
            if db and db != ":memory:":
                self._checkpointer = _Checkpointer(db)
                self._checkpointer.start()
        else:
            kw: dict[str, Any] = {"pool_pre_ping": True}
            if pool:
                kw.update(pool_size=10, max_overflow=20)
            else:
                kw["poolclass"] = NullPool
            self.engine = create_engine(self.url, **kw)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction that never blocks writers."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(azorus_read=True)
            with conn.begin():
                yield conn

    def migrate(self, revision: str = "head") -> None:
        """Create or upgrade the schema with Alembic."""
        from alembic import command

        with self.engine.begin() as conn:
            cfg = self.alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def alembic_config(self) -> Any:
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def is_migrated(self) -> bool:
        with self.engine.connect() as conn:
            return inspect(conn).has_table("alembic_version")

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer.join(timeout=10)  # its connection is closed before the files go
            self._checkpointer = None
        self.engine.dispose()
