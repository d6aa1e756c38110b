"""The long polls of the SAS host subset: one typed message per poll and per
reply, each encoded and parsed by the field layout the spec gives it.

Host side: `encode_poll(address, ReadMachineInfo())` builds the bytes to send,
`parse_reply(sent, received)` turns the answer into `MachineInfo(...)` (or
Ack / Nack / Busy / ExceptionReport), raising a FrameError on bad bytes.
EGM side (emulators, round-trip tests): `parse_poll(frame)` and
`encode_reply(address, reply)`.

Also here: the meter table (code, name, unit, width), the LP 1F denomination
codes, and `meter_delta` for meters that roll over.

Field encodings: BCD most significant byte first, binary least significant
byte first; dates MMDDYYYY and times HHMMSS in BCD; validation numbers are
strings of digits so that leading zeros survive. Money fields named
`amount_cents` are in cents; `HandpayInfo.amount` is in credits or cents
depending on its level (see there).
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable, ClassVar, Self

from protocols.sas.bcd import decode_bcd, decode_digits, decode_le, encode_bcd, encode_digits, encode_le
from protocols.sas.frames import (
    POLL_SHAPES,
    REPLY_SHAPES,
    ROM_SIGNATURE,
    VARIABLE,
    Ack,
    BadField,
    BadLength,
    Busy,
    DataFrame,
    ExceptionReport,
    Nack,
    classify_reply,
    general_poll,
    is_general_poll,
    long_poll_m,
    long_poll_r,
    long_poll_s,
    reply_frame,
    split_poll,
)

# ---------------------------------------------------------------- field codecs


def _encode_ascii(value: str, width: int) -> bytes:
    raw = value.encode("ascii")
    if len(raw) != width:
        raise ValueError(f"expected {width} ASCII characters, got {value!r}")
    return raw


def _decode_ascii(data: bytes) -> str:
    return data.decode("ascii")


def _encode_datetime(value: datetime | None, width: int) -> bytes:
    if value is None:
        return bytes(width)
    v = value
    digits = f"{v.month:02d}{v.day:02d}{v.year:04d}{v.hour:02d}{v.minute:02d}{v.second:02d}"
    return encode_digits(digits, width)


def _decode_datetime(data: bytes) -> datetime | None:
    digits = decode_digits(data)
    if int(digits) == 0:
        return None
    month, day, year = int(digits[0:2]), int(digits[2:4]), int(digits[4:8])
    return datetime(year, month, day, int(digits[8:10]), int(digits[10:12]), int(digits[12:14]))


def _encode_expiry(value: date | int | None, width: int) -> bytes:
    if value is None:
        return bytes(width)
    if isinstance(value, date):
        return encode_digits(f"{value.month:02d}{value.day:02d}{value.year:04d}", width)
    if not 0 < value <= 9999:
        raise ValueError(f"an expiry in days must be 1..9999, got {value}")
    return encode_bcd(value, width)


def _decode_expiry(data: bytes) -> date | int | None:
    digits = decode_digits(data)
    if int(digits) == 0:
        return None
    # Month 00 cannot be a date: 0000nnnn is a number of days.
    if digits[:4] == "0000":
        return int(digits)
    return date(int(digits[4:8]), int(digits[0:2]), int(digits[2:4]))


_KINDS: dict[str, tuple[Callable[[Any, int], bytes], Callable[[bytes], Any]]] = {
    "bcd": (encode_bcd, decode_bcd),
    "bin": (encode_le, decode_le),
    "ascii": (_encode_ascii, _decode_ascii),
    "digits": (encode_digits, decode_digits),
    "datetime": (_encode_datetime, _decode_datetime),
    "expiry": (_encode_expiry, _decode_expiry),
}


@dataclass(frozen=True)
class Field:
    """One field of a layout; `name` None is unused space, zeros on the wire."""

    name: str | None
    kind: str
    width: int


def _layout(*fields: tuple[str | None, str, int]) -> tuple[Field, ...]:
    return tuple(Field(*spec) for spec in fields)


class Message:
    """A long-poll request or reply whose data follows `LAYOUT`.

    `to_data` / `from_data` handle the data between the command (or length
    byte) and the CRC; messages whose data is not a fixed layout override them.
    """

    CODE: ClassVar[int]
    LAYOUT: ClassVar[tuple[Field, ...]] = ()

    @classmethod
    def data_length(cls) -> int:
        return sum(f.width for f in cls.LAYOUT)

    @classmethod
    def accepts(cls, data: bytes) -> bool:
        """Whether `data` has this message's form (picks among forms of one poll)."""
        return len(data) == cls.data_length()

    def to_data(self) -> bytes:
        out = bytearray()
        for f in self.LAYOUT:
            if f.name is None:
                out += bytes(f.width)
            else:
                encode = _KINDS[f.kind][0]
                out += encode(getattr(self, f.name), f.width)
        return bytes(out)

    @classmethod
    def from_data(cls, data: bytes) -> Self:
        if len(data) != cls.data_length():
            raise BadLength(f"{cls.__name__} has {cls.data_length()} data bytes, got {len(data)}", data)
        values: dict[str, Any] = {}
        pos = 0
        for f in cls.LAYOUT:
            chunk = bytes(data[pos : pos + f.width])
            pos += f.width
            if f.name is None:
                continue
            try:
                values[f.name] = _KINDS[f.kind][1](chunk)
            except ValueError as exc:
                raise BadField(f"{cls.__name__}.{f.name}: {exc}", data) from exc
        return cls(**values)


