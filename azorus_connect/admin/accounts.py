"""Users, sessions, API tokens and the sign-in throttle, as stored in the admin tables.

Each function takes an open SQLAlchemy connection (inside a transaction the caller owns), so the
CLI, the web app and tests share one implementation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from .credentials import (
    DUMMY_HASH,
    Principal,
    Role,
    ThrottlePolicy,
    ThrottleState,
    hash_password,
    hash_token,
    new_api_token,
    new_session_token,
    password_needs_rehash,
    verify_password,
)
from .tables import admin_session, admin_user, api_token, sign_in_throttle

__all__ = [
    "IP_POLICY",
    "SESSION_IDLE",
    "SESSION_LIFETIME",
    "USER_POLICY",
    "AccountError",
    "SessionMatch",
    "SignIn",
    "TokenMatch",
    "create_api_token",
    "create_user",
    "end_session",
    "find_api_token",
    "find_session",
    "list_api_tokens",
    "list_users",
    "revoke_api_token",
    "set_password",
    "sign_in",
    "start_session",
    "touch_api_token",
    "touch_session",
]

SESSION_LIFETIME = dt.timedelta(hours=12)
#: A session unused this long ends (its use is recorded at most every few minutes).
SESSION_IDLE = dt.timedelta(hours=2)
_SESSION_TOUCH_EVERY = dt.timedelta(minutes=5)
#: A username is locked after 5 failures; one address after 20 (an office may share it).
USER_POLICY = ThrottlePolicy(max_failures=5)
IP_POLICY = ThrottlePolicy(max_failures=20)
_TOKEN_TOUCH_EVERY = dt.timedelta(minutes=1)
_THROTTLE_MEMORY = dt.timedelta(days=1)


class AccountError(ValueError):
    """A user or token operation that cannot be done (the message says why)."""


def _clean_username(username: str) -> str:
    name = username.strip()
    if not name or len(name) > 100 or any(ch.isspace() for ch in name):
        raise AccountError("a username is 1-100 characters without spaces")
    return name


def create_user(conn: Connection, username: str, password: str, role: Role | str, now: dt.datetime) -> int:
    """Add a user; refuses a taken username, an unknown role or a short password."""
    name = _clean_username(username)
    try:
        role = Role(role)
    except ValueError:
        raise AccountError(f"role must be one of: {', '.join(r.value for r in Role)}") from None
    if conn.execute(select(admin_user.c.id).where(admin_user.c.username == name)).first():
        raise AccountError(f"user {name!r} already exists")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    result = conn.execute(
        insert(admin_user).values(
            username=name,
            password_hash=hashed,
            role=role.value,
            disabled=False,
            created_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def set_password(conn: Connection, username: str, password: str, now: dt.datetime) -> None:
    """Change a user's password and end all their sessions."""
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    user_id = conn.execute(select(admin_user.c.id).where(admin_user.c.username == username)).scalar()
    if user_id is None:
        raise AccountError(f"no user named {username!r}")
    conn.execute(
        update(admin_user).where(admin_user.c.id == user_id).values(password_hash=hashed, updated_at=now)
    )
    conn.execute(delete(admin_session).where(admin_session.c.user_id == user_id))


