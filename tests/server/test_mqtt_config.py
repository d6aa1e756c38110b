"""The generated Mosquitto configuration: files, hashes, and the ACL enforced by a real Mosquitto."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess

import pytest

from server.mqtt_config import (
    TerminalCredential,
    default_max_queued_messages,
    mosquitto_password_hash,
    write_mosquitto_config,
)
from tests.support.brokers import MosquittoBroker, MqttTestClient, free_port, mosquitto_available

ROOT = "sbg/v1"
needs_mosquitto = pytest.mark.skipif(
    not mosquitto_available(), reason="/usr/sbin/mosquitto is not installed: ACL tests need the real broker"
)


def credentials(*egm_ids: str) -> list[TerminalCredential]:
    return [TerminalCredential(e, mosquitto_password_hash(f"secret-{e}")) for e in egm_ids]


# --- hashes ------------------------------------------------------------------

def test_hash_format():
    h = mosquitto_password_hash("pw", salt=b"0123456789ab")
    _, seven, iterations, salt, digest = h.split("$")
    assert (seven, iterations) == ("7", "101")
    assert base64.b64decode(salt) == b"0123456789ab"
    assert len(base64.b64decode(digest)) == 64
    assert mosquitto_password_hash("pw", salt=b"0123456789ab") == h
    assert mosquitto_password_hash("pw") != mosquitto_password_hash("pw")  # random salt


def test_hash_rejects_a_salt_mosquitto_would_not_read():
    with pytest.raises(ValueError):
        mosquitto_password_hash("pw", salt=b"short")


@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")
def test_hash_matches_mosquitto_passwd(tmp_path):
    path = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "alice", "s3cret é"], check=True)
    theirs = path.read_text().strip().split(":", 1)[1]
    _, _, iterations, salt, _ = theirs.split("$")
    assert mosquitto_password_hash("s3cret é", int(iterations), base64.b64decode(salt)) == theirs


# --- files -------------------------------------------------------------------

def test_writes_three_files_with_private_secrets(tmp_path):
    paths = write_mosquitto_config(tmp_path / "out", credentials("A1", "B2"), "floorhost", mosquitto_password_hash("h"))
    assert set(paths) == {"conf", "passwd", "acl"}
    for name in ("passwd", "acl"):
        assert stat.S_IMODE(os.stat(paths[name]).st_mode) == 0o600
    users = [line.split(":")[0] for line in paths["passwd"].read_text().splitlines()]
    assert users == ["floorhost", "A1", "B2"]
    conf = paths["conf"].read_text()
    for line in ("per_listener_settings false", "allow_anonymous false", "listener 1883 0.0.0.0",
                 f"password_file {paths['passwd']}", f"acl_file {paths['acl']}",
                 "max_queued_messages 1000", "persistence false"):
        assert line in conf.splitlines()


def test_acl_grants_each_terminal_only_its_own_topics(tmp_path):
    acl = write_mosquitto_config(tmp_path, credentials("A1"), "floorhost", mosquitto_password_hash("h"))["acl"]
    blocks = [b.splitlines() for b in acl.read_text().split("\n\n")]
    assert blocks[1] == ["user floorhost", "topic read sbg/v1/egm/+/up",
                             "topic read sbg/v1/egm/+/status", "topic write sbg/v1/egm/+/down"]
    assert blocks[2] == ["user A1", "topic write sbg/v1/egm/A1/up",
                         "topic write sbg/v1/egm/A1/status", "topic read sbg/v1/egm/A1/down"]


def test_queue_size_follows_the_floor(tmp_path):
    assert default_max_queued_messages(0) == 1000
    assert default_max_queued_messages(5) == 1000
    assert default_max_queued_messages(400) == 80_000
    many = [TerminalCredential(f"E{i}", mosquitto_password_hash("x", iterations=1)) for i in range(10)]
    conf = write_mosquitto_config(tmp_path, many, "floorhost", mosquitto_password_hash("h"))["conf"]
    assert "max_queued_messages 2000" in conf.read_text().splitlines()
    conf = write_mosquitto_config(tmp_path, many, "floorhost", mosquitto_password_hash("h"), max_queued_messages=7)["conf"]
    assert "max_queued_messages 7" in conf.read_text().splitlines()


def test_persistence_on_when_a_folder_is_given(tmp_path):
    conf = write_mosquitto_config(tmp_path, [], "floorhost", mosquitto_password_hash("h"),
                                  persistence_dir=str(tmp_path / "db"))["conf"].read_text().splitlines()
    assert "persistence true" in conf
    assert f"persistence_location {tmp_path / 'db'}/" in conf


@pytest.mark.parametrize("terminals, host, error", [
    ([TerminalCredential("bad id", "$7$101$a$b")], "floorhost", "egm_id"),
    ([TerminalCredential("x" * 33, "$7$101$a$b")], "floorhost", "egm_id"),
    ([TerminalCredential("A1", "$7$101$a$b")] * 2, "floorhost", "twice"),
    ([TerminalCredential("floorhost", "$7$101$a$b")], "floorhost", "host's username"),
    ([TerminalCredential("A1", "plaintext")], "floorhost", "format"),
    ([], "host:name", "host_username"),
])
def test_rejects_what_mosquitto_would_choke_on(tmp_path, terminals, host, error):
    with pytest.raises(ValueError, match=error):
        write_mosquitto_config(tmp_path, terminals, host, "$7$101$a$b")


# --- the real broker -----------------------------------------------------------

@pytest.fixture
def floor(tmp_path):
    """Mosquitto on a free port with the generated config for terminals A1 and B2."""
    port = free_port()
    paths = write_mosquitto_config(
        tmp_path, credentials("A1", "B2"), "floorhost", mosquitto_password_hash("host-secret"),
        listener_host="127.0.0.1", port=port, persistence_dir=str(tmp_path),
    )
    broker = MosquittoBroker(port, paths["conf"]).start()
    yield broker
    broker.stop()


def terminal(broker, egm_id: str, password: str | None = None, **kw) -> MqttTestClient:
    return MqttTestClient(broker.port, f"egm-{egm_id}", username=egm_id,
                          password=password or f"secret-{egm_id}", **kw)


def host(broker, client_id: str = "floorhost-gateway") -> MqttTestClient:
    return MqttTestClient(broker.port, client_id, username="floorhost", password="host-secret")


@needs_mosquitto
def test_host_receives_a_terminal_on_its_own_topic_only(floor):
    with host(floor) as h, terminal(floor, "A1") as a:
        h.subscribe(f"{ROOT}/egm/+/up")
        a.publish(f"{ROOT}/egm/B2/up", b"forged")  # accepted on the wire, dropped by the ACL
        a.publish(f"{ROOT}/egm/A1/up", b"real")
        msg = h.get(timeout=5)
        assert (msg.topic, msg.payload) == (f"{ROOT}/egm/A1/up", b"real")
        assert h.get(timeout=0.3) is None


@needs_mosquitto
def test_terminal_reads_its_own_down_topic_only(floor):
    with host(floor) as h, terminal(floor, "A1") as a, terminal(floor, "B2") as b:
        a.subscribe(f"{ROOT}/egm/+/down")  # a wildcard, to try to read everyone's
        b.subscribe(f"{ROOT}/egm/B2/down")
        h.publish(f"{ROOT}/egm/B2/down", b"for B2")
        h.publish(f"{ROOT}/egm/A1/down", b"for A1")
        assert b.get(timeout=5).payload == b"for B2"
        assert a.get(timeout=5).payload == b"for A1"
        assert a.get(timeout=0.3) is None


@needs_mosquitto
def test_last_will_on_own_status_reaches_the_host_and_survives_a_restart(floor):
    will = (f"{ROOT}/egm/A1/status", b'{"state":"offline"}', 1, True)
    with host(floor) as h:
        h.subscribe(f"{ROOT}/egm/+/status")
        a = terminal(floor, "A1", will=will).connect()
        a.drop()
        msg = h.get(timeout=5)
        assert (msg.topic, msg.payload) == (will[0], will[1])
    floor.restart()  # persistence is on: the retained status comes back from disk
    with host(floor, "floorhost-after") as h:
        h.subscribe(f"{ROOT}/egm/+/status")
        msg = h.get(timeout=5)
        assert (msg.topic, msg.payload, msg.retain) == (will[0], will[1], True)


@needs_mosquitto
@pytest.mark.parametrize("username, password", [
    ("A1", "wrong"),
    ("A1", "secret-B2"),
    ("ZZ9", "secret-ZZ9"),
    (None, None),
])
def test_bad_credentials_are_refused(floor, username, password):
    client = MqttTestClient(floor.port, "intruder", username=username, password=password)
    with pytest.raises(ConnectionRefusedError):
        client.connect()
