"""The MQTT terminal simulator against a real Mosquitto and a small fake host.

The fake host is a paho subscriber on sbg/v1/egm/+/up that answers requests on
down with `re` (the same reply again for a repeated seq, as the contract says),
so every check here is about what crosses the real wire.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import socket
import subprocess
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from terminals.simulators.floor import ProcessFloor, SimFloor
from terminals.simulators.mqtt_terminal import METER_NAMES, SimTerminal, canonical_sha256

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

HELLO_KEYS = {"manufacturer", "model", "serial", "software", "denoms_cents", "config"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_mosquitto(directory, port: int, persistence: bool = False) -> subprocess.Popen:
    conf = directory / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        + (f"persistence true\npersistence_location {directory}/\n" if persistence else "persistence false\n") +
        "max_queued_messages 100000\n"
        "log_dest none\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("mosquitto did not start")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory):
    port = _free_port()
    proc = _start_mosquitto(tmp_path_factory.mktemp("mosquitto"), port)
    yield f"mqtt://127.0.0.1:{port}"
    proc.kill()
    proc.wait(5)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeHost:
    """Just enough of a host: records every up message and answers requests."""

    def __init__(self, broker_url: str, root: str = "sbg/v1", client_id: str | None = None,
                 clean_session: bool = True):
        host, port = broker_url.removeprefix("mqtt://").split(":")
        self.root = root
        self.lock = threading.Lock()
        self.up: dict[str, list[dict]] = defaultdict(list)
        self.status: dict[str, dict] = {}
        self.replies: dict[tuple[str, int], dict] = {}
        self.hold: dict[str, int] = defaultdict(int)  # reply type's request → receipts left unanswered
        self.enabled = True
        self.key = Ed25519PrivateKey.generate()
        self.vouchers: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._numbers = itertools.count(100000000000000001)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"fake-host-{id(self)}",
                                  clean_session=clean_session)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(host, int(port))
        self.client.subscribe([(f"{root}/egm/+/up", 1), (f"{root}/egm/+/status", 1)])
        self.client.loop_start()
        assert subscribed.wait(5)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def config_key(self) -> str:
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def _on_message(self, client, userdata, msg):
        egm_id, kind = msg.topic.split("/")[-2:]
        data = json.loads(msg.payload)
        with self.lock:
            if kind == "status":
                self.status[egm_id] = data
                return
            self.up[egm_id].append(data)
            reply = self._reply_for(egm_id, data)
        if reply is not None:
            client.publish(f"{self.root}/egm/{egm_id}/down", json.dumps(reply), qos=1)

    def _reply_for(self, egm_id: str, env: dict) -> dict | None:
        key = (egm_id, env["seq"])
        if key in self.replies:
            return self.replies[key]  # a repeated seq gets the same reply again
        type_, body = env["type"], env["body"]
        if self.hold[type_] > 0:
            self.hold[type_] -= 1
            return None
        if type_ == "hello":
            reply_type = "hello.reply"
            reply = {
                "time": _now(),
                "enabled": self.enabled,
                "expected_config": None,
                "voucher": {"expiry_days": 180},
                "config_key": self.config_key,
            }
        elif type_ == "voucher.issue":
            reply_type = "voucher.issue.reply"
            number = str(next(self._numbers))
            self.vouchers[number] = {**body, "status": "issued"}
            reply = {"result": "ok", "validation_number": number, "expires_at": _now()}
        elif type_ == "voucher.redeem":
            reply_type = "voucher.redeem.reply"
            voucher = self.vouchers.get(body["validation_number"])
            if voucher is None or voucher["status"] != "issued":
                reply = {"result": "rejected", "reason": "not_found" if voucher is None else voucher["status"]}
            else:
                voucher["status"] = "pending"
                reply = {"result": "authorized", "amount_cents": voucher["amount_cents"], "credit_type": voucher["credit_type"]}
        elif type_ == "card.in":
            reply_type = "card.reply"
            reply = {"status": "ok", "player": {"display_name": "Ann", "tier": "gold", "points": 10}}
        elif type_ == "handpay":
            reply_type = "handpay.reply"
            reply = {"result": "ok", "handpay_id": f"hp-{env['seq']}"}
        else:
            return None
        envelope = {"v": 1, "id": f"h-{next(self._ids):06d}", "ts": _now(), "type": reply_type, "re": env["seq"], "body": reply}
        self.replies[key] = envelope
        return envelope

    def send(self, egm_id: str, type_: str, body: dict) -> str:
        message_id = f"h-{next(self._ids):06d}"
        envelope = {"v": 1, "id": message_id, "ts": _now(), "type": type_, "body": body}
        self.client.publish(f"{self.root}/egm/{egm_id}/down", json.dumps(envelope), qos=1)
        return message_id

    def messages(self, egm_id: str, type_: str | None = None) -> list[dict]:
        with self.lock:
            return [m for m in self.up[egm_id] if type_ is None or m["type"] == type_]

    def wait(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def signed_push(self, package: dict, deployment_id: str = "dep-1", apply: str = "now", key=None) -> dict:
        digest = canonical_sha256(package)
        signature = (key or self.key).sign(digest)
        return {
            "deployment_id": deployment_id,
            "package": package,
            "sha256": digest.hex(),
            "signature": base64.b64encode(signature).decode(),
            "apply": apply,
        }


@pytest.fixture
def host(broker_url):
    fake = FakeHost(broker_url)
    yield fake
    fake.close()


@pytest.fixture
def make_sim(broker_url, tmp_path):
    made = []

    def make(egm_id, **kwargs):
        kwargs.setdefault("state_dir", tmp_path / "nvram")
        kwargs.setdefault("seed", 7)
        kwargs.setdefault("reply_timeout", 0.4)
        sim = SimTerminal(egm_id, broker_url, **kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        if not sim._stopped:
            sim.stop(graceful=False, timeout=2)


def _online(sim: SimTerminal) -> None:
    assert sim.wait_for(lambda: sim.connected and sim.state["enabled"], 5), sim.state


def _seqs(messages: list[dict]) -> list[int]:
    return [m["seq"] for m in messages]


def _hellos(host: FakeHost, egm_id: str) -> list[int]:
    """Distinct hello seqs (a hello whose reply was late is sent again with its seq)."""
    return sorted({m["seq"] for m in host.messages(egm_id, "hello")})


def _assert_no_seq_reuse(messages: list[dict]) -> None:
    """A seq names one message for ever: copies are byte-identical, first sightings increase."""
    first: dict[int, dict] = {}
    for m in messages:
        assert first.setdefault(m["seq"], m) == m, f"seq {m['seq']} reused"
    assert list(first) == sorted(first)


def test_hello_on_connect_carries_the_spec_body_and_status_is_online(host, make_sim):
    sim = make_sim("T-HELLO", software_sha256="ab" * 32, meters_interval=None)
    _online(sim)
    hello = host.messages("T-HELLO", "hello")[0]
    assert hello["v"] == 1 and hello["seq"] == 1 and hello["ts"].endswith("Z")
    assert set(hello["body"]) == HELLO_KEYS
    assert set(hello["body"]["software"]) == {"name", "version", "sha256"}
    assert hello["body"]["software"]["sha256"] == "ab" * 32  # posing as unapproved software
    assert hello["body"]["denoms_cents"] == [1, 5, 25]
    assert hello["body"]["config"] == {"deployment_id": None, "sha256": None}
    assert host.wait(lambda: host.status.get("T-HELLO", {}).get("state") == "online")
    assert "ts" in host.status["T-HELLO"]
    assert sim.last_reply("hello.reply")["re"] == 1
    assert sim.state["config_key"] == host.config_key
    # Losing the connection without DISCONNECT makes the broker publish the last will.
    assert sim.disconnect()
    assert host.wait(lambda: host.status.get("T-HELLO") == {"state": "offline"})
    sim.reconnect()
    assert sim.wait_for(lambda: sim.connected, 5)
    assert host.wait(lambda: len(_hellos(host, "T-HELLO")) == 2)  # hello again at every connect
    assert host.wait(lambda: host.status.get("T-HELLO", {}).get("state") == "online")


def test_seq_is_strictly_increasing_and_survives_a_restart(host, make_sim, tmp_path):
    sim = make_sim("T-SEQ", meters_interval=None)
    _online(sim)
    assert sim.insert_bill(2000) is not None
    for _ in range(20):
        sim.play_game()
    sim.send_meters()
    assert sim.wait_for(lambda: sim.outbox_size == 0, 5)
    last = sim.seq
    assert json.loads((tmp_path / "nvram" / "T-SEQ.json").read_text())["seq"] == last
    meters = sim.state["meters"]
    sim.kill()

    again = make_sim("T-SEQ", meters_interval=None)
    _online(again)
    assert host.wait(lambda: len(_hellos(host, "T-SEQ")) == 2)
    _assert_no_seq_reuse(host.messages("T-SEQ"))
    assert _hellos(host, "T-SEQ")[1] > last
    # NVRAM keeps the lifetime meters too.
    assert again.state["meters"]["games_played"] == meters["games_played"] == 20
    assert again.state["meters"]["bills_in_cents"] == 2000


def test_game_end_and_meters_bodies_follow_the_spec(host, make_sim):
    sim = make_sim("T-PLAY", meters_interval=None, rtp=0.9)
    _online(sim)
    sim.insert_bill(10000)
    for _ in range(200):
        sim.play_game()
    sim.send_meters()
    assert host.wait(lambda: len(host.messages("T-PLAY", "meters")) == 1)
    games = host.messages("T-PLAY", "game.end")
    assert len(games) == 200
    assert set(games[0]["body"]) == {"game", "denom_cents", "wager_cents", "win_cents", "credits_after_cents"}
    assert set(games[0]["body"]["game"]) == {"theme", "paytable_id"}
    meters = host.messages("T-PLAY", "meters")[0]["body"]["meters"]
    assert list(meters) == list(METER_NAMES)
    assert all(isinstance(v, int) for v in meters.values())
    assert meters["coin_in_cents"] == sum(g["body"]["wager_cents"] for g in games)
    assert meters["coin_out_cents"] == sum(g["body"]["win_cents"] for g in games)
    assert meters["games_won"] == sum(1 for g in games if g["body"]["win_cents"])
    assert meters["current_credits_cents"] == games[-1]["body"]["credits_after_cents"]
    assert meters["current_credits_cents"] == 10000 - meters["coin_in_cents"] + meters["coin_out_cents"]
    bill = host.messages("T-PLAY", "event")
    assert {"code": "bill.accepted", "detail": {"amount_cents": 10000}} in [m["body"] for m in bill]


def test_voucher_issue_is_resent_with_the_same_seq_until_its_reply(host, make_sim):
    sim = make_sim("T-VOUCH", meters_interval=None, print_fail_rate=0.0)
    _online(sim)
    sim.insert_bill(5000)
    host.hold["voucher.issue"] = 2
    seq = sim.cash_out()
    assert sim.play_game() is None  # no play while the cash-out waits
    assert host.wait(lambda: host.messages("T-VOUCH", "voucher.printed"), 5)
    issues = host.messages("T-VOUCH", "voucher.issue")
    assert len(issues) == 3 and {m["seq"] for m in issues} == {seq}
    assert issues[0]["body"] == {"amount_cents": 5000, "credit_type": "cashable"}
    number = sim.last_reply("voucher.issue.reply")["body"]["validation_number"]
    assert host.messages("T-VOUCH", "voucher.printed")[0]["body"] == {"validation_number": number}
    assert sim.wait_for(lambda: sim.state["credits_cents"] == 0)
    assert sim.state["meters"]["voucher_out_cents"] == 5000

    # Ticket-in of the voucher it printed: authorized → credits up → commit.
    redeem = sim.insert_ticket(number)
    assert host.wait(lambda: host.messages("T-VOUCH", "voucher.redeem.commit"), 5)
    assert host.messages("T-VOUCH", "voucher.redeem")[0]["seq"] == redeem
    assert host.messages("T-VOUCH", "voucher.redeem.commit")[0]["body"] == {"validation_number": number, "amount_cents": 5000}
    assert sim.wait_for(lambda: sim.state["credits_cents"] == 5000)
    assert sim.state["meters"]["voucher_in_cents"] == 5000
    # A rejected ticket changes nothing.
    sim.insert_ticket("999999999999999999")
    assert sim.wait_for(lambda: sim.last_reply("voucher.redeem.reply")["body"]["result"] == "rejected")
    assert sim.wait_for(lambda: sim.state["busy"] is None)
    assert sim.state["credits_cents"] == 5000


def test_dropped_replies_make_the_terminal_ask_again(host, make_sim):
    sim = make_sim("T-DROP", meters_interval=None, drop_replies={"card.reply": 1})
    _online(sim)
    seq = sim.card_in("CARD-1")
    assert sim.wait_for(lambda: sim.state["session"] is not None, 5)
    assert _seqs(host.messages("T-DROP", "card.in")) == [seq, seq]
    assert sim.state["session"]["player"]["tier"] == "gold"
    sim.card_out()
    assert host.wait(lambda: host.messages("T-DROP", "card.out"))
    assert host.messages("T-DROP", "card.out")[0]["body"] == {"card_id": "CARD-1"}


def test_outage_buffers_in_order_and_replays_without_reusing_seq(host, make_sim):
    sim = make_sim("T-OUT", meters_interval=None)
    _online(sim)
    last = sim.insert_bill(1000)
    assert sim.wait_for(lambda: sim.outbox_size == 0)
    assert host.wait(lambda: last in _seqs(host.messages("T-OUT")))
    before = _seqs(host.messages("T-OUT"))
    assert sim.disconnect()
    buffered = [sim.play_game() for _ in range(5)] + [sim.send_meters(), sim.open_door("main")]
    time.sleep(0.3)
    assert _seqs(host.messages("T-OUT")) == before  # nothing reached the host while offline
    assert sim.outbox_size == 7
    sim.reconnect()
    assert host.wait(lambda: len(_hellos(host, "T-OUT")) == 2, 5)
    after = _seqs(host.messages("T-OUT"))[len(before):]
    assert after[: len(buffered)] == buffered  # replayed in order, same seqs
    assert _hellos(host, "T-OUT")[1] > max(buffered) > max(before)

    # A power loss while offline: the buffer is in NVRAM and the next boot replays it.
    assert sim.wait_for(lambda: sim.outbox_size == 0)
    assert sim.disconnect()
    lost = [sim.close_door("main"), sim.send_event("printer.paper_low")]
    sim.kill()
    reborn = make_sim("T-OUT", meters_interval=None)
    _online(reborn)
    assert host.wait(lambda: len(_hellos(host, "T-OUT")) == 3, 5)
    assert _hellos(host, "T-OUT")[2] > lost[-1]
    replayed = [m for m in host.messages("T-OUT") if m["type"] != "hello"][-2:]
    assert _seqs(replayed) == lost
    assert [m["body"]["code"] for m in replayed] == ["door.main.closed", "printer.paper_low"]
    _assert_no_seq_reuse(host.messages("T-OUT"))


def test_commands_are_acknowledged_naming_the_host_id(host, make_sim):
    sim = make_sim("T-CMD", meters_interval=None)
    _online(sim)

    def ack_for(message_id):
        host.wait(lambda: any(m["body"]["id"] == message_id for m in host.messages("T-CMD", "cmd.ack")))
        return next(m for m in host.messages("T-CMD", "cmd.ack") if m["body"]["id"] == message_id)

    mid = host.send("T-CMD", "cmd", {"name": "meters.request", "args": {}})
    ack = ack_for(mid)
    assert ack["body"] == {"id": mid, "result": "ok"}
    assert host.messages("T-CMD", "meters")[-1]["seq"] < ack["seq"]

    mid = host.send("T-CMD", "cmd", {"name": "handpay.reset", "args": {}})
    assert ack_for(mid)["body"] == {"id": mid, "result": "refused", "reason": "no_handpay_pending"}

    mid = host.send("T-CMD", "cmd", {"name": "message", "args": {"text": "Happy hour"}})
    assert ack_for(mid)["body"]["result"] == "ok"
    assert sim.state["message"] == "Happy hour"

    mid = host.send("T-CMD", "cmd", {"name": "disable", "args": {}})
    assert ack_for(mid)["body"]["result"] == "ok"
    assert not sim.state["enabled"]
    assert sim.step() is None and sim.insert_bill(100) is None  # no play while disabled
    mid = host.send("T-CMD", "cmd", {"name": "enable", "args": {}})
    assert ack_for(mid)["body"]["result"] == "ok"
    assert sim.state["enabled"]

    # A jackpot locks the terminal until an attendant resets the handpay.
    sim.insert_bill(100)
    seq = sim.jackpot(250_000)
    assert host.wait(lambda: host.messages("T-CMD", "handpay"))
    assert host.messages("T-CMD", "handpay")[0]["body"] == {"amount_cents": 250_000, "kind": "jackpot"}
    assert host.messages("T-CMD", "game.end")[-1]["seq"] == seq
    assert sim.wait_for(lambda: sim.state["handpay"]["handpay_id"] is not None)
    assert sim.step() is None and sim.play_game() is None
    mid = host.send("T-CMD", "cmd", {"name": "handpay.reset", "args": {}})
    assert ack_for(mid)["body"] == {"id": mid, "result": "ok"}
    assert not sim.state["locked"] and sim.state["meters"]["jackpot_cents"] == 250_000
    assert host.messages("T-CMD", "event")[-1]["body"]["code"] == "handpay.reset"

    mid = host.send("T-CMD", "cmd", {"name": "time.set", "args": {"time": "2031-01-01T00:00:00Z"}})
    assert ack_for(mid)["body"]["result"] == "ok"
    sim.send_meters()
    assert host.wait(lambda: host.messages("T-CMD", "meters")[-1]["ts"].startswith("2031-01-01"))
    mid = host.send("T-CMD", "cmd", {"name": "reboot", "args": {}})
    assert ack_for(mid)["body"] == {"id": mid, "result": "refused", "reason": "unknown_command"}


def test_config_push_is_verified_installed_or_rejected(host, make_sim):
    sim = make_sim("T-CFG", meters_interval=None)
    _online(sim)

    def states(deployment_id):
        return [(m["body"]["state"], m["body"].get("reason")) for m in host.messages("T-CFG", "config.status")
                if m["body"]["deployment_id"] == deployment_id]

    package = {"name": "floor-a", "denoms_cents": [1, 2, 5], "rtp_bp": 9400, "limits": {"bill_max_cents": 10000}}
    good = host.signed_push(package, "dep-good")
    host.send("T-CFG", "config.push", good)
    assert host.wait(lambda: len(states("dep-good")) == 3)
    assert states("dep-good") == [("received", None), ("verified", None), ("installed", None)]
    assert host.messages("T-CFG", "config.status")[0]["body"]["sha256"] == good["sha256"]
    assert sim.wait_for(lambda: sim.state["config"] == {"deployment_id": "dep-good", "sha256": good["sha256"]})
    assert sim.denoms_cents == [1, 2, 5]

    forged = host.signed_push(package, "dep-forged", key=Ed25519PrivateKey.generate())
    host.send("T-CFG", "config.push", forged)
    assert host.wait(lambda: len(states("dep-forged")) == 2)
    assert states("dep-forged") == [("received", None), ("rejected", "bad_signature")]

    tampered = {**good, "deployment_id": "dep-tampered", "package": {**package, "rtp_bp": 8000}}
    host.send("T-CFG", "config.push", tampered)
    assert host.wait(lambda: len(states("dep-tampered")) == 2)
    assert states("dep-tampered")[1] == ("rejected", "sha256_mismatch")
    assert sim.state["config"]["deployment_id"] == "dep-good"

    # Not idle when apply=idle: deferred, then installed once the credits are cashed out.
    sim.insert_bill(500)
    later = host.signed_push({"name": "floor-b"}, "dep-later", apply="idle")
    host.send("T-CFG", "config.push", later)
    assert host.wait(lambda: len(states("dep-later")) == 3)
    assert states("dep-later")[2] == ("deferred", "not_idle")
    sim.print_fail_rate = 0.0
    sim.cash_out()
    assert host.wait(lambda: len(states("dep-later")) == 4, 5)
    assert states("dep-later")[3] == ("installed", None)

    # The next hello reports the installed config.
    assert sim.disconnect()
    sim.reconnect()
    assert host.wait(lambda: len(_hellos(host, "T-CFG")) == 2)
    assert host.messages("T-CFG", "hello")[-1]["body"]["config"] == {"deployment_id": "dep-later", "sha256": later["sha256"]}

    sim.reject_configs = True
    host.send("T-CFG", "config.push", host.signed_push({"name": "floor-c"}, "dep-refused"))
    assert host.wait(lambda: len(states("dep-refused")) == 2)
    assert states("dep-refused")[1] == ("rejected", "rejected_by_terminal")


def test_a_terminal_booted_before_its_broker_keeps_trying_and_replays(tmp_path):
    port = _free_port()
    url = f"mqtt://127.0.0.1:{port}"
    # The host's persistent session exists before the terminal boots, as on a real floor: whatever the
    # terminal sends before the host is back is queued for it, not dropped for want of a subscriber.
    proc = _start_mosquitto(tmp_path, port, persistence=True)
    FakeHost(url, client_id="fake-host-early", clean_session=False).close()
    proc.terminate()
    proc.wait(5)
    proc = None
    sim = SimTerminal("T-EARLY", url, state_dir=tmp_path, meters_interval=None, reply_timeout=0.4)
    try:
        time.sleep(0.3)
        assert not sim.connected
        early = [sim.send_event("power.on"), sim.send_meters()]
        proc = _start_mosquitto(tmp_path, port, persistence=True)
        host = FakeHost(url, client_id="fake-host-early", clean_session=False)
        try:
            assert sim.wait_for(lambda: sim.connected and sim.state["enabled"], 10)
            assert host.wait(lambda: host.messages("T-EARLY", "hello"))
            seqs = _seqs(host.messages("T-EARLY"))
            assert seqs[:2] == early and seqs[2] == host.messages("T-EARLY", "hello")[0]["seq"]
            # The broker goes away and comes back: the terminal reconnects by itself.
            proc.kill()
            proc.wait(5)
            assert sim.wait_for(lambda: not sim.connected, 15)
            offline = sim.send_event("printer.paper_low")
        finally:
            host.close()
        proc = _start_mosquitto(tmp_path, port)
        host = FakeHost(url)
        try:
            # Back by itself: the buffered event is acknowledged and a new hello is answered.
            assert sim.wait_for(lambda: sim.connected and sim.outbox_size == 0, 15)
            assert sim.wait_for(lambda: (sim.last_reply("hello.reply") or {}).get("re", 0) > offline, 10)
        finally:
            host.close()
    finally:
        sim.stop(graceful=False, timeout=2)
        if proc is not None:
            proc.kill()
            proc.wait(5)


def _floor_counts(host: FakeHost, prefix: str) -> dict[str, int]:
    counted: dict[str, int] = defaultdict(int)
    with host.lock:
        for egm_id, messages in host.up.items():
            if egm_id.startswith(prefix):
                for m in messages:
                    counted[m["type"]] += 1
    return counted


def test_floor_of_200_connects_and_sends_at_the_given_rate(host, broker_url):
    rate = 300.0
    floor = SimFloor(200, broker_url, rate=rate, prefix="FL", seed=3)
    try:
        assert floor.start(timeout=20) == 200
        assert host.wait(lambda: len(_floor_counts(host, "FL")) and _floor_counts(host, "FL")["hello"] == 200, 10)
        assert len({e for e in host.status if e.startswith("FL")}) == 200
        before = _floor_counts(host, "FL")
        stats = floor.run(3.0)
        assert stats["connected"] == 200
        # Shared, noisy machines: the bounds leave room for a stalled scheduler, not for a wrong rate.
        assert 0.75 * rate <= stats["generated_per_s"] <= 1.15 * rate, stats
        assert 0.7 * rate <= stats["acked_per_s"] <= 1.2 * rate, stats
        assert floor.replies >= 200  # every hello got its reply
        assert host.wait(lambda: floor.outbox == 0)
        after = _floor_counts(host, "FL")
        window = {t: after[t] - before.get(t, 0) for t in ("game.end", "meters", "event")}
        total = sum(window.values())
        assert total >= 0.75 * rate * 3, window
        # A game slot that finds no terminal able to play (all busy mid-game on a loaded machine) becomes a bill,
        # as a player would: game.end's share sinks below 70 % when the machine is slow, never above it by much.
        assert 0.5 <= window["game.end"] / total <= 0.8, window
        assert 0.12 <= window["meters"] / total <= 0.28, window
    finally:
        floor.stop(timeout=5)
    assert floor.connected == 0


def test_process_floor_splits_terminals_and_rate_over_processes(host, broker_url):
    floor = ProcessFloor(2, 20, broker_url, rate=100.0, prefix="PF", seed=5)
    try:
        assert floor.start(timeout=20) == 20
        assert host.wait(lambda: _floor_counts(host, "PF")["hello"] == 20, 10)
        stats = floor.run(2.0)
        assert 70 <= stats["acked_per_s"] <= 130, stats
    finally:
        floor.stop(timeout=5)
    final = floor.stats()
    assert final["connected"] == 0 and final["acked"] >= 200
