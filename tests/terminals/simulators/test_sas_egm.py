"""The SAS EGM emulator, driven byte by byte as a minimal host would, over an
in-memory line and over a real pty."""

import ast
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from protocols.sas.crc import append_crc, check_crc, crc16
from protocols.sas.frames import BadCrc, general_poll, reply_needs
from protocols.sas.long_polls import (
    Ack,
    BasicMeters,
    DisableGame,
    EnableGame,
    ExtendedValidationStatus,
    HandpayInfo,
    PendingCashout,
    QueryRedeemStatus,
    ReadBasicMeters,
    ReadHandpayInfo,
    ReadPendingCashout,
    ReadRomSignature,
    ReadSelectedMeters,
    ReadTicketValidationData,
    ReadValidationRecord,
    RedeemStatus,
    RedeemTicket,
    SelectedMeters,
    SendValidationNumber,
    SetDateTime,
    SetExtendedValidationStatus,
    SetValidationId,
    ValidationId,
    ValidationNumberStatus,
    encode_poll,
    parse_reply,
)
from protocols.sas.transport import MemoryTransport, StreamTransport
from protocols.sas.validation import secure_enhanced_number
from terminals.simulators import sas_egm
from terminals.simulators.sas_egm import ANY, GENERAL, SasEgm, SasLine, default_rom

TICKET = "001234567890123456"
SYSTEM_DIGITS = "9876543210987654"


class MiniHost:
    """Just enough of a SAS host: send a poll, read its reply by the spec's lengths."""

    def __init__(self, transport):
        self.transport = transport

    def exchange(self, frame: bytes, timeout: float = 0.5, signature_pending: bool = False) -> bytes:
        self.transport.reset_input()
        self.transport.send(frame)
        received = b""
        deadline = time.monotonic() + timeout
        while (needs := reply_needs(frame, received, signature_pending=signature_pending)) > 0:
            # Wait for the first byte up to the timeout, then only the inter-byte gap.
            wait = max(0.0, deadline - time.monotonic()) if not received else 0.05
            chunk = self.transport.read(needs, wait)
            if not chunk:
                break
            received += chunk
        return received

    def gp(self, address: int, **kwargs) -> bytes:
        return self.exchange(general_poll(address), **kwargs)

    def exceptions(self, address: int, limit: int = 50) -> list[int]:
        """Exception codes until the first 00."""
        codes = []
        for _ in range(limit):
            reply = self.gp(address)
            assert len(reply) == 1, reply.hex(" ")
            if reply == b"\x00":
                return codes
            codes.append(reply[0])
        raise AssertionError(f"no 00 after {limit} general polls: {codes}")

    def lp(self, address: int, request):
        sent = encode_poll(address, request)
        return parse_reply(sent, self.exchange(sent))


@pytest.fixture(params=["memory", "pty"])
def wire(request):
    if request.param == "memory":
        host, egm_end = MemoryTransport.pair()
    else:
        host, path = StreamTransport.create_pty()
        egm_end = StreamTransport.open_path(path)
    yield host, egm_end
    host.close()
    egm_end.close()


@pytest.fixture
def memory_wire():
    host, egm_end = MemoryTransport.pair()
    yield host, egm_end
    host.close()
    egm_end.close()


def _serving(wire_ends):
    lines = []

    def start(*egms):
        lines.append(SasLine(wire_ends[1], egms).start())
        return MiniHost(wire_ends[0])

    return start, lines


@pytest.fixture
def serve(wire):
    """serve(egm, ...) puts EGMs on the (memory or pty) line; returns a MiniHost."""
    start, lines = _serving(wire)
    yield start
    for line in lines:
        line.stop()


@pytest.fixture
def serve_memory(memory_wire):
    start, lines = _serving(memory_wire)
    yield start
    for line in lines:
        line.stop()


# ------------------------------------------------------------ general poll


def test_general_poll_answers_queued_exceptions_in_order_then_00(serve):
    egm = SasEgm(1)
    host = serve(egm)
    egm.open_door()
    egm.close_door()
    egm.insert_bill(2000)
    egm.open_door("cashbox")
    assert host.gp(1) == b"\x11"
    assert host.gp(1) == b"\x12"
    assert host.gp(1) == b"\x4a"
    assert host.gp(1) == b"\x19"
    assert host.gp(1) == b"\x00"
    assert host.gp(1) == b"\x00"


