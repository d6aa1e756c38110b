import pytest

from protocols.sas.crc import append_crc
from protocols.sas.frames import (
    Ack,
    BadCrc,
    BadLength,
    Busy,
    DataFrame,
    ExceptionReport,
    FrameError,
    Nack,
    ShortFrame,
    WrongAddress,
    WrongCommand,
    classify_reply,
    general_poll,
    long_poll_m,
    long_poll_r,
    long_poll_s,
    poll_needs,
    reply_needs,
    split_poll,
)

LP_1F = bytes([0x01, 0x1F])
LP_57 = bytes([0x01, 0x57])
LP_70 = bytes([0x01, 0x70])
LP_ENABLE = append_crc(bytes([0x01, 0x02]))
REPLY_57 = append_crc(bytes([0x01, 0x57, 0x00, 0x00, 0x00, 0x00, 0x25, 0x50]))


def test_builders():
    assert general_poll(1) == b"\x81"
    assert general_poll(127) == b"\xff"
    assert long_poll_r(1, 0x1F) == b"\x01\x1f"
    assert long_poll_s(1, 0x01) == bytes([0x01, 0x01, 0x51, 0x08])
    assert long_poll_m(1, 0x71, b"\xff") == append_crc(bytes([0x01, 0x71, 0x01, 0xFF]))


@pytest.mark.parametrize("address", [0, 128, -1])
def test_address_range(address):
    with pytest.raises(ValueError):
        general_poll(address)


def test_ack_nack_busy():
    assert classify_reply(LP_ENABLE, b"\x01") == Ack(1)
    assert classify_reply(LP_ENABLE, b"\x81") == Nack(1)
    assert classify_reply(LP_57, b"\x01\x00") == Busy(1)
    assert classify_reply(LP_57, b"\x01") == Ack(1)


def test_data_reply():
    assert classify_reply(LP_57, REPLY_57) == DataFrame(1, 0x57, bytes([0x00, 0x00, 0x00, 0x00, 0x25, 0x50]))


def test_variable_reply_strips_length_byte():
    frame = append_crc(bytes([0x01, 0x70, 0x01, 0xFF]))
    assert classify_reply(LP_70, frame) == DataFrame(1, 0x70, b"\xff")


def test_bad_crc():
    bad = REPLY_57[:-1] + bytes([REPLY_57[-1] ^ 0x01])
    with pytest.raises(BadCrc) as caught:
        classify_reply(LP_57, bad)
    assert caught.value.reason == "bad_crc"
    assert caught.value.frame == bad


def test_short_frame():
    with pytest.raises(ShortFrame):
        classify_reply(LP_57, REPLY_57[:-1])
    with pytest.raises(ShortFrame):
        classify_reply(LP_57, b"")
    with pytest.raises(ShortFrame):
        classify_reply(LP_70, b"\x01\x70")


def test_too_long():
    with pytest.raises(BadLength):
        classify_reply(LP_57, REPLY_57 + b"\x00")
    with pytest.raises(BadLength):
        classify_reply(LP_ENABLE, b"\x01\x02\x03")


def test_wrong_address_and_command():
    with pytest.raises(WrongAddress):
        classify_reply(LP_57, b"\x02")
    with pytest.raises(WrongAddress):
        classify_reply(LP_57, append_crc(bytes([0x02, 0x57, 0, 0, 0, 0, 0, 0])))
    with pytest.raises(WrongCommand) as caught:
        classify_reply(LP_57, append_crc(bytes([0x01, 0x58, 0, 0, 0, 0, 0, 0])))
    assert isinstance(caught.value, FrameError)
    assert caught.value.reason == "wrong_command"


def test_frame_error_reason_override():
    assert FrameError("x", reason="timeout").reason == "timeout"
    assert str(ShortFrame("2 of 5 bytes")) == "short_frame: 2 of 5 bytes"


