from datetime import date, datetime

import pytest

from protocols.sas.crc import append_crc
from protocols.sas.frames import (
    POLL_SHAPES,
    REPLY_SHAPES,
    VARIABLE,
    Ack,
    BadField,
    BadLength,
    Busy,
    ExceptionReport,
    Nack,
)
from protocols.sas.long_polls import (
    LONG_POLLS,
    METERS,
    BasicMeters,
    DisableGame,
    EnableGame,
    ExtendedValidationStatus,
    GeneralPoll,
    HandpayInfo,
    MachineInfo,
    PendingCashout,
    Poll,
    QueryRedeemStatus,
    ReadBasicMeters,
    ReadHandpayInfo,
    ReadMachineInfo,
    ReadPendingCashout,
    ReadRomSignature,
    ReadSelectedMeters,
    ReadTicketValidationData,
    ReadValidationRecord,
    RedeemStatus,
    RedeemTicket,
    RomSignature,
    SelectedMeters,
    SendValidationNumber,
    SetDateTime,
    SetExtendedValidationStatus,
    SetValidationId,
    TicketValidationData,
    UnsupportedDenomination,
    ValidationId,
    ValidationNumberStatus,
    ValidationRecord,
    denomination_cents,
    encode_poll,
    encode_reply,
    meter_cents,
    meter_delta,
    meter_width,
    parse_poll,
    parse_reply,
)

ADDRESS = 1
VALIDATION_18 = "001234567890123456"

SAMPLE_REQUESTS = [
    DisableGame(),
    EnableGame(),
    ReadMachineInfo(),
    ReadBasicMeters(),
    ReadSelectedMeters(codes=(0x00, 0x0D, 0x24)),
    ReadSelectedMeters(codes=tuple(range(10)), game=12),
    ReadRomSignature(seed=0x1234),
    SetValidationId(machine_id=0x654321, sequence=1),
    ReadValidationRecord(),
    ReadValidationRecord(function=0xFF),
    ReadHandpayInfo(),
    ReadPendingCashout(),
    SendValidationNumber(system_id=1, validation="1234567890123456"),
    ReadTicketValidationData(),
    RedeemTicket(transfer_code=0x00, amount_cents=2550, validation=VALIDATION_18),
    RedeemTicket(0x01, 1000, VALIDATION_18, restricted_expiry=date(2025, 1, 31), pool_id=7),
    RedeemTicket(0x80, 0, VALIDATION_18),
    QueryRedeemStatus(),
    SetExtendedValidationStatus(
        control_mask=0x0003, status_bits=0x0003, cashable_expiry_days=30, restricted_expiry_days=7
    ),
    SetDateTime(when=datetime(2024, 3, 15, 13, 45, 30)),
]

SAMPLE_REPLIES = [
    MachineInfo("AB", "123", 0x01, 5, 0, 0x0000, "PT0001", "9450"),
    BasicMeters(12345678, 1234567, 99999999, 0, 4321, 1234, 7, 3),
    SelectedMeters(game=0, meters=((0x00, 12345678), (0x0D, 9999999999), (0x24, 1))),
    RomSignature(signature=0xBEEF),
    ValidationId(machine_id=0x654321, sequence=1),
    ValidationRecord(
        validation_type=0x00,
        index=1,
        issued_at=datetime(2024, 3, 15, 13, 45, 30),
        validation="6429188185446104",
        amount_cents=2550,
        ticket_number=258,
        system_id=0,
        expiry=30,
        pool_id=0,
    ),
    ValidationRecord(
        0x20, 2, datetime(2024, 12, 31, 23, 59, 59), "1234567890123456", 1, 65535, 1, date(2025, 1, 30), 3
    ),
    ValidationRecord(0, 0, None, "0" * 16, 0, 0, 0, None, 0),
    HandpayInfo(progressive_group=0, level=0x40, amount=150000, partial_pay=0, reset_id=0),
    PendingCashout(cashout_type=0x00, amount_cents=2550),
    ValidationNumberStatus(status=0x00),
    TicketValidationData(ticket_status=0x00, amount_cents=0, parsing_code=0, validation=VALIDATION_18),
    TicketValidationData(ticket_status=0xFF, amount_cents=0, parsing_code=0, validation=""),
    RedeemStatus(machine_status=0x00, amount_cents=2550, parsing_code=0, validation=VALIDATION_18),
    RedeemStatus(machine_status=0x40, amount_cents=2550, parsing_code=0, validation=VALIDATION_18),
    ExtendedValidationStatus(
        asset_number=123456, status_bits=0x0003, cashable_expiry_days=30, restricted_expiry_days=7
    ),
]