def test_bills_raise_their_denomination_code(serve_memory):
    egm = SasEgm(1)
    host = serve_memory(egm)
    for cents in (100, 500, 1000, 2000, 5000, 10000, 200, 50000, 20000, 300):
        assert egm.insert_bill(cents)
    assert host.exceptions(1) == [0x47, 0x48, 0x49, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x50, 0x4F]


def test_games_raise_started_and_ended(serve_memory):
    egm = SasEgm(1, seed=3)
    host = serve_memory(egm)
    egm.insert_bill(100)
    assert egm.play(2, bet_credits=1) == 2
    assert host.exceptions(1) == [0x47, 0x7E, 0x7F, 0x7E, 0x7F]


def test_a_full_exception_buffer_reports_overflow_but_keeps_money_flows(serve_memory):
    egm = SasEgm(1, exception_limit=3)
    host = serve_memory(egm)
    for _ in range(4):
        egm.raise_exception(0x20)
    egm.insert_bill(500)
    egm.cash_out()
    assert host.exceptions(1) == [0x70, 0x20, 0x20, 0x20, 0x57]


# ------------------------------------------------------------ meters and info


def test_lp_1c_basic_meters_are_bcd_after_play(serve):
    egm = SasEgm(1, seed=7)
    host = serve(egm)
    egm.insert_bill(2000)
    assert egm.play(10, bet_credits=5) == 10
    reply = host.exchange(bytes([0x01, 0x1C]))
    assert len(reply) == 36 and reply[:2] == b"\x01\x1c" and check_crc(reply)
    fields = [reply[2 + 4 * i : 6 + 4 * i] for i in range(8)]
    assert fields[0] == bytes.fromhex("00000050")  # coin in: 10 games × 5 credits
    assert fields[2] == bytes.fromhex("00002000")  # drop: the $20 bill at 1¢
    assert fields[4] == bytes.fromhex("00000010")  # games played
    meters = parse_reply(bytes([0x01, 0x1C]), reply)
    assert isinstance(meters, BasicMeters)
    # Money in = money on the meter + money bet − money won.
    assert 2000 == egm.credits_cents + meters.coin_in - meters.coin_out
    assert meters.games_won == egm.meter(0x06) <= 10


def test_lp_2f_selected_meters_use_five_bytes_for_ticket_meters(serve):
    egm = SasEgm(1, denom_code=0x04)  # 25¢ credits
    host = serve(egm)
    egm.insert_bill(2000)
    egm.insert_ticket(TICKET)
    host.lp(1, RedeemTicket(transfer_code=0x00, amount_cents=1234, validation=TICKET))
    sent = append_crc(bytes([0x01, 0x2F, 0x06, 0x00, 0x00, 0x0B, 0x0D, 0x0C, 0x30]))
    reply = host.exchange(sent)
    expected = (
        bytes([0x01, 0x2F, 18, 0x00, 0x00])
        + bytes([0x0B]) + bytes.fromhex("00000080")  # bills in: 80 credits of 25¢
        + bytes([0x0D]) + bytes.fromhex("0000001234")  # cashable ticket in: cents, 5 bytes
        + bytes([0x0C]) + bytes.fromhex("00000129")  # current credits: 3234¢ // 25
    )  # 0x30 is not a meter this EGM knows: left out
    assert reply == append_crc(expected)


def test_lp_2f_reports_game_1_and_ignores_other_games(serve_memory):
    egm = SasEgm(1)
    host = serve_memory(egm)
    egm.insert_bill(100)
    assert host.lp(1, ReadSelectedMeters(codes=(0x0B,), game=1)) == SelectedMeters(1, ((0x0B, 100),))
    assert host.exchange(encode_poll(1, ReadSelectedMeters(codes=(0x0B,), game=2)), timeout=0.1) == b""


def test_meters_roll_over_at_their_width(serve_memory):
    egm = SasEgm(1, seed=1)
    host = serve_memory(egm)
    egm.preset_meter(0x00, 99_999_998)
    egm.preset_meter(0x0D, 9_999_999_999)
    egm.insert_bill(100)
    egm.play(1, bet_credits=5)
    egm.insert_ticket(TICKET)
    host.lp(1, RedeemTicket(transfer_code=0x00, amount_cents=2, validation=TICKET))
    assert host.lp(1, ReadBasicMeters()).coin_in == 3
    assert host.lp(1, ReadSelectedMeters(codes=(0x0D,))).values == {0x0D: 1}


