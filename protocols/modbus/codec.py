"""Pure codec for Modbus floor devices: register words in, typed readings and MQTT event codes out.

Turns one read of input registers 0-45 into a DeviceReading, status-bit edges into the
event codes MQTT terminals send, and meter pairs into deltas modulo 2^32.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from protocols.modbus.exceptions import MapError
from protocols.modbus.map import (
    BIT,
    INPUT,
    INPUT_COUNT,
    MAP_VERSION,
    METER_NAMES,
    STATUS_BITS,
)

WORD = 1 << 16
U32 = 1 << 32


def _check_word(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < WORD:
        raise MapError(f"register value {value!r} is not a 16-bit unsigned integer")


def join32(high: int, low: int) -> int:
    """Two registers, high word first, as one unsigned 32-bit value."""
    _check_word(high)
    _check_word(low)
    return high << 16 | low


def split32(value: int) -> list[int]:
    """An unsigned 32-bit value as two registers, high word first."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < U32:
        raise MapError(f"value {value!r} does not fit 32 bits unsigned")
    return [value >> 16, value & 0xFFFF]


def sha256_from_registers(words: Sequence[int]) -> str:
    """Sixteen registers as the hex sha256 they hold, first byte in the high half of the first."""
    if len(words) != 16:
        raise MapError(f"sha256 takes 16 registers, got {len(words)}")
    for word in words:
        _check_word(word)
    return b"".join(w.to_bytes(2, "big") for w in words).hex()


def sha256_to_registers(hex_digest: str) -> list[int]:
    """A hex sha256 as the sixteen registers that hold it."""
    try:
        raw = bytes.fromhex(hex_digest)
    except (TypeError, ValueError) as exc:
        raise MapError(f"sha256 {hex_digest!r} is not hex") from exc
    if len(raw) != 32:
        raise MapError(f"sha256 must be 32 bytes, got {len(raw)}")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 32, 2)]


def meter_delta32(old: int, new: int) -> int:
    """How far a 32-bit meter moved from old to new, modulo 2^32: never negative."""
    for value in (old, new):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < U32:
            raise MapError(f"meter value {value!r} does not fit 32 bits unsigned")
    return (new - old) % U32


@dataclass(frozen=True)
class DeviceReading:
    """One poll of input registers 0-45, decoded."""

    map_version: int
    status_bits: int
    main_door_open: bool
    cashbox_door_open: bool
    tilt: bool
    handpay_pending: bool
    game_in_progress: bool
    disabled: bool
    fault: bool
    ram_cleared: bool
    event_counter: int
    # Same names and units as the MQTT `meters` body.
    meters: dict[str, int]
    handpay_pending_cents: int
    software_sha256: str


def _value(registers: Sequence[int], name: str) -> int:
    reg = INPUT[name]
    if reg.size == 1:
        return registers[reg.address]
    return join32(registers[reg.address], registers[reg.address + 1])


def decode_inputs(registers: Sequence[int]) -> DeviceReading:
    """Decode input registers 0-45 read in one request; raise MapError if they do not fit map v1."""
    if len(registers) < INPUT_COUNT:
        raise MapError(f"short read: {len(registers)} registers, need {INPUT_COUNT}")
    registers = list(registers[:INPUT_COUNT])
    for word in registers:
        _check_word(word)
    version = registers[INPUT["map_version"].address]
    if version != MAP_VERSION:
        raise MapError(f"map version {version}, expected {MAP_VERSION}")
    status = registers[INPUT["status"].address]
    sha = INPUT["software_sha256"]
    return DeviceReading(
        map_version=version,
        status_bits=status,
        **{b.name: bool(status >> b.bit & 1) for b in STATUS_BITS},
        event_counter=_value(registers, "event_counter"),
        meters={name: _value(registers, name) for name in METER_NAMES},
        handpay_pending_cents=_value(registers, "handpay_pending_cents"),
        software_sha256=sha256_from_registers(registers[sha.address : sha.end]),
    )


def status_edges(old_bits: int | None, new_bits: int) -> list[str]:
    """MQTT event codes for the status-bit edges between two polls, in bit order.

    With no previous poll (old_bits None) only a set RAM-cleared bit counts: the other bits
    are levels, and a level seen for the first time is not an edge.
    """
    _check_word(new_bits)
    if old_bits is not None:
        _check_word(old_bits)
    codes: list[str] = []
    for b in STATUS_BITS:
        now = bool(new_bits >> b.bit & 1)
        if b.bit == BIT["ram_cleared"]:
            # The device clears bit 7 on every read, so each poll that sees it set is a new clear.
            if now:
                codes.append(b.rising)
            continue
        if old_bits is None:
            continue
        before = bool(old_bits >> b.bit & 1)
        if now and not before and b.rising:
            codes.append(b.rising)
        elif before and not now and b.falling:
            codes.append(b.falling)
    return codes


def handpay_raised(old_bits: int | None, new_bits: int) -> bool:
    """True when bit 3 rose: a new handpay for the amount in register 24.

    With no previous poll a set bit counts, so a handpay pending when the host starts is not lost.
    """
    _check_word(new_bits)
    mask = 1 << BIT["handpay_pending"]
    if old_bits is None:
        return bool(new_bits & mask)
    _check_word(old_bits)
    return bool(new_bits & mask) and not old_bits & mask
