"""Screenshots of the admin UI for the README: dashboard, request-log detail, person, import preview.

Builds a throw-away hub (SQLite in a temporary folder) with one SITS connection, sends it StuTalk
payloads through the real inbound endpoint, then photographs the pages in Debian's chromium::

    python docs/screenshots.py            # writes docs/img/*.png
    python docs/screenshots.py --out DIR

The import-preview page belongs to the CSV import plugin; when that page is not installed the
script says so and takes the other three.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import uvicorn
from playwright.sync_api import Page, sync_playwright

from azorus_connect import Hub
from azorus_connect.admin import accounts
from azorus_connect.store.db import utcnow
from azorus_connect.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "sits"
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
USER = ("admissions", "screenshot-password")
SITS_USER = "STUTALK"
SITS_PASSWORD = "demo-inbound-password"  # noqa: S105 - a throw-away demo value

CONFIG = """
[hub]
public_url = "http://127.0.0.1:8000"

[connections.sits]
type = "sits"
description = "SITS:Vision (StuTalk in, SIW_RWS out)"
match_on = ["mst", "sits_stu"]
directions = { person = "receive", application = "receive", enquiry = "both", reference = "receive" }

[connections.sits.settings.inbound]
username = "STUTALK"
password = { env = "AZORUS_DEMO_SITS_PASSWORD" }

[connections.sits.settings.outbound]
base_url = "http://127.0.0.1:9/urd/sits.urd/run/SIW_RWS/"
username = "STUTALK_AZORUS"
password = { env = "AZORUS_DEMO_SITS_PASSWORD" }

[lists.nationality]
label = "Nationality"
values = { "000" = "British", "001" = "Irish" }

[lists.application_status]
label = "Application status"
values = { CF = "Conditional firm", UF = "Unconditional firm" }
"""

PAYLOADS = ["stu_cap_short_tags.xml", "stu_long_tags.xml", "esd_enquirer.xml", "reference_nat.xml"]
IMPORT_CSV = (
    "MST code,First name,Surname,Email,Date of birth\n"
    "0000123456,Jane,Example,jane@example.org,2006-05-14\n"
    "0000777001,Amir,Khan,amir.khan@example.org,2005-11-02\n"
    "0000777002,Li,Wei,not-an-email,2006-13-40\n"
)


def _serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web app did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


def _seed(base: str) -> list[str]:
    """Send the StuTalk fixtures (and two refused requests); returns the request ids."""
    auth = "Basic " + base64.b64encode(f"{SITS_USER}:{SITS_PASSWORD}".encode()).decode()
    ids = []
    with requests.Session() as http:
        for name in PAYLOADS:
            path = FIXTURES / name
            if not path.exists():
                continue
            answer = http.post(
                base + "/inbound/sits",
                timeout=30,
                data=path.read_bytes(),
                headers={
                    "content-type": "application/xml",
                    "authorization": auth,
                    "accept": "application/json",
                },
            )
            ids.append(answer.headers.get("x-request-id", ""))
        http.post(
            base + "/inbound/sits",
            timeout=30,
            data=b"<EXCHANGE>",
            headers={"content-type": "application/xml", "authorization": auth},
        )
        xml = {"content-type": "application/xml"}
        http.post(base + "/inbound/sits", timeout=30, data=b"<EXCHANGE/>", headers=xml)
    return [i for i in ids if i]


def _shoot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def _import_preview(page: Page, base: str, out: Path, work: Path) -> bool:
    """Upload a small CSV to the import wizard and photograph its dry-run preview, if installed."""
    response = page.goto(base + "/admin/imports")
    if response is None or response.status != 200 or page.locator("input[type=file]").count() == 0:
        print("note: no import wizard at /admin/imports (CSV import plugin pages not installed); skipped")
        return False
    csv_path = work / "applicants.csv"
    csv_path.write_text(IMPORT_CSV, encoding="utf-8")
    page.set_input_files("input[type=file]", str(csv_path))
    page.click("#upload")
    page.click("#dry-run")
    # The run page refreshes itself until the dry run is done.
    page.wait_for_selector("#progress", state="detached", timeout=30_000)
    page.wait_for_load_state("networkidle")
    _shoot(page, out / "import-preview.png")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    os.environ["AZORUS_DEMO_SITS_PASSWORD"] = SITS_PASSWORD
    with tempfile.TemporaryDirectory(prefix="azorus-shots-") as tmp:
        work = Path(tmp)
        (work / "azorus.toml").write_text(CONFIG, encoding="utf-8")
        hub = Hub.open(work / "azorus.toml", database_url=f"sqlite:///{work / 'hub.db'}", migrate=True)
        with hub.store.write() as conn:
            accounts.create_user(conn, *USER, "admin", utcnow())
        base, server, thread = _serve(create_app(hub))
        try:
            request_ids = _seed(base)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 1366, "height": 860})
                page.goto(base + "/admin/")
                page.fill("#username", USER[0])
                page.fill("#password", USER[1])
                page.press("#password", "Enter")
                page.wait_for_selector("h1:has-text('Dashboard')")
                _shoot(page, out / "dashboard.png")
                if request_ids:
                    page.goto(f"{base}/admin/requests/{request_ids[0]}")
                    _shoot(page, out / "request-detail.png")
                page.goto(base + "/admin/people?q=0000123456")
                page.wait_for_selector("h1")
                _shoot(page, out / "person.png")
                _import_preview(page, base, out, work)
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            hub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