class HostPoll(Message):
    """What the host sends."""


class EgmReply(Message):
    """What the EGM answers with data (ACK-only polls have no reply class)."""


# ---------------------------------------------------------- meters and denoms


class UnsupportedDenomination(ValueError):
    """An LP 1F denomination code the host cannot hold in integer cents."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(f"denomination code 0x{code:02X}: {why}")
        self.code = code


# LP 1F denomination code → value of one credit in cents.
DENOMINATION_CENTS: dict[int, int] = {
    0x01: 1,
    0x02: 5,
    0x03: 10,
    0x04: 25,
    0x05: 50,
    0x06: 100,
    0x07: 500,
    0x08: 1000,
    0x09: 2000,
    0x0A: 10000,
    0x0B: 20,
    0x0C: 200,
    0x0D: 250,
    0x0E: 2500,
    0x0F: 5000,
    0x10: 20000,
    0x11: 25000,
    0x12: 50000,
    0x13: 100000,
    0x14: 200000,
    0x15: 250000,
    0x16: 500000,
    0x17: 2,
    0x18: 3,
    0x19: 15,
    0x1A: 40,
}

# Denominations below one cent: money is integer cents end to end, so these
# are refused rather than rounded.
FRACTIONAL_DENOMINATIONS: dict[int, str] = {0x1B: "0.5¢", 0x1C: "0.2¢", 0x1D: "0.1¢"}


def denomination_cents(code: int) -> int:
    """The value in cents of one credit of LP 1F denomination `code`."""
    if code in DENOMINATION_CENTS:
        return DENOMINATION_CENTS[code]
    if code in FRACTIONAL_DENOMINATIONS:
        raise UnsupportedDenomination(code, f"{FRACTIONAL_DENOMINATIONS[code]} is below one cent")
    raise UnsupportedDenomination(code, "not a SAS denomination code")


CREDITS = "credits"
CENTS = "cents"
COUNT = "count"


@dataclass(frozen=True)
class Meter:
    code: int
    name: str
    # credits (of the EGM's accounting denomination), cents, or count.
    unit: str


METERS: dict[int, Meter] = {
    m.code: m
    for m in (
        Meter(0x00, "coin_in", CREDITS),
        Meter(0x01, "coin_out", CREDITS),
        Meter(0x02, "jackpot", CREDITS),
        Meter(0x03, "handpaid_cancelled_credits", CREDITS),
        Meter(0x04, "cancelled_credits", CREDITS),
        Meter(0x05, "games_played", COUNT),
        Meter(0x06, "games_won", COUNT),
        Meter(0x07, "games_lost", COUNT),
        Meter(0x08, "coin_acceptor_credits", CREDITS),
        Meter(0x09, "hopper_paid_credits", CREDITS),
        Meter(0x0A, "coins_to_drop_credits", CREDITS),
        Meter(0x0B, "bills_in", CREDITS),
        Meter(0x0C, "current_credits", CREDITS),
        Meter(0x0D, "cashable_ticket_in", CENTS),
        Meter(0x0E, "cashable_ticket_out", CENTS),
        Meter(0x0F, "restricted_ticket_in", CENTS),
        Meter(0x10, "restricted_ticket_out", CENTS),
        Meter(0x11, "cashable_ticket_in_count", COUNT),
        Meter(0x12, "cashable_ticket_out_count", COUNT),
        Meter(0x13, "restricted_ticket_in_count", COUNT),
        Meter(0x14, "restricted_ticket_out_count", COUNT),
        Meter(0x15, "ticket_in_credits", CREDITS),
        Meter(0x16, "ticket_out_credits", CREDITS),
        Meter(0x24, "total_drop", CREDITS),
        Meter(0x25, "games_since_power_reset", COUNT),
        Meter(0x26, "games_since_door_closed", COUNT),
        Meter(0x80, "regular_cashable_ticket_in", CENTS),
        Meter(0x81, "regular_cashable_ticket_in_count", COUNT),
        Meter(0x82, "restricted_ticket_in_cents", CENTS),
        Meter(0x83, "restricted_ticket_in_cents_count", COUNT),
        Meter(0x84, "nonrestricted_ticket_in", CENTS),
        Meter(0x85, "nonrestricted_ticket_in_count", COUNT),
        Meter(0x86, "regular_cashable_ticket_out", CENTS),
        Meter(0x87, "regular_cashable_ticket_out_count", COUNT),
        Meter(0x88, "restricted_ticket_out_cents", CENTS),
        Meter(0x89, "restricted_ticket_out_cents_count", COUNT),
        Meter(0x8A, "debit_ticket_out", CENTS),
        Meter(0x8B, "debit_ticket_out_count", COUNT),
        Meter(0x8C, "validated_cancelled_credit_handpay_receipt", CENTS),
        Meter(0x8D, "validated_cancelled_credit_handpay_receipt_count", COUNT),
        Meter(0x8E, "validated_jackpot_handpay_receipt", CENTS),
        Meter(0x8F, "validated_jackpot_handpay_receipt_count", COUNT),
        Meter(0x90, "validated_cancelled_credit_handpay_no_receipt", CENTS),
        Meter(0x91, "validated_cancelled_credit_handpay_no_receipt_count", COUNT),
        Meter(0x92, "validated_jackpot_handpay_no_receipt", CENTS),
        Meter(0x93, "validated_jackpot_handpay_no_receipt_count", COUNT),
        # A0–BD are electronic-transfer meters: even codes cents, odd codes counts.
        *(Meter(c, f"transfer_meter_{c:02x}", COUNT if c & 1 else CENTS) for c in range(0xA0, 0xBE)),
    )
}

# LP 1C meters in wire order, with their units.
BASIC_METER_UNITS: dict[str, str] = {
    "coin_in": CREDITS,
    "coin_out": CREDITS,
    "drop": CREDITS,
    "jackpot": CREDITS,
    "games_played": COUNT,
    "games_won": COUNT,
    "slot_door_opened": COUNT,
    "power_reset": COUNT,
}


def meter_width(code: int) -> int:
    """Bytes of BCD that LP 2F carries for meter `code`."""
    if 0x0D <= code <= 0x10 or 0x80 <= code <= 0x93 or 0xA0 <= code <= 0xBD:
        return 5
    return 4


def meter_cents(code: int, value: int, denomination_cents: int) -> int:
    """A money meter's value in cents (credits × denomination, or as is)."""
    meter = METERS.get(code)
    if meter is None:
        raise ValueError(f"meter 0x{code:02X} has no known unit")
    if meter.unit == COUNT:
        raise ValueError(f"meter 0x{code:02X} ({meter.name}) is a count, not money")
    return value * denomination_cents if meter.unit == CREDITS else value