def _sent_for(reply):
    """A host poll that `reply` answers."""
    sample = next(r for r in SAMPLE_REQUESTS if getattr(r, "CODE", None) == reply.CODE)
    return encode_poll(ADDRESS, sample)


def test_samples_cover_the_table():
    assert {r.CODE for r in SAMPLE_REQUESTS} == set(LONG_POLLS)
    assert {r.CODE for r in SAMPLE_REPLIES} == {lp.code for lp in LONG_POLLS.values() if lp.reply}
    assert set(LONG_POLLS) == set(POLL_SHAPES) == set(REPLY_SHAPES)


@pytest.mark.parametrize("request_", SAMPLE_REQUESTS, ids=lambda r: type(r).__name__)
def test_request_round_trip(request_):
    frame = encode_poll(ADDRESS, request_)
    assert parse_poll(frame) == Poll(ADDRESS, request_)
    shape = POLL_SHAPES[request_.CODE]
    assert len(frame) == (5 + frame[2] if shape == VARIABLE else shape)


@pytest.mark.parametrize("reply", SAMPLE_REPLIES, ids=lambda r: type(r).__name__)
def test_reply_round_trip(reply):
    frame = encode_reply(ADDRESS, reply)
    assert parse_reply(_sent_for(reply), frame) == reply
    shape = REPLY_SHAPES[reply.CODE]
    if shape == VARIABLE:
        assert len(frame) == 5 + frame[2]
    elif reply.CODE != 0x21:
        assert len(frame) == shape


def test_general_poll_round_trip():
    assert encode_poll(5, GeneralPoll()) == b"\x85"
    assert parse_poll(b"\x85") == Poll(5, GeneralPoll())
    assert parse_reply(b"\x85", b"\x51") == ExceptionReport(0x51)


def test_rom_signature_at_general_poll():
    frame = encode_reply(ADDRESS, RomSignature(0xBEEF))
    assert frame == append_crc(bytes([0x01, 0x21, 0xEF, 0xBE]))
    assert parse_reply(b"\x81", frame) == RomSignature(0xBEEF)


def test_short_replies_pass_through():
    sent = encode_poll(ADDRESS, ReadPendingCashout())
    assert parse_reply(sent, b"\x01") == Ack(1)
    assert parse_reply(sent, b"\x81") == Nack(1)
    assert parse_reply(sent, b"\x01\x00") == Busy(1)
    assert parse_reply(encode_poll(ADDRESS, EnableGame()), b"\x01") == Ack(1)


# ------------------------------------------------- byte literals from the spec


def test_lp01_02_literals():
    assert encode_poll(1, DisableGame()) == append_crc(b"\x01\x01")
    assert encode_poll(1, EnableGame()) == append_crc(b"\x01\x02")


def test_lp1f_literal():
    assert encode_poll(1, ReadMachineInfo()) == b"\x01\x1f"
    frame = append_crc(
        bytes([0x01, 0x1F])
        + b"AB"  # game id
        + b"123"  # additional id
        + bytes([0x04, 0x05, 0x00])  # denomination 25¢, max bet 5, progressive group 0
        + bytes([0x00, 0x00])  # game options
        + b"PT0001"  # paytable
        + b"9450"  # base percent 94.50
    )
    info = parse_reply(b"\x01\x1f", frame)
    assert info == MachineInfo("AB", "123", 0x04, 5, 0, 0, "PT0001", "9450")
    assert info.denomination_cents == 25
    assert info.base_percent_hundredths == 9450
    assert len(frame) == 24


def test_lp1c_literal():
    assert encode_poll(1, ReadBasicMeters()) == b"\x01\x1c"
    frame = append_crc(
        bytes([0x01, 0x1C])
        + bytes([0x00, 0x01, 0x23, 0x45])  # coin in 12345
        + bytes([0x00, 0x00, 0x67, 0x89])  # coin out 6789
        + bytes([0x00, 0x00, 0x50, 0x00])  # drop 5000
        + bytes([0x00, 0x00, 0x01, 0x00])  # jackpot 100
        + bytes([0x00, 0x00, 0x09, 0x99])  # games played 999
        + bytes([0x00, 0x00, 0x03, 0x33])  # games won 333
        + bytes([0x00, 0x00, 0x00, 0x12])  # slot door opened 12
        + bytes([0x00, 0x00, 0x00, 0x04])  # power reset 4
    )
    assert parse_reply(b"\x01\x1c", frame) == BasicMeters(12345, 6789, 5000, 100, 999, 333, 12, 4)


