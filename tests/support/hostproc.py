"""`floorhost serve` as a child process, for tests that kill the host (kill -9) and start it again.

    proc = HostProcess(database_url=..., mqtt_url=broker.url, topic_root=root, workdir=tmp_path)
    proc.start()            # returns once /healthz says the gateway is connected to the broker
    proc.kill9()            # SIGKILL: no goodbye, no flush, no atexit
    proc.start()            # the same instance folder, database and broker session again
    proc.stop()             # SIGTERM, then SIGKILL; safe to call twice (always call it at teardown)

The child gets only the FLOORHOST_* variables given here (the test run's own are dropped),
its own session (a Ctrl-C of pytest does not reach it; stop() does), and writes its
output to `log_path` (each start appends), whose tail `log_tail()` returns for assertion messages.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.brokers import RESERVED_PORTS, free_port

ROOT = Path(__file__).resolve().parents[2]


def listen_port() -> int:
    """A free port for a test server to listen on, taken below the kernel's ephemeral range.

    free_port() hands out a port from the ephemeral range, which any outgoing connection of
    any process on the machine (parallel test runs open thousands) may take before the server
    binds it, or between a broker's stop and its restart on the same port: then listen()
    fails with EADDRINUSE. Ports below the range are never taken that way.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return free_port()
    if low <= 12000:
        return free_port()
    for _ in range(200):
        port = random.randrange(10000, low)
        if port in RESERVED_PORTS:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return free_port()


class HostProcess:
    def __init__(self, *, database_url: str, mqtt_url: str, topic_root: str, workdir: Path | str,
                 extra_env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.instance = self.workdir / "instance"
        self.log_path = self.workdir / "host.log"
        self.port = listen_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLOORHOST_")}
        self.env.update({
            "FLOORHOST_INSTANCE": str(self.instance),
            "FLOORHOST_DATABASE_URL": database_url,
            "FLOORHOST_MQTT_URL": mqtt_url,
            "FLOORHOST_SCHEDULER": "off",
            "FLOORHOST_TOPIC_ROOT": topic_root,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        })
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> "HostProcess":
        """Start `floorhost serve`; return once it answers /healthz with the MQTT gateway connected."""
        if self.alive():
            raise RuntimeError("host process already running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n----- start {self.starts} -----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port)],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"floorhost serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            health = self.health()
            if health and health.get("mqtt", {}).get("connected"):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"floorhost serve not ready after {timeout}s:\n{self.log_tail()}")

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                return json.loads(r.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def kill9(self) -> None:
        """SIGKILL the host and reap it: what a power cut or the OOM killer does."""
        assert self.proc is not None and self.proc.poll() is None, "host process is not running"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def log_tail(self, size: int = 6000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self) -> "HostProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