def meter_delta(old: int, new: int, width_bytes: int) -> int:
    """How much a BCD meter of `width_bytes` rose from `old` to `new`, across a rollover."""
    return (new - old) % 10 ** (2 * width_bytes)


# ------------------------------------------------------------------ messages


@dataclass(frozen=True)
class GeneralPoll(HostPoll):
    """The one-byte general poll; not a long poll, listed for `parse_poll`."""


@dataclass(frozen=True)
class DisableGame(HostPoll):
    CODE: ClassVar[int] = 0x01


@dataclass(frozen=True)
class EnableGame(HostPoll):
    CODE: ClassVar[int] = 0x02


@dataclass(frozen=True)
class ReadMachineInfo(HostPoll):
    CODE: ClassVar[int] = 0x1F


@dataclass(frozen=True)
class MachineInfo(EgmReply):
    CODE: ClassVar[int] = 0x1F
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(
        ("game_id", "ascii", 2),
        ("additional_id", "ascii", 3),
        ("denomination_code", "bin", 1),
        ("max_bet", "bin", 1),
        ("progressive_group", "bin", 1),
        ("game_options", "bin", 2),
        ("paytable_id", "ascii", 6),
        ("base_percent", "ascii", 4),
    )
    game_id: str
    additional_id: str
    denomination_code: int
    max_bet: int
    progressive_group: int
    game_options: int
    paytable_id: str
    # Four ASCII digits with two implied decimals: "9450" is 94.50 %.
    base_percent: str

    @property
    def denomination_cents(self) -> int:
        return denomination_cents(self.denomination_code)

    @property
    def base_percent_hundredths(self) -> int | None:
        return int(self.base_percent) if self.base_percent.isdigit() else None