def test_lp_1f_machine_info_layout(serve):
    egm = SasEgm(5, denom_code=0x02, game_id="AT", paytable="000123", base_pct="9250", max_bet=10)
    host = serve(egm)
    reply = host.exchange(bytes([0x05, 0x1F]))
    expected = bytes([0x05, 0x1F]) + b"AT" + b"000" + bytes([0x02, 10, 0x00, 0x00, 0x00]) + b"000123" + b"9250"
    assert reply == append_crc(expected)
    assert len(reply) == 24


# ------------------------------------------------------------ cash-out, system validation


def test_system_validation_cash_out_prints_after_lp_58(serve):
    egm = SasEgm(1, validation="system")
    host = serve(egm)
    egm.insert_bill(500)
    assert host.exceptions(1) == [0x48]
    assert egm.cash_out() == 500
    assert host.gp(1) == b"\x57"
    assert host.exchange(bytes([0x01, 0x57])) == append_crc(bytes([0x01, 0x57, 0x00]) + bytes.fromhex("0000000500"))
    lp58 = append_crc(bytes([0x01, 0x58, 0x01]) + bytes.fromhex(SYSTEM_DIGITS))
    assert host.exchange(lp58) == append_crc(bytes([0x01, 0x58, 0x00]))
    assert host.exceptions(1) == [0x3D]
    assert egm.credits_cents == 0
    assert egm.tickets_printed[-1].validation_number == "01" + SYSTEM_DIGITS
    assert egm.tickets_printed[-1].amount_cents == 500
    assert host.lp(1, ReadSelectedMeters(codes=(0x0E, 0x12))).values == {0x0E: 500, 0x12: 1}
    record = host.lp(1, ReadValidationRecord())
    assert (record.validation_number, record.amount_cents, record.system_id) == ("01" + SYSTEM_DIGITS, 500, 1)
    # Nothing pending any more; the same LP 58 again (a host retry) is still 00.
    assert host.lp(1, ReadPendingCashout()) == PendingCashout(0x80, 0)
    assert host.exchange(lp58) == append_crc(bytes([0x01, 0x58, 0x00]))
    assert len(egm.tickets_printed) == 1


def test_lp_58_deny_keeps_credits_and_unexpected_numbers_are_refused(serve_memory):
    egm = SasEgm(1)
    host = serve_memory(egm)
    other = SendValidationNumber(system_id=1, validation=SYSTEM_DIGITS)
    assert host.lp(1, other) == ValidationNumberStatus(0x80)
    egm.insert_bill(100)
    egm.cash_out()
    assert host.lp(1, SendValidationNumber(system_id=0, validation="0" * 16)) == ValidationNumberStatus(0x00)
    assert egm.credits_cents == 100 and egm.tickets_printed == []
    egm.cash_out()
    not_bcd = append_crc(bytes([0x01, 0x58, 0x01]) + bytes([0xAB] * 8))
    assert host.exchange(not_bcd) == append_crc(bytes([0x01, 0x58, 0x81]))
    assert host.lp(1, ReadPendingCashout()) == PendingCashout(0x00, 100)


def test_play_is_locked_while_a_cash_out_waits_for_the_host(serve_memory):
    egm = SasEgm(1)
    serve_memory(egm)
    egm.insert_bill(100)
    egm.cash_out()
    assert egm.play(1, 1) == 0
    assert not egm.insert_bill(100)


# ------------------------------------------------------------ cash-out, secure-enhanced


def test_secure_enhanced_ticket_number_follows_lp_4c(serve):
    egm = SasEgm(1, validation="secure_enhanced")
    host = serve(egm)
    set_id = append_crc(bytes([0x01, 0x4C, 0x21, 0x43, 0x65, 0x00, 0x00, 0x00]))
    assert host.exchange(set_id) == set_id  # the EGM echoes the same layout
    egm.insert_bill(2000)
    assert egm.cash_out() == 2000
    assert host.exceptions(1) == [0x4A, 0x3D]
    reply = host.exchange(append_crc(bytes([0x01, 0x4D, 0x00])))
    assert len(reply) == 35 and check_crc(reply)
    assert reply[2:4] == bytes([0x00, 0x01])  # cashable ticket, buffer index 1
    assert reply[11:19] == bytes.fromhex("6429188185446104")
    assert reply[19:24] == bytes.fromhex("0000002000")
    assert reply[26] == 0x00  # system id 00: the EGM computed the number
    record = parse_reply(append_crc(bytes([0x01, 0x4D, 0x00])), reply)
    assert record.validation_number == secure_enhanced_number(0x654321, 1) == "006429188185446104"
    assert egm.validation_id == (0x654321, 1)


