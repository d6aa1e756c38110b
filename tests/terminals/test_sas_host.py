"""The SAS host against the SAS EGM emulator: on an in-memory line and on a real pty.

Each test registers SAS terminals, starts emulated EGMs on the far end of the line and the
host's SasHost on this end, drives the cabinets with plain calls and waits for the database.
"""
from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from cashier import vouchers
from cashier.models import Handpay, Voucher
from protocols.sas.long_polls import MachineInfo
from protocols.sas.transport import MemoryTransport, StreamTransport
from protocols.sas.validation import secure_enhanced_number
from server.audit import SYSTEM, Actor
from server.models import Alert
from terminals import commands, registry, software
from terminals.models import Command, Event, MeterSnapshot, PlayDay, Terminal
from terminals.sas_host import ROM_SEED, SasHost, sas_software_sha256
from terminals.sas_models import SasValidationState
from terminals.simulators.sas_egm import ANY, GENERAL, SasEgm, SasLine

OPERATOR = Actor("tech1", "slot_tech")


def wait_for(fn, timeout=8.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class Floor:
    """SAS terminals on one line, their emulated EGMs and the host's SasHost."""

    def __init__(self, host, port: str, egm_transport, egms: list[SasEgm], *, validation_ids=None,
                 meter_interval_s=60.0):
        self.host, self.port, self.egms = host, port, {e.address: e for e in egms}
        self.ids = {e.address: f"SAS{e.address:03d}" for e in egms}
        now = host.now()
        with host.db.begin() as s:
            for e in egms:
                conn = {"port": port, "address": e.address, "validation": e.validation}
                if validation_ids and e.address in validation_ids:
                    conn["validation_id"] = validation_ids[e.address]
                t = registry.register(s, SYSTEM, self.ids[e.address], "sas", {}, conn, now).terminal
                registry.set_enabled(s, SYSTEM, t, True, now)
                info = MachineInfo(e.game_id, e.additional_id, e.denom_code, e.max_bet, e.progressive_group,
                                   e.game_options, e.paytable, e.base_pct)
                sha = sas_software_sha256(info, ROM_SEED, e.rom_signature(ROM_SEED))
                if not software.is_approved(s, sha):
                    software.approve(s, SYSTEM, f"{e.game_id}{e.additional_id}", e.paytable, sha, now)
        self.line = SasLine(egm_transport, egms).start()
        self.sas = SasHost(host, meter_interval_s=meter_interval_s)
        self.sas.start()

    @property
    def poller(self):
        return self.sas.lines[self.port]

    def stop(self):
        self.sas.stop()
        self.line.stop()

    def terminal(self, address: int) -> Terminal:
        with self.host.db.read() as s:
            return registry.get(s, self.ids[address])

    def wait_online(self, timeout=8.0):
        wait_for(lambda: self.poller.health()["online"] == len(self.egms), timeout, what="all EGMs online")
        # Link-up ends with a meter read: once every EGM has a snapshot, link-up is done.
        for address in self.egms:
            wait_for(lambda: self.snapshots(address), timeout, what=f"first snapshot of {address}")

    def events(self, address: int, code: str | None = None) -> list[Event]:
        with self.host.db.read() as s:
            q = select(Event).where(Event.egm_id == self.ids[address]).order_by(Event.id)
            if code:
                q = q.where(Event.code == code)
            return list(s.execute(q).scalars())

    def snapshots(self, address: int) -> list[MeterSnapshot]:
        with self.host.db.read() as s:
            return list(s.execute(select(MeterSnapshot).where(MeterSnapshot.egm_id == self.ids[address])
                                  .order_by(MeterSnapshot.id)).scalars())

    def vouchers(self, **where) -> list[Voucher]:
        with self.host.db.read() as s:
            q = select(Voucher).order_by(Voucher.id)
            for k, v in where.items():
                q = q.where(getattr(Voucher, k) == v)
            return list(s.execute(q).scalars())

    def command(self, address: int, name: str, args=None) -> str:
        with self.host.db.begin() as s:
            t = registry.get(s, self.ids[address])
            out = commands.send(s, OPERATOR, t, name, args or {}, self.host.now())
        self.sas.deliver_command(out)
        return out.command_id

    def command_status(self, address: int, command_id: str) -> Command:
        with self.host.db.read() as s:
            return commands.get(s, self.ids[address], command_id)


@pytest.fixture
def memory_floor(host):
    floors = []

    def make(egms, **kw):
        name = f"line-{uuid.uuid4().hex[:8]}"
        _host_end, egm_end = MemoryTransport.named(name)
        floor = Floor(host, f"memory://{name}", egm_end, egms, **kw)
        floors.append(floor)
        return floor

    yield make
    for f in floors:
        f.stop()


def test_shared_line_meters_doors_bills_in_cents(memory_floor, host):
    quarter = SasEgm(1, denom_code=0x04, seed=1)
    penny = SasEgm(2, seed=2)
    nickel = SasEgm(3, denom_code=0x02, seed=3)
    floor = memory_floor([quarter, penny, nickel])
    floor.wait_online()
    assert floor.poller.health()["egms"] == 3
    for address in (1, 2, 3):
        assert floor.terminal(address).comms == "online"
        assert floor.terminal(address).enabled
    t = floor.terminal(1)
    assert t.denoms_cents == [25] and t.software["rom_signature"]

    assert quarter.insert_bill(2000)
    assert quarter.play(4, 2) == 4
    quarter.open_door()
    quarter.close_door()
    wait_for(lambda: floor.events(1, "door.main.closed"), what="door closed event")
    bills = floor.events(1, "bill.accepted")
    assert [b.detail["amount_cents"] for b in bills] == [2000]
    assert [e.code for e in floor.events(1) if e.code.startswith("door.")] == ["door.main.open", "door.main.closed"]
    assert all(e.source == "sas" for e in floor.events(1))

    cid = floor.command(1, "meters.request")
    wait_for(lambda: floor.command_status(1, cid).status == "ok", what="meters.request acknowledged")
    last = floor.snapshots(1)[-1]
    assert last.source == "sas"
    assert last.values["bills_in_cents"] == 2000
    assert last.values["coin_in_cents"] == 4 * 2 * 25
    assert last.values["games_played"] == 4
    assert last.values["door_open_count"] == 1
    assert last.values["current_credits_cents"] == quarter.credits_cents
    assert last.values["coin_out_cents"] == quarter.meter(0x01) * 25
    # The 7F game ends asked for meter reads: play is counted from the meter deltas.
    with host.db.read() as s:
        games = sum(r.games for r in s.execute(select(PlayDay).where(PlayDay.egm_id == "SAS001")).scalars())
        wager = sum(r.wager_cents for r in s.execute(select(PlayDay).where(PlayDay.egm_id == "SAS001")).scalars())
    assert (games, wager) == (4, 200)
    # The other EGMs of the line were polled all along.
    assert floor.snapshots(2) and floor.snapshots(3)
    # A bill of another value (exception 4F): its amount comes from the change of the bills-in meter,
    # after a known bill that kept the baseline current.
    assert quarter.insert_bill(500)
    assert quarter.insert_bill(20_000 - 25)  # no 47–50 code for this one: 4F
    wait_for(lambda: len(floor.events(1, "bill.accepted")) == 3, what="4F bill event")
    assert [b.detail["amount_cents"] for b in floor.events(1, "bill.accepted")] == [2000, 500, 19_975]


def test_system_validation_cashout_voucher_printed(memory_floor, host):
    egm = SasEgm(5, seed=5)
    floor = memory_floor([egm])
    floor.wait_online()
    egm.insert_bill(1000)
    assert egm.cash_out() == 1000
    wait_for(lambda: egm.tickets_printed, what="ticket printed")
    number = egm.tickets_printed[0].validation_number
    assert len(number) == 18 and number.startswith(f"{host.settings.sas_system_id:02d}")
    wait_for(lambda: floor.vouchers(validation_number=number, printed=True), what="voucher marked printed")
    v = floor.vouchers(validation_number=number)[0]
    assert (v.amount_cents, v.status, v.issued_by, v.credit_type) == (1000, "issued", "SAS005", "cashable")
    assert egm.credits_cents == 0


def test_ticket_in_of_mqtt_voucher_then_rejected_again(memory_floor, host):
    egm = SasEgm(7, seed=7)
    floor = memory_floor([egm])
    with host.db.begin() as s:
        number = vouchers.issue(s, vouchers.policy_for(host), amount_cents=2500, credit_type="cashable",
                                issued_by="MQ001", source="terminal", now=host.now()).validation_number
    floor.wait_online()
    assert egm.insert_ticket(number)
    wait_for(lambda: floor.vouchers(validation_number=number, status="redeemed"), what="voucher redeemed")
    v = floor.vouchers(validation_number=number)[0]
    assert v.redeemed_by == "SAS007" and v.redeemed_source == "terminal"
    assert egm.credits_cents == 2500
    assert [t.validation_number for t in egm.tickets_redeemed] == [number]

    # The same ticket again: refused (already redeemed), nothing credited.
    assert egm.insert_ticket(number)
    wait_for(lambda: egm._redemption.status >= 0x80, what="second ticket-in refused")
    time.sleep(0.5)
    assert egm.credits_cents == 2500 and len(egm.tickets_redeemed) == 1
    assert floor.vouchers(validation_number=number)[0].status == "redeemed"


def test_secure_enhanced_numbers_and_mismatch(memory_floor, host):
    egm = SasEgm(9, validation="secure_enhanced", seed=9)
    floor = memory_floor([egm], validation_ids={9: 0x654321})
    floor.wait_online()
    assert egm.validation_id == (0x654321, 0)  # LP 4C at link-up, sequence of a new terminal
    for amount in (1500, 700):
        egm.insert_bill(amount if amount >= 100 else 100)
        egm.cash_out()
    wait_for(lambda: len(floor.vouchers(issued_by="SAS009")) == 2, what="two vouchers from LP 4D")
    got = [(v.validation_number, v.amount_cents, v.flagged, v.printed) for v in floor.vouchers(issued_by="SAS009")]
    assert got[0] == ("006429188185446104", 1500, None, True)
    assert got[1][0] == secure_enhanced_number(0x654321, 2) and got[1][2] is None
    with host.db.read() as s:
        assert s.get(SasValidationState, "SAS009").sequence == 2

    # An EGM whose machine id is not the configured one: stored, flagged, alerted.
    with egm._lock:
        egm._machine_id = 0x111111
    egm.insert_bill(500)
    egm.cash_out()
    wait_for(lambda: len(floor.vouchers(issued_by="SAS009")) == 3, what="third voucher")
    bad = floor.vouchers(issued_by="SAS009")[-1]
    assert bad.flagged and "does not match" in bad.flagged
    with host.db.read() as s:
        assert s.execute(select(Alert).where(Alert.kind == "voucher_mismatch", Alert.egm_id == "SAS009")).first()


def test_handpay_pending_and_reset_at_cabinet(memory_floor, host):
    egm = SasEgm(11, denom_code=0x04, seed=11)
    floor = memory_floor([egm])
    floor.wait_online()
    assert egm.trigger_handpay(150_000)
    wait_for(lambda: _handpays(host, "SAS011"), what="handpay created")
    h = _handpays(host, "SAS011")[0]
    assert (h.amount_cents, h.kind, h.status, h.source) == (150_000, "jackpot", "pending", "sas")
    assert floor.terminal(11).handpay_pending
    egm.key_off_handpay()
    wait_for(lambda: floor.events(11, "handpay.reset"), what="handpay.reset event")
    assert _handpays(host, "SAS011")[0].status == "pending"


def _handpays(host, egm_id):
    with host.db.read() as s:
        return list(s.execute(select(Handpay).where(Handpay.egm_id == egm_id)).scalars())


def test_commands_enable_disable_and_refusals(memory_floor, host):
    egm = SasEgm(13, seed=13)
    floor = memory_floor([egm])
    floor.wait_online()
    cid = floor.command(13, "disable")
    wait_for(lambda: floor.command_status(13, cid).status == "ok", what="disable acknowledged")
    assert not egm.enabled and not floor.terminal(13).enabled
    cid = floor.command(13, "enable")
    wait_for(lambda: floor.command_status(13, cid).status == "ok", what="enable acknowledged")
    assert egm.enabled
    cid = floor.command(13, "time.set")
    wait_for(lambda: floor.command_status(13, cid).status == "ok", what="time.set acknowledged")
    for name, args in (("handpay.reset", {}), ("message", {"text": "hi"})):
        cid = floor.command(13, name, args)
        status = floor.command_status(13, cid)
        assert status.status == "refused" and status.reason


def test_unapproved_software_disables_the_egm(memory_floor, host):
    egm = SasEgm(15, seed=15, game_id="ZZ")
    name = f"line-{uuid.uuid4().hex[:8]}"
    _h, egm_end = MemoryTransport.named(name)
    now = host.now()
    with host.db.begin() as s:
        t = registry.register(s, SYSTEM, "SAS015", "sas", {}, {"port": f"memory://{name}", "address": 15}, now).terminal
        registry.set_enabled(s, SYSTEM, t, True, now)
    line = SasLine(egm_end, [egm]).start()
    sas = SasHost(host)
    sas.start()
    try:
        wait_for(lambda: not egm.enabled, what="LP 01 after the software check")
        with host.db.read() as s:
            t = registry.get(s, "SAS015")
            assert (t.enabled, t.disabled_reason) == (False, "software_unapproved")
            assert s.execute(select(Event).where(Event.code == "software.auth_failed")).first()
    finally:
        sas.stop()
        line.stop()


def test_faults_counted_and_survived(memory_floor, host):
    egm = SasEgm(17, seed=17)
    other = SasEgm(18, seed=18)
    floor = memory_floor([egm, other])
    floor.wait_online()
    egm.insert_bill(2000)
    # One fault per poll (the emulator applies one fault of each kind to a message it matches).
    egm.corrupt_next_reply(command=0x57)
    egm.garbage(command=0x58)
    egm.busy(command=0x4D)
    egm.drop_next_reply(command=GENERAL)
    egm.cash_out()
    wait_for(lambda: floor.vouchers(issued_by="SAS017", printed=True), timeout=10, what="voucher despite faults")
    assert len(floor.vouchers(issued_by="SAS017")) == 1 and len(egm.tickets_printed) == 1
    m = host.metrics
    line = floor.port
    for kind in ("bad_crc", "busy", "timeout"):
        assert m.value("floorhost_serial_errors_total", line=line, kind=kind) >= 1, kind
    garbage = sum(m.value("floorhost_serial_errors_total", line=line, kind=k)
                  for k in ("garbage", "wrong_address", "wrong_command", "bad_crc", "bad_length", "short_frame"))
    assert garbage >= 2
    # Noise behind a one-byte general-poll answer: counted, and the byte is not acted on.
    egm.garbage(command=GENERAL)
    wait_for(lambda: m.value("floorhost_serial_errors_total", line=line, kind="garbage") >= 1, what="garbage")
    assert floor.poller.health()["online"] == 2
    assert floor.poller.health()["errors"]["bad_crc"] >= 1


def test_nack_repeats_the_same_poll_then_gives_up(memory_floor, host):
    egm = SasEgm(19, seed=19)
    floor = memory_floor([egm])
    floor.wait_online()
    line, m = floor.port, host.metrics
    # Two NACKs: the original and one repeat fail, the second repeat gets the cash-out through.
    egm.insert_bill(1000)
    egm.nack(times=2, command=0x57)
    egm.cash_out()
    wait_for(lambda: floor.vouchers(issued_by="SAS019", printed=True), timeout=10, what="voucher after 2 NACKs")
    assert m.value("floorhost_serial_errors_total", line=line, kind="nack") == 2
    # Three NACKs: the original plus two repeats, then the poll is given up and no voucher is made.
    egm.insert_bill(500)
    egm.nack(times=3, command=0x57)
    egm.cash_out()
    wait_for(lambda: m.value("floorhost_serial_errors_total", line=line, kind="nack") == 5, timeout=10,
             what="three more NACKs")
    wait_for(lambda: not egm._faults, timeout=5, what="faults used up")
    import time as _t

    _t.sleep(1.0)
    assert len(floor.vouchers(issued_by="SAS019")) == 1
    assert m.value("floorhost_serial_errors_total", line=line, kind="nack") == 5  # given up: no fourth try


def test_link_down_and_recovery(memory_floor, host):
    egm = SasEgm(20, seed=20)
    floor = memory_floor([egm])
    floor.wait_online()
    before = len(floor.snapshots(20))
    egm.drop_next_reply(times=None, command=ANY)
    wait_for(lambda: floor.terminal(20).comms == "offline", timeout=9, what="comms offline")
    off = floor.events(20, "comms.offline")
    assert off and off[-1].detail == {"cause": "link"}
    egm.clear_faults()
    wait_for(lambda: floor.terminal(20).comms == "online", timeout=5, what="comms online")
    assert floor.events(20, "comms.online")
    wait_for(lambda: len(floor.snapshots(20)) > before, timeout=6, what="meter read after recovery")


def test_real_pty_line_two_egms(host):
    egm_end, path = StreamTransport.create_pty()
    egms = [SasEgm(1, seed=31), SasEgm(2, denom_code=0x04, seed=32)]
    floor = Floor(host, path, egm_end, egms)
    try:
        floor.wait_online()
        egms[1].insert_bill(500)
        egms[1].cash_out()
        wait_for(lambda: floor.vouchers(issued_by="SAS002", printed=True), what="voucher over the pty")
        assert floor.vouchers(issued_by="SAS002")[0].amount_cents == 500
        assert egms[1].tickets_printed[0].validation_number == floor.vouchers(issued_by="SAS002")[0].validation_number
    finally:
        floor.stop()
        egm_end.close()


def test_runtime_registers_the_manager_and_healthz(host, client):
    from server.runtime import Runtime

    rt = Runtime(host, gateway=False, scheduler=False)
    rt.start()
    try:
        assert isinstance(host.components["sas"], SasHost)
        assert host.components["routes"]["sas"] is host.components["sas"]
        name = f"line-{uuid.uuid4().hex[:8]}"
        _h, egm_end = MemoryTransport.named(name)
        with host.db.begin() as s:
            registry.register(s, SYSTEM, "SAS050", "sas", {}, {"port": f"memory://{name}", "address": 5}, host.now())
        host.components["sas"].reload()
        line = SasLine(egm_end, [SasEgm(5, seed=50)]).start()
        try:
            wait_for(lambda: host.components["sas_lines"][f"memory://{name}"].health()["online"] == 1,
                     what="line in health")
            body = client.get("/healthz").get_json()
            assert body["lines"][f"memory://{name}"]["egms"] == 1
        finally:
            line.stop()
    finally:
        rt.stop()
