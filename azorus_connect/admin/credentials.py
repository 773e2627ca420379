"""Credentials without storage: password hashes, opaque tokens, CSRF tokens and the sign-in throttle.

Everything here is pure (no database, no web framework) so the rules can be tested on their own;
:mod:`azorus_connect.admin.accounts` stores what these functions produce.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "API_TOKEN_PREFIX",
    "DUMMY_HASH",
    "MIN_PASSWORD_LENGTH",
    "Principal",
    "Role",
    "ScryptCost",
    "ThrottlePolicy",
    "ThrottleState",
    "csrf_token_for",
    "csrf_token_matches",
    "hash_password",
    "hash_token",
    "new_api_token",
    "new_session_token",
    "password_needs_rehash",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 10
#: API tokens start with this so a leaked one is recognisable (and secret scanners can find it).
API_TOKEN_PREFIX = "azc_"  # noqa: S105 - a prefix, not a secret
_CSRF_CONTEXT = b"azorus-connect csrf v1"


class Role(StrEnum):
    """What a signed-in user may do: a viewer reads, an admin also changes things."""

    VIEWER = "viewer"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return self is Role.ADMIN or needed is Role.VIEWER


@dataclass(frozen=True)
class Principal:
    """Who is asking: a signed-in user (``via="session"``) or an API client (``via="token"``)."""

    username: str
    role: Role
    via: Literal["session", "token"] = "session"

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class ScryptCost:
    """scrypt work factors; stored inside each hash so they can be raised later."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    @property
    def maxmem(self) -> int:
        return 2 * 128 * self.r * self.n * self.p + 1024 * 1024


DEFAULT_COST = ScryptCost()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, cost: ScryptCost = DEFAULT_COST) -> str:
    """A salted scrypt hash in the form ``scrypt$n$r$p$salt$digest``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=cost.n, r=cost.r, p=cost.p, maxmem=cost.maxmem, dklen=32
    )
    return f"scrypt${cost.n}${cost.r}${cost.p}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[ScryptCost, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        cost = ScryptCost(int(parts[1]), int(parts[2]), int(parts[3]))
        return cost, _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the ``stored`` hash (constant-time compare)."""
    parsed = _parse(stored)
    if parsed is None:
        return False
    cost, salt, expected = parsed
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.maxmem,
        dklen=len(expected),
    )
    return hmac.compare_digest(digest, expected)


def password_needs_rehash(stored: str, cost: ScryptCost = DEFAULT_COST) -> bool:
    """True when ``stored`` was made with weaker work factors than ``cost``."""
    parsed = _parse(stored)
    return parsed is None or parsed[0] != cost


#: Checked when the user does not exist, so the answer takes as long either way.
DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + _b64(bytes(32))


def new_session_token() -> str:
    """A random session token for the cookie; only its hash is stored."""
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    """A random API token (``azc_...``); shown once, stored as its hash."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of a high-entropy token: enough to store it, since it cannot be guessed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token_for(seed: str) -> str:
    """The CSRF token bound to ``seed`` (the session token, or the pre-sign-in cookie)."""
    return hmac.new(seed.encode("utf-8"), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_token_matches(seed: str | None, submitted: str | None) -> bool:
    """True when ``submitted`` is the CSRF token for ``seed``."""
    if not seed or not submitted:
        return False
    return hmac.compare_digest(csrf_token_for(seed), submitted)


@dataclass(frozen=True)
class ThrottleState:
    """Failed sign-ins counted for one key (a username or a client address)."""

    failures: int = 0
    window_start: dt.datetime | None = None
    locked_until: dt.datetime | None = None


@dataclass(frozen=True)
class ThrottlePolicy:
    """After ``max_failures`` failures within ``window``, refuse for ``lockout`` (doubling each time)."""

    max_failures: int = 5
    window: dt.timedelta = dt.timedelta(minutes=15)
    lockout: dt.timedelta = dt.timedelta(minutes=1)
    max_lockout: dt.timedelta = dt.timedelta(hours=1)

    def retry_after(self, state: ThrottleState, now: dt.datetime) -> float:
        """Seconds until a sign-in may be tried again (0: allowed now)."""
        if state.locked_until is None or state.locked_until <= now:
            return 0.0
        return (state.locked_until - now).total_seconds()

    def record_failure(self, state: ThrottleState, now: dt.datetime) -> ThrottleState:
        """The state after one more failed attempt at ``now``."""
        if self.is_stale(state, now):
            failures, start, locked = 1, now, None
        else:
            failures, start, locked = state.failures + 1, state.window_start or now, state.locked_until
        if failures >= self.max_failures:
            steps = failures - self.max_failures
            lock = min(self.lockout * (2 ** min(steps, 16)), self.max_lockout)
            locked = now + lock
        return ThrottleState(failures, start, locked)

    def is_stale(self, state: ThrottleState, now: dt.datetime) -> bool:
        """True when the state no longer matters and can be forgotten."""
        window_over = state.window_start is None or now - state.window_start > self.window
        lock_over = state.locked_until is None or state.locked_until <= now
        return window_over and lock_over