def test_secure_enhanced_records_are_acknowledged_by_the_next_other_poll(serve_memory):
    egm = SasEgm(1, validation="secure_enhanced")
    host = serve_memory(egm)
    assert host.lp(1, SetValidationId(machine_id=0x000102, sequence=41)) == ValidationId(0x000102, 41)
    for _ in range(2):
        egm.insert_bill(100)
        egm.cash_out()
    # Look-ahead (FF) does not acknowledge; 00 does, once the host moves on.
    first = host.lp(1, ReadValidationRecord(function=0xFF))
    assert first.validation_number == secure_enhanced_number(0x000102, 42)
    assert host.lp(1, ReadValidationRecord()) == first
    # An immediate repeat is a retry: the same record again.
    assert host.lp(1, ReadValidationRecord()) == first
    host.gp(1)
    second = host.lp(1, ReadValidationRecord())
    assert second.validation_number == secure_enhanced_number(0x000102, 43)
    assert second.index == 2 and second.ticket_number == 2
    host.gp(1)
    assert host.lp(1, ReadValidationRecord()).empty
    assert host.lp(1, ReadValidationRecord(function=0x01)) == first


def test_secure_enhanced_without_validation_id_raises_3f(serve_memory):
    egm = SasEgm(1, validation="secure_enhanced")
    host = serve_memory(egm)
    egm.insert_bill(100)
    assert egm.cash_out() == 0
    assert host.exceptions(1) == [0x47, 0x3F]
    assert egm.credits_cents == 100


# ------------------------------------------------------------ ticket in


def test_ticket_in_is_escrowed_authorized_and_redeemed(serve):
    egm = SasEgm(1)
    host = serve(egm)
    assert egm.insert_ticket(TICKET)
    assert host.gp(1) == b"\x67"
    escrow = bytes([0x01, 0x70, 0x10, 0x00]) + bytes(5) + b"\x00" + bytes.fromhex(TICKET)
    assert host.exchange(bytes([0x01, 0x70])) == append_crc(escrow)
    assert host.lp(1, QueryRedeemStatus()).machine_status == 0x20  # waiting for the host
    authorize = encode_poll(1, RedeemTicket(transfer_code=0x00, amount_cents=2500, validation=TICKET))
    assert authorize == append_crc(
        bytes([0x01, 0x71, 0x16, 0x00]) + bytes.fromhex("0000002500") + b"\x00" + bytes.fromhex(TICKET) + bytes(6)
    )
    pending = bytes([0x01, 0x71, 0x10, 0x40]) + bytes.fromhex("0000002500") + b"\x00" + bytes.fromhex(TICKET)
    assert host.exchange(authorize) == append_crc(pending)
    assert host.gp(1) == b"\x68"
    status = host.exchange(append_crc(bytes([0x01, 0x71, 0x01, 0xFF])))
    redeemed = bytes([0x01, 0x71, 0x10, 0x00]) + bytes.fromhex("0000002500") + b"\x00" + bytes.fromhex(TICKET)
    assert status == append_crc(redeemed)
    assert egm.credits_cents == 2500
    assert host.lp(1, ReadSelectedMeters(codes=(0x0D, 0x11))).values == {0x0D: 2500, 0x11: 1}
    # A repeated authorize (the host missed the reply) reports the outcome and credits nothing.
    assert host.lp(1, RedeemTicket(transfer_code=0x00, amount_cents=2500, validation=TICKET)).machine_status == 0
    assert egm.credits_cents == 2500
    assert host.exchange(bytes([0x01, 0x70]))[3] == 0xFF  # no ticket in escrow
    assert [t.validation_number for t in egm.tickets_redeemed] == [TICKET]


def test_ticket_rejected_by_the_host_is_returned(serve):
    egm = SasEgm(1)
    host = serve(egm)
    egm.insert_ticket(TICKET)
    assert host.exceptions(1) == [0x67]
    reject = RedeemTicket(transfer_code=0x80, amount_cents=0, validation=TICKET)
    assert host.lp(1, reject).machine_status == 0x40
    assert host.exceptions(1) == [0x68]
    status = host.lp(1, QueryRedeemStatus())
    assert status.rejected and status.machine_status == 0x80 and status.validation == TICKET
    assert egm.credits_cents == 0
    assert host.lp(1, ReadTicketValidationData()).ticket_status == 0xFF