@dataclass(frozen=True)
class ReadBasicMeters(HostPoll):
    CODE: ClassVar[int] = 0x1C


@dataclass(frozen=True)
class BasicMeters(EgmReply):
    """LP 1C: money meters in credits of the accounting denomination."""

    CODE: ClassVar[int] = 0x1C
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(*((name, "bcd", 4) for name in BASIC_METER_UNITS))
    coin_in: int
    coin_out: int
    drop: int
    jackpot: int
    games_played: int
    games_won: int
    slot_door_opened: int
    power_reset: int


@dataclass(frozen=True)
class ReadSelectedMeters(HostPoll):
    CODE: ClassVar[int] = 0x2F
    codes: tuple[int, ...]
    # 0 = the whole machine.
    game: int = 0

    @classmethod
    def accepts(cls, data: bytes) -> bool:
        return 3 <= len(data) <= 12

    def to_data(self) -> bytes:
        if not 1 <= len(self.codes) <= 10:
            raise ValueError(f"LP 2F asks for 1..10 meters, got {len(self.codes)}")
        return encode_bcd(self.game, 2) + bytes(self.codes)

    @classmethod
    def from_data(cls, data: bytes) -> Self:
        if not cls.accepts(data):
            raise BadLength(f"LP 2F poll data of {len(data)} bytes", data)
        try:
            game = decode_bcd(data[:2])
        except ValueError as exc:
            raise BadField(f"ReadSelectedMeters.game: {exc}", data) from exc
        return cls(codes=tuple(data[2:]), game=game)


@dataclass(frozen=True)
class SelectedMeters(EgmReply):
    """LP 2F: (code, value) pairs in the order the EGM sent them."""

    CODE: ClassVar[int] = 0x2F
    game: int
    meters: tuple[tuple[int, int], ...]

    @property
    def values(self) -> dict[int, int]:
        return dict(self.meters)

    @classmethod
    def accepts(cls, data: bytes) -> bool:
        return len(data) >= 2

    def to_data(self) -> bytes:
        out = bytearray(encode_bcd(self.game, 2))
        for code, value in self.meters:
            out.append(code)
            out += encode_bcd(value, meter_width(code))
        return bytes(out)

    @classmethod
    def from_data(cls, data: bytes) -> Self:
        if len(data) < 2:
            raise BadLength("LP 2F reply without a game number", data)
        meters = []
        pos = 2
        try:
            game = decode_bcd(data[:2])
            while pos < len(data):
                code = data[pos]
                width = meter_width(code)
                if pos + 1 + width > len(data):
                    raise BadLength(f"meter 0x{code:02X} cut short", data)
                meters.append((code, decode_bcd(data[pos + 1 : pos + 1 + width])))
                pos += 1 + width
        except ValueError as exc:
            raise BadField(f"SelectedMeters: {exc}", data) from exc
        return cls(game=game, meters=tuple(meters))


