"""MQTT brokers for tests: a real Mosquitto or the embedded amqtt broker.

Both handles expose `.url`, `.port`, `.stop()` and `.restart()` (stop, then
start again on the same port: what broker-restart reliability tests need).
Ports are always picked free; 1883 and 5432 are taken on the CI machine.

    broker = start_mosquitto(free_port())
    try: ...
    finally: broker.stop()
"""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from server.broker import EmbeddedBroker, probe

MOSQUITTO = os.environ.get("FLOORHOST_TEST_MOSQUITTO", "/usr/sbin/mosquitto")
RESERVED_PORTS = {1883, 5432}


def mosquitto_available() -> bool:
    return os.access(MOSQUITTO, os.X_OK)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def wait_for_broker(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Block until an MQTT client can connect (anonymously or not, the broker answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode} before accepting connections")
        if _connack_received(host, port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"broker on {host}:{port} not accepting connections after {timeout}s")


def _connack_received(host: str, port: int) -> bool:
    # A raw CONNECT: any CONNACK, even "not authorised", proves the broker is up,
    # which a config with allow_anonymous false would never give a probe client.
    client_id = f"probe-{os.getpid()}-{time.monotonic_ns() % 10**9}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x05" + len(client_id).to_bytes(2, "big") + client_id
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(bytes([0x10, len(body)]) + body)
            answered = s.recv(4)[:1] == b"\x20"
            if answered:
                s.sendall(b"\xe0\x00")  # DISCONNECT, so the broker logs a clean goodbye
            return answered
    except OSError:
        return False


class MosquittoBroker:
    """A foreground `mosquitto -c conf` child on 127.0.0.1:port."""

    def __init__(self, port: int, conf_path: str | os.PathLike[str], host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.conf_path = Path(conf_path)
        self.log_path = self.conf_path.with_suffix(".log")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self._runnable_conf())], stdout=log, stderr=log)
        try:
            wait_for_broker(self.host, self.port, timeout, self._proc)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from None
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self, timeout: float = 10.0) -> MosquittoBroker:
        self.stop()
        return self.start(timeout)

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _runnable_conf(self) -> Path:
        if os.geteuid() != 0:
            return self.conf_path
        # Started as root, mosquitto drops to the 'mosquitto' user, which cannot
        # read our 0600 files in a private temp folder: stay the current user.
        wrapper = self.conf_path.with_name(self.conf_path.stem + ".as-root.conf")
        wrapper.write_text(self.conf_path.read_text() + "\nuser root\n")
        return wrapper

    def __enter__(self) -> MosquittoBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<MosquittoBroker {self.url} alive={self.alive()}>"


def start_mosquitto(port: int, config_dir: str | os.PathLike[str] | None = None, extra_conf: str = "") -> MosquittoBroker:
    """Run an anonymous Mosquitto for tests on 127.0.0.1:port, ready for connections.

    `extra_conf` is appended, so its settings win over the defaults below.
    """
    if port in RESERVED_PORTS:
        raise ValueError(f"port {port} is reserved on the CI machine; use free_port()")
    if not mosquitto_available():
        raise RuntimeError(f"{MOSQUITTO} not found")
    if config_dir is None:
        folder = Path(tempfile.mkdtemp(prefix="floorhost-mosquitto-"))
        atexit.register(shutil.rmtree, folder, True)
    else:
        folder = Path(config_dir)
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        # Restart tests want a clean broker, as after a crash without a disk.
        "persistence false\n"
        # Mosquitto 2 counts messages waiting behind a full in-flight window
        # against this limit even for connected clients (default 1000, then
        # QoS 1 is dropped): load tests must see loss only if the host loses.
        "max_queued_messages 100000\n"
        # Keep the production in-flight window (20), so tests exercise queueing.
        "max_inflight_messages 20\n"
        "set_tcp_nodelay true\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        f"{extra_conf}\n"
    )
    broker = MosquittoBroker(port, conf)
    broker.start()
    return broker


class EmbeddedTestBroker(EmbeddedBroker):
    """The embedded broker with the test handle's `.restart()`."""

    def restart(self, timeout: float = 15.0) -> EmbeddedTestBroker:
        self.stop()
        self.start(timeout)
        return self


def start_embedded(port: int, log_path: str | None = None) -> EmbeddedTestBroker:
    if port in RESERVED_PORTS:
        raise ValueError(f"port {port} is reserved on the CI machine; use free_port()")
    broker = EmbeddedTestBroker(port, log_path=log_path)
    broker.start()
    return broker


class MqttTestClient:
    """A paho 2.x client with its network loop in a thread and a queue of what it received.

    No automatic reconnection: a test decides when a client comes back.
    """

    def __init__(
        self,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        clean_session: bool = True,
        will: tuple[str, bytes, int, bool] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host, self.port = host, port
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connect_reason: Any = None
        self._connected = threading.Event()
        self._mutex = threading.Lock()
        self._acks: dict[int, threading.Event] = {}
        self._granted: dict[int, list[Any]] = {}
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos=qos, retain=retain)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = self._on_subscribe

    def connect(self, timeout: float = 5.0) -> MqttTestClient:
        """Connect and wait for the CONNACK; ConnectionRefusedError if the broker says no."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise TimeoutError(f"no CONNACK from {self.host}:{self.port}")
        if self.connect_reason.is_failure:
            self.close()
            raise ConnectionRefusedError(str(self.connect_reason))
        return self

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> list[Any]:
        """Subscribe and return the granted reason codes from the SUBACK."""
        result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        if not self._ack_event(mid).wait(timeout):
            raise TimeoutError(f"no SUBACK for {topic}")
        return self._granted.pop(mid)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                timeout: float | None = 5.0) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if timeout is not None:
            info.wait_for_publish(timeout)
        return info

    def get(self, timeout: float = 5.0) -> mqtt.MQTTMessage | None:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def drop(self) -> None:
        """Vanish without DISCONNECT, as a terminal that loses power: the broker sends the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        if self._connected.is_set() and not (self.connect_reason and self.connect_reason.is_failure):
            self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttTestClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ack_event(self, mid: int) -> threading.Event:
        # Either side may get here first: the SUBACK can beat subscribe()'s return.
        with self._mutex:
            return self._acks.setdefault(mid, threading.Event())

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connect_reason = reason
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[Any], _props: Any) -> None:
        self._granted[mid] = reasons
        self._ack_event(mid).set()


__all__ = [
    "MqttTestClient",
    "EmbeddedTestBroker",
    "MosquittoBroker",
    "free_port",
    "mosquitto_available",
    "probe",
    "start_embedded",
    "start_mosquitto",
    "wait_for_broker",
]