def test_authorize_for_another_number_rejects_the_ticket(serve_memory):
    egm = SasEgm(1)
    host = serve_memory(egm)
    egm.insert_ticket(TICKET)
    host.lp(1, RedeemTicket(transfer_code=0x00, amount_cents=100, validation="00" + "1" * 16))
    assert host.lp(1, QueryRedeemStatus()).machine_status == 0x81
    assert egm.credits_cents == 0


def test_ticket_redemption_follows_lp_7b(serve_memory):
    egm = SasEgm(1, asset_number=0x01020304)
    host = serve_memory(egm)
    reply = host.lp(1, SetExtendedValidationStatus(0x0020, 0x0000, 30, 7))
    assert reply == ExtendedValidationStatus(0x01020304, 0x0001, 30, 7)
    assert not egm.insert_ticket(TICKET)
    raw = host.exchange(encode_poll(1, SetExtendedValidationStatus(0x0020, 0x0020, 30, 7)))
    assert raw == append_crc(bytes([0x01, 0x7B, 0x0A, 0x04, 0x03, 0x02, 0x01, 0x21, 0x00, 0x00, 0x30, 0x00, 0x07]))
    assert egm.insert_ticket(TICKET)


# ------------------------------------------------------------ handpay


def test_handpay_is_read_with_lp_1b_and_keyed_off_at_the_cabinet(serve):
    egm = SasEgm(1)
    host = serve(egm)
    egm.insert_bill(100)
    assert egm.trigger_handpay(150_000)
    assert host.exceptions(1) == [0x47, 0x51]
    reply = host.exchange(bytes([0x01, 0x1B]))
    assert reply == append_crc(bytes([0x01, 0x1B, 0x00, 0x40]) + bytes.fromhex("0000150000") + bytes(13))
    assert egm.play(1, 1) == 0  # locked up
    assert egm.key_off_handpay().amount_cents == 150_000
    assert host.exceptions(1) == [0x52]
    assert host.lp(1, ReadHandpayInfo()) == HandpayInfo(0, 0, 0, 0, 0)
    assert host.lp(1, ReadBasicMeters()).jackpot == 150_000
    assert egm.play(1, 1) == 1


def test_a_handpay_keyed_off_before_the_host_read_it_is_reported_once(serve_memory):
    egm = SasEgm(1, denom_code=0x04)
    host = serve_memory(egm)
    egm.trigger_handpay(2500, level=0x40)
    egm.key_off_handpay()
    assert host.exceptions(1) == [0x51, 0x52]
    assert host.lp(1, ReadHandpayInfo()) == HandpayInfo(0, 0x40, 100, 0, 0)  # credits of 25¢
    assert not host.lp(1, ReadHandpayInfo()).pending


def test_cash_out_above_the_ticket_limit_is_a_cancelled_credit_handpay(serve_memory):
    egm = SasEgm(1, ticket_limit_cents=10_000)
    host = serve_memory(egm)
    egm.insert_bill(20_000)
    egm.cash_out()
    assert host.exceptions(1) == [0x50, 0x51]
    assert host.lp(1, ReadHandpayInfo()) == HandpayInfo(0, 0x80, 20_000, 0, 0)
    egm.key_off_handpay()
    assert egm.credits_cents == 0
    assert host.lp(1, ReadSelectedMeters(codes=(0x03,))).values == {0x03: 20_000}


# ------------------------------------------------------------ other long polls


def test_lp_21_rom_signature_is_acked_then_sent_at_a_general_poll(serve):
    egm = SasEgm(1)
    host = serve(egm)
    egm.raise_exception(0x20)
    assert host.exchange(append_crc(bytes([0x01, 0x21, 0x34, 0x12]))) == b"\x01"
    expected = crc16(default_rom("AT", "000123"), 0x1234)
    assert host.gp(1, signature_pending=True) == append_crc(bytes([0x01, 0x21]) + expected.to_bytes(2, "little"))
    assert host.gp(1) == b"\x20"
    assert host.gp(1) == b"\x00"


