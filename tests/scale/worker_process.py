"""A worker process for the scale tests: ``python -m tests.scale.worker_process CONFIG READY_FILE``.

Runs :meth:`Worker.run` with the test connector loaded, on ``AZORUS_DATABASE_URL``, until SIGTERM.
``--lease-seconds`` shortens the SQLite lease so a restart after SIGKILL need not wait a minute.
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from azorus_connect import Hub
from azorus_connect.plugins import PluginHost
from azorus_connect.worker import Worker

from . import post_connector


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("ready_file")
    parser.add_argument("--lease-seconds", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    plugins = PluginHost.load(entry_points=False, extra=[post_connector])
    hub = Hub.open(args.config, plugins=plugins)
    worker = Worker(hub, lease_seconds=args.lease_seconds, pulls=False)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    Path(args.ready_file).write_text(worker.owner)
    try:
        worker.run()
    finally:
        hub.close()


if __name__ == "__main__":
    main()
