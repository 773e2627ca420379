"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("connection", sa.String(length=60), nullable=True),
        sa.Column("request_id", sa.String(length=40), nullable=True),
        sa.Column("import_run_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log")),
    )
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_change_log_entity_record_id"), ["entity", "record_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_change_log_import_run_id"), ["import_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_change_log_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_change_log_request_id"), ["request_id"], unique=False)

    op.create_table(
        "connection_state",
        sa.Column("connection", sa.String(length=60), nullable=False),
        sa.Column("watermark", sa.Text(), nullable=True),
        sa.Column("last_pull_at", sa.DateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connection", name=op.f("pk_connection_state")),
    )
    op.create_table(
        "custom_field",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("list_name", sa.String(length=60), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_custom_field")),
    )
    op.create_table(
        "import_profile",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_import_profile")),
    )
    op.create_table(
        "import_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(length=100), nullable=True),
        sa.Column("file_name", sa.String(length=500), nullable=True),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_run")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection", sa.String(length=60), nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("operation", sa.String(length=10), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("changed", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("external_ids", sa.JSON(), nullable=True),
        sa.Column("source_connection", sa.String(length=60), nullable=True),
        sa.Column("request_id", sa.String(length=40), nullable=True),
        sa.Column("import_run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_connection_status_id"), ["connection", "status", "id"], unique=False
        )

    op.create_table(
        "person",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=40), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("middle_names", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("preferred_name", sa.String(length=200), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("gender", sa.String(length=40), nullable=True),
        sa.Column("nationality", sa.String(length=40), nullable=True),
        sa.Column("domicile", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=60), nullable=True),
        sa.Column("mobile", sa.String(length=60), nullable=True),
        sa.Column("address_line1", sa.String(length=200), nullable=True),
        sa.Column("address_line2", sa.String(length=200), nullable=True),
        sa.Column("address_line3", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=120), nullable=True),
        sa.Column("postcode", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=40), nullable=True),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
    )
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_person_last_name_first_name"), ["last_name", "first_name"], unique=False
        )

    op.create_table(
        "reference_list",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=60), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_reference_list")),
    )
    op.create_table(
        "request_log",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("connection", sa.String(length=60), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("body_truncated", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("response_type", sa.String(length=100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_log")),
    )
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_log_connection_received_at"), ["connection", "received_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_request_log_received_at"), ["received_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_request_log_status_code_received_at"), ["status_code", "received_at"], unique=False
        )

    op.create_table(
        "application",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("course", sa.String(length=60), nullable=True),
        sa.Column("route", sa.String(length=60), nullable=True),
        sa.Column("academic_year", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("decision", sa.String(length=40), nullable=True),
        sa.Column("response", sa.String(length=40), nullable=True),
        sa.Column("application_date", sa.Date(), nullable=True),
        sa.Column("decision_date", sa.Date(), nullable=True),
        sa.Column("response_date", sa.Date(), nullable=True),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_application_person_id_person"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application")),
        sa.UniqueConstraint("key", name=op.f("uq_application_key")),
    )
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_application_person_id"), ["person_id"], unique=False)

    op.create_table(
        "enquiry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("course", sa.String(length=60), nullable=True),
        sa.Column("entry_year", sa.String(length=20), nullable=True),
        sa.Column("source", sa.String(length=60), nullable=True),
        sa.Column("enquiry_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_enquiry_person_id_person"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enquiry")),
        sa.UniqueConstraint("key", name=op.f("uq_enquiry_key")),
    )
    with op.batch_alter_table("enquiry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enquiry_person_id"), ["person_id"], unique=False)

    op.create_table(
        "identifier",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("scheme", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_identifier_person_id_person"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identifier")),
        sa.UniqueConstraint("scheme", "value", name=op.f("uq_identifier_scheme_value")),
    )
    with op.batch_alter_table("identifier", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identifier_person_id"), ["person_id"], unique=False)

    op.create_table(
        "reference_value",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(length=60), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=True),
        sa.Column("short_label", sa.String(length=100), nullable=True),
        sa.Column("in_use", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=60), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_name"],
            ["reference_list.name"],
            name=op.f("fk_reference_value_list_name_reference_list"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_value")),
        sa.UniqueConstraint("list_name", "code", name=op.f("uq_reference_value_list_name_code")),
    )
    op.create_table(
        "request_key",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("scheme", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request_log.id"],
            name=op.f("fk_request_key_request_id_request_log"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "scheme", "value", name=op.f("pk_request_key")),
    )
    with op.batch_alter_table("request_key", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_key_scheme_value_request_id"),
            ["scheme", "value", "request_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_request_key_value"), ["value"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("request_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_key_value"))
        batch_op.drop_index(batch_op.f("ix_request_key_scheme_value_request_id"))

    op.drop_table("request_key")
    op.drop_table("reference_value")
    with op.batch_alter_table("identifier", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identifier_person_id"))

    op.drop_table("identifier")
    with op.batch_alter_table("enquiry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enquiry_person_id"))

    op.drop_table("enquiry")
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_application_person_id"))

    op.drop_table("application")
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_log_status_code_received_at"))
        batch_op.drop_index(batch_op.f("ix_request_log_received_at"))
        batch_op.drop_index(batch_op.f("ix_request_log_connection_received_at"))

    op.drop_table("request_log")
    op.drop_table("reference_list")
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_last_name_first_name"))

    op.drop_table("person")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_connection_status_id"))

    op.drop_table("outbox")
    op.drop_table("import_run")
    op.drop_table("import_profile")
    op.drop_table("custom_field")
    op.drop_table("connection_state")
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_log_request_id"))
        batch_op.drop_index(batch_op.f("ix_change_log_person_id"))
        batch_op.drop_index(batch_op.f("ix_change_log_import_run_id"))
        batch_op.drop_index(batch_op.f("ix_change_log_entity_record_id"))

    op.drop_table("change_log")