def test_rom_signature_changes_with_the_rom(serve_memory):
    egm = SasEgm(1, rom=b"approved image")
    host = serve_memory(egm)
    assert isinstance(host.lp(1, ReadRomSignature(seed=0)), Ack)
    assert host.gp(1, signature_pending=True)[2:4] == crc16(b"approved image").to_bytes(2, "little")
    egm.rom = b"tampered image"
    host.lp(1, ReadRomSignature(seed=0))
    assert host.gp(1, signature_pending=True)[2:4] == crc16(b"tampered image").to_bytes(2, "little")


def test_lp_01_02_disable_and_enable_play(serve_memory):
    egm = SasEgm(3)
    host = serve_memory(egm)
    egm.insert_bill(100)
    assert host.exchange(append_crc(bytes([0x03, 0x01]))) == b"\x03"
    assert not egm.enabled and egm.play(1, 1) == 0 and not egm.insert_bill(100)
    assert egm.cash_out() == 100  # a disabled game still pays out
    assert isinstance(host.lp(3, EnableGame()), Ack)
    assert egm.enabled


def test_lp_7f_sets_the_clock_used_on_tickets(serve_memory):
    egm = SasEgm(1, validation="secure_enhanced")
    host = serve_memory(egm)
    sent = append_crc(bytes([0x01, 0x7F]) + bytes.fromhex("03152024134530"))
    assert sent == encode_poll(1, SetDateTime(datetime(2024, 3, 15, 13, 45, 30)))
    assert host.exchange(sent) == b"\x01"
    host.lp(1, SetValidationId(machine_id=1, sequence=0))
    egm.insert_bill(100)
    egm.cash_out()
    issued = host.lp(1, ReadValidationRecord()).issued_at
    assert abs((issued - datetime(2024, 3, 15, 13, 45, 30)).total_seconds()) <= 2


# ------------------------------------------------------------ the line


def test_a_long_poll_with_a_bad_crc_is_nacked_and_not_acted_on(serve):
    egm = SasEgm(1)
    host = serve(egm)
    good = append_crc(bytes([0x01, 0x01]))
    assert good == bytes.fromhex("01015108")
    assert host.exchange(good[:-1] + bytes([good[-1] ^ 0x01])) == b"\x81"
    assert egm.enabled
    assert isinstance(host.lp(1, DisableGame()), Ack)


def test_two_egms_on_one_line_answer_only_their_own_address(serve):
    one, two = SasEgm(1, game_id="AA"), SasEgm(2, game_id="BB")
    host = serve(one, two)
    one.raise_exception(0x11)
    two.raise_exception(0x19)
    assert host.gp(2) == b"\x19"
    assert host.gp(1) == b"\x11"
    assert host.exchange(bytes([0x02, 0x1F]))[:4] == b"\x02\x1fBB"
    assert host.exchange(bytes([0x01, 0x1F]))[:4] == b"\x01\x1fAA"
    assert host.gp(3, timeout=0.1) == b""
    assert host.exchange(bytes([0x03, 0x1C]), timeout=0.1) == b""
    assert host.gp(1) == b"\x00" and host.gp(2) == b"\x00"


def test_bytes_without_wakeup_and_unknown_long_polls_get_no_answer(serve):
    egm = SasEgm(1)
    host = serve(egm)
    host.transport.send(bytes([0x81, 0x01, 0x1F]), wakeup=False)
    assert host.transport.read(1, 0.1) == b""
    assert host.exchange(bytes([0x01, 0x99]), timeout=0.1) == b""
    egm.raise_exception(0x20)
    assert host.gp(1) == b"\x20"


def test_replies_go_out_within_20_ms(serve):
    egm = SasEgm(1)
    host = serve(egm)
    timings = []
    for frame in [general_poll(1), bytes([0x01, 0x1C])] * 10:
        started = time.monotonic()
        assert host.exchange(frame)
        timings.append(time.monotonic() - started)
    assert statistics.median(timings) < 0.020


def test_an_egm_started_with_serve_answers(memory_wire):
    host_end, egm_end = memory_wire
    egm = SasEgm(9)
    with egm.serve(egm_end):
        assert MiniHost(host_end).exchange(bytes([0x09, 0x1F]))[:2] == b"\x09\x1f"


# ------------------------------------------------------------ faults


