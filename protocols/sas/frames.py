"""SAS framing: building polls, knowing when a reply is whole, classifying it.

The host is the master. A general poll is one byte `0x80 | addr`; a long poll
is `addr cmd` (type R), `addr cmd data… CRC` (type S) or
`addr cmd len data… CRC` (type M). Replies to long polls are
`addr cmd [len] data… CRC`, or ACK (`addr`), NACK (`addr | 0x80`) or busy
(`addr 00`). The length of every reply is fixed by the long poll that was
sent, or carried in a length byte; `reply_needs` tells a poller how many more
bytes to wait for, `classify_reply` turns the bytes into a typed reply or a
`FrameError`.

The EGM side (an emulator) uses `poll_needs` and `split_poll`.
"""

from dataclasses import dataclass

from protocols.sas.crc import append_crc, check_crc

GENERAL_POLL_BIT = 0x80
BUSY_BYTE = 0x00
ROM_SIGNATURE = 0x21

# Shapes of a message: a whole frame of fixed length, a frame whose third byte
# is the length of the data that follows it (before the CRC), or a bare ACK.
VARIABLE = -1
ACK_ONLY = 0

# Host polls of the spec, by command: total length in bytes (2 = type R, no CRC).
POLL_SHAPES: dict[int, int] = {
    0x01: 4,
    0x02: 4,
    0x1B: 2,
    0x1C: 2,
    0x1F: 2,
    0x21: 6,
    0x2F: VARIABLE,
    0x4C: 10,
    0x4D: 5,
    0x57: 2,
    0x58: 13,
    0x70: 2,
    0x71: VARIABLE,
    0x7B: VARIABLE,
    0x7F: 11,
}

# EGM replies of the spec, by command of the poll they answer.
REPLY_SHAPES: dict[int, int] = {
    0x01: ACK_ONLY,
    0x02: ACK_ONLY,
    0x1B: 24,
    0x1C: 36,
    0x1F: 24,
    # The spec answers LP 21 with an ACK and sends the signature at a later
    # general poll; an EGM that answers at once is also understood.
    0x21: ACK_ONLY,
    0x2F: VARIABLE,
    0x4C: 10,
    0x4D: 35,
    0x57: 10,
    0x58: 5,
    0x70: VARIABLE,
    0x71: VARIABLE,
    0x7B: VARIABLE,
    0x7F: ACK_ONLY,
}

ROM_SIGNATURE_LENGTH = 6