@dataclass(frozen=True)
class ReadRomSignature(HostPoll):
    CODE: ClassVar[int] = 0x21
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(("seed", "bin", 2))
    seed: int


@dataclass(frozen=True)
class RomSignature(EgmReply):
    CODE: ClassVar[int] = 0x21
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(("signature", "bin", 2))
    signature: int


@dataclass(frozen=True)
class SetValidationId(HostPoll):
    """LP 4C: the secure-enhanced machine id and the last sequence used."""

    CODE: ClassVar[int] = 0x4C
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(("machine_id", "bin", 3), ("sequence", "bin", 3))
    machine_id: int
    sequence: int


@dataclass(frozen=True)
class ValidationId(EgmReply):
    """LP 4C reply: the EGM echoes the id and sequence it now holds."""

    CODE: ClassVar[int] = 0x4C
    LAYOUT: ClassVar[tuple[Field, ...]] = SetValidationId.LAYOUT
    machine_id: int
    sequence: int


CURRENT_RECORD = 0x00
LOOK_AHEAD = 0xFF


@dataclass(frozen=True)
class ReadValidationRecord(HostPoll):
    CODE: ClassVar[int] = 0x4D
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(("function", "bin", 1))
    # 00 = the current record, FF = look ahead.
    function: int = CURRENT_RECORD


# LP 4D validation types.
VALIDATION_TYPES: dict[int, str] = {
    0x00: "cashable_ticket",
    0x01: "restricted_ticket",
    0x02: "cashable_ticket_aft",
    0x03: "restricted_ticket_aft",
    0x04: "debit_ticket_aft",
    0x10: "cancelled_credit_handpay_receipt",
    0x20: "jackpot_handpay_receipt",
    0x40: "cancelled_credit_handpay_no_receipt",
    0x60: "jackpot_handpay_no_receipt",
    0x80: "cashable_ticket_redeemed",
    0x81: "restricted_ticket_redeemed",
    0x82: "nonrestricted_ticket_redeemed",
}


@dataclass(frozen=True)
class ValidationRecord(EgmReply):
    """LP 4D: one enhanced validation record (ticket printed or handpay validated)."""

    CODE: ClassVar[int] = 0x4D
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(
        ("validation_type", "bin", 1),
        ("index", "bin", 1),
        ("issued_at", "datetime", 7),
        ("validation", "digits", 8),
        ("amount_cents", "bcd", 5),
        ("ticket_number", "bin", 2),
        ("system_id", "bcd", 1),
        ("expiry", "expiry", 4),
        ("pool_id", "bin", 2),
    )
    validation_type: int
    index: int
    # EGM local time; None when the record is empty.
    issued_at: datetime | None
    # The 16 digits after the system id.
    validation: str
    amount_cents: int
    ticket_number: int
    system_id: int
    # A date, a number of days, or None (never expires).
    expiry: date | int | None
    pool_id: int

    @property
    def validation_number(self) -> str:
        """The 18 digits printed on the ticket: system id then the 16 digits."""
        return f"{self.system_id:02d}{self.validation}"

    @property
    def empty(self) -> bool:
        """No record: the EGM answers all zeros."""
        return not any(self.to_data())


@dataclass(frozen=True)
class ReadHandpayInfo(HostPoll):
    CODE: ClassVar[int] = 0x1B


HANDPAY_NON_PROGRESSIVE = 0x40
HANDPAY_CANCELLED_CREDITS = 0x80


