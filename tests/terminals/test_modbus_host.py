"""The Modbus poller against simulated devices over real Modbus TCP on 127.0.0.1."""
from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from cashier.models import Handpay
from server.audit import SYSTEM
from server.models import Alert
from terminals import commands, registry, software
from terminals.modbus_host import ModbusHost
from terminals.models import Command, Event, MeterDay, MeterSnapshot
from terminals.simulators.modbus_device import (
    BAD_EXCEPTION,
    BAD_SILENT,
    BAD_STUCK_CONFIG,
    BAD_WRONG_MAP,
    DEFAULT_SHA256,
    ModbusDevice,
)

INTERVAL = 0.2
PACKAGE = {
    "name": "floor-a", "version": "1",
    "games": [{"theme": "Sevens", "paytable_id": "42", "rtp_bp": 9250, "denoms_cents": [5, 1],
               "max_bet_cents": 250}],
    "settings": {},
}


def wait_until(check, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Floor:
    """Simulated devices registered as Modbus terminals, and the poller, for one test."""

    def __init__(self, host):
        self.host = host
        self.devices: dict[str, ModbusDevice] = {}
        self.poller: ModbusHost | None = None
        with host.db.begin() as s:
            software.approve(s, SYSTEM, "sim", "1", DEFAULT_SHA256, host.now())

    def add(self, egm_id: str, *, enabled: bool = True, **device_kw) -> ModbusDevice:
        device = ModbusDevice(unit=1, seed=3, apply_delay=0.05, reset_delay=0.02, **device_kw)
        port = device.run_in_thread()
        self.devices[egm_id] = device
        with self.host.db.begin() as s:
            reg = registry.register(s, SYSTEM, egm_id, "modbus", {},
                                    {"host": "127.0.0.1", "port": port, "unit": 1, "interval_s": INTERVAL},
                                    self.host.now())
            if enabled:
                registry.set_enabled(s, SYSTEM, reg.terminal, True, self.host.now())
        return device

    def start(self) -> ModbusHost:
        self.poller = ModbusHost(self.host, timeout_s=0.3)
        self.poller.start()
        self.host.components["modbus"] = self.poller
        self.host.components.setdefault("routes", {})["modbus"] = self.poller
        return self.poller

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()
        for device in self.devices.values():
            device.stop_thread()

    # --- reading the database

    def terminal(self, egm_id: str):
        with self.host.db.read() as s:
            return registry.get(s, egm_id)

    def events(self, egm_id: str) -> list[str]:
        with self.host.db.read() as s:
            return list(s.execute(select(Event.code).where(Event.egm_id == egm_id).order_by(Event.id)).scalars())

    def snapshots(self, egm_id: str) -> list[MeterSnapshot]:
        with self.host.db.read() as s:
            return list(s.execute(select(MeterSnapshot).where(MeterSnapshot.egm_id == egm_id)
                                  .order_by(MeterSnapshot.id)).scalars())

    def alerts(self, kind: str) -> list[Alert]:
        with self.host.db.read() as s:
            return list(s.execute(select(Alert).where(Alert.kind == kind)).scalars())

    def caught_up(self, egm_id: str) -> bool:
        """The last snapshot has the device's meters now."""
        snaps = self.snapshots(egm_id)
        return bool(snaps) and snaps[-1].values == self.devices[egm_id].meters()

    def errors(self, kind: str) -> float:
        return self.host.metrics.value("floorhost_modbus_errors_total", kind=kind)

    def send(self, egm_id: str, name: str, args: dict | None = None):
        with self.host.db.begin() as s:
            t = registry.get(s, egm_id)
            out = commands.send(s, SYSTEM, t, name, args or {}, self.host.now())
        return out, self.poller.deliver_command(out).result(5)

    def command(self, out) -> Command:
        with self.host.db.read() as s:
            return commands.get(s, out.egm_id, out.command_id)


@pytest.fixture
def floor(host):
    f = Floor(host)
    yield f
    f.stop()


def online(floor, egm_id):
    return wait_until(lambda: floor.terminal(egm_id).comms == "online", what=f"{egm_id} online")


def test_play_gives_snapshots_and_day_deltas(floor):
    device = floor.add("MB1")
    floor.start()
    online(floor, "MB1")
    assert device.insert_bill(10_000)
    assert device.play(40, bet_cents=25) == 40
    wait_until(lambda: floor.caught_up("MB1"), what="meters caught up")
    played = device.meters()
    snaps = floor.snapshots("MB1")
    assert {s.series for s in snaps} == {1}
    assert all(s.source == "modbus" for s in snaps)
    with floor.host.db.read() as s:
        day = s.execute(select(MeterDay).where(MeterDay.egm_id == "MB1")).scalar_one()
    assert day.coin_in_cents == played["coin_in_cents"] == 1000
    assert day.games_played == 40
    assert day.bills_in_cents == 10_000
    assert day.coin_out_cents == played["coin_out_cents"]
    t = floor.terminal("MB1")
    assert t.current_credits_cents == played["current_credits_cents"]
    assert t.software["sha256"] == DEFAULT_SHA256 and t.enabled
    health = floor.poller.health()
    assert health["running"] and health["devices"]["MB1"]["comms"] == "online"


def test_meter_rollover_is_a_delta_not_a_ram_clear(floor):
    device = floor.add("MB1")
    device.set_meter("coin_in_cents", 2**32 - 100)
    floor.start()
    wait_until(lambda: floor.caught_up("MB1"), what="first reading")
    device.insert_bill(1000)
    device.play(10, bet_cents=50)
    wait_until(lambda: floor.caught_up("MB1"), what="rolled-over reading")
    last = floor.snapshots("MB1")[-1]
    assert last.values["coin_in_cents"] == 400
    assert last.series == 1
    assert not floor.alerts("ram_clear")


def test_doors_tilt_and_fault_become_events(floor):
    device = floor.add("MB1")
    floor.start()
    online(floor, "MB1")
    device.open_door("main")
    wait_until(lambda: "door.main.open" in floor.events("MB1"), what="door open")
    assert floor.terminal("MB1").door_open
    device.close_door("main")
    device.open_door("cashbox")
    wait_until(lambda: "door.cashbox.open" in floor.events("MB1"), what="cashbox open")
    device.close_door("cashbox")
    device.tilt()
    device.set_fault()
    wait_until(lambda: {"tilt", "printer.fault", "door.cashbox.closed"} <= set(floor.events("MB1")),
               what="tilt and fault")
    assert floor.terminal("MB1").tilt and not floor.terminal("MB1").door_open
    device.clear_tilt()
    wait_until(lambda: not floor.terminal("MB1").tilt, what="tilt cleared")
    codes = floor.events("MB1")
    # Each edge once, even though every poll sees the levels.
    assert codes.count("door.main.open") == 1 and codes.count("tilt") == 1
    assert codes.index("door.main.open") < codes.index("door.main.closed")


def test_ram_clear_gives_one_new_series_and_one_alert(floor):
    device = floor.add("MB1")
    floor.start()
    wait_until(lambda: floor.caught_up("MB1"), what="first reading")
    device.insert_bill(5000)
    device.play(20, bet_cents=10)
    wait_until(lambda: floor.caught_up("MB1") and floor.snapshots("MB1")[-1].values["games_played"] == 20,
               what="play recorded")
    device.ram_clear()
    wait_until(lambda: "ram.clear" in floor.events("MB1"), what="ram.clear event")
    n = len(floor.snapshots("MB1"))
    wait_until(lambda: len(floor.snapshots("MB1")) >= n + 3, what="more polls")
    assert floor.events("MB1").count("ram.clear") == 1
    assert [s.series for s in floor.snapshots("MB1")][-1] == 2
    assert len(floor.alerts("ram_clear")) == 1
    with floor.host.db.read() as s:
        day = s.execute(select(MeterDay).where(MeterDay.egm_id == "MB1")).scalar_one()
    assert day.ram_clears == 1 and day.coin_in_cents == 200


def test_meters_backwards_without_bit7_is_a_ram_clear(floor):
    device = floor.add("MB1")
    floor.start()
    device.insert_bill(5000)
    device.play(10, bet_cents=100)
    wait_until(lambda: floor.caught_up("MB1") and floor.snapshots("MB1")[-1].values["games_played"] == 10,
               what="play recorded")
    device.set_meter("coin_in_cents", 300)
    wait_until(lambda: floor.snapshots("MB1")[-1].series == 2, what="new series")
    assert len(floor.alerts("ram_clear")) == 1
    assert "ram.clear" not in floor.events("MB1")


def test_handpay_pending_gives_one_handpay_even_across_a_restart(floor):
    device = floor.add("MB1")
    floor.start()
    online(floor, "MB1")
    device.trigger_handpay(150_000)

    def pending():
        with floor.host.db.read() as s:
            return list(s.execute(select(Handpay).where(Handpay.egm_id == "MB1")).scalars())

    hp = wait_until(pending, what="handpay")
    assert hp[0].amount_cents == 150_000 and hp[0].source == "modbus" and hp[0].status == "pending"
    assert floor.terminal("MB1").handpay_pending
    # A restarted poller sees bit 3 set at its first poll; the pending handpay is not made twice.
    floor.poller.stop()
    n = len(floor.snapshots("MB1"))
    floor.start()
    wait_until(lambda: len(floor.snapshots("MB1")) >= n + 2, what="polls after restart")
    assert len(pending()) == 1
    # handpay.reset writes 130: the device keys the handpay off.
    out, result = floor.send("MB1", "handpay.reset")
    assert result == ("ok", None)
    wait_until(lambda: not device.status_bits & 1 << 3, what="device handpay cleared")
    assert device.meters()["jackpot_cents"] == 150_000


def test_commands_write_the_device_and_are_acknowledged(floor):
    device = floor.add("MB1")
    floor.start()
    online(floor, "MB1")
    out, result = floor.send("MB1", "disable")
    assert result == ("ok", None)
    assert device.status_bits & 1 << 5
    assert floor.command(out).status == "ok"
    assert device.insert_bill(500) is False
    out, result = floor.send("MB1", "enable")
    assert result == ("ok", None) and not device.status_bits & 1 << 5
    out, result = floor.send("MB1", "message", {"text": "hello"})
    assert result[0] == "refused" and floor.command(out).status == "refused"
    out, result = floor.send("MB1", "time.set", {"time": "2030-01-01T00:00:00Z"})
    assert result == ("ok", None)
    device.insert_bill(1000)
    device.play(3, bet_cents=10)
    out, result = floor.send("MB1", "meters.request")
    assert result == ("ok", None)
    assert floor.snapshots("MB1")[-1].values == device.meters()


def test_registry_enable_state_is_written_when_the_device_comes_online(floor):
    device = floor.add("MB1", enabled=False)
    assert not device.status_bits & 1 << 5
    floor.start()
    wait_until(lambda: device.status_bits & 1 << 5, what="device disabled by the host")
    # A second terminal registered later joins at reload().
    other = floor.add("MB2")
    floor.poller.reload()
    online(floor, "MB2")
    assert not other.status_bits & 1 << 5


def test_silent_device_goes_offline_after_three_polls_and_back(floor):
    device = floor.add("MB1")
    floor.start()
    online(floor, "MB1")
    device.set_bad_mode(BAD_SILENT)
    wait_until(lambda: floor.terminal("MB1").comms == "offline", timeout=8, what="offline")
    assert floor.errors("timeout") >= 3
    assert floor.poller.health()["devices"]["MB1"]["failures"] >= 3
    assert floor.events("MB1").count("comms.offline") == 1
    assert len(floor.alerts("comms_offline")) == 1
    device.set_bad_mode(None)
    online(floor, "MB1")
    assert "comms.online" in floor.events("MB1")
    assert floor.events("MB1").count("comms.offline") == 1


def test_exception_responses_and_wrong_map_are_counted_and_survived(floor):
    device = floor.add("MB1")
    floor.start()
    online(floor, "MB1")
    device.set_bad_mode(BAD_EXCEPTION)
    wait_until(lambda: floor.errors("exception") >= 2, what="exception responses")
    device.set_bad_mode(BAD_WRONG_MAP)
    wait_until(lambda: floor.terminal("MB1").comms == "offline", what="offline on wrong map")
    assert floor.errors("map_version") >= 1
    device.set_bad_mode(None)
    online(floor, "MB1")
    device.insert_bill(1000)
    wait_until(lambda: floor.caught_up("MB1"), what="polling again")


def test_stopped_device_is_offline(floor):
    device = floor.add("MB1")
    floor.start()
    online(floor, "MB1")
    device.stop_thread()
    wait_until(lambda: floor.terminal("MB1").comms == "offline", timeout=8, what="offline")
    assert floor.errors("connect") + floor.errors("timeout") >= 3


def test_config_push_installed_stuck_and_unmappable(floor):
    device = floor.add("MB1")
    stuck = floor.add("MB2")
    floor.start()
    online(floor, "MB1")
    poller = floor.poller
    assert poller.apply_config_sync("MB1", PACKAGE, 77, 3.0) == ("installed", None)
    assert device.config_in_force == 77
    assert device.game_in_force == {"denom_cents": 1, "max_bet_cents": 250, "paytable": 42, "rtp_bp": 9250}

    stuck.set_bad_mode(BAD_STUCK_CONFIG)
    outcome, reason = asyncio.run(poller.apply_config("MB2", PACKAGE, 78, 0.5))
    assert outcome == "failed" and "78" in reason
    assert stuck.config_in_force == 0

    bad = {**PACKAGE, "games": [{**PACKAGE["games"][0], "paytable_id": "PT-9"}]}
    outcome, reason = poller.apply_config_sync("MB1", bad, 79, 1.0)
    assert outcome == "rejected" and "paytable_id" in reason
    assert device.config_in_force == 77
    assert poller.apply_config_sync("NOPE", PACKAGE, 80, 0.5)[0] == "failed"
