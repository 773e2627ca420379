"""The Example SIS REST API as Python calls, with its failures turned into the hub's error tree.

It talks through the hub's one session helper and retry table (:mod:`azorus_connect.http`), so
it retries exactly like the bundled connectors.  The API key is added per request and never
appears in an error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from azorus_connect.exceptions import ExternalUnavailable, PermanentExternalError, RateLimited
from azorus_connect.http import RETRY_POLICY, new_session, retry_after_seconds

__all__ = ["BatchResult", "SisClient", "StudentPage"]


@dataclass
class StudentPage:
    """One page of ``GET /api/students``."""

    students: list[dict[str, Any]]
    next_cursor: str
    more: bool


@dataclass
class BatchResult:
    """The SIS's answer for one item of a batch upsert."""

    ref: str
    status: int
    student_id: str | None
    error: str | None


class SisClient:
    """Calls one Example SIS at ``base_url`` with ``api_key``."""

    def __init__(self, base_url: str, api_key: str, timeout: float, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.session = session or new_session()

    def __repr__(self) -> str:
        return f"SisClient({self.base_url!r})"

    def ping(self) -> dict[str, Any]:
        """``GET /api/ping``: proves the key is accepted and the system answers."""
        return self._call("GET", "/api/ping").json()  # type: ignore[no-any-return]

    def students_since(self, cursor: str | None, limit: int) -> StudentPage:
        """The students changed after ``cursor`` (None: from the start), oldest change first."""
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["since"] = cursor
        data = self._call("GET", "/api/students", params=params).json()
        try:
            return StudentPage(list(data["students"]), str(data["next"]), bool(data["more"]))
        except (KeyError, TypeError) as exc:
            raise PermanentExternalError(
                "Example SIS sent a page without students/next/more", detail=str(exc)
            ) from None

    def upsert_batch(self, items: list[dict[str, Any]]) -> dict[str, BatchResult]:
        """``POST /api/students/batch``; the per-item results, by ``ref``."""
        data = self._call("POST", "/api/students/batch", json={"items": items}).json()
        results: dict[str, BatchResult] = {}
        for row in data.get("results", []):
            ref = str(row.get("ref"))
            results[ref] = BatchResult(
                ref, int(row.get("status", 0)), row.get("student_id"), row.get("error")
            )
        return results

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.base_url + path
        try:
            response = self.session.request(
                method, url, headers={"X-Api-Key": self._api_key}, timeout=self.timeout, **kwargs
            )
        except requests.Timeout:
            raise ExternalUnavailable(
                f"Example SIS did not answer {method} {path} within {self.timeout:g} s"
            ) from None
        except requests.ConnectionError as exc:
            raise ExternalUnavailable(
                f"cannot reach Example SIS at {self.base_url}", detail=type(exc).__name__
            ) from None
        status = response.status_code
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if status == 429:
            raise RateLimited(f"Example SIS rate limit on {method} {path}", retry_after=retry_after)
        if RETRY_POLICY.get(status) == "retry" or status >= 500:
            raise ExternalUnavailable(
                f"Example SIS answered {status} to {method} {path}", retry_after=retry_after
            )
        if status == 401:
            raise PermanentExternalError("Example SIS refused the API key (401)")
        if status >= 400:
            raise PermanentExternalError(
                f"Example SIS refused {method} {path} ({status}): {_error(response)}"
            )
        return response


def _error(response: requests.Response) -> str:
    try:
        return str(response.json().get("error") or response.text[:200])
    except ValueError:
        return response.text[:200]
