"""The admin tables: users, their sign-in sessions, API tokens and the sign-in throttle.

Only hashes of session and API tokens are stored; a leaked table cannot be replayed.
Created by migration ``0003``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Table

from ..store.schema import metadata

__all__ = ["admin_session", "admin_user", "api_token", "sign_in_throttle"]

admin_user = Table(
    "admin_user",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(10), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("last_sign_in_at", DateTime),
)

admin_session = Table(
    "admin_session",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("admin_user.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
    Column("last_seen_at", DateTime, nullable=False),
)

api_token = Table(
    "api_token",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(10), nullable=False),
    Column("created_by", String(100)),
    Column("created_at", DateTime, nullable=False),
    Column("last_used_at", DateTime),
    Column("revoked_at", DateTime),
)

#: Failed sign-ins per key ("user:NAME" and "ip:ADDRESS"), shared by every web process.
sign_in_throttle = Table(
    "sign_in_throttle",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", DateTime),
    Column("locked_until", DateTime),
    Column("updated_at", DateTime, nullable=False),
    Index(None, "updated_at"),
)