@dataclass(frozen=True)
class HandpayInfo(EgmReply):
    """LP 1B. `amount` is in cents for a progressive level (01–20) and in
    credits of the accounting denomination for levels 40 and 80;
    `partial_pay` is always in credits. All zeros: no handpay pending."""

    CODE: ClassVar[int] = 0x1B
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(
        ("progressive_group", "bin", 1),
        ("level", "bin", 1),
        ("amount", "bcd", 5),
        ("partial_pay", "bcd", 2),
        ("reset_id", "bin", 1),
        (None, "bin", 10),
    )
    progressive_group: int
    level: int
    amount: int
    partial_pay: int
    reset_id: int

    @property
    def pending(self) -> bool:
        return any(self.to_data())

    @property
    def progressive(self) -> bool:
        return 0x01 <= self.level <= 0x20

    @property
    def cancelled_credits(self) -> bool:
        return self.level == HANDPAY_CANCELLED_CREDITS

    def amount_cents(self, denomination_cents: int) -> int:
        """The handpay in cents, given the value of one credit."""
        return self.amount if self.progressive else self.amount * denomination_cents

    def partial_pay_cents(self, denomination_cents: int) -> int:
        return self.partial_pay * denomination_cents


@dataclass(frozen=True)
class ReadPendingCashout(HostPoll):
    CODE: ClassVar[int] = 0x57


CASHOUT_CASHABLE = 0x00
CASHOUT_RESTRICTED = 0x01
CASHOUT_NONE = 0x80


@dataclass(frozen=True)
class PendingCashout(EgmReply):
    """LP 57 (system validation): the cash-out waiting for a validation number."""

    CODE: ClassVar[int] = 0x57
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(("cashout_type", "bin", 1), ("amount_cents", "bcd", 5))
    # 00 cashable, 01 restricted, 80 nothing pending.
    cashout_type: int
    amount_cents: int


@dataclass(frozen=True)
class SendValidationNumber(HostPoll):
    """LP 58: the number the host picked for the pending cash-out (system id 00 = deny)."""

    CODE: ClassVar[int] = 0x58
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(("system_id", "bcd", 1), ("validation", "digits", 8))
    system_id: int
    # 16 digits; "0" * 16 with system id 0 denies the cash-out.
    validation: str


VALIDATION_ACCEPTED = 0x00
VALIDATION_NOT_IN_CASHOUT = 0x80
VALIDATION_REJECTED = 0x81


@dataclass(frozen=True)
class ValidationNumberStatus(EgmReply):
    CODE: ClassVar[int] = 0x58
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(("status", "bin", 1))
    # 00 accepted, 80 not in a cash-out, 81 rejected.
    status: int


@dataclass(frozen=True)
class ReadTicketValidationData(HostPoll):
    CODE: ClassVar[int] = 0x70