def test_lp2f_literal():
    poll = encode_poll(1, ReadSelectedMeters(codes=(0x00, 0x0D, 0x24)))
    assert poll == append_crc(bytes([0x01, 0x2F, 0x05, 0x00, 0x00, 0x00, 0x0D, 0x24]))
    frame = append_crc(
        bytes([0x01, 0x2F, 0x12, 0x00, 0x00])
        + bytes([0x00, 0x00, 0x01, 0x23, 0x45])  # 00 coin in, 4 bytes
        + bytes([0x0D, 0x00, 0x00, 0x00, 0x25, 0x50])  # 0D ticket in, 5 bytes
        + bytes([0x24, 0x00, 0x00, 0x99, 0x99])  # 24 total drop, 4 bytes
    )
    meters = parse_reply(poll, frame)
    assert meters == SelectedMeters(0, ((0x00, 12345), (0x0D, 2550), (0x24, 9999)))
    assert meters.values[0x0D] == 2550


def test_lp21_literal():
    assert encode_poll(1, ReadRomSignature(0x1234)) == append_crc(bytes([0x01, 0x21, 0x34, 0x12]))


def test_lp4c_literal():
    poll = encode_poll(1, SetValidationId(machine_id=0x654321, sequence=1))
    assert poll == append_crc(bytes([0x01, 0x4C, 0x21, 0x43, 0x65, 0x01, 0x00, 0x00]))
    echo = append_crc(bytes([0x01, 0x4C, 0x21, 0x43, 0x65, 0x01, 0x00, 0x00]))
    assert parse_reply(poll, echo) == ValidationId(0x654321, 1)


def test_lp4d_literal():
    poll = encode_poll(1, ReadValidationRecord())
    assert poll == append_crc(bytes([0x01, 0x4D, 0x00]))
    frame = append_crc(
        bytes([0x01, 0x4D])
        + bytes([0x00, 0x01])  # type cashable ticket, index 1
        + bytes([0x03, 0x15, 0x20, 0x24])  # date 03/15/2024
        + bytes([0x13, 0x45, 0x30])  # time 13:45:30
        + bytes([0x64, 0x29, 0x18, 0x81, 0x85, 0x44, 0x61, 0x04])  # validation
        + bytes([0x00, 0x00, 0x00, 0x25, 0x50])  # $25.50
        + bytes([0x02, 0x01])  # ticket number 258, binary LSB first
        + bytes([0x00])  # system id 00 (secure-enhanced)
        + bytes([0x00, 0x00, 0x00, 0x30])  # expires in 30 days
        + bytes([0x00, 0x00])  # pool id
    )
    assert len(frame) == 35
    record = parse_reply(poll, frame)
    assert record == ValidationRecord(
        0x00, 1, datetime(2024, 3, 15, 13, 45, 30), "6429188185446104", 2550, 258, 0, 30, 0
    )
    assert record.validation_number == "006429188185446104"
    assert not record.empty


def test_lp4d_empty_and_dated_expiry():
    poll = encode_poll(1, ReadValidationRecord())
    assert parse_reply(poll, append_crc(bytes([0x01, 0x4D]) + bytes(31))).empty
    frame = append_crc(
        bytes([0x01, 0x4D, 0x00, 0x01, 0x03, 0x15, 0x20, 0x24, 0x13, 0x45, 0x30])
        + bytes(8)
        + bytes(5)
        + bytes(2)
        + bytes([0x01])
        + bytes([0x04, 0x14, 0x20, 0x24])  # expires 04/14/2024
        + bytes(2)
    )
    assert parse_reply(poll, frame).expiry == date(2024, 4, 14)


def test_lp1b_literal():
    frame = append_crc(
        bytes([0x01, 0x1B, 0x00, 0x40])  # no progressive group, non-progressive win
        + bytes([0x00, 0x00, 0x01, 0x50, 0x00])  # 15000 credits
        + bytes([0x00, 0x00])  # partial pay
        + bytes([0x00])  # reset id
        + bytes(10)
    )
    info = parse_reply(b"\x01\x1b", frame)
    assert info == HandpayInfo(0, 0x40, 15000, 0, 0)
    assert info.pending and not info.progressive
    assert info.amount_cents(denomination_cents=25) == 375000


