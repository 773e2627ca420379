"""A local stand-in for a SITS ``SIW_RWS`` REST service, with switches for its real failures.

It routes ``/urd/sits.urd/run/SIW_RWS/<SERVICE>[/<PARAM>/<VALUE>]...``, checks HTTP Basic, and
answers a create (POST/PUT) with 201 and a new zero-padded MST code inside the configured tag, as
Bristol's PERSONNEL service does.  A body carrying a known identity tag value (the hub's id) is
answered 200 with the MST code given before, so a re-sent message creates nothing twice; a body
that names its MST code updates that record (200).  Switches
add latency, answer the next N requests with a 5xx/429/400, report an error inside a 200 body
(``status`` -1 with a ``messagebuffer``), or send a malformed reply.  Every request is recorded.

Run it alone with ``python -m azorus_simulators.sits_rws --port 8099``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime as dt
import hmac
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

__all__ = ["RWS_PREFIX", "FakeSitsRws", "RecordedRequest", "Reply"]

RWS_PREFIX = "/urd/sits.urd/run/SIW_RWS/"


@dataclass(frozen=True)
class Reply:
    """A scripted answer that replaces the normal one (nothing is stored when it is used)."""

    status: int
    body: bytes = b""
    content_type: str = "text/xml"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class RecordedRequest:
    """One request as the fake service saw it, and what it answered."""

    method: str
    path: str
    service: str | None
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    reply: bytes = b""
    mst_code: str | None = None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class FakeSitsRws:
    """The fake service: ``start()`` it (or use ``with``), point the sender at ``url``."""

    def __init__(
        self,
        *,
        username: str = "STUTALK_AZORUS",
        password: str = "rws-secret",
        host: str = "127.0.0.1",
        port: int = 0,
        services: tuple[str, ...] = ("CRM_ESD_IN",),
        first_mst: int = 900001,
        mst_width: int = 10,
        mst_tag: str = "MasterStudentCode",
        identity_tag: str | None = "CrmId",
    ) -> None:
        self.username = username
        self.password = password
        self.services = set(services)
        self.mst_width = mst_width
        self.mst_tag = mst_tag
        self.identity_tag = identity_tag
        self.requests: list[RecordedRequest] = []
        #: What each created MST code was created from (body text), as SITS would hold it.
        self.records: dict[str, str] = {}
        self._next_mst = first_mst
        self._by_identity: dict[str, str] = {}
        self._replies: deque[Reply] = deque()
        self._latency = 0.0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The RWS root, e.g. ``http://127.0.0.1:PORT/urd/sits.urd/run/SIW_RWS/``."""
        return self.base_url + RWS_PREFIX

    def start(self) -> FakeSitsRws:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-sits-rws",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSitsRws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- switches --------------------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (a sender with a shorter timeout sees a timeout)."""
        with self._lock:
            self._latency = seconds

    def queue_replies(self, reply: Reply, count: int = 1) -> None:
        """Answer the next ``count`` requests with ``reply`` instead of processing them."""
        with self._lock:
            self._replies.extend([reply] * count)

    def fail_next(self, count: int = 1, status: int = 503, retry_after: int | None = None) -> None:
        """The next ``count`` requests answer ``status`` (503, 500, 429 with Retry-After, 400, ...)."""
        headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
        body = f"<error><status>{status}</status><message>simulated failure</message></error>".encode()
        self.queue_replies(Reply(status, body, headers=headers), count)

    def error_in_200_next(self, count: int = 1, message: str = "Error: STU_SURN is mandatory") -> None:
        """The next ``count`` requests answer 200 with an error reported inside the body."""
        body = f"<Response><status>-1</status><messagebuffer>{message}</messagebuffer></Response>".encode()
        self.queue_replies(Reply(200, body), count)

    def malformed_next(self, count: int = 1) -> None:
        """The next ``count`` requests answer 201 with a cut-off body that is not XML."""
        self.queue_replies(Reply(201, f"<Response><{self.mst_tag}>00009".encode()), count)

    def clear_switches(self) -> None:
        with self._lock:
            self._replies.clear()
            self._latency = 0.0

    # -- observation -----------------------------------------------------------------------------

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests were answered; the recorded requests."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests arrived within {timeout}s")
            return list(self.requests)

    # -- handling --------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "SITS-RWS-simulator/1.0"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: requests are recorded, not printed."""

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, reply, ctype, extra = fake._answer(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(reply)))
                for name, value in extra:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        return Handler

    def _authorised(self, headers: dict[str, str]) -> bool:
        scheme, _, encoded = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), self.username.encode()) & hmac.compare_digest(
            password.encode(), self.password.encode()
        )

    def _answer(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str, tuple[tuple[str, str], ...]]:
        path = urlsplit(raw_path).path
        service, params = _route(path)
        recorded = RecordedRequest(method, path, service, params, headers, body)
        with self._lock:
            latency = self._latency
            scripted = self._replies.popleft() if self._replies else None
        if latency and self._stopping.wait(latency):
            scripted = Reply(503, b"<error>shutting down</error>")
        if scripted is not None:
            status, reply, ctype, extra = (
                scripted.status,
                scripted.body,
                scripted.content_type,
                scripted.headers,
            )
        else:
            status, reply, ctype, extra = self._process(method, service, params, headers, body, recorded)
        recorded.status, recorded.reply = status, reply
        with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        return status, reply, ctype, extra

    def _process(
        self,
        method: str,
        service: str | None,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        recorded: RecordedRequest,
    ) -> tuple[int, bytes, str, tuple[tuple[str, str], ...]]:
        if service is None or service not in self.services:
            return 404, f"<error>no RWS service {service}</error>".encode(), "text/xml", ()
        if not self._authorised(headers):
            return (
                401,
                b"<error>authentication required</error>",
                "text/xml",
                (("WWW-Authenticate", 'Basic realm="SITS"'),),
            )
        if method == "GET":
            code = params.get("MST_CODE", "")
            with self._lock:
                stored = self.records.get(code)
            if stored is None:
                return 404, f"<error>no record {code}</error>".encode(), "text/xml", ()
            return 200, stored.encode("utf-8"), "text/xml", ()
        if method not in ("POST", "PUT"):
            return 405, b"<error>method not allowed</error>", "text/xml", ()
        text = body.decode("utf-8", "replace")
        if not re.search(r"<\w", text):
            return 400, b"<error>request body is not XML</error>", "text/xml", ()
        identity = _tag_value(text, self.identity_tag) if self.identity_tag else None
        given = _tag_value(text, self.mst_tag)  # an update of a master record SITS already has
        with self._lock:
            known = given or (self._by_identity.get(identity) if identity else None)
            if known is None:
                known, status = str(self._next_mst).zfill(self.mst_width), 201
                self._next_mst += 1
                if identity:
                    self._by_identity[identity] = known
            else:
                status = 200
            self.records[known] = text
        recorded.mst_code = known
        reply = f"<Response><status>1</status><{self.mst_tag}>{known}</{self.mst_tag}></Response>"
        return status, reply.encode(), "text/xml", ()


