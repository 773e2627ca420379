"""request_key: drop the (scheme, value, request_id) index

The request log is searched by identifier value (``ix_request_key_value``) and a request's keys
are read by request id (the primary key); nothing looks keys up by scheme first.  The index only
cost every inbound request a write at a random place in it.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_request_key_scheme_value_request_id"), table_name="request_key")


def downgrade() -> None:
    op.create_index(
        op.f("ix_request_key_scheme_value_request_id"),
        "request_key",
        ["scheme", "value", "request_id"],
        unique=False,
    )
