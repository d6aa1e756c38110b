"""The embedded MQTT broker for `FLOORHOST_MQTT_URL=embedded` (dev and demo only).

Production floors run Mosquitto (see `server.mqtt_config`). For a laptop demo
the host starts an amqtt broker here instead, in a child process so that a busy
or wedged broker can never stall the host's own event handling:

    with EmbeddedBroker(port=1883) as broker:
        connect_gateway(broker.url)

`python -m server.broker --port P` is the child's entry point. The broker
listens on 127.0.0.1 only, lets anyone connect (there are no credentials in
dev), keeps retained messages and last wills, and queues QoS 1 messages
without limit. The child exits when its parent dies, so a `kill -9` of the
host leaves no orphan broker holding the port.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

# Seconds a stopped child gets to close its sessions before it is killed.
STOP_GRACE = 5.0
# How often the child checks that its parent is still there.
PARENT_POLL_INTERVAL = 0.5
# Persistent sessions of clients that never come back are dropped after a day,
# so a long demo does not grow queues for simulators that were switched off.
SESSION_EXPIRY_SECONDS = 24 * 3600
_STDERR_TAIL_BYTES = 4000


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


class EmbeddedBroker:
    """An amqtt broker running in a child process on host:port."""

    def __init__(self, port: int, host: str = "127.0.0.1", log_path: str | None = None) -> None:
        self.port = port
        self.host = host
        self.log_path = str(Path(log_path).resolve()) if log_path else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start the child and return once an MQTT client can connect to it."""
        if self.alive():
            return
        self._close_log()
        if not _port_is_free(self.host, self.port):
            # Probing an occupied port would "succeed" against someone else's broker.
            raise BrokerError(f"embedded broker: {self.host}:{self.port} is already in use")

        if self.log_path:
            self._log_file = open(self.log_path, "a+b")  # readable too, for the stderr tail
        else:
            self._log_file = tempfile.TemporaryFile()  # kept for the stderr tail on failure
        cmd = [
            sys.executable, "-m", "server.broker",
            "--host", self.host,
            "--port", str(self.port),
            "--parent-pid", str(os.getpid()),
            "--watch-stdin",
            # A log file was asked for: say who connected; otherwise keep only problems.
            "--log-level", "INFO" if self.log_path else "WARNING",
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,  # its EOF tells the child the host is gone
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            # Own session: a Ctrl-C meant for the host must not drop the broker under it.
            start_new_session=True,
        )

        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                tail = self._stderr_tail()
                self.stop()
                raise BrokerError(f"embedded broker exited with code {rc} during start-up:\n{tail}")
            if probe(self.host, self.port, timeout=1.0):
                log.info("embedded broker pid=%s listening on %s", self._proc.pid, self.url)
                return
            if time.monotonic() > deadline:
                tail = self._stderr_tail()
                self.stop()
                raise BrokerError(f"embedded broker not accepting connections after {timeout:.0f}s:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the child, killing it after a grace period. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin:
                try:
                    proc.stdin.close()  # EOF: the child starts shutting down at once
                except OSError:
                    pass
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.info("embedded broker pid=%s stopped (code %s)", proc.pid, proc.returncode)
        self._close_log()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedBroker {self.url} pid={self.pid} alive={self.alive()}>"

    def _stderr_tail(self) -> str:
        if self._log_file is None:
            return ""
        try:
            self._log_file.flush()
            size = self._log_file.seek(0, os.SEEK_END)
            self._log_file.seek(max(0, size - _STDERR_TAIL_BYTES))
            return self._log_file.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def probe(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when an MQTT CONNECT to host:port gets a successful CONNACK."""
    import paho.mqtt.client as mqtt

    result: list[Any] = []
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"floorhost-probe-{os.getpid()}-{time.monotonic_ns()}",
        clean_session=True,
    )
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(reason)
    try:
        client.connect(host, port, keepalive=10)
    except OSError:
        return False
    try:
        deadline = time.monotonic() + timeout
        while not result and time.monotonic() < deadline:
            if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                return False
        ok = bool(result) and not result[0].is_failure
        if ok:
            client.disconnect()
            client.loop(timeout=0.05)
        return ok
    finally:
        sock = client.socket()
        if sock is not None:
            sock.close()


def _port_is_free(host: str, port: int) -> bool:
    """False only if something listens there; other bind errors are the child's to report."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Same option the broker binds with, so TIME_WAIT leftovers don't count as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE
    return True


def _child_env() -> dict[str, str]:
    """The host's environment, with this package importable whatever the cwd."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


# --- the child process -------------------------------------------------------

def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt 0.12 configuration for the embedded broker."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "session_expiry_interval": SESSION_EXPIRY_SECONDS,
        # Naming plugins replaces amqtt's defaults: no $SYS publisher, no per-packet logging.
        "plugins": {f"{__name__}.OpenAuthPlugin": {}},
    }


def __getattr__(name: str) -> Any:
    # amqtt loads plugins by dotted path; building the class on demand keeps
    # `import server.broker` in the host free of amqtt.
    if name == "OpenAuthPlugin":
        cls = _make_open_auth_plugin()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_open_auth_plugin() -> type:
    from amqtt.plugins.base import BaseAuthPlugin

    class OpenAuthPlugin(BaseAuthPlugin):
        """Accept every client without marking it anonymous.

        amqtt's AnonymousAuthPlugin flags every session anonymous, and amqtt
        neither keeps nor queues for anonymous sessions, so `clean_session=False`
        would silently lose QoS 1 messages sent while a client is offline.
        """

        async def authenticate(self, *, session: Any) -> bool:
            return True

    return OpenAuthPlugin


async def serve(host: str, port: int, parent_pid: int | None = None, watch_stdin: bool = False) -> None:
    """Run the broker until SIGTERM/SIGINT, stdin EOF, or the parent's death."""
    from amqtt.broker import Broker

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    if watch_stdin:
        fd = sys.stdin.fileno()

        def on_stdin() -> None:
            if not os.read(fd, 4096):
                loop.remove_reader(fd)
                log.info("stdin closed, stopping")
                stop.set()

        loop.add_reader(fd, on_stdin)

    async def watch_parent() -> None:
        # Reparenting is the one reliable sign the parent died, even of SIGKILL.
        while os.getppid() == parent_pid:
            await asyncio.sleep(PARENT_POLL_INTERVAL)
        log.warning("parent %s is gone, stopping", parent_pid)
        stop.set()

    class FloorBroker(Broker):
        async def _publish_retained_messages_for_subscription(self, subscription: Any, session: Any) -> None:
            # amqtt 0.12.1 replays retained messages matching *every* client's
            # subscriptions to each client that connects; send only its own.
            subscribers = self._subscriptions.get(subscription[0], ())
            if any(s.client_id == session.client_id for s, _qos in subscribers):
                await super()._publish_retained_messages_for_subscription(subscription, session)

    watcher = asyncio.create_task(watch_parent()) if parent_pid else None
    broker = FloorBroker(broker_config(host, port))
    await broker.start()
    log.info("embedded broker listening on %s:%s", host, port)
    try:
        await stop.wait()
    finally:
        if watcher:
            watcher.cancel()
        try:
            await asyncio.wait_for(broker.shutdown(), timeout=2.0)
        except Exception:  # exiting anyway; a half-closed broker only costs a log line
            log.warning("broker shutdown did not finish cleanly", exc_info=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.broker", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, help="exit when this process is no longer our parent")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches EOF")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s embedded-broker %(levelname)s %(name)s: %(message)s",
    )
    if args.parent_pid and os.getppid() != args.parent_pid:
        return 1  # the parent died before we got going
    try:
        asyncio.run(serve(args.host, args.port, args.parent_pid, args.watch_stdin))
    except Exception as exc:  # one line for the parent's BrokerError, not a traceback
        print(f"embedded broker failed: {exc!r} (cause: {exc.__cause__!r})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