def test_handpay_units():
    assert HandpayInfo(1, 0x01, 123456, 0, 0).amount_cents(25) == 123456
    cancelled = HandpayInfo(0, 0x80, 400, 10, 0)
    assert cancelled.cancelled_credits and cancelled.amount_cents(5) == 2000
    assert cancelled.partial_pay_cents(5) == 50
    assert not HandpayInfo(0, 0, 0, 0, 0).pending


def test_lp57_literal():
    assert encode_poll(1, ReadPendingCashout()) == b"\x01\x57"
    frame = append_crc(bytes([0x01, 0x57, 0x00, 0x00, 0x00, 0x00, 0x25, 0x50]))
    assert parse_reply(b"\x01\x57", frame) == PendingCashout(cashout_type=0x00, amount_cents=2550)


def test_lp58_literal():
    poll = encode_poll(1, SendValidationNumber(system_id=1, validation="1234567890123456"))
    assert poll == append_crc(bytes([0x01, 0x58, 0x01, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56]))
    assert len(poll) == 13
    assert parse_reply(poll, append_crc(bytes([0x01, 0x58, 0x00]))) == ValidationNumberStatus(0x00)
    assert parse_reply(poll, append_crc(bytes([0x01, 0x58, 0x81]))) == ValidationNumberStatus(0x81)


def test_lp70_literal():
    assert encode_poll(1, ReadTicketValidationData()) == b"\x01\x70"
    frame = append_crc(
        bytes([0x01, 0x70, 0x10])
        + bytes([0x00])  # ticket in escrow
        + bytes(5)  # amount 0 (ignored by the host)
        + bytes([0x00])  # parsing code BCD
        + bytes([0x00, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56])
    )
    assert parse_reply(b"\x01\x70", frame) == TicketValidationData(0x00, 0, 0, VALIDATION_18)


def test_lp70_status_only():
    frame = append_crc(bytes([0x01, 0x70, 0x01, 0xFF]))
    assert parse_reply(b"\x01\x70", frame) == TicketValidationData(0xFF, 0, 0, "")


def test_lp70_other_parsing_code_kept_as_hex():
    frame = append_crc(bytes([0x01, 0x70, 0x09, 0x00, 0, 0, 0, 0, 0, 0x01, 0xAB, 0xCD]))
    assert parse_reply(b"\x01\x70", frame) == TicketValidationData(0x00, 0, 0x01, "abcd")


def test_lp71_literals():
    poll = encode_poll(1, RedeemTicket(transfer_code=0x00, amount_cents=2550, validation=VALIDATION_18))
    assert poll == append_crc(
        bytes([0x01, 0x71, 0x16])
        + bytes([0x00])  # cashable
        + bytes([0x00, 0x00, 0x00, 0x25, 0x50])  # $25.50
        + bytes([0x00])  # parsing code
        + bytes([0x00, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56])
        + bytes(4)  # restricted expiry 00000000
        + bytes(2)  # pool id
    )
    assert encode_poll(1, QueryRedeemStatus()) == append_crc(bytes([0x01, 0x71, 0x01, 0xFF]))
    assert parse_poll(append_crc(bytes([0x01, 0x71, 0x01, 0xFF]))) == Poll(1, QueryRedeemStatus())
    reply = append_crc(
        bytes([0x01, 0x71, 0x10, 0x00, 0x00, 0x00, 0x00, 0x25, 0x50, 0x00])
        + bytes([0x00, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56])
    )
    status = parse_reply(poll, reply)
    assert status == RedeemStatus(0x00, 2550, 0, VALIDATION_18)
    assert status.redeemed and not status.rejected


def test_lp7b_literal():
    poll = encode_poll(1, SetExtendedValidationStatus(0x0003, 0x0003, 30, 7))
    assert poll == append_crc(bytes([0x01, 0x7B, 0x08, 0x03, 0x00, 0x03, 0x00, 0x00, 0x30, 0x00, 0x07]))
    reply = append_crc(bytes([0x01, 0x7B, 0x0A, 0x40, 0xE2, 0x01, 0x00, 0x03, 0x00, 0x00, 0x30, 0x00, 0x07]))
    assert parse_reply(poll, reply) == ExtendedValidationStatus(123456, 0x0003, 30, 7)


def test_lp7f_literal():
    poll = encode_poll(1, SetDateTime(datetime(2024, 3, 15, 13, 45, 30)))
    assert poll == append_crc(bytes([0x01, 0x7F, 0x03, 0x15, 0x20, 0x24, 0x13, 0x45, 0x30]))
    assert parse_reply(poll, b"\x01") == Ack(1)


# ------------------------------------------------------------- bad contents


