"""The database schema (SQLAlchemy Core).  Changes to it go through an Alembic migration.

Times are stored as naive UTC.  Field values in the change log are JSON text, so a value's type
survives an undo.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "application",
    "change_log",
    "connection_state",
    "custom_field",
    "enquiry",
    "identifier",
    "import_profile",
    "import_run",
    "metadata",
    "outbox",
    "person",
    "reference_list",
    "reference_value",
    "request_key",
    "request_log",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _stamps() -> list[Column[object]]:
    return [Column("created_at", DateTime, nullable=False), Column("updated_at", DateTime, nullable=False)]


person = Table(
    "person",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(40)),
    Column("first_name", String(200)),
    Column("middle_names", String(200)),
    Column("last_name", String(200)),
    Column("preferred_name", String(200)),
    Column("date_of_birth", Date),
    Column("gender", String(40)),
    Column("nationality", String(40)),
    Column("domicile", String(40)),
    Column("email", String(320)),
    Column("phone", String(60)),
    Column("mobile", String(60)),
    Column("address_line1", String(200)),
    Column("address_line2", String(200)),
    Column("address_line3", String(200)),
    Column("city", String(120)),
    Column("postcode", String(20)),
    Column("country", String(40)),
    Column("custom", JSON, nullable=False, default=dict),
    *_stamps(),
    Index(None, "last_name", "first_name"),
)

identifier = Table(
    "identifier",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", Integer, ForeignKey("person.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("scheme", String(40), nullable=False),
    Column("value", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("scheme", "value"),
)

enquiry = Table(
    "enquiry",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", Integer, ForeignKey("person.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("key", String(200), unique=True),
    Column("course", String(60)),
    Column("entry_year", String(20)),
    Column("source", String(60)),
    Column("enquiry_date", Date),
    Column("status", String(40)),
    Column("custom", JSON, nullable=False, default=dict),
    *_stamps(),
)

application = Table(
    "application",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", Integer, ForeignKey("person.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("course", String(60)),
    Column("route", String(60)),
    Column("academic_year", String(20)),
    Column("status", String(40)),
    Column("decision", String(40)),
    Column("response", String(40)),
    Column("application_date", Date),
    Column("decision_date", Date),
    Column("response_date", Date),
    Column("custom", JSON, nullable=False, default=dict),
    *_stamps(),
)

reference_list = Table(
    "reference_list",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("label", String(200)),
    Column("source", String(60)),
    Column("updated_at", DateTime, nullable=False),
)

reference_value = Table(
    "reference_value",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("list_name", String(60), ForeignKey("reference_list.name", ondelete="CASCADE"), nullable=False),
    Column("code", String(60), nullable=False),
    Column("label", String(300)),
    Column("short_label", String(100)),
    Column("in_use", Boolean, nullable=False, default=True),
    Column("source", String(60)),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("list_name", "code"),
)

custom_field = Table(
    "custom_field",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("entity", String(20), nullable=False),
    Column("label", String(200)),
    Column("type", String(20), nullable=False),
    Column("list_name", String(60)),
)

change_log = Table(
    "change_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entity", String(20), nullable=False),
    Column("record_id", Integer, nullable=False),
    Column("person_id", Integer),
    Column("action", String(10), nullable=False),
    #: The field ("first_name", "id:mst", "custom:x"); "*" for a creation carrying every value.
    Column("field", String(100), nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("connection", String(60)),
    Column("request_id", String(40)),
    Column("import_run_id", Integer),
    Column("changed_at", DateTime, nullable=False),
    Index(None, "entity", "record_id"),
    Index(None, "person_id"),
    Index(None, "import_run_id"),
    Index(None, "request_id"),
)

request_log = Table(
    "request_log",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("received_at", DateTime, nullable=False, index=True),
    Column("connection", String(60), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", String(500), nullable=False),
    Column("client_ip", String(64)),
    Column("headers", JSON, nullable=False),
    Column("content_type", String(200)),
    Column("body", LargeBinary),
    Column("body_truncated", Boolean, nullable=False, default=False),
    Column("status_code", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("response_body", Text),
    Column("response_type", String(100)),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
    Index(None, "connection", "received_at"),
    Index(None, "status_code", "received_at"),
)

#: Every identifier an inbound request touched (external and hub), so the log is searchable by any.
request_key = Table(
    "request_key",
    metadata,
    Column("request_id", String(40), ForeignKey("request_log.id", ondelete="CASCADE"), primary_key=True),
    Column("scheme", String(40), primary_key=True),
    Column("value", String(200), primary_key=True),
    # Searched by value (the request log's identifier filter) and read by request id (the key).
    Index(None, "value"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),  # queue order
    Column("connection", String(60), nullable=False),
    Column("entity", String(20), nullable=False),
    Column("record_id", Integer, nullable=False),
    Column("person_id", Integer),
    Column("operation", String(10), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("changed", JSON, nullable=False),
    #: pending -> sent | parked (permanent failure) | skipped (by policy or an admin)
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("last_error", Text),
    Column("external_ids", JSON),
    Column("source_connection", String(60)),
    Column("request_id", String(40)),
    Column("import_run_id", Integer),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Index(None, "connection", "status", "id"),
)

connection_state = Table(
    "connection_state",
    metadata,
    Column("connection", String(60), primary_key=True),
    Column("watermark", Text),
    Column("last_pull_at", DateTime),
    #: Which worker drains this connection's queue, and until when (renewed while it works).
    Column("lease_owner", String(100)),
    Column("lease_expires_at", DateTime),
    Column("updated_at", DateTime, nullable=False),
)

import_profile = Table(
    "import_profile",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("definition", JSON, nullable=False),
    *_stamps(),
)

import_run = Table(
    "import_run",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("profile", String(100)),
    Column("file_name", String(500)),
    Column("entity", String(20), nullable=False),
    #: running | finished | failed | interrupted | undone
    Column("status", String(20), nullable=False),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("options", JSON, nullable=False, default=dict),
    Column("total_rows", Integer),
    Column("rows_done", Integer, nullable=False, default=0),
    Column("created", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("invalid", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
)
