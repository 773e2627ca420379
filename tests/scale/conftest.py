"""Fixtures for the scale tests: worker processes on one shared database, and receivers per connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from azorus_connect import Hub
from azorus_connect.plugins import PluginHost
from azorus_connect.testing.servers import RecordingReceiver, recording_receiver

from . import post_connector

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def config_toml(urls: dict[str, str]) -> str:
    """One ``scale_post`` connection per receiver, each sending people and polled every 50 ms."""
    parts = []
    for name, url in urls.items():
        parts.append(
            f'[connections.{name}]\ntype = "scale_post"\npoll_interval = 0.05\n'
            f'directions = {{ person = "send" }}\nsettings = {{ url = "{url}" }}\n'
        )
    return "\n".join(parts)


@dataclass
class WorkerProcess:
    """One ``tests.scale.worker_process`` child and where its output goes."""

    process: subprocess.Popen[bytes]
    ready_file: Path
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]


@dataclass
class ScaleRig:
    """A database shared by the test and its worker processes, one receiver per connection."""

    database_url: str
    config_path: Path
    receivers: dict[str, RecordingReceiver]
    hub: Hub
    tmp: Path
    processes: list[WorkerProcess]

    def start_worker(self, *, lease_seconds: float = 60.0) -> WorkerProcess:
        n = len(self.processes)
        ready, log = self.tmp / f"worker-{n}.ready", self.tmp / f"worker-{n}.log"
        env = {**os.environ, "AZORUS_DATABASE_URL": self.database_url, "PYTHONPATH": str(ROOT)}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.scale.worker_process",
                    str(self.config_path),
                    str(ready),
                    "--lease-seconds",
                    str(lease_seconds),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(proc, ready, log)
        self.processes.append(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess) -> None:
        def up() -> bool:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.log()}")
            return worker.ready_file.exists()

        wait_for(up, "a worker process to start")

    def stop_all(self) -> None:
        for w in self.processes:
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        for w in self.processes:
            try:
                w.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait()


@pytest.fixture(scope="session")
def scale_plugins() -> PluginHost:
    return PluginHost.load(entry_points=False, extra=[post_connector])


@pytest.fixture
def scale_rig(
    make_hub: Callable[..., Hub],
    azorus_database_url: str,
    scale_plugins: PluginHost,
    tmp_path: Path,
) -> Iterator[Callable[..., ScaleRig]]:
    """``scale_rig(["c1", "c2"], delay=0.01)``: receivers, a config file and a hub; workers stopped after."""
    rigs: list[ScaleRig] = []
    servers: list[AbstractContextManager[RecordingReceiver]] = []

    def stop_receivers() -> None:
        # side by side: each shutdown waits up to half a second for its serve loop to notice
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda s: s.__exit__(None, None, None), servers))

    def factory(connections: list[str], *, delay: float = 0.0) -> ScaleRig:
        receivers = {}
        for name in connections:
            server = recording_receiver(delay=delay)
            receivers[name] = server.__enter__()
            servers.append(server)
        text = config_toml({name: rx.url for name, rx in receivers.items()})
        path = tmp_path / "azorus.toml"
        path.write_text(text)
        hub = make_hub(text, plugins=scale_plugins, database_url=azorus_database_url)
        rig = ScaleRig(azorus_database_url, path, receivers, hub, tmp_path, [])
        rigs.append(rig)
        return rig

    try:
        yield factory
    finally:
        for rig in rigs:
            rig.stop_all()
        stop_receivers()