def test_non_bcd_field_in_good_crc_frame():
    frame = append_crc(bytes([0x01, 0x57, 0x00, 0x00, 0x00, 0x00, 0x2A, 0x50]))
    with pytest.raises(BadField, match="amount_cents"):
        parse_reply(b"\x01\x57", frame)


def test_impossible_date():
    frame = append_crc(bytes([0x01, 0x4D, 0x00, 0x01, 0x13, 0x45, 0x20, 0x24]) + bytes(25))
    with pytest.raises(BadField):
        parse_reply(encode_poll(1, ReadValidationRecord()), frame)


def test_bad_ascii():
    frame = append_crc(bytes([0x01, 0x1F, 0xC3, 0xA9]) + bytes(18))
    with pytest.raises(BadField):
        parse_reply(b"\x01\x1f", frame)


def test_selected_meters_cut_short():
    frame = append_crc(bytes([0x01, 0x2F, 0x05, 0x00, 0x00, 0x0D, 0x00, 0x00]))
    with pytest.raises(BadLength):
        parse_reply(encode_poll(1, ReadSelectedMeters(codes=(0x0D,))), frame)


def test_ack_only_poll_answered_with_data():
    with pytest.raises(BadLength):
        parse_reply(encode_poll(1, EnableGame()), append_crc(b"\x01\x02\x00"))


def test_encoder_refuses_bad_values():
    with pytest.raises(ValueError):
        encode_poll(1, ReadSelectedMeters(codes=()))
    with pytest.raises(ValueError):
        encode_poll(1, ReadSelectedMeters(codes=tuple(range(11))))
    with pytest.raises(ValueError):
        encode_poll(1, SendValidationNumber(1, "123"))
    with pytest.raises(ValueError):
        encode_reply(1, MachineInfo("ABC", "123", 1, 1, 0, 0, "PT0001", "9450"))
    with pytest.raises(ValueError):
        encode_reply(1, PendingCashout(0, 10**10))


def test_redeem_ticket_with_bad_length_rejected_by_egm_parser():
    frame = append_crc(bytes([0x01, 0x71, 0x02, 0x00, 0x00]))
    with pytest.raises(BadLength):
        parse_poll(frame)


# ------------------------------------------------- meters and denominations


@pytest.mark.parametrize(
    "code, cents",
    [
        (0x01, 1), (0x02, 5), (0x04, 25), (0x06, 100), (0x0A, 10000),
        (0x0B, 20), (0x0D, 250), (0x16, 500000), (0x1A, 40),
    ],
)
def test_denominations(code, cents):
    assert denomination_cents(code) == cents


@pytest.mark.parametrize("code", [0x1B, 0x1C, 0x1D, 0x00, 0x1E, 0xFF])
def test_unsupported_denominations(code):
    with pytest.raises(UnsupportedDenomination) as caught:
        denomination_cents(code)
    assert caught.value.code == code


def test_machine_info_fractional_denomination():
    info = MachineInfo("AB", "123", 0x1B, 5, 0, 0, "PT0001", "9450")
    with pytest.raises(UnsupportedDenomination):
        info.denomination_cents


@pytest.mark.parametrize(
    "code, width",
    [
        (0x00, 4), (0x0C, 4), (0x0D, 5), (0x10, 5), (0x11, 4), (0x24, 4),
        (0x80, 5), (0x93, 5), (0x94, 4), (0xA0, 5), (0xBD, 5), (0xBE, 4),
    ],
)
def test_meter_widths(code, width):
    assert meter_width(code) == width


def test_meter_units():
    assert METERS[0x00].unit == "credits"
    assert METERS[0x0B].unit == "credits"
    assert METERS[0x24].unit == "credits"
    assert METERS[0x05].unit == "count"
    assert METERS[0x06].unit == "count"
    assert METERS[0x0D].unit == "cents"
    assert METERS[0x0E].name == "cashable_ticket_out"
    assert METERS[0x81].unit == "count"
    assert meter_cents(0x00, 400, denomination_cents=25) == 10000
    assert meter_cents(0x0D, 2550, denomination_cents=25) == 2550
    with pytest.raises(ValueError):
        meter_cents(0x05, 10, denomination_cents=25)
    with pytest.raises(ValueError):
        meter_cents(0x77, 10, denomination_cents=25)


def test_meter_delta():
    assert meter_delta(100, 250, 4) == 150
    assert meter_delta(250, 250, 4) == 0
    assert meter_delta(99999990, 5, 4) == 15
    assert meter_delta(9999999999, 0, 5) == 1
    assert meter_delta(5, 99999990, 4) == 99999985
