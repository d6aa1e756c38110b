"""The embedded broker: QoS 1 delivery, retained messages, last wills, child lifecycle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from server.broker import BrokerError, EmbeddedBroker, probe
from tests.support.brokers import (
    MqttTestClient,
    free_port,
    mosquitto_available,
    start_embedded,
    start_mosquitto,
)

ROOT = Path(__file__).resolve().parents[2]


def running(pid: int) -> bool:
    """True while pid is a live process (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture(scope="module")
def broker():
    b = start_embedded(free_port())
    yield b
    b.stop()


def test_qos1_burst_of_1000_all_arrive_in_order(broker, capsys):
    n = 1000
    with MqttTestClient(broker.port, "host-sub") as sub, MqttTestClient(broker.port, "egm-PUB1") as pub:
        assert [r.value for r in sub.subscribe("sbg/v1/egm/+/up", qos=1)] == [1]
        started = time.perf_counter()
        infos = [pub.publish("sbg/v1/egm/PUB1/up", str(i).encode(), qos=1, timeout=None) for i in range(n)]
        got = []
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            msg = sub.get(timeout=1)
            if msg is not None:
                got.append(msg)
        elapsed = time.perf_counter() - started
        assert all(info.is_published() for info in infos)  # every PUBACK came back
    assert len(got) == n
    assert [int(m.payload) for m in got] == list(range(n))
    assert {m.qos for m in got} == {1}
    with capsys.disabled():
        print(f"\nembedded broker: {n} QoS 1 messages end to end in {elapsed:.2f}s ({n / elapsed:.0f} msg/s)")


def test_retained_message_reaches_a_late_subscriber(broker):
    with MqttTestClient(broker.port, "egm-RET1") as terminal:
        terminal.publish("sbg/v1/egm/RET1/status", b'{"state":"online"}', qos=1, retain=True)
    with MqttTestClient(broker.port, "host-late") as host:
        host.subscribe("sbg/v1/egm/+/status", qos=1)
        msg = host.get(timeout=5)
    assert msg is not None
    assert (msg.topic, msg.payload, msg.retain) == ("sbg/v1/egm/RET1/status", b'{"state":"online"}', True)


def test_last_will_is_published_and_retained_when_the_socket_drops(broker):
    will = ("sbg/v1/egm/WILL1/status", b'{"state":"offline"}', 1, True)
    with MqttTestClient(broker.port, "host-will") as host:
        host.subscribe("sbg/v1/egm/WILL1/status", qos=1)
        terminal = MqttTestClient(broker.port, "egm-WILL1", will=will).connect()
        terminal.drop()
        msg = host.get(timeout=5)
        assert msg is not None
        assert (msg.topic, msg.payload) == (will[0], will[1])
    with MqttTestClient(broker.port, "host-will-late") as late:
        late.subscribe("sbg/v1/egm/WILL1/status", qos=1)
        retained = late.get(timeout=5)
    assert retained is not None and retained.payload == will[1] and retained.retain


def test_a_connecting_client_gets_only_retained_messages_it_subscribed_to(broker):
    # amqtt 0.12.1 alone would hand it every retained message the host subscribed to.
    with MqttTestClient(broker.port, "host-leak") as host, MqttTestClient(broker.port, "egm-LEAK1") as a:
        host.subscribe("sbg/v1/egm/+/status", qos=1)
        a.publish("sbg/v1/egm/LEAK1/status", b'{"state":"online"}', qos=1, retain=True)
        assert host.get(timeout=5) is not None
        with MqttTestClient(broker.port, "egm-LEAK2") as b:
            b.subscribe("sbg/v1/egm/LEAK2/down", qos=1)
            assert b.get(timeout=0.5) is None


def test_clean_disconnect_sends_no_will(broker):
    will = ("sbg/v1/egm/WILL2/status", b'{"state":"offline"}', 1, False)
    with MqttTestClient(broker.port, "host-nowill") as host:
        host.subscribe("sbg/v1/egm/WILL2/status", qos=1)
        with MqttTestClient(broker.port, "egm-WILL2", will=will):
            pass
        assert host.get(timeout=0.5) is None


def test_persistent_session_gets_what_was_sent_while_offline(broker):
    host = MqttTestClient(broker.port, "host-persistent", clean_session=False).connect()
    host.subscribe("sbg/v1/egm/+/up", qos=1)
    host.close()
    with MqttTestClient(broker.port, "egm-OFF1") as terminal:
        for i in range(5):
            terminal.publish("sbg/v1/egm/OFF1/up", str(i).encode(), qos=1)
    with MqttTestClient(broker.port, "host-persistent", clean_session=False) as host:
        got = [host.get(timeout=5) for _ in range(5)]
    assert [m.payload for m in got if m] == [b"0", b"1", b"2", b"3", b"4"]


def test_stop_leaves_no_process_and_frees_the_port():
    b = EmbeddedBroker(free_port())
    b.start()
    pid = b.pid
    assert b.alive() and running(pid)
    b.stop()
    assert not b.alive() and not running(pid)
    assert not probe("127.0.0.1", b.port, timeout=0.5)
    b.stop()  # idempotent


def test_restart_on_the_same_port():
    b = start_embedded(free_port())
    try:
        first = b.pid
        b.restart()
        assert b.pid != first and not running(first)
        with MqttTestClient(b.port, "after-restart"):
            pass
    finally:
        b.stop()


def test_context_manager_and_url():
    port = free_port()
    with EmbeddedBroker(port) as b:
        assert b.url == f"mqtt://127.0.0.1:{port}"
        assert probe("127.0.0.1", port)
    assert not b.alive()


def test_start_refuses_a_port_already_listening(broker):
    with pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker(broker.port).start()


@pytest.mark.parametrize("to_file", [False, True])
def test_start_failure_carries_the_child_stderr(tmp_path, to_file):
    log_path = tmp_path / "broker.log" if to_file else None
    b = EmbeddedBroker(free_port(), host="192.0.2.1", log_path=log_path)  # TEST-NET: not ours
    with pytest.raises(BrokerError) as err:
        b.start(timeout=10)
    assert "exited with code" in str(err.value)
    assert "assign requested address" in str(err.value)
    assert not b.alive()
    if to_file:
        assert "assign requested address" in log_path.read_text()


def test_log_file_names_connections(tmp_path):
    log_path = tmp_path / "broker.log"
    with EmbeddedBroker(free_port(), log_path=str(log_path)) as b:
        with MqttTestClient(b.port, "egm-LOG1"):
            pass
    assert "Connection from 127.0.0.1" in log_path.read_text()


def test_broker_dies_with_its_parent(tmp_path):
    port = free_port()
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from server.broker import EmbeddedBroker
        b = EmbeddedBroker({port})
        b.start()
        print(b.pid, flush=True)
        time.sleep(60)
    """))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        child = int(parent.stdout.readline())
        assert running(child) and probe("127.0.0.1", port)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_until(lambda: not running(child), timeout=5), "broker outlived its parent"
        assert not probe("127.0.0.1", port, timeout=0.5)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_importing_the_module_does_not_load_amqtt_or_flask():
    code = "import sys, server.broker; print(sorted(m for m in ('amqtt', 'flask') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(not mosquitto_available(), reason="/usr/sbin/mosquitto is not installed")
def test_mosquitto_test_broker_restarts_on_the_same_port(tmp_path):
    b = start_mosquitto(free_port(), config_dir=tmp_path)
    try:
        with MqttTestClient(b.port, "before"):
            pass
        b.restart()
        with MqttTestClient(b.port, "after"):
            pass
        assert b.url == f"mqtt://127.0.0.1:{b.port}"
    finally:
        b.stop()
    assert not probe("127.0.0.1", b.port, timeout=0.5)
