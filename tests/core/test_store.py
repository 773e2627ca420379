from __future__ import annotations

from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, insert

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