def _route(path: str) -> tuple[str | None, dict[str, str]]:
    """``.../SIW_RWS/SERVICE/P1/V1/P2/V2`` -> ``("SERVICE", {"P1": "V1", "P2": "V2"})``."""
    if not path.startswith(RWS_PREFIX):
        return None, {}
    parts = [unquote(p) for p in path[len(RWS_PREFIX) :].split("/") if p]
    if not parts:
        return None, {}
    return parts[0], dict(zip(parts[1::2], parts[2::2], strict=False))


def _tag_value(text: str, tag: str) -> str | None:
    match = re.search(rf"<{re.escape(tag)}>([^<]*)</{re.escape(tag)}>", text)
    if match is None:
        return None
    return match.group(1).strip() or None


def main(argv: list[str] | None = None, wait: Callable[[], None] | None = None) -> None:
    """Serve the fake RWS in the foreground until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m azorus_simulators.sits_rws", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--username", default="STUTALK_AZORUS")
    parser.add_argument("--password", default="rws-secret")
    parser.add_argument("--service", action="append", dest="services", help="service code (repeatable)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args(argv)
    fake = FakeSitsRws(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        services=tuple(args.services or ("CRM_ESD_IN",)),
    )
    fake.set_latency(args.latency)
    with fake:
        print(
            f"fake SIW_RWS listening on {fake.url} (services: {', '.join(sorted(fake.services))})", flush=True
        )
        with contextlib.suppress(KeyboardInterrupt):
            (wait or threading.Event().wait)()


if __name__ == "__main__":
    main()