def test_drop_next_reply_leaves_the_host_to_time_out_and_loses_nothing(serve_memory):
    egm = SasEgm(1)
    host = serve_memory(egm)
    egm.raise_exception(0x20)
    egm.drop_next_reply(command=GENERAL)
    assert host.gp(1, timeout=0.1) == b""
    assert host.gp(1) == b"\x20"
    egm.drop_next_reply(times=2, command=0x1C)
    assert host.exchange(bytes([0x01, 0x1C]), timeout=0.1) == b""
    assert host.exchange(bytes([0x01, 0x1C]), timeout=0.1) == b""
    assert isinstance(host.lp(1, ReadBasicMeters()), BasicMeters)


def test_corrupt_next_reply_fails_the_crc_and_a_retry_moves_no_money(serve_memory):
    egm = SasEgm(1)
    host = serve_memory(egm)
    egm.insert_ticket(TICKET)
    egm.corrupt_next_reply(command=0x71)
    authorize = encode_poll(1, RedeemTicket(transfer_code=0x00, amount_cents=700, validation=TICKET))
    with pytest.raises(BadCrc):
        parse_reply(authorize, host.exchange(authorize))
    assert parse_reply(authorize, host.exchange(authorize)) == RedeemStatus(0x00, 700, 0, TICKET)
    assert egm.credits_cents == 700


def test_busy_answers_addr_00_and_is_not_acted_on(serve_memory):
    egm = SasEgm(1)
    host = serve_memory(egm)
    egm.insert_bill(100)
    egm.cash_out()
    egm.busy(command=0x58)
    lp58 = encode_poll(1, SendValidationNumber(system_id=1, validation=SYSTEM_DIGITS))
    assert host.exchange(lp58) == b"\x01\x00"
    assert egm.tickets_printed == [] and egm.credits_cents == 100
    assert parse_reply(lp58, host.exchange(lp58)) == ValidationNumberStatus(0x00)
    assert egm.credits_cents == 0


def test_garbage_and_slow_replies(serve_memory):
    egm = SasEgm(1, seed=5)
    host = serve_memory(egm)
    egm.garbage(command=ANY, length=6)
    sent = bytes([0x01, 0x1F])
    garbage = host.exchange(sent, timeout=0.2)
    assert garbage and not check_crc(garbage[:24])
    egm.slow(delay_s=0.06)
    started = time.monotonic()
    assert host.exchange(sent)[:2] == b"\x01\x1f"
    assert time.monotonic() - started >= 0.05
    egm.slow(delay_s=0.06, times=None, command=GENERAL)
    assert host.gp(1, timeout=0.02) == b""
    egm.clear_faults()
    time.sleep(0.1)
    assert host.gp(1) == b"\x00"


def test_faults_reject_a_zero_count():
    with pytest.raises(ValueError):
        SasEgm(1).drop_next_reply(times=0)


# ------------------------------------------------------------ power and memory


def test_power_cycle_is_silent_then_reports_power_applied(serve_memory):
    egm = SasEgm(1)
    host = serve_memory(egm)
    egm.insert_ticket(TICKET)
    host.gp(1)
    egm.power_cycle(off_s=0.2)
    assert host.gp(1, timeout=0.1) == b""
    time.sleep(0.15)
    assert host.exceptions(1) == [0x17]
    assert host.lp(1, ReadBasicMeters()).power_reset == 1
    assert host.lp(1, QueryRedeemStatus()).rejected  # the ticket came back out


def test_ram_clear_zeroes_memory_and_says_so(serve_memory):
    egm = SasEgm(1, validation="secure_enhanced")
    host = serve_memory(egm)
    host.lp(1, SetValidationId(machine_id=7, sequence=3))
    egm.insert_bill(500)
    egm.ram_clear()
    assert host.exceptions(1) == [0x3A, 0x3F]
    assert host.lp(1, ReadBasicMeters()) == BasicMeters(0, 0, 0, 0, 0, 0, 0, 0)
    assert egm.credits_cents == 0 and egm.validation_id is None


# ------------------------------------------------------------ the demo's patron


def test_autoplay_plays_until_stopped():
    egm = SasEgm(1, seed=11)
    egm.autoplay(rate=400)
    time.sleep(0.3)
    egm.stop_autoplay()
    played = egm.meter(0x05)
    assert played > 0 and egm.meter(0x0B) > 0
    time.sleep(0.05)
    assert egm.meter(0x05) == played


# ------------------------------------------------------------ built from the spec


def test_the_emulator_imports_only_the_pure_codec_and_the_standard_library():
    tree = ast.parse(Path(sas_egm.__file__).read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    outside = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names and m != "__future__"}
    assert outside and all(m.startswith("protocols.sas.") for m in outside), outside
