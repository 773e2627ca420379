from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import azorus_connect.admin.tables  # noqa: F401  (its tables join the shared metadata)
from azorus_connect.store.db import Store
from azorus_connect.store.schema import metadata


def test_migrations_build_the_schema_the_code_declares(azorus_database_url):
    """Every table, column and index the code declares is what the migrations made, and no more."""
    store = Store(azorus_database_url, pool=False)
    try:
        with store.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
        assert differences == []
    finally:
        store.dispose()


def test_the_request_key_index_migration_goes_down_and_up_again(azorus_database_url):
    store = Store(azorus_database_url, pool=False)

    def request_key_indexes() -> set[str]:
        with store.engine.connect() as conn:
            return {ix["name"] for ix in inspect(conn).get_indexes("request_key")}

    try:
        assert request_key_indexes() == {"ix_request_key_value"}
        with store.engine.begin() as conn:
            cfg = store.alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        assert request_key_indexes() == {"ix_request_key_value", "ix_request_key_scheme_value_request_id"}
        store.migrate()
        assert request_key_indexes() == {"ix_request_key_value"}
    finally:
        store.dispose()