def list_users(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(
        select(
            admin_user.c.username, admin_user.c.role, admin_user.c.disabled, admin_user.c.last_sign_in_at
        ).order_by(admin_user.c.username)
    )
    return [dict(row._mapping) for row in rows]


# -- sign-in and throttle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The answer to a sign-in attempt: a user id, or a refusal (with seconds to wait when throttled)."""

    user_id: int | None
    retry_after: float = 0.0

    @property
    def ok(self) -> bool:
        return self.user_id is not None


def _throttle_state(conn: Connection, key: str) -> ThrottleState:
    row = conn.execute(select(sign_in_throttle).where(sign_in_throttle.c.key == key)).first()
    if row is None:
        return ThrottleState()
    return ThrottleState(row.failures, row.window_start, row.locked_until)


def _save_throttle(conn: Connection, key: str, state: ThrottleState, now: dt.datetime) -> None:
    values = {
        "failures": state.failures,
        "window_start": state.window_start,
        "locked_until": state.locked_until,
        "updated_at": now,
    }
    if (
        conn.execute(update(sign_in_throttle).where(sign_in_throttle.c.key == key).values(**values)).rowcount
        == 0
    ):
        conn.execute(insert(sign_in_throttle).values(key=key, **values))


def sign_in(
    conn: Connection, username: str, password: str, client_ip: str | None, now: dt.datetime
) -> SignIn:
    """Check a username and password, counting failures per user and per client address."""
    keys = [(f"user:{username.strip().lower()[:150]}", USER_POLICY)]
    if client_ip:
        keys.append((f"ip:{client_ip[:150]}", IP_POLICY))
    states = {key: _throttle_state(conn, key) for key, _ in keys}
    wait = max(policy.retry_after(states[key], now) for key, policy in keys)
    if wait > 0:
        return SignIn(None, wait)
    row = conn.execute(
        select(admin_user.c.id, admin_user.c.password_hash, admin_user.c.disabled).where(
            admin_user.c.username == username.strip()
        )
    ).first()
    # Verify even for an unknown user so the answer takes as long either way.
    matches = verify_password(password, row.password_hash if row else DUMMY_HASH)
    if row is None or not matches or row.disabled:
        for key, policy in keys:
            _save_throttle(conn, key, policy.record_failure(states[key], now), now)
        # Forget counts nobody has touched for a day (longer than any window or lockout).
        conn.execute(delete(sign_in_throttle).where(sign_in_throttle.c.updated_at < now - _THROTTLE_MEMORY))
        return SignIn(None)
    conn.execute(delete(sign_in_throttle).where(sign_in_throttle.c.key == keys[0][0]))
    user_values: dict[str, object] = {"last_sign_in_at": now}
    if password_needs_rehash(row.password_hash):
        user_values["password_hash"] = hash_password(password)
    conn.execute(update(admin_user).where(admin_user.c.id == row.id).values(**user_values))
    return SignIn(int(row.id))


# -- sessions -------------------------------------------------------------------------------------


def start_session(conn: Connection, user_id: int, now: dt.datetime) -> str:
    """Open a session for ``user_id``; returns the token for the cookie (only its hash is kept)."""
    token = new_session_token()
    conn.execute(
        insert(admin_session).values(
            token_hash=hash_token(token),
            user_id=user_id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
            last_seen_at=now,
        )
    )
    conn.execute(delete(admin_session).where(admin_session.c.expires_at < now))
    return token


@dataclass(frozen=True)
class SessionMatch:
    """A live session; ``stale`` asks the caller to record that it is still in use."""

    principal: Principal
    stale: bool


def find_session(conn: Connection, token: str, now: dt.datetime) -> SessionMatch | None:
    """The user a session cookie belongs to; None when unknown, expired, idle too long or disabled."""
    row = conn.execute(
        select(
            admin_user.c.username,
            admin_user.c.role,
            admin_user.c.disabled,
            admin_session.c.expires_at,
            admin_session.c.last_seen_at,
        )
        .join(admin_user, admin_user.c.id == admin_session.c.user_id)
        .where(admin_session.c.token_hash == hash_token(token))
    ).first()
    if row is None or row.disabled or row.expires_at <= now or now - row.last_seen_at > SESSION_IDLE:
        return None
    stale = now - row.last_seen_at > _SESSION_TOUCH_EVERY
    return SessionMatch(Principal(row.username, Role(row.role), "session"), stale)


def touch_session(conn: Connection, token: str, now: dt.datetime) -> None:
    """Record that a session is in use (at most every few minutes), keeping it from going idle."""
    conn.execute(
        update(admin_session).where(admin_session.c.token_hash == hash_token(token)).values(last_seen_at=now)
    )


def end_session(conn: Connection, token: str) -> None:
    conn.execute(delete(admin_session).where(admin_session.c.token_hash == hash_token(token)))


# -- API tokens -----------------------------------------------------------------------------------


def create_api_token(
    conn: Connection, name: str, role: Role | str, created_by: str | None, now: dt.datetime
) -> str:
    """Create an API token; the returned value is shown once and stored only as its hash."""
    name = name.strip()
    if not name or len(name) > 100:
        raise AccountError("a token needs a name of 1-100 characters")
    try:
        role = Role(role)
    except ValueError:
        raise AccountError(f"role must be one of: {', '.join(r.value for r in Role)}") from None
    token = new_api_token()
    conn.execute(
        insert(api_token).values(
            name=name, token_hash=hash_token(token), role=role.value, created_by=created_by, created_at=now
        )
    )
    return token


@dataclass(frozen=True)
class TokenMatch:
    """An active API token found by its value; ``stale`` asks the caller to record its use."""

    token_id: int
    principal: Principal
    stale: bool


def find_api_token(conn: Connection, token: str, now: dt.datetime) -> TokenMatch | None:
    """The API client a bearer token belongs to, or None when unknown or revoked."""
    row = conn.execute(
        select(api_token.c.id, api_token.c.name, api_token.c.role, api_token.c.last_used_at).where(
            api_token.c.token_hash == hash_token(token), api_token.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    stale = row.last_used_at is None or now - row.last_used_at > _TOKEN_TOUCH_EVERY
    return TokenMatch(int(row.id), Principal(f"token:{row.name}", Role(row.role), "token"), stale)


def touch_api_token(conn: Connection, token_id: int, now: dt.datetime) -> None:
    """Record that a token was used (at most about once a minute, to spare the database)."""
    conn.execute(update(api_token).where(api_token.c.id == token_id).values(last_used_at=now))


def list_api_tokens(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(
        select(
            api_token.c.id,
            api_token.c.name,
            api_token.c.role,
            api_token.c.created_by,
            api_token.c.created_at,
            api_token.c.last_used_at,
            api_token.c.revoked_at,
        ).order_by(api_token.c.id)
    )
    return [dict(row._mapping) for row in rows]


def revoke_api_token(conn: Connection, token_id: int, now: dt.datetime) -> bool:
    """Revoke a token by id; False when there is no such active token."""
    result = conn.execute(
        update(api_token)
        .where(api_token.c.id == token_id, api_token.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)
