"""The one HTTP session helper and the one retry policy table, shared by every connector.

Connectors talk HTTP through :func:`new_session` (tests point it at a local server by URL) and
turn each answer into a :class:`~azorus_connect.connector.SendOutcome` with
:func:`outcome_for_response` / :func:`outcome_for_exception`, so every connector retries alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from email.utils import parsedate_to_datetime

import requests

from . import __version__
from .connector import SendOutcome

__all__ = [
    "DEFAULT_TIMEOUT",
    "RETRY_POLICY",
    "new_session",
    "outcome_for_exception",
    "outcome_for_response",
    "retry_after_seconds",
]

#: (connect, read) seconds.
DEFAULT_TIMEOUT = (10.0, 30.0)

#: What to do with an HTTP status that is not a success: "retry" (transient) or "park" (permanent).
RETRY_POLICY: Mapping[int, str] = {
    408: "retry",  # request timeout
    425: "retry",  # too early
    429: "retry",  # rate limited: honour Retry-After
    500: "retry",
    502: "retry",
    503: "retry",
    504: "retry",
}


def new_session(*, verify: bool | str = True) -> requests.Session:
    """A session with our User-Agent; no automatic retries (the outbox retries, in order)."""
    session = requests.Session()
    session.headers["User-Agent"] = f"azorus-connect/{__version__}"
    session.verify = verify
    return session


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def outcome_for_response(
    message_id: int,
    response: requests.Response,
    *,
    success_codes: Collection[int] = (200, 201),
    external_ids: Mapping[str, str] | None = None,
) -> SendOutcome:
    """Success codes -> sent; the retry table -> retry (with Retry-After); anything else -> failed."""
    status = response.status_code
    if status in success_codes:
        return SendOutcome.sent(message_id, external_ids)
    snippet = (response.text or "")[:300].strip()
    reason = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if RETRY_POLICY.get(status) == "retry" or (status >= 500 and status not in (501, 505)):
        return SendOutcome.retry(message_id, reason, retry_after_seconds(response.headers.get("Retry-After")))
    return SendOutcome.failed(message_id, reason)


def outcome_for_exception(message_id: int, exc: BaseException) -> SendOutcome:
    """Timeouts and connection errors are transient; an invalid URL or bad TLS setup is not."""
    if isinstance(
        exc,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.SSLError,
        ),
    ):
        return SendOutcome.failed(message_id, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (requests.exceptions.Timeout, requests.exceptions.ConnectionError)):
        return SendOutcome.retry(message_id, f"{type(exc).__name__}: {exc}")
    return SendOutcome.retry(message_id, f"unexpected {type(exc).__name__}: {exc}")
