"""The MQTT gateway end to end: a raw terminal publishes through a real broker, the host applies and replies."""
import json

import pytest
from sqlalchemy import func, select

from server.models import Alert
from terminals.models import Event, MeterDay, MeterSnapshot, Terminal, TerminalMessage
from tests.support.terminal import HELLO, METERS, RawTerminal, eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def floor_terminal(api, gateway, broker, host):
    r = api.as_("slot_tech").post("/terminals", json={"egm_id": "EGM1", "protocol": "mqtt", "location": {"bank": "A"}})
    assert r.status_code == 201
    term = RawTerminal(broker, "EGM1", r.get_json()["mqtt"]["password"], root=host.settings.topic_root)
    yield term
    term.close()


def count(host, model, *where):
    with host.db.read() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def approve(api, sha="ab" * 32):
    r = api.as_("slot_tech").post("/software", json={"name": "reels", "version": "1.0", "sha256": sha})
    assert r.status_code == 201


def test_hello_reply_new_terminal_is_disabled(floor_terminal, api, host):
    approve(api)
    reply = floor_terminal.request("hello", HELLO)
    assert reply["type"] == "hello.reply"
    body = reply["body"]
    assert body["enabled"] is False  # rules.md 22: a new terminal starts disabled
    assert body["voucher"] == {"expiry_days": 180}
    assert body["config_key"] == host.signer.public_key_b64
    assert body["expected_config"] is None
    with host.db.read() as s:
        t = s.execute(select(Terminal).where(Terminal.egm_id == "EGM1")).scalar_one()
        assert (t.manufacturer, t.model, t.serial) == ("Acme", "Reel 5", "SN-1")
        assert t.comms == "online"
    assert count(host, Alert, Alert.kind == "software_unapproved") == 0


def test_unapproved_software_disables_and_alerts(floor_terminal, api, host):
    approve(api)
    assert api.as_("manager").post("/terminals/EGM1/commands", json={"name": "enable"}).status_code == 409  # unknown comms
    reply = floor_terminal.request("hello", {**HELLO, "software": {"name": "x", "version": "9", "sha256": "cd" * 32}})
    assert reply["body"]["enabled"] is False
    assert count(host, Alert, Alert.kind == "software_unapproved", Alert.egm_id == "EGM1") == 1
    assert count(host, Event, Event.code == "software.auth_failed") == 1


def test_enable_command_is_acknowledged(floor_terminal, api, host):
    approve(api)
    floor_terminal.request("hello", HELLO)
    mgr = api.as_("manager")
    r = mgr.post("/terminals/EGM1/commands", json={"name": "enable"})
    assert r.status_code == 202
    cid = r.get_json()["command_id"]
    assert api.as_("manager").get("/terminals").get_json()[0]["enabled"] is True  # at once, in the host
    cmd = floor_terminal.wait(lambda m: m["type"] == "cmd")
    assert cmd["id"] == cid and cmd["body"] == {"name": "enable", "args": {}}
    assert mgr.get(f"/terminals/EGM1/commands/{cid}").get_json()["status"] == "sent"
    floor_terminal.send("cmd.ack", {"id": cid, "result": "ok"})
    eventually(lambda: mgr.get(f"/terminals/EGM1/commands/{cid}").get_json()["status"] == "ok")


def test_meters_deltas_and_ram_clear(floor_terminal, host):
    m1 = {**METERS, "coin_in_cents": 10_000, "coin_out_cents": 9_000, "games_played": 40}
    m2 = {**m1, "coin_in_cents": 12_500, "coin_out_cents": 9_500, "games_played": 50}
    m3 = {**METERS, "coin_in_cents": 300}  # went backwards: a RAM clear
    for m in (m1, m2, m3):
        floor_terminal.send("meters", {"meters": m})
    eventually(lambda: count(host, MeterSnapshot) == 3)
    with host.db.read() as s:
        snaps = s.execute(select(MeterSnapshot).order_by(MeterSnapshot.id)).scalars().all()
        assert snaps[1].deltas["coin_in_cents"] == 2_500 and snaps[1].deltas["games_played"] == 10
        assert [x.series for x in snaps] == [1, 1, 2]
        assert all(v >= 0 for x in snaps for v in x.deltas.values())
        day = s.execute(select(MeterDay)).scalar_one()
        assert (day.coin_in_cents, day.coin_out_cents, day.games_played, day.ram_clears) == (2_500, 500, 10, 1)
    assert count(host, Alert, Alert.kind == "ram_clear") == 1


def test_duplicate_seq_applied_once_same_reply(floor_terminal, api, host):
    approve(api)
    seq = floor_terminal.send("hello", HELLO)
    first = floor_terminal.reply(seq)
    floor_terminal.send("hello", HELLO, seq=seq)  # QoS 1 redelivery, or a replay after an outage
    again = floor_terminal.reply(seq)
    assert again["body"] == first["body"] and again["id"] != first["id"]
    floor_terminal.send("event", {"code": "door.main.open", "detail": {}})
    floor_terminal.send("event", {"code": "door.main.open", "detail": {}}, seq=seq + 1)
    floor_terminal.send("event", {"code": "door.main.closed", "detail": {}})
    eventually(lambda: count(host, TerminalMessage) == 3)
    assert count(host, Event, Event.code.like("door.%")) == 2
    eventually(lambda: host.metrics.value("floorhost_terminal_messages_total", result="duplicate") == 2)