class _TicketData(EgmReply):
    """Shared layout of LP 70 and LP 71 replies: status, amount, parsing code,
    then validation data to the end. An EGM may send the status byte alone."""

    _STATUS: ClassVar[str]

    @classmethod
    def accepts(cls, data: bytes) -> bool:
        return len(data) == 1 or len(data) >= 7

    def to_data(self) -> bytes:
        validation: str = getattr(self, "validation")
        parsing_code: int = getattr(self, "parsing_code")
        if parsing_code == 0:
            raw = encode_digits(validation, len(validation) // 2) if validation else b""
        else:
            raw = bytes.fromhex(validation)
        status = bytes([getattr(self, self._STATUS)])
        return status + encode_bcd(getattr(self, "amount_cents"), 5) + bytes([parsing_code]) + raw

    @classmethod
    def from_data(cls, data: bytes) -> Self:
        if not cls.accepts(data):
            raise BadLength(f"{cls.__name__} data of {len(data)} bytes", data)
        if len(data) == 1:
            return cls(**{cls._STATUS: data[0], "amount_cents": 0, "parsing_code": 0, "validation": ""})
        parsing_code = data[6]
        try:
            amount = decode_bcd(data[1:6])
            # Parsing code 00 is BCD; any other is kept as hex for the host to reject.
            validation = decode_digits(data[7:]) if parsing_code == 0 else bytes(data[7:]).hex()
        except ValueError as exc:
            raise BadField(f"{cls.__name__}: {exc}", data) from exc
        fields = {"amount_cents": amount, "parsing_code": parsing_code, "validation": validation}
        return cls(**{cls._STATUS: data[0], **fields})


TICKET_IN_ESCROW = 0x00
NO_TICKET = 0xFF


@dataclass(frozen=True)
class TicketValidationData(_TicketData):
    """LP 70: the ticket in escrow. The EGM's amount is usually 0 and is ignored."""

    CODE: ClassVar[int] = 0x70
    _STATUS: ClassVar[str] = "ticket_status"
    # 00 ticket in escrow, FF no ticket.
    ticket_status: int
    amount_cents: int
    parsing_code: int
    # 18 digits when parsing_code is 00.
    validation: str


TRANSFER_CASHABLE = 0x00
TRANSFER_RESTRICTED = 0x01
TRANSFER_REJECT = 0x80
TRANSFER_STATUS = 0xFF


@dataclass(frozen=True)
class RedeemTicket(HostPoll):
    """LP 71 full form: authorize (00/01) or reject (80+) the ticket in escrow."""

    CODE: ClassVar[int] = 0x71
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(
        ("transfer_code", "bin", 1),
        ("amount_cents", "bcd", 5),
        ("parsing_code", "bin", 1),
        ("validation", "digits", 9),
        ("restricted_expiry", "expiry", 4),
        ("pool_id", "bin", 2),
    )
    transfer_code: int
    amount_cents: int
    # 18 digits.
    validation: str
    # None (00000000) for cashable tickets.
    restricted_expiry: date | int | None = None
    pool_id: int = 0
    parsing_code: int = 0


@dataclass(frozen=True)
class QueryRedeemStatus(HostPoll):
    """LP 71 short form `addr 71 01 FF CRC`: how did the redemption end?"""

    CODE: ClassVar[int] = 0x71

    @classmethod
    def accepts(cls, data: bytes) -> bool:
        return data == bytes([TRANSFER_STATUS])

    def to_data(self) -> bytes:
        return bytes([TRANSFER_STATUS])

    @classmethod
    def from_data(cls, data: bytes) -> Self:
        if not cls.accepts(data):
            raise BadLength("LP 71 status query is the single byte FF", data)
        return cls()


REDEEM_WAITING = 0x20
REDEEM_PENDING = 0x40
REDEEM_REJECTED = 0x80


@dataclass(frozen=True)
class RedeemStatus(_TicketData):
    """LP 71 reply. machine_status 00–02 redeemed (cashable, restricted,
    nonrestricted), 20 waiting for the host, 40 pending, 80+ rejected."""

    CODE: ClassVar[int] = 0x71
    _STATUS: ClassVar[str] = "machine_status"
    machine_status: int
    amount_cents: int
    parsing_code: int
    validation: str

    @property
    def redeemed(self) -> bool:
        return self.machine_status <= 0x02

    @property
    def rejected(self) -> bool:
        return self.machine_status >= REDEEM_REJECTED


@dataclass(frozen=True)
class SetExtendedValidationStatus(HostPoll):
    """LP 7B: which status bits to change (mask), their values, and expiry days."""

    CODE: ClassVar[int] = 0x7B
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(
        ("control_mask", "bin", 2),
        ("status_bits", "bin", 2),
        ("cashable_expiry_days", "bcd", 2),
        ("restricted_expiry_days", "bcd", 2),
    )
    control_mask: int
    status_bits: int
    cashable_expiry_days: int
    restricted_expiry_days: int


@dataclass(frozen=True)
class ExtendedValidationStatus(EgmReply):
    CODE: ClassVar[int] = 0x7B
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(
        ("asset_number", "bin", 4),
        ("status_bits", "bin", 2),
        ("cashable_expiry_days", "bcd", 2),
        ("restricted_expiry_days", "bcd", 2),
    )
    asset_number: int
    status_bits: int
    cashable_expiry_days: int
    restricted_expiry_days: int


@dataclass(frozen=True)
class SetDateTime(HostPoll):
    CODE: ClassVar[int] = 0x7F
    LAYOUT: ClassVar[tuple[Field, ...]] = _layout(("when", "datetime", 7))
    # EGM local time, whole seconds.
    when: datetime


# ----------------------------------------------------------------- the table


@dataclass(frozen=True)
class LongPoll:
    code: int
    name: str
    # The forms the host may send (LP 71 has two), tried in order.
    requests: tuple[type[HostPoll], ...]
    # None: the EGM answers with an ACK.
    reply: type[EgmReply] | None = None


LONG_POLLS: dict[int, LongPoll] = {
    lp.code: lp
    for lp in (
        LongPoll(0x01, "disable_game", (DisableGame,)),
        LongPoll(0x02, "enable_game", (EnableGame,)),
        LongPoll(0x1F, "machine_info", (ReadMachineInfo,), MachineInfo),
        LongPoll(0x1C, "basic_meters", (ReadBasicMeters,), BasicMeters),
        LongPoll(0x2F, "selected_meters", (ReadSelectedMeters,), SelectedMeters),
        LongPoll(0x21, "rom_signature", (ReadRomSignature,), RomSignature),
        LongPoll(0x4C, "set_validation_id", (SetValidationId,), ValidationId),
        LongPoll(0x4D, "validation_record", (ReadValidationRecord,), ValidationRecord),
        LongPoll(0x1B, "handpay_info", (ReadHandpayInfo,), HandpayInfo),
        LongPoll(0x57, "pending_cashout", (ReadPendingCashout,), PendingCashout),
        LongPoll(0x58, "validation_number", (SendValidationNumber,), ValidationNumberStatus),
        LongPoll(0x70, "ticket_validation_data", (ReadTicketValidationData,), TicketValidationData),
        LongPoll(0x71, "redeem_ticket", (QueryRedeemStatus, RedeemTicket), RedeemStatus),
        LongPoll(
            0x7B, "extended_validation_status", (SetExtendedValidationStatus,), ExtendedValidationStatus
        ),
        LongPoll(0x7F, "set_date_time", (SetDateTime,)),
    )
}


@dataclass(frozen=True)
class Poll:
    """A host message as the EGM sees it."""

    address: int
    request: HostPoll


def encode_poll(address: int, request: HostPoll) -> bytes:
    """Host side: the bytes of `request` to the EGM at `address`."""
    if isinstance(request, GeneralPoll):
        return general_poll(address)
    shape = POLL_SHAPES[request.CODE]
    if shape == 2:
        return long_poll_r(address, request.CODE)
    if shape == VARIABLE:
        return long_poll_m(address, request.CODE, request.to_data())
    return long_poll_s(address, request.CODE, request.to_data())


def parse_poll(frame: bytes) -> Poll:
    """EGM side: the typed request in a whole host message."""
    if is_general_poll(frame):
        return Poll(frame[0] & 0x7F, GeneralPoll())
    split = split_poll(frame)
    for form in LONG_POLLS[split.command].requests:
        if form.accepts(split.data):
            return Poll(split.address, form.from_data(split.data))
    raise BadLength(f"long poll 0x{split.command:02X} with {len(split.data)} data bytes", frame)


def encode_reply(address: int, reply: EgmReply) -> bytes:
    """EGM side: the frame carrying `reply` (ACK, NACK, busy: see frames)."""
    return reply_frame(address, reply.CODE, reply.to_data(), variable=REPLY_SHAPES[reply.CODE] == VARIABLE)


ParsedReply = Ack | Nack | Busy | ExceptionReport | EgmReply


def parse_reply(sent: bytes, received: bytes) -> ParsedReply:
    """Host side: what the EGM answered to `sent`, typed. Raises FrameError."""
    reply = classify_reply(sent, received)
    if not isinstance(reply, DataFrame):
        return reply
    if reply.command == ROM_SIGNATURE:
        return RomSignature.from_data(reply.data)
    reply_type = LONG_POLLS[reply.command].reply
    if reply_type is None:
        raise BadLength(f"long poll 0x{reply.command:02X} is answered by an ACK", received)
    return reply_type.from_data(reply.data)
