"""Small local HTTP servers for tests: a receiver that records what arrives, in order."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordingReceiver", "recording_receiver"]


@dataclass
class RecordingReceiver:
    """Records every POST body in arrival order; can be told to fail, slow down or refuse."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    #: Status codes to answer, consumed one per request before answering 200.
    script: list[int] = field(default_factory=list)
    delay: float = 0.0
    #: Requests being handled right now, and the most ever handled at once (concurrency check).
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[Any]:
        with self.lock:
            return [r["body"] for r in self.received]


def _handler(rec: RecordingReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        #: Headers and body go out in separate writes: without this, Nagle plus delayed ACKs add
        #: ~40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with rec.lock:
                rec.in_flight += 1
                rec.max_in_flight = max(rec.max_in_flight, rec.in_flight)
                status = rec.script.pop(0) if rec.script else 200
            try:
                if rec.delay:
                    time.sleep(rec.delay)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                if status < 300:
                    with rec.lock:
                        rec.received.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                reply = json.dumps({"ok": status < 300}).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            finally:
                with rec.lock:
                    rec.in_flight -= 1

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def recording_receiver(delay: float = 0.0) -> Iterator[RecordingReceiver]:
    """Serve a :class:`RecordingReceiver` on a free local port for the duration of the block."""
    rec = RecordingReceiver(delay=delay)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