def test_sequence_gap_and_late_replay(floor_terminal, host):
    floor_terminal.send("event", {"code": "power.on", "detail": {}}, seq=1042)
    floor_terminal.send("event", {"code": "bill.jam", "detail": {}}, seq=1050)
    eventually(lambda: count(host, Event, Event.code == "comms.sequence_gap") == 1)
    with host.db.read() as s:
        gap = s.execute(select(Event).where(Event.code == "comms.sequence_gap")).scalar_one()
        assert gap.detail == {"expected": 1043, "received": 1050, "missing": 7}
    floor_terminal.send("event", {"code": "stacker.full", "detail": {}}, seq=1045)
    eventually(lambda: count(host, TerminalMessage, TerminalMessage.late.is_(True)) == 1)
    assert count(host, Event, Event.code == "stacker.full") == 1
    assert count(host, Alert, Alert.kind == "sequence_gap") == 1


def test_unknown_event_code_stored_and_flagged(floor_terminal, host):
    floor_terminal.send("event", {"code": "coffee.spilled", "detail": {"cup": 1}})
    eventually(lambda: count(host, Event, Event.code == "unknown") == 1)
    with host.db.read() as s:
        ev = s.execute(select(Event).where(Event.code == "unknown")).scalar_one()
        assert ev.raw_code == "coffee.spilled" and ev.detail["flagged"] is True


def test_door_and_tilt_drive_state(floor_terminal, api):
    state = lambda: api.as_("attendant").get("/terminals/EGM1").get_json()["state"]  # noqa: E731
    floor_terminal.send("event", {"code": "door.main.open", "detail": {}})
    assert eventually(lambda: state() == "door_open")
    floor_terminal.send("event", {"code": "tilt", "detail": {"reason": "reel"}})
    assert eventually(lambda: state() == "tilt")
    floor_terminal.send("event", {"code": "power.on", "detail": {}})  # a power cycle clears the tilt
    assert eventually(lambda: state() == "door_open")
    floor_terminal.send("event", {"code": "door.main.closed", "detail": {}})
    assert eventually(lambda: state() == "online")


def test_bad_input_rejected_counted_and_answered(floor_terminal, host):
    floor_terminal.raw(b"not json at all")
    floor_terminal.raw(json.dumps({"v": 2, "seq": 1, "ts": "2026-11-23T04:12:09Z", "type": "meters", "body": {}}).encode())
    # A hello missing its body fields: it has a reply type, so it gets an error reply.
    floor_terminal.raw(json.dumps({"v": 1, "seq": 7, "ts": "2026-11-23T04:12:09Z", "type": "hello", "body": {}}).encode())
    reply = floor_terminal.reply(7)
    assert reply["type"] == "hello.reply" and reply["body"]["result"] == "error" and reply["body"]["reason"]
    eventually(lambda: host.metrics.value("floorhost_terminal_messages_total", result="rejected") == 3)
    assert count(host, TerminalMessage) == 0
    assert host.metrics.value("floorhost_terminal_messages_total", result="applied") == 0


def test_unknown_terminal_dropped_and_counted(gateway, broker, host):
    stranger = RawTerminal(broker, "GHOST", root=host.settings.topic_root)
    try:
        stranger.send("event", {"code": "tilt", "detail": {}})
        eventually(lambda: host.metrics.value("floorhost_terminal_messages_total", result="rejected") == 1)
        assert host.metrics.value("floorhost_terminal_rejects_total", protocol="mqtt", reason="unknown_terminal") == 1
        assert count(host, Event) == 0 and count(host, TerminalMessage) == 0
    finally:
        stranger.close()


def test_last_will_marks_offline(floor_terminal, host, api):
    floor_terminal.status("online")
    eventually(lambda: api.as_("attendant").get("/terminals/EGM1").get_json()["state"] == "online")
    floor_terminal.mqtt.drop()
    eventually(lambda: count(host, Event, Event.code == "comms.offline") == 1, timeout=15)
    assert api.as_("attendant").get("/terminals/EGM1").get_json()["state"] == "offline"
    assert count(host, Alert, Alert.kind == "comms_offline") == 1


def test_heartbeat_marks_silent_terminal_offline(floor_terminal, host):
    import datetime as dt

    from terminals import jobs

    floor_terminal.send("event", {"code": "power.on", "detail": {}})
    eventually(lambda: count(host, Event, Event.code == "power.on") == 1)
    assert jobs.heartbeat(host) == 0
    later = host.now() + dt.timedelta(seconds=host.settings.terminal_heartbeat_seconds + 1)
    host.now = lambda: later
    assert jobs.heartbeat(host) == 1
    with host.db.read() as s:
        ev = s.execute(select(Event).where(Event.code == "comms.offline")).scalar_one()
        assert ev.detail == {"cause": "heartbeat"}