def test_general_poll_replies():
    assert classify_reply(b"\x81", b"\x11") == ExceptionReport(0x11)
    assert classify_reply(b"\x81", b"\x00") == ExceptionReport(0x00)
    # An exception code may have the high bit set; it is never a NACK.
    assert classify_reply(b"\x81", b"\x81") == ExceptionReport(0x81)
    signature = append_crc(bytes([0x01, 0x21, 0x34, 0x12]))
    assert classify_reply(b"\x81", signature) == DataFrame(1, 0x21, b"\x34\x12")


def test_rom_signature_answered_at_once():
    lp21 = append_crc(bytes([0x01, 0x21, 0x00, 0x00]))
    signature = append_crc(bytes([0x01, 0x21, 0x34, 0x12]))
    assert classify_reply(lp21, b"\x01") == Ack(1)
    assert classify_reply(lp21, signature) == DataFrame(1, 0x21, b"\x34\x12")


def _feed(sent, reply, **kwargs):
    """Needs reported as a poller reads the reply one byte at a time."""
    needs = []
    for i in range(len(reply) + 1):
        needs.append(reply_needs(sent, reply[:i], **kwargs))
    return needs


def test_reply_needs_fixed():
    needs = _feed(LP_57, REPLY_57)
    assert needs[0] == 1
    assert needs[-1] == 0
    assert all(n > 0 for n in needs[:-1])
    # After address and command, the whole length is known.
    assert needs[2] == len(REPLY_57) - 2


def test_reply_needs_variable():
    frame = append_crc(bytes([0x01, 0x70, 0x03, 0xAA, 0xBB, 0xCC]))
    needs = _feed(LP_70, frame)
    assert needs[:3] == [1, 1, 1]
    assert needs[3] == 5
    assert needs[-1] == 0


def test_reply_needs_short_answers():
    assert reply_needs(LP_ENABLE, b"\x01") == 0
    assert reply_needs(LP_ENABLE, b"\x81") == 0
    assert reply_needs(LP_57, b"\x01\x00") == 0
    assert reply_needs(LP_57, b"\x02") == 0
    assert reply_needs(LP_57, b"\x01\x58") == 0
    # A data poll answered by ACK alone: more may come, the inter-byte timeout decides.
    assert reply_needs(LP_57, b"\x01") == 1


def test_reply_needs_general_poll():
    assert reply_needs(b"\x81", b"") == 1
    assert reply_needs(b"\x81", b"\x01") == 0
    assert reply_needs(b"\x81", b"\x01", signature_pending=True) == 5
    assert reply_needs(b"\x81", b"\x11", signature_pending=True) == 0
    assert reply_needs(b"\x81", b"\x01\x21", signature_pending=True) == 4
    assert reply_needs(b"\x81", b"\x01\x22", signature_pending=True) == 0


def test_reply_needs_unknown_poll():
    with pytest.raises(ValueError):
        reply_needs(b"\x01\x99", b"\x01")


def test_poll_needs_and_split_poll():
    assert poll_needs(b"") == 1
    assert poll_needs(b"\x81") == 0
    assert poll_needs(b"\x01") == 1
    assert poll_needs(b"\x01\x1f") == 0
    assert poll_needs(b"\x01\x01") == 2
    status_query = append_crc(bytes([0x01, 0x71, 0x01, 0xFF]))
    assert poll_needs(status_query[:2]) == 1
    assert poll_needs(status_query[:3]) == 3
    assert poll_needs(status_query) == 0
    assert split_poll(status_query) == DataFrame(1, 0x71, b"\xff")
    assert split_poll(b"\x01\x1f") == DataFrame(1, 0x1F, b"")
    with pytest.raises(BadCrc):
        split_poll(status_query[:-1] + b"\x00")
    with pytest.raises(WrongCommand):
        split_poll(b"\x01\x99")
    with pytest.raises(BadLength):
        split_poll(b"\x01\x1f\x00")
