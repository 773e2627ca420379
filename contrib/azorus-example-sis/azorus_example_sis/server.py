"""A local server that plays Example SIS, the fictional student system the example plugin talks to.

Its JSON REST API, behind an ``X-Api-Key`` header:

- ``GET /api/ping``: ``{"ok": true, "system": "Example SIS", "version": ...}``.
- ``GET /api/students?since=CURSOR&limit=N``: the students changed after ``CURSOR`` (an opaque,
  monotonically increasing change cursor; omitted: from the start), oldest change first, as
  ``{"students": [...], "next": CURSOR, "more": bool}``.
- ``POST /api/students/batch``: ``{"items": [{"ref": ..., "student": {...}}, ...]}`` upserts up to
  ``MAX_BATCH`` students at once (``student_id`` present: update, absent: create) and answers one
  result per item: ``{"ref", "status": 201|200|400|404, "student_id", "error"}``.

Switches inject the failures a real system has: whole requests answered 503 or 429 with
``Retry-After`` (:meth:`SisState.fail_requests`), one item refused with 400
(:meth:`SisState.reject_where`). They are also reachable over HTTP at ``POST /_control/faults`` so a
server started with ``python -m azorus_example_sis.server`` can be driven from outside.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import json
import os
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["MAX_BATCH", "STUDENT_FIELDS", "ExampleSis", "SisState", "format_cursor", "parse_cursor"]

VERSION = "3.2"
MAX_BATCH = 100
MAX_PAGE = 500
MAX_BODY = 2_000_000
#: Fields a client may write; ``student_id`` and ``changed_at`` are the SIS's own.
STUDENT_FIELDS = ("given_name", "family_name", "birth_date", "email", "phone", "nationality", "hub_ref")
_CURSOR = re.compile(r"^c[0-9]{12}$")
_NATIONALITY = re.compile(r"^[A-Z]{2}$")


def format_cursor(seq: int) -> str:
    """The cursor naming change number ``seq`` (clients treat it as opaque text)."""
    return f"c{seq:012d}"


def parse_cursor(cursor: str) -> int:
    """The change number inside a cursor; ``ValueError`` if it is not one of ours."""
    if not _CURSOR.match(cursor):
        raise ValueError(f"not a cursor this system issued: {cursor!r}")
    return int(cursor[1:])


@dataclass
class _Fault:
    status: int
    retry_after: float | None
    path_prefix: str


@dataclass
class SisState:
    """The students, the change counter, the injected faults and what clients sent (thread-safe)."""

    api_key: str
    students: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Every batch body's items, in arrival order: tests assert batching and order with it.
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    #: ``(method, path, status)`` of every API request answered.
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    _seq: int = 0
    _next_id: int = 1
    _faults: deque[_Fault] = field(default_factory=deque)
    _rejects: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- switches -------------------------------------------------------------------------------
    def fail_requests(
        self,
        status: int = 503,
        count: int = 1,
        *,
        retry_after: float | None = None,
        path_prefix: str = "/api/",
    ) -> None:
        """Answer the next ``count`` API requests under ``path_prefix`` with ``status`` (and Retry-After)."""
        with self._lock:
            self._faults.extend(_Fault(status, retry_after, path_prefix) for _ in range(count))

    def reject_where(self, field_name: str, value: str, reason: str = "rejected by validation rule") -> None:
        """Refuse (400) every batch item whose ``field_name`` equals ``value``, until :meth:`clear_faults`."""
        with self._lock:
            self._rejects.append((field_name, value, reason))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rejects.clear()

    # -- data -----------------------------------------------------------------------------------
    def put_student(self, data: dict[str, Any], student_id: str | None = None) -> dict[str, Any]:
        """Create or change a student as a user of the SIS would; returns the stored record."""
        with self._lock:
            problem = _invalid(data, creating=student_id is None or student_id not in self.students)
            if problem:
                raise ValueError(problem)
            return self._write(student_id, data)

    @property
    def cursor(self) -> str:
        """The cursor of the latest change."""
        with self._lock:
            return format_cursor(self._seq)

    def _write(self, student_id: str | None, data: dict[str, Any]) -> dict[str, Any]:
        if student_id is None:
            student_id = f"S{self._next_id:06d}"
            self._next_id += 1
        record = self.students.setdefault(student_id, {"student_id": student_id})
        for name in STUDENT_FIELDS:
            if name in data:
                record[name] = data[name]
        self._seq += 1
        record["changed_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        record["_seq"] = self._seq
        return _public(record)

    def changes_since(self, since: int, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
        with self._lock:
            changed = sorted(
                (s for s in self.students.values() if s["_seq"] > since), key=lambda s: s["_seq"]
            )
            page = changed[:limit]
            last = page[-1]["_seq"] if page else max(since, 0)
            return [_public(s) for s in page], last, len(changed) > limit

    def upsert_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            self.batches.append(items)
            return [self._upsert_item(item) for item in items]

    def _upsert_item(self, item: dict[str, Any]) -> dict[str, Any]:
        ref = item.get("ref")
        student = item.get("student")
        if not isinstance(student, dict):
            return {"ref": ref, "status": 400, "error": "item has no 'student' object"}
        student_id = student.get("student_id")
        if student_id is not None and student_id not in self.students:
            return {"ref": ref, "status": 404, "error": f"no student {student_id}"}
        for name, value, reason in self._rejects:
            if str(student.get(name)) == value:
                return {"ref": ref, "status": 400, "error": reason}
        problem = _invalid(student, creating=student_id is None)
        if problem:
            return {"ref": ref, "status": 400, "error": problem}
        stored = self._write(student_id, student)
        return {"ref": ref, "status": 201 if student_id is None else 200, "student_id": stored["student_id"]}

    def take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            if self._faults and path.startswith(self._faults[0].path_prefix):
                return self._faults.popleft()
            return None


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _invalid(student: dict[str, Any], *, creating: bool) -> str | None:
    """Why the SIS refuses ``student``, or None."""
    unknown = set(student) - set(STUDENT_FIELDS) - {"student_id"}
    if unknown:
        return f"unknown field(s): {', '.join(sorted(unknown))}"
    for name in STUDENT_FIELDS:
        if student.get(name) is not None and not isinstance(student[name], str):
            return f"{name} must be a string"
    if creating and not student.get("family_name"):
        return "family_name is required"
    if "family_name" in student and not student["family_name"]:
        return "family_name cannot be blank"
    if student.get("birth_date"):
        try:
            dt.date.fromisoformat(student["birth_date"])
        except ValueError:
            return f"birth_date {student['birth_date']!r} is not an ISO date (YYYY-MM-DD)"
    if student.get("email") and "@" not in student["email"]:
        return f"email {student['email']!r} is not an address"
    if student.get("nationality") and not _NATIONALITY.match(student["nationality"]):
        return f"nationality {student['nationality']!r} is not a two-letter country code"
    return None


class _Handler(BaseHTTPRequestHandler):
    server: _SisHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read ``state.requests``
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        state = self.server.state
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True  # the unread body would poison a kept-alive connection
            self._reply(method, url.path, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": str(exc)})
            return
        if url.path == "/_control/faults" and method == "POST":
            self._control(body)
            return
        if not url.path.startswith("/api/"):
            self._reply(method, url.path, HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        given = self.headers.get("X-Api-Key", "")
        if not hmac.compare_digest(given.encode(), state.api_key.encode()):
            self._reply(method, url.path, HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong X-Api-Key"})
            return
        fault = state.take_fault(url.path)
        if fault is not None:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            self._reply(method, url.path, fault.status, {"error": "injected failure"}, headers)
            return
        route = (method, url.path)
        if route == ("GET", "/api/ping"):
            self._reply(
                method, url.path, HTTPStatus.OK, {"ok": True, "system": "Example SIS", "version": VERSION}
            )
        elif route == ("GET", "/api/students"):
            self._students(parse_qs(url.query))
        elif route == ("POST", "/api/students/batch"):
            self._batch(body)
        else:
            self._reply(method, url.path, HTTPStatus.NOT_FOUND, {"error": f"no route {method} {url.path}"})

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError(f"body over {MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    def _students(self, query: dict[str, list[str]]) -> None:
        try:
            since = parse_cursor(query["since"][0]) if query.get("since") else 0
            limit = int(query.get("limit", ["100"])[0])
            if not 1 <= limit <= MAX_PAGE:
                raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        except ValueError as exc:
            self._reply("GET", "/api/students", HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        students, last, more = self.server.state.changes_since(since, limit)
        payload = {"students": students, "next": format_cursor(last), "more": more}
        self._reply("GET", "/api/students", HTTPStatus.OK, payload)

    def _batch(self, body: bytes) -> None:
        path = "/api/students/batch"
        try:
            data = json.loads(body)
            items = data["items"]
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._reply(
                "POST", path, HTTPStatus.BAD_REQUEST, {"error": 'body must be {"items": [{...}, ...]}'}
            )
            return
        if len(items) > MAX_BATCH:
            error = {"error": f"at most {MAX_BATCH} items per batch, got {len(items)}"}
            self._reply("POST", path, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, error)
            return
        self._reply("POST", path, HTTPStatus.OK, {"results": self.server.state.upsert_batch(items)})

    def _control(self, body: bytes) -> None:
        """Set switches: ``{"fail": {status, count, retry_after}, "reject": {field, value}, "clear": 1}``."""
        state = self.server.state
        try:
            data = json.loads(body or b"{}")
            if data.get("clear"):
                state.clear_faults()
            if "fail" in data:
                fail = data["fail"]
                state.fail_requests(
                    int(fail.get("status", 503)),
                    int(fail.get("count", 1)),
                    retry_after=fail.get("retry_after"),
                )
            if "reject" in data:
                rej = data["reject"]
                state.reject_where(str(rej["field"]), str(rej["value"]), str(rej.get("reason", "rejected")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._reply(
                "POST", "/_control/faults", HTTPStatus.BAD_REQUEST, {"error": f"bad control body: {exc}"}
            )
            return
        self._reply("POST", "/_control/faults", HTTPStatus.OK, {"ok": True})

    def _reply(
        self, method: str, path: str, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        if path.startswith("/api/"):
            with self.server.state._lock:
                self.server.state.requests.append((method, path, int(status)))


class _SisHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SisState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class ExampleSis:
    """Example SIS running in a background thread: ``with ExampleSis("key") as sis: sis.url``."""

    def __init__(self, api_key: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = SisState(api_key=api_key)
        self._server = _SisHTTPServer((host, port), self.state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="example-sis", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ExampleSis:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ExampleSis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m azorus_example_sis.server --port 8765 [--seed 20]`` (API key from EXAMPLE_SIS_API_KEY)."""
    parser = argparse.ArgumentParser(description="Run a local Example SIS.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=0, help="create this many sample students")
    args = parser.parse_args(argv)
    api_key = os.environ.get("EXAMPLE_SIS_API_KEY")
    if not api_key:
        parser.error("set EXAMPLE_SIS_API_KEY to the API key clients must send")
    sis = ExampleSis(api_key, args.host, args.port)
    for n in range(1, args.seed + 1):
        sis.state.put_student(
            {
                "given_name": f"Student{n}",
                "family_name": "Example",
                "email": f"student{n}@example.ac.uk",
                "birth_date": "2006-01-01",
            }
        )
    print(f"Example SIS listening on {sis.url} ({args.seed} students)", flush=True)
    try:
        sis._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sis._server.server_close()


if __name__ == "__main__":
    main()
