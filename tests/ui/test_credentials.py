"""Password hashes, tokens, CSRF tokens and the sign-in throttle, without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from azorus_connect.admin.credentials import (
    API_TOKEN_PREFIX,
    DUMMY_HASH,
    Role,
    ScryptCost,
    ThrottlePolicy,
    ThrottleState,
    csrf_token_for,
    csrf_token_matches,
    hash_password,
    hash_token,
    new_api_token,
    new_session_token,
    password_needs_rehash,
    verify_password,
)

CHEAP = ScryptCost(n=2**10, r=8, p=1)
T0 = dt.datetime(2026, 1, 5, 9, 0, 0)


def test_password_hash_verifies_only_the_right_password() -> None:
    stored = hash_password("correct horse battery", CHEAP)
    assert stored.startswith("scrypt$1024$8$1$")
    assert "correct horse" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("", stored)


def test_same_password_gets_a_different_salt() -> None:
    assert hash_password("same password here", CHEAP) != hash_password("same password here", CHEAP)


def test_short_password_refused() -> None:
    with pytest.raises(ValueError, match="at least 10"):
        hash_password("short", CHEAP)


def test_malformed_or_dummy_hash_never_verifies() -> None:
    for stored in ("", "plain", "scrypt$x$8$1$abc$def", "bcrypt$1$2$3$4$5"):
        assert not verify_password("whatever password", stored)
    assert not verify_password("whatever password", DUMMY_HASH)


def test_weaker_hash_needs_rehash() -> None:
    weak = hash_password("a long password", CHEAP)
    assert password_needs_rehash(weak)
    assert not password_needs_rehash(weak, CHEAP)
    assert password_needs_rehash("garbage")


def test_tokens_are_random_and_hashes_are_stable() -> None:
    assert new_session_token() != new_session_token()
    api = new_api_token()
    assert api.startswith(API_TOKEN_PREFIX) and len(api) > 40
    assert hash_token(api) == hash_token(api)
    assert hash_token(api) != hash_token(new_api_token())
    assert api not in hash_token(api)


def test_csrf_token_is_bound_to_its_seed() -> None:
    seed = new_session_token()
    token = csrf_token_for(seed)
    assert csrf_token_matches(seed, token)
    assert not csrf_token_matches(new_session_token(), token)
    assert not csrf_token_matches(seed, token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not csrf_token_matches(seed, None)
    assert not csrf_token_matches(None, token)
    assert not csrf_token_matches(seed, "")


def test_roles() -> None:
    assert Role.ADMIN.allows(Role.VIEWER) and Role.ADMIN.allows(Role.ADMIN)
    assert Role.VIEWER.allows(Role.VIEWER) and not Role.VIEWER.allows(Role.ADMIN)


def test_throttle_locks_after_max_failures_and_doubles() -> None:
    policy = ThrottlePolicy(max_failures=3, window=dt.timedelta(minutes=15), lockout=dt.timedelta(minutes=1))
    state = ThrottleState()
    for i in range(2):
        state = policy.record_failure(state, T0 + dt.timedelta(seconds=i))
        assert policy.retry_after(state, T0 + dt.timedelta(seconds=i)) == 0
    state = policy.record_failure(state, T0 + dt.timedelta(seconds=2))
    assert state.failures == 3
    assert policy.retry_after(state, T0 + dt.timedelta(seconds=2)) == 60
    after_lock = T0 + dt.timedelta(seconds=63)
    assert policy.retry_after(state, after_lock) == 0
    # A further failure inside the window locks for twice as long.
    state = policy.record_failure(state, after_lock)
    assert policy.retry_after(state, after_lock) == 120


def test_throttle_forgets_after_window_and_lock() -> None:
    policy = ThrottlePolicy(max_failures=3, window=dt.timedelta(minutes=15))
    state = policy.record_failure(ThrottleState(), T0)
    state = policy.record_failure(state, T0 + dt.timedelta(minutes=1))
    later = T0 + dt.timedelta(minutes=20)
    assert policy.is_stale(state, later)
    state = policy.record_failure(state, later)
    assert state.failures == 1 and state.window_start == later and state.locked_until is None


def test_throttle_lock_is_capped() -> None:
    policy = ThrottlePolicy(
        max_failures=1, lockout=dt.timedelta(minutes=1), max_lockout=dt.timedelta(minutes=5)
    )
    state = ThrottleState()
    now = T0
    for _ in range(30):
        state = policy.record_failure(state, now)
    assert policy.retry_after(state, now) == 300
