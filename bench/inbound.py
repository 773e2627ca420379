"""Benchmark: StuTalk posts into the hub, against a server that only parses the same XML.

With the hub serving on SQLite (``azorus-connect serve --no-worker``, one uvicorn worker), 16
connections post STU+CAP payloads for 10 s; every request is a real upsert (a new or changed
student and application) and a request-log write.  The baseline, measured in the same run, is the
same server stack (FastAPI on uvicorn, the same worker count) serving an endpoint that parses the
same XML with lxml and answers 200.  Both servers run in their own process; the load comes from
this one over keep-alive connections.

    python bench/inbound.py [--seconds 10] [--connections 16] [--workers 1]

Ends with one JSON line of figures (``ratio_vs_raw`` = hub requests/s over the baseline's).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from pathlib import Path

from fastapi import FastAPI, Request, Response
from lxml import etree

PAYLOAD = """<?xml version="1.0" encoding="UTF-8"?>
<EXCHANGE><STU><STU.SRS>
  <STU_CODE.STU.SRS>{stu}</STU_CODE.STU.SRS><STU_TITL.STU.SRS>MS</STU_TITL.STU.SRS>
  <STU_FNM1.STU.SRS>JANE</STU_FNM1.STU.SRS><STU_SURN.STU.SRS>EXAMPLE{round}</STU_SURN.STU.SRS>
  <STU_DOB.STU.SRS>14-MAY-06</STU_DOB.STU.SRS><STU_GEND.STU.SRS>F</STU_GEND.STU.SRS>
  <STU_NATC.STU.SRS>000</STU_NATC.STU.SRS><STU_HAEM.STU.SRS>s{stu}@example.org</STU_HAEM.STU.SRS>
  <MRE><MRE.MENSYS><MST><MST.SRS><MST_CODE.MST.SRS>{mst}</MST_CODE.MST.SRS></MST.SRS></MST></MRE.MENSYS></MRE>
  <CAP><CAP.SRS>
    <CAP_STUC.CAP.SRS>{stu}</CAP_STUC.CAP.SRS><CAP_SEQN.CAP.SRS>01</CAP_SEQN.CAP.SRS>
    <CAP_AYRC.CAP.SRS>2025/6</CAP_AYRC.CAP.SRS><CAP_MCRC.CAP.SRS>UBSCCS01</CAP_MCRC.CAP.SRS>
    <CAP_IDRC.CAP.SRS>C{round}</CAP_IDRC.CAP.SRS><CAP_RSPD.CAP.SRS>02-JUL-25</CAP_RSPD.CAP.SRS>
  </CAP.SRS></CAP>
</STU.SRS></STU></EXCHANGE>
"""

#: Students cycled through: the first pass creates them, later passes change them (real updates).
STUDENTS = 2_000

CONFIG = """
[connections.sits]
type = "sits"
match_on = ["mst", "sits_stu"]
[connections.sits.directions]
person = "receive"
application = "receive"
reference = "receive"
[connections.sits.settings.inbound]
username = "STUTALK"
password = { file = "stutalk-password" }
"""


def payload(n: int) -> bytes:
    student = n % STUDENTS
    return PAYLOAD.format(
        stu=f"{24000000 + student:08d}", mst=f"{student + 1:010d}", round=n // STUDENTS
    ).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def baseline_app() -> FastAPI:
    """The same stack, minus the hub: FastAPI on uvicorn, parse the XML with lxml, answer 200."""
    app = FastAPI()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

    @app.post("/inbound/{connection}")
    async def inbound(connection: str, request: Request) -> Response:
        root = etree.fromstring(await request.body(), parser)
        return Response(f"<result rows='{len(root)}'/>", media_type="application/xml")

    return app


def wait_ready(port: int, path: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def load(port: int, connections: int, seconds: float, headers: dict[str, str]) -> dict[str, float]:
    """``connections`` keep-alive clients posting for ``seconds`` (after a 1 s warm-up)."""
    counter = itertools.count()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start_at = time.monotonic() + 1.0
    stop_at = start_at + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        while True:
            body = payload(next(counter))
            began = time.monotonic()
            if began >= stop_at:
                break
            conn.request("POST", "/inbound/sits", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            ended = time.monotonic()
            if began >= start_at:
                mine.append(ended - began)
                if response.status >= 300:
                    bad += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "errors": errors[0],
    }


def measure(
    command: list[str],
    ready_path: str,
    port: int,
    args: argparse.Namespace,
    headers: dict[str, str],
    env: dict[str, str],
) -> dict[str, float]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, ready_path, process)
        return load(port, args.connections, args.seconds, headers)
    finally:
        process.terminate()
        process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (both servers)")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        import uvicorn

        if args.workers > 1:
            uvicorn.run(
                "inbound:baseline_app",
                factory=True,
                app_dir=str(Path(__file__).parent),
                port=args.serve_baseline,
                workers=args.workers,
                log_level="warning",
            )
        else:
            uvicorn.run(baseline_app(), port=args.serve_baseline, log_level="warning")
        return

    with tempfile.TemporaryDirectory(prefix="azorus-bench-inbound-") as folder:
        run(args, Path(folder))


def run(args: argparse.Namespace, work: Path) -> None:
    """Measure the baseline, then the hub, with the config and database in ``work``."""
    password = secrets.token_urlsafe(12)
    (work / "stutalk-password").write_text(password)
    (work / "azorus.toml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZORUS_")}
    auth = "Basic " + b64encode(f"STUTALK:{password}".encode()).decode()
    headers = {"Content-Type": "text/xml", "Authorization": auth}

    raw_port = free_port()
    raw = measure(
        [sys.executable, __file__, "--serve-baseline", str(raw_port), "--workers", str(args.workers)],
        "/docs",
        raw_port,
        args,
        headers,
        env,
    )
    hub_port = free_port()
    hub = measure(
        [
            sys.executable,
            "-m",
            "azorus_connect",
            "--config",
            str(work / "azorus.toml"),
            "--database-url",
            f"sqlite:///{work / 'bench.db'}",
            "serve",
            "--no-worker",
            "--port",
            str(hub_port),
            "--workers",
            str(args.workers),
        ],
        "/healthz",
        hub_port,
        args,
        headers,
        env,
    )

    print(f"{'':>22} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, figures in (("parse-only baseline", raw), ("hub (upsert + log)", hub)):
        print(
            f"{name:>22} {figures['rps']:>11.0f} {figures['p50_ms']:>8.1f} {figures['p99_ms']:>8.1f} "
            f"{figures['errors']:>7.0f}"
        )
    print(
        json.dumps(
            {
                "bench": "inbound",
                "connections": args.connections,
                "seconds": args.seconds,
                "workers": args.workers,
                "hub_rps": round(hub["rps"], 1),
                "hub_p50_ms": round(hub["p50_ms"], 2),
                "hub_p99_ms": round(hub["p99_ms"], 2),
                "hub_errors": hub["errors"],
                "raw_rps": round(raw["rps"], 1),
                "raw_p50_ms": round(raw["p50_ms"], 2),
                "raw_p99_ms": round(raw["p99_ms"], 2),
                "ratio_vs_raw": round(hub["rps"] / raw["rps"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
