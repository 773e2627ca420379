"""A StuTalk sender that plays a SITS monitor: it posts XET payloads the way an EOR is configured
to, and records each outcome as a TOT (Transfer-Out-Tray) row.

Like the EOR, it sends the password in a ``PSWD`` header and/or HTTP Basic, adds free-text extra
headers, posts ``text/xml`` (or a form with the XML in a named field), and counts a delivery as
successful only when the status is on its list of HTTP success codes.  ``rerun_failed`` re-sends the
failed rows, as re-running the TOT stage with ``repeat`` does.

Run it alone: ``python -m azorus_simulators.stutalk URL FILE... --username U --password-env VAR``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import requests

__all__ = ["StuTalkSender", "TotEntry"]


@dataclass
class TotEntry:
    """One message in the Transfer-Out-Tray: what was sent and the B2B status that came back."""

    number: int
    name: str
    payload: bytes
    http_status: int | None = None
    success: bool = False
    response: str = ""
    #: Transport failure (refused, timeout), when no status came back.
    error: str | None = None
    attempts: int = 0
    duration_ms: float = 0.0
    sent_at: dt.datetime | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status_text(self) -> str:
        """What SITS shows for the row: the HTTP status, or the transport error."""
        return str(self.http_status) if self.http_status is not None else f"ERR {self.error}"


class StuTalkSender:
    """Posts XET payloads to one URL with one EOR's settings; thread-safe, one session per thread."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        pswd: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        content_type: str = "text/xml",
        form_field: str | None = None,
        success_codes: Iterable[int] = (200, 201),
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.auth = (username, password or "") if username is not None else None
        self.pswd = pswd
        self.extra_headers = dict(extra_headers or {})
        self.content_type = content_type
        self.form_field = form_field
        self.success_codes = frozenset(success_codes)
        self.timeout = timeout
        self.tray: list[TotEntry] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def close(self) -> None:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            session.close()

    def send(self, payload: bytes | str | Path, *, name: str | None = None) -> TotEntry:
        """Post one payload (bytes, text or a file) and add its TOT row to the tray."""
        if isinstance(payload, Path):
            name = name or payload.name
            payload = payload.read_bytes()
        elif isinstance(payload, str):
            payload = payload.encode("utf-8")
        with self._lock:
            entry = TotEntry(
                number=len(self.tray) + 1, name=name or f"message-{len(self.tray) + 1}", payload=payload
            )
            self.tray.append(entry)
        self._deliver(entry)
        return entry

    def send_files(self, paths: Iterable[Path]) -> list[TotEntry]:
        return [self.send(path) for path in paths]

    def rerun_failed(self, repeat: int = 1) -> list[TotEntry]:
        """Re-send every failed row, up to ``repeat`` rounds; the rows still failing."""
        failing = [entry for entry in self.tray if not entry.success]
        for _ in range(repeat):
            for entry in failing:
                self._deliver(entry)
            failing = [entry for entry in failing if not entry.success]
            if not failing:
                break
        return failing

    def _request(self, payload: bytes) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.extra_headers)
        if self.pswd is not None:
            headers["PSWD"] = self.pswd
        if self.form_field:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return urlencode({self.form_field: payload}).encode("ascii"), headers
        headers["Content-Type"] = self.content_type
        return payload, headers

    def _deliver(self, entry: TotEntry) -> None:
        body, headers = self._request(entry.payload)
        entry.attempts += 1
        entry.sent_at = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        try:
            response = self._session().post(
                self.url, data=body, headers=headers, auth=self.auth, timeout=self.timeout
            )
        except requests.RequestException as exc:
            entry.http_status, entry.success, entry.response = None, False, ""
            entry.error = type(exc).__name__
        else:
            entry.http_status = response.status_code
            entry.success = response.status_code in self.success_codes
            entry.response = response.text
            entry.headers = dict(response.headers)
            entry.error = None
        entry.duration_ms = (time.perf_counter() - started) * 1000

    def report(self) -> str:
        """The tray as a table, like the TOT screen."""
        lines = [f"{'TOT':>4}  {'status':<10} {'ok':<3} {'ms':>7}  name / response"]
        for e in self.tray:
            reply = " ".join(e.response.split())[:70]
            ok = "Y" if e.success else "N"
            lines.append(
                f"{e.number:>4}  {e.status_text:<10} {ok:<3} {e.duration_ms:>7.1f}  {e.name}: {reply}"
            )
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Post files to a StuTalk receiver; exit 1 if any is still failing after the repeats."""
    parser = argparse.ArgumentParser(
        prog="python -m azorus_simulators.stutalk", description=__doc__.split("\n")[0]
    )
    parser.add_argument("url")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--username", help="HTTP Basic user name")
    parser.add_argument("--password-env", help="environment variable holding the Basic password")
    parser.add_argument("--pswd-env", help="environment variable holding the PSWD header value")
    parser.add_argument("--form-field", help="post form-encoded with the XML in this field")
    parser.add_argument("--success-code", type=int, action="append", dest="success_codes")
    parser.add_argument("--repeat", type=int, default=0, help="re-send failed messages this many times")
    args = parser.parse_args(argv)
    sender = StuTalkSender(
        args.url,
        username=args.username,
        password=os.environ.get(args.password_env, "") if args.password_env else None,
        pswd=os.environ.get(args.pswd_env) if args.pswd_env else None,
        form_field=args.form_field,
        success_codes=args.success_codes or (200, 201),
    )
    sender.send_files(args.files)
    failing = sender.rerun_failed(args.repeat) if args.repeat else [e for e in sender.tray if not e.success]
    print(sender.report())
    sender.close()
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
