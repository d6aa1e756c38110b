"""Decoding input registers, 32-bit words, meter deltas and status-bit edges."""

import hashlib

import pytest

from protocols.modbus import (
    MapError,
    decode_inputs,
    handpay_raised,
    join32,
    meter_delta32,
    sha256_from_registers,
    sha256_to_registers,
    split32,
    status_edges,
)

SHA = hashlib.sha256(b"game v1.2").hexdigest()


def hand_built() -> list[int]:
    regs = [0] * 46
    regs[0] = 1
    regs[1] = 0b1000_1001  # main door open, handpay pending, RAM cleared
    regs[2:4] = [0x0001, 0x0002]  # event counter 65538
    regs[10:12] = [0x0000, 12345]  # coin in
    regs[12:14] = [0x0000, 10000]  # coin out
    regs[14:16] = [0x0001, 0x0000]  # jackpot 65536
    regs[16:18] = [0x0000, 20000]  # bills in
    regs[18:20] = [0x0000, 150]  # games played
    regs[20:22] = [0x0000, 40]  # games won
    regs[22:24] = [0x0000, 17655]  # credits
    regs[24:26] = [0x0002, 0x49F0]  # handpay 150000
    regs[30:46] = sha256_to_registers(SHA)
    return regs


def test_decode_hand_built_registers():
    reading = decode_inputs(hand_built())
    assert reading.map_version == 1
    assert reading.status_bits == 0b1000_1001
    assert reading.main_door_open and reading.handpay_pending and reading.ram_cleared
    assert not (reading.cashbox_door_open or reading.tilt or reading.game_in_progress)
    assert not (reading.disabled or reading.fault)
    assert reading.event_counter == 65538
    assert reading.meters == {
        "coin_in_cents": 12345,
        "coin_out_cents": 10000,
        "jackpot_cents": 65536,
        "bills_in_cents": 20000,
        "games_played": 150,
        "games_won": 40,
        "current_credits_cents": 17655,
    }
    assert reading.handpay_pending_cents == 150000
    assert reading.software_sha256 == SHA


def test_sha256_first_byte_is_high_half_of_register_30():
    regs = sha256_to_registers("ab" + "00" * 30 + "cd")
    assert regs[0] == 0xAB00 and regs[15] == 0x00CD
    assert sha256_from_registers(regs) == "ab" + "00" * 30 + "cd"


def test_decode_refuses_wrong_map_version():
    regs = hand_built()
    regs[0] = 2
    with pytest.raises(MapError, match="map version 2"):
        decode_inputs(regs)


def test_decode_refuses_short_read():
    with pytest.raises(MapError, match="short read"):
        decode_inputs(hand_built()[:40])


def test_decode_refuses_values_that_are_not_registers():
    regs = hand_built()
    regs[11] = 70000
    with pytest.raises(MapError):
        decode_inputs(regs)


def test_32_bit_values_are_high_word_first():
    assert join32(0x1234, 0x5678) == 0x12345678
    assert split32(0x12345678) == [0x1234, 0x5678]
    assert split32(2**32 - 1) == [0xFFFF, 0xFFFF]
    with pytest.raises(MapError):
        split32(2**32)
    with pytest.raises(MapError):
        split32(-1)


def test_meter_delta_rolls_over_and_is_never_negative():
    assert meter_delta32(100, 250) == 150
    assert meter_delta32(2**32 - 10, 5) == 15
    assert meter_delta32(500, 400) == 2**32 - 100
    assert meter_delta32(7, 7) == 0
    with pytest.raises(MapError):
        meter_delta32(0, 2**32)


@pytest.mark.parametrize(
    ("old", "new", "codes"),
    [
        (0b0000, 0b0001, ["door.main.open"]),
        (0b0001, 0b0000, ["door.main.closed"]),
        (0b0000, 0b0010, ["door.cashbox.open"]),
        (0b0010, 0b0000, ["door.cashbox.closed"]),
        (0b0000, 0b0100, ["tilt"]),
        (0b0100, 0b0000, []),
        (0, 1 << 6, ["printer.fault"]),
        (1 << 6, 0, []),
        (0, 1 << 7, ["ram.clear"]),
        (0b0011, 0b0110, ["door.main.closed", "tilt"]),
        (0, 0b1011_0000, ["ram.clear"]),  # bits 4 and 5 have no event code
        (0, 1 << 3, []),  # handpay is reported by handpay_raised
    ],
)
def test_status_edges(old, new, codes):
    assert status_edges(old, new) == codes


def test_ram_clear_is_reported_on_every_poll_that_sees_bit_7():
    # The device clears bit 7 when register 1 is read, so two polls seeing it are two clears.
    assert status_edges(1 << 7, 1 << 7) == ["ram.clear"]
    assert status_edges(None, 1 << 7 | 1) == ["ram.clear"]


def test_first_poll_has_no_level_edges():
    assert status_edges(None, 0b0111) == []


def test_handpay_raised_on_rising_bit_3_only():
    assert handpay_raised(0, 1 << 3)
    assert not handpay_raised(1 << 3, 1 << 3)
    assert not handpay_raised(1 << 3, 0)
    assert handpay_raised(None, 1 << 3)
    assert not handpay_raised(None, 0)