class FrameError(Exception):
    """Bytes that are not the reply (or poll) they should be.

    `reason` is a short code for counters and logs; the poller counts, logs
    and retries, and never moves money on a frame that raised.
    """

    reason = "bad_frame"

    def __init__(self, detail: str = "", frame: bytes = b"", *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail
        self.frame = bytes(frame)


class BadCrc(FrameError):
    reason = "bad_crc"


class ShortFrame(FrameError):
    reason = "short_frame"


class BadLength(FrameError):
    reason = "bad_length"


class WrongAddress(FrameError):
    reason = "wrong_address"


class WrongCommand(FrameError):
    reason = "wrong_command"


class BadField(FrameError):
    """A frame with a good CRC holding a field that cannot be decoded (non-BCD, bad date)."""

    reason = "bad_field"


@dataclass(frozen=True)
class Ack:
    address: int


@dataclass(frozen=True)
class Nack:
    address: int


@dataclass(frozen=True)
class Busy:
    address: int


@dataclass(frozen=True)
class ExceptionReport:
    """The one-byte answer to a general poll (00 = nothing to report)."""

    code: int


@dataclass(frozen=True)
class DataFrame:
    """A long-poll reply (or host poll) whose CRC checked: `data` is what lies
    between the command (or length byte) and the CRC."""

    address: int
    command: int
    data: bytes


Reply = Ack | Nack | Busy | ExceptionReport | DataFrame


def _check_address(address: int) -> None:
    if not 1 <= address <= 127:
        raise ValueError(f"SAS address must be 1..127, got {address}")


def general_poll(address: int) -> bytes:
    """The general poll of the EGM at `address`."""
    _check_address(address)
    return bytes([GENERAL_POLL_BIT | address])


def long_poll_r(address: int, command: int) -> bytes:
    """A type R long poll: address and command only, no CRC."""
    _check_address(address)
    return bytes([address, command])


def long_poll_s(address: int, command: int, data: bytes = b"") -> bytes:
    """A type S long poll: fixed-length data, then the CRC."""
    _check_address(address)
    return append_crc(bytes([address, command]) + data)


def long_poll_m(address: int, command: int, data: bytes) -> bytes:
    """A type M long poll: a length byte, the data, then the CRC."""
    _check_address(address)
    if len(data) > 255:
        raise ValueError(f"long poll data of {len(data)} bytes does not fit a length byte")
    return append_crc(bytes([address, command, len(data)]) + data)


def reply_frame(address: int, command: int, data: bytes, variable: bool = False) -> bytes:
    """An EGM's long-poll reply: `addr cmd [len] data CRC`."""
    if variable:
        return long_poll_m(address, command, data)
    return long_poll_s(address, command, data)


def ack(address: int) -> bytes:
    return bytes([address])


def nack(address: int) -> bytes:
    return bytes([address | 0x80])


def busy(address: int) -> bytes:
    return bytes([address, BUSY_BYTE])


def is_general_poll(frame: bytes) -> bool:
    return len(frame) == 1 and bool(frame[0] & GENERAL_POLL_BIT)


def _framed_needs(received: bytes, shape: int) -> int:
    """Bytes still missing from `addr cmd …` of the given shape (the first two are in)."""
    if shape == VARIABLE:
        if len(received) < 3:
            return 3 - len(received)
        return max(0, 3 + received[2] + 2 - len(received))
    return max(0, shape - len(received))


def reply_needs(sent: bytes, received: bytes, *, signature_pending: bool = False) -> int:
    """How many more bytes the reply to `sent` needs, given `received` so far.

    0 means the reply is whole, or can no longer become valid (wrong address,
    wrong command): classify it as it stands. A positive answer is what the
    reply needs at least; where the bytes so far may already be a whole short
    reply (an ACK to a poll that usually gets data, or an exception code equal
    to the address while a ROM signature is pending), the poller reads with the
    inter-byte timeout and classifies what it has when nothing more comes.
    """
    if not received:
        return 1
    if is_general_poll(sent):
        address = sent[0] & 0x7F
        if not (signature_pending and received[0] == address):
            return 0
        if len(received) >= 2 and received[1] != ROM_SIGNATURE:
            return 0
        return max(0, ROM_SIGNATURE_LENGTH - len(received))
    if len(sent) < 2:
        raise ValueError(f"not a poll: {bytes(sent).hex(' ')}")
    address, command = sent[0], sent[1]
    if received[0] != address:
        return 0
    shape = REPLY_SHAPES.get(command)
    if shape is None:
        raise ValueError(f"no reply layout for long poll 0x{command:02X}")
    if len(received) == 1:
        # ACK-only polls are done; LP 21 may also carry its signature at once.
        return 0 if shape == ACK_ONLY and command != ROM_SIGNATURE else 1
    if received[1] == BUSY_BYTE or received[1] != command:
        return 0
    if shape == ACK_ONLY:
        return max(0, ROM_SIGNATURE_LENGTH - len(received)) if command == ROM_SIGNATURE else 0
    return _framed_needs(received, shape)


def _checked_frame(received: bytes, address: int, command: int, shape: int) -> DataFrame:
    if received[0] != address:
        raise WrongAddress(f"expected 0x{address:02X}, got 0x{received[0]:02X}", received)
    if len(received) < 2:
        raise ShortFrame("one byte", received)
    if received[1] != command:
        raise WrongCommand(f"expected 0x{command:02X}, got 0x{received[1]:02X}", received)
    if shape == VARIABLE:
        if len(received) < 3:
            raise ShortFrame("no length byte", received)
        expected = 3 + received[2] + 2
        start = 3
    else:
        expected = shape
        start = 2
    if len(received) < expected:
        raise ShortFrame(f"{len(received)} of {expected} bytes", received)
    if len(received) > expected:
        raise BadLength(f"{len(received)} bytes, expected {expected}", received)
    if not check_crc(received):
        raise BadCrc(bytes(received).hex(" "), received)
    return DataFrame(address, command, bytes(received[start:-2]))


def classify_reply(sent: bytes, received: bytes) -> Reply:
    """What the EGM answered to `sent`: Ack, Nack, Busy, an ExceptionReport
    (general poll) or a CRC-checked DataFrame. Raises a FrameError otherwise.
    """
    if not received:
        raise ShortFrame("no reply")
    if is_general_poll(sent):
        address = sent[0] & 0x7F
        if len(received) == 1:
            return ExceptionReport(received[0])
        # A pending ROM signature (LP 21) is the only frame a general poll gets.
        return _checked_frame(received, address, ROM_SIGNATURE, ROM_SIGNATURE_LENGTH)
    address, command = sent[0], sent[1]
    if len(received) == 1:
        if received[0] == address:
            return Ack(address)
        if received[0] == address | 0x80:
            return Nack(address)
        raise WrongAddress(f"expected 0x{address:02X}, got 0x{received[0]:02X}", received)
    if len(received) == 2 and received[0] == address and received[1] == BUSY_BYTE:
        return Busy(address)
    shape = REPLY_SHAPES.get(command)
    if shape is None:
        raise ValueError(f"no reply layout for long poll 0x{command:02X}")
    if shape == ACK_ONLY:
        if command != ROM_SIGNATURE:
            raise BadLength(f"{len(received)} bytes where an ACK was expected", received)
        shape = ROM_SIGNATURE_LENGTH
    return _checked_frame(received, address, command, shape)


def poll_needs(received: bytes) -> int:
    """EGM side: how many more bytes the host message starting at `received[0]`
    (the byte with the wakeup bit) needs. 0 when whole, or when its command is
    not one this subset knows (the EGM ignores it)."""
    if not received:
        return 1
    if received[0] & GENERAL_POLL_BIT:
        return 0
    if len(received) < 2:
        return 1
    shape = POLL_SHAPES.get(received[1])
    if shape is None:
        return 0
    return _framed_needs(received, shape)


def split_poll(frame: bytes) -> DataFrame:
    """EGM side: check a whole long poll from the host and split it.

    Type R polls have no CRC; S and M polls are CRC-checked, and M polls have
    their length byte checked and stripped.
    """
    if len(frame) < 2:
        raise ShortFrame("a long poll has at least two bytes", frame)
    address, command = frame[0], frame[1]
    shape = POLL_SHAPES.get(command)
    if shape is None:
        raise WrongCommand(f"long poll 0x{command:02X} is not in the SAS host subset", frame)
    if shape == 2:
        if len(frame) != 2:
            raise BadLength(f"type R poll of {len(frame)} bytes", frame)
        return DataFrame(address, command, b"")
    return _checked_frame(frame, address, command, shape)
