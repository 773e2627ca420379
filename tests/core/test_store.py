from __future__ import annotations

import threading

from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, insert, select

from azorus_connect.store.db import Store


def test_sqlite_write_ahead_log_stays_bounded_under_a_steady_stream_of_writes(tmp_path):
    """Thousands of commits in a row, with no pause for the background checkpoint to catch up:
    the log is still checkpointed and started over, so it never holds much more than 1000 pages."""
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}")
    blobs = Table("blobs", MetaData(), Column("id", Integer, primary_key=True), Column("data", LargeBinary))
    try:
        with store.write() as conn:
            blobs.create(conn)
        for n in range(3000):  # about 3 pages a commit: ~36 MB of log if it were never restarted
            with store.write() as conn:
                conn.execute(insert(blobs).values(id=n, data=bytes(8000)))
        wal = tmp_path / "hub.db-wal"
        assert wal.stat().st_size < 8_000_000
    finally:
        store.dispose()


def test_two_stores_on_one_file_take_turns_at_writing(tmp_path):
    """Stores of different processes (here: two in one) write in turn: the second waits for the
    first's transaction instead of failing, and both writes land."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    first, second = Store(url), Store(url)
    names = Table("names", MetaData(), Column("id", Integer, primary_key=True), Column("data", LargeBinary))
    try:
        with first.write() as conn:
            names.create(conn)
        done = threading.Event()

        def write_second() -> None:
            with second.write() as conn:
                conn.execute(insert(names).values(id=2, data=b"second"))
            done.set()

        with first.write() as conn:
            conn.execute(insert(names).values(id=1, data=b"first"))
            writer = threading.Thread(target=write_second)
            writer.start()
            assert not done.wait(timeout=0.2)  # it cannot write while this transaction is open
        writer.join(timeout=30)
        assert done.is_set()
        with first.read() as conn:
            assert conn.execute(select(names.c.id).order_by(names.c.id)).scalars().all() == [1, 2]
    finally:
        first.dispose()
        second.dispose()
