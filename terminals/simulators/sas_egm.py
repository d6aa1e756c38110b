"""A SAS EGM emulator: a slot machine on the far side of a SAS serial line.

Written from spec/sas-host.md, like another vendor's cabinet: the host is the
master and this EGM only answers. It keeps a credit meter, lifetime meters, a
queue of exception codes, the system-validation cash-out (57 → LP 57 → LP 58 →
ticket printed, 3D), secure-enhanced ticket records (LP 4C/4D), the ticket-in
flow (67 → LP 70 → LP 71 → 68 → LP 71 FF), handpays (51 → LP 1B, keyed off at
the cabinet → 52), doors, bills, games, the ROM signature (LP 21), the clock
(LP 7F) and the validation settings (LP 7B). It may share the pure codec in
`protocols.sas`; it imports nothing else of Floorhost.

`SasLine(transport, [egm, ...])` serves one line (a `MemoryTransport` end, a
pty `StreamTransport`) on a thread: it finds host messages by the wakeup bit,
completes them by the poll's length (`poll_needs`), and lets only the
addressed EGM answer, as on a real multidrop line. `SasEgm.serve(transport)`
is the one-EGM shorthand. Tests and the demo drive the cabinet with plain
method calls from any thread (`play`, `insert_bill`, `cash_out`, ...), and can
make it misbehave on purpose (`drop_next_reply`, `corrupt_next_reply`,
`garbage`, `busy`, `slow`).

Where the contract is silent, this EGM does the following:
- Meters: money meters are kept in cents and reported in the unit of their
  code (credits of the accounting denomination, floored, for 00–0C, 15, 16, 24
  and LP 1C; cents for 0D–10 and 80–93), modulo 10^(2×width). Cashable ticket
  out is meter 0E, as in SAS 6.03 (0F is restricted ticket in); see
  protocols/sas/README.md. LP 2F answers game 0000 and 0001 (a one-game
  machine) and leaves out codes it does not know.
- Exceptions: FIFO, one per general poll, removed once sent. At most
  `exception_limit` ordinary codes wait; beyond that they are lost and 70
  (buffer overflow) is reported next. Codes that start a money flow (3D, 3F,
  51, 52, 57, 67, 68) are never lost.
- Cash-out in system validation: 57, LP 57 gives the amount in cents, LP 58
  with a number prints the ticket (credits to 0, meters 0E/12/86/87), answers
  00 and raises 3D (SAS raises 3D for every printed ticket); the ticket is also
  kept as an LP 4D record with the host's system id. LP 58 with system id 00
  (deny) answers 00, prints nothing and leaves the credits on the meter. A
  repeated LP 58 with the number just accepted answers 00 again.
- Cash-out in secure-enhanced validation: the sequence is incremented, the
  number computed (SAS 6.03 §15.14), the ticket printed, 3D raised. Without an
  LP 4C since power-up of the NVRAM (new EGM, RAM clear) it raises 3F instead.
- LP 4D: function 00 answers the oldest record the host has not acknowledged;
  the host acknowledges it (implied ACK) with its next message to this EGM
  that is not the same LP 4D 00 again: an immediate repeat is a retry and gets
  the same record. FF looks at that record without arming the ACK; 01–1F read
  the buffer by index. All zeros when there is nothing. 31 records are kept.
- Ticket in: LP 70 answers the full layout (FF and zeros with no ticket). An
  LP 71 authorize (00 cashable, 01 restricted, 02 nonrestricted) or reject
  (80+) is answered 40 (pending); the EGM then credits (or returns the ticket)
  and raises 68, and LP 71 FF answers the outcome: 00–02 redeemed, 80
  rejected by the host, 81 number does not match the ticket in escrow, 82 bad
  transfer code, 83 amount zero, 20 while waiting for the host, FF no ticket.
  A repeated authorize of the ticket just redeemed answers its outcome again
  and credits nothing.
- Handpay: LP 1B keeps answering the handpay until it has been keyed off and
  read at least once, so a host that reads late still learns its amount.
  Level 40 (jackpot) and 80 (cancelled credits) carry credits; 01–20 cents.
  Keying off adds to jackpot (02) or handpaid cancelled credits (03).
- ROM signature: CRC-16/KERMIT (the line's CRC, `protocols.sas.crc.crc16`)
  over the ROM bytes with the LP 21 seed as the initial value. LP 21 is
  ACKed; the signature frame answers the first general poll at least
  `signature_delay_s` later, ahead of any exception.
- Malformed long polls (bad CRC, bad length, a field that is not BCD) are
  NACKed, except an LP 58 with a number that is not BCD, which answers 81. Long
  polls outside the subset and messages cut short are ignored (no answer).
- LP 7B: the mask picks the status bits that change; the expiry days are
  taken as sent. Bit 0 (printer as cash-out device) and bit 5 (ticket
  redemption) are set until the host clears them; with bit 0 clear a cash-out
  becomes a cancelled-credit handpay, with bit 5 clear tickets are refused.
- Power: `power_cycle()` keeps meters, credits and pending exceptions
  (NVRAM), returns a ticket in escrow, counts a power reset and raises 17.
  `ram_clear()` zeroes everything, raises 3A, and in secure-enhanced mode 3F.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Literal

from protocols.sas.crc import crc16
from protocols.sas.exceptions import BILL_CENTS
from protocols.sas.frames import (
    GENERAL_POLL_BIT,
    POLL_SHAPES,
    BadCrc,
    BadField,
    FrameError,
    ack,
    busy,
    is_general_poll,
    nack,
    poll_needs,
)
from protocols.sas.long_polls import (
    CASHOUT_CASHABLE,
    CASHOUT_NONE,
    CURRENT_RECORD,
    HANDPAY_CANCELLED_CREDITS,
    HANDPAY_NON_PROGRESSIVE,
    LOOK_AHEAD,
    METERS,
    NO_TICKET,
    REDEEM_PENDING,
    REDEEM_REJECTED,
    REDEEM_WAITING,
    TICKET_IN_ESCROW,
    TRANSFER_REJECT,
    VALIDATION_ACCEPTED,
    VALIDATION_NOT_IN_CASHOUT,
    VALIDATION_REJECTED,
    BasicMeters,
    DisableGame,
    EgmReply,
    EnableGame,
    ExtendedValidationStatus,
    HandpayInfo,
    HostPoll,
    MachineInfo,
    PendingCashout,
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
    ValidationId,
    ValidationNumberStatus,
    ValidationRecord,
    denomination_cents,
    encode_reply,
    meter_width,
    parse_poll,
)
from protocols.sas.transport import StreamTransport, TransportClosed, WakeupTransport
from protocols.sas.validation import secure_enhanced_number

log = logging.getLogger("floorhost.sim.sas")

Validation = Literal["system", "secure_enhanced"]

# Fault targets: None = the next long poll of the subset, or one of these.
ANY = "any"
GENERAL = "general"
FaultTarget = int | str | None

# LP 7B status bits (SAS 6.03): bit 0 printer as cash-out device, bit 5 ticket redemption.
STATUS_PRINTER_CASHOUT = 0x0001
STATUS_TICKET_REDEMPTION = 0x0020

# LP 71 machine statuses beyond the codec's named ones (SAS 6.03).
REDEEM_NUMBER_MISMATCH = 0x81
REDEEM_BAD_TRANSFER_CODE = 0x82
REDEEM_BAD_AMOUNT = 0x83
REDEEM_NONE = 0xFF

# Exceptions that start or finish a money flow: losing one would wedge it.
PRIORITY_EXCEPTIONS = frozenset({0x3D, 0x3E, 0x3F, 0x51, 0x52, 0x57, 0x67, 0x68})
EXCEPTION_OVERFLOW = 0x70

DOOR_EXCEPTIONS: dict[str, tuple[int, int]] = {
    "main": (0x11, 0x12),
    "drop": (0x13, 0x14),
    "logic": (0x15, 0x16),
    "cashbox": (0x19, 0x1A),
    "belly": (0x1D, 0x1E),
}
BILL_EXCEPTIONS: dict[int, int] = {cents: code for code, cents in BILL_CENTS.items() if cents is not None}
BILL_OTHER = 0x4F

RECORD_BUFFER = 31

# How long the line thread waits for a message start before looking at its stop flag.
IDLE_WAIT_S = 0.02

# Win multiples of the bet and their relative weights; the hit rate is scaled
# so that the mean return is the machine's base percentage.
PAYTABLE = ((1, 300.0), (2, 150.0), (5, 50.0), (10, 15.0), (50, 2.0), (500, 0.1))

# LP 1C fields and the meter each one reports (two are cabinet counts, not SAS meter codes).
DOOR_COUNT = "slot_door_opened"
POWER_COUNT = "power_reset"
BASIC_METER_SOURCES: dict[str, int | str] = {
    "coin_in": 0x00,
    "coin_out": 0x01,
    "drop": 0x24,
    "jackpot": 0x02,
    "games_played": 0x05,
    "games_won": 0x06,
    "slot_door_opened": DOOR_COUNT,
    "power_reset": POWER_COUNT,
}
# Meters that mirror another one on this TITO-only machine (SAS's regular
# ticket meters 80–87 are the same tickets as 0D/0E and 11/12).
METER_ALIASES: dict[int, int] = {0x80: 0x0D, 0x81: 0x11, 0x82: 0x0F, 0x83: 0x13, 0x86: 0x0E, 0x87: 0x12}


def default_rom(game_id: str, paytable: str) -> bytes:
    """The emulator's stand-in program image: 4 KiB derived from the game identity."""
    text = f"FLOORHOST SAS EGM ROM {game_id} {paytable}".encode("ascii")
    return b"".join(hashlib.sha256(text + block.to_bytes(2, "big")).digest() for block in range(128))


def rom_signature(rom: bytes, seed: int) -> int:
    """LP 21 signature: CRC-16/KERMIT of `rom` with `seed` as the initial value."""
    return crc16(rom, seed & 0xFFFF)


@dataclass(frozen=True)
class Ticket:
    """A ticket this EGM printed (cash-out) or took in (redeemed)."""

    validation_number: str
    amount_cents: int
    at: datetime


@dataclass(frozen=True)
class Handpay:
    level: int
    # Credits for levels 40 and 80, cents for progressive levels 01–20 (as LP 1B carries it).
    amount: int
    amount_cents: int


@dataclass
class _Redemption:
    """The ticket-in in progress or last finished, as LP 71 FF reports it."""

    validation: str
    status: int
    amount_cents: int = 0


@dataclass
class _Fault:
    kind: str
    target: FaultTarget
    # None: until clear_faults().
    remaining: int | None
    delay_s: float = 0.0
    length: int = 0


class SasEgm:
    """One emulated SAS EGM; see the module docstring for what it models."""

    def __init__(
        self,
        address: int,
        denom_code: int = 0x01,
        validation: Validation = "system",
        seed: int | None = None,
        game_id: str = "AT",
        paytable: str = "000123",
        base_pct: str = "9250",
        *,
        additional_id: str = "000",
        max_bet: int = 5,
        progressive_group: int = 0,
        game_options: int = 0,
        asset_number: int | None = None,
        rom: bytes | None = None,
        signature_delay_s: float = 0.0,
        jackpot_limit_cents: int | None = 120_000,
        ticket_limit_cents: int | None = None,
        exception_limit: int = 64,
        enabled: bool = True,
    ) -> None:
        if not 1 <= address <= 127:
            raise ValueError(f"SAS address must be 1..127, got {address}")
        if validation not in ("system", "secure_enhanced"):
            raise ValueError(f"validation must be system or secure_enhanced, got {validation!r}")
        self.address = address
        self.denom_code = denom_code
        self.denom_cents = denomination_cents(denom_code)
        self.validation: Validation = validation
        self.game_id = game_id
        self.additional_id = additional_id
        self.paytable = paytable
        self.base_pct = base_pct
        self.max_bet = max_bet
        self.progressive_group = progressive_group
        self.game_options = game_options
        self.asset_number = address if asset_number is None else asset_number
        self.rom = rom if rom is not None else default_rom(game_id, paytable)
        self.signature_delay_s = signature_delay_s
        self.jackpot_limit_cents = jackpot_limit_cents
        self.ticket_limit_cents = ticket_limit_cents
        self.exception_limit = exception_limit
        # Check the identity fields now rather than at the host's first LP 1F.
        MachineInfo(
            game_id, additional_id, denom_code, max_bet, progressive_group, game_options, paytable, base_pct
        ).to_data()

        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        mean_multiple = sum(m * w for m, w in PAYTABLE) / sum(w for _, w in PAYTABLE)
        self._hit_rate = min(1.0, int(base_pct) / 10000 / mean_multiple)
        self._enabled = enabled
        self._faults: list[_Fault] = []
        self._off_until = 0.0
        self._clock_offset = timedelta(0)
        self._autoplay: _Autoplay | None = None
        # Simulator log, not EGM memory: survives a RAM clear.
        self.tickets_printed: list[Ticket] = []
        self.tickets_redeemed: list[Ticket] = []
        self._reset_memory()

    def _reset_memory(self) -> None:
        """The EGM's NVRAM as it leaves the factory (or a RAM clear)."""
        self._credits_cents = 0
        # Lifetime meters by SAS code (money in cents), plus the two LP 1C cabinet counts.
        self._meters: dict[int | str, int] = {}
        self._exceptions: deque[int] = deque()
        self._overflowed = False
        self._doors: set[str] = set()
        self._handpay: Handpay | None = None
        # A handpay keyed off before the host read it: LP 1B still reports it once.
        self._handpay_unread: Handpay | None = None
        self._handpay_read = False
        self._cashout_cents = 0
        self._last_validation: tuple[int, str] | None = None
        self._machine_id: int | None = None
        self._sequence = 0
        self._records: deque[ValidationRecord] = deque(maxlen=RECORD_BUFFER)
        self._record_history: dict[int, ValidationRecord] = {}
        self._record_index = 0
        # The LP 4D 00 poll that delivered the oldest record, and that record, until the host moves on.
        self._record_sent: tuple[bytes, ValidationRecord] | None = None
        self._ticket_number = 0
        self._status_bits = STATUS_PRINTER_CASHOUT | STATUS_TICKET_REDEMPTION
        self._cashable_expiry_days = 0
        self._restricted_expiry_days = 0
        self._escrow: str | None = None
        self._redemption: _Redemption | None = None
        self._signature: int | None = None
        self._signature_at = 0.0

    # ------------------------------------------------------------ state

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def credits_cents(self) -> int:
        return self._credits_cents

    @property
    def pending_exceptions(self) -> list[int]:
        with self._lock:
            return list(self._exceptions)

    @property
    def handpay(self) -> Handpay | None:
        return self._handpay

    @property
    def validation_id(self) -> tuple[int, int] | None:
        """(machine id, last sequence used) of secure-enhanced validation, None until LP 4C."""
        with self._lock:
            return None if self._machine_id is None else (self._machine_id, self._sequence)

    def now(self) -> datetime:
        """The EGM's wall clock (local, naive), as set by LP 7F."""
        return (datetime.now() + self._clock_offset).replace(microsecond=0)

    def meter(self, code: int) -> int:
        """Meter `code` as LP 2F reports it: in its unit, rolled over to its width."""
        with self._lock:
            return self._wire_meter(code, meter_width(code))

    def preset_meter(self, code: int, value: int) -> None:
        """Set a lifetime meter, in the unit of its code (to test rollover)."""
        if code == 0x0C:
            raise ValueError("meter 0C is the credit meter itself: insert money instead")
        with self._lock:
            unit = METERS[code].unit if code in METERS else "count"
            self._meters[code] = value * self.denom_cents if unit == "credits" else value

    def rom_signature(self, seed: int) -> int:
        return rom_signature(self.rom, seed)

    def _add(self, code: int | str, amount: int) -> None:
        self._meters[code] = self._meters.get(code, 0) + amount

    def _wire_meter(self, code: int | str, width: int) -> int:
        if code == 0x0C:
            cents = self._credits_cents
        else:
            cents = self._meters.get(METER_ALIASES.get(code, code), 0)
        unit = METERS[code].unit if isinstance(code, int) and code in METERS else "count"
        value = cents // self.denom_cents if unit == "credits" else cents
        return value % 10 ** (2 * width)

    def _queue(self, code: int) -> None:
        if len(self._exceptions) >= self.exception_limit and code not in PRIORITY_EXCEPTIONS:
            self._overflowed = True
            return
        self._exceptions.append(code)

    def _next_exception(self) -> int:
        if self._overflowed:
            self._overflowed = False
            return EXCEPTION_OVERFLOW
        return self._exceptions.popleft() if self._exceptions else 0x00

    def _locked_reason(self) -> str | None:
        """Why the player cannot play or insert money now (None: they can)."""
        if self._powered_off():
            return "power off"
        if self._handpay is not None:
            return "handpay pending"
        if self._cashout_cents:
            return "cash-out pending"
        if self._escrow is not None:
            return "ticket in escrow"
        return None

    # ------------------------------------------------------------ the cabinet

    def raise_exception(self, code: int) -> None:
        """Queue any exception code (tilts, bill jam, low battery, ...)."""
        if not 0 <= code <= 0xFF:
            raise ValueError(f"exception code must be one byte, got {code}")
        with self._lock:
            self._queue(code)

    def play(self, n_games: int = 1, bet_credits: int | None = None) -> int:
        """Play up to `n_games` games; returns how many were played.

        Play stops when the game is disabled, a door is open, credits run
        short of the bet, or a win at or above the jackpot limit locks the
        machine up in a handpay.
        """
        bet = self.max_bet if bet_credits is None else bet_credits
        if not 1 <= bet <= self.max_bet:
            raise ValueError(f"bet must be 1..{self.max_bet} credits, got {bet}")
        played = 0
        with self._lock:
            for _ in range(n_games):
                bet_cents = bet * self.denom_cents
                if not self._enabled or self._doors or self._locked_reason() or self._credits_cents < bet_cents:
                    break
                self._queue(0x7E)
                self._credits_cents -= bet_cents
                self._add(0x00, bet_cents)
                for code in (0x05, 0x25, 0x26):
                    self._add(code, 1)
                multiple = self._spin()
                win_cents = bet_cents * multiple
                self._add(0x06 if multiple else 0x07, 1)
                self._queue(0x7F)
                played += 1
                if win_cents and self.jackpot_limit_cents is not None and win_cents >= self.jackpot_limit_cents:
                    self._start_handpay(HANDPAY_NON_PROGRESSIVE, win_cents)
                    break
                if win_cents:
                    self._credits_cents += win_cents
                    self._add(0x01, win_cents)
        return played

    def _spin(self) -> int:
        if self._rng.random() >= self._hit_rate:
            return 0
        multiples = [m for m, _ in PAYTABLE]
        return self._rng.choices(multiples, weights=[w for _, w in PAYTABLE])[0]

    def insert_bill(self, cents: int) -> bool:
        """A bill into the validator: credits, the bill meters and exception 47–50."""
        if cents <= 0:
            raise ValueError(f"a bill is worth something, got {cents}")
        with self._lock:
            if not self._enabled or self._locked_reason():
                return False
            self._credits_cents += cents
            self._add(0x0B, cents)
            self._add(0x24, cents)
            self._queue(BILL_EXCEPTIONS.get(cents, BILL_OTHER))
            return True

    def cash_out(self) -> int:
        """The player presses cash-out; returns the amount in cents (0: nothing happened).

        System validation raises 57 and waits for the host's number;
        secure-enhanced prints at once and raises 3D. Above `ticket_limit_cents`
        (or with the printer not the cash-out device) it is a cancelled-credit
        handpay instead.
        """
        with self._lock:
            amount = self._credits_cents
            if amount <= 0 or self._locked_reason():
                return 0
            too_big = self.ticket_limit_cents is not None and amount >= self.ticket_limit_cents
            if too_big or not self._status_bits & STATUS_PRINTER_CASHOUT:
                self._start_handpay(HANDPAY_CANCELLED_CREDITS, amount - amount % self.denom_cents)
                return amount
            if self.validation == "system":
                self._cashout_cents = amount
                self._queue(0x57)
                return amount
            if self._machine_id is None:
                self._queue(0x3F)
                return 0
            self._sequence = (self._sequence + 1) & 0xFFFFFF
            number = secure_enhanced_number(self._machine_id, self._sequence)
            self._print_ticket(amount, system_id=0, digits=number[2:])
            return amount

    def _print_ticket(self, amount_cents: int, system_id: int, digits: str) -> None:
        at = self.now()
        self._credits_cents -= amount_cents
        for code, value in ((0x0E, amount_cents), (0x12, 1), (0x16, amount_cents), (0x04, amount_cents)):
            self._add(code, value)
        self._ticket_number = (self._ticket_number + 1) % 10000
        self._record_index = self._record_index % RECORD_BUFFER + 1
        record = ValidationRecord(
            validation_type=0x00,
            index=self._record_index,
            issued_at=at,
            validation=digits,
            amount_cents=amount_cents,
            ticket_number=self._ticket_number,
            system_id=system_id,
            expiry=self._cashable_expiry_days or None,
            pool_id=0,
        )
        self._records.append(record)
        self._record_history[record.index] = record
        self.tickets_printed.append(Ticket(record.validation_number, amount_cents, at))
        self._queue(0x3D)
        log.info("egm %d printed ticket %s for %d cents", self.address, record.validation_number, amount_cents)

    def insert_ticket(self, validation_number: str) -> bool:
        """A ticket into the validator: held in escrow, 67 raised for the host."""
        if len(validation_number) != 18 or not (validation_number.isascii() and validation_number.isdigit()):
            raise ValueError(f"a validation number has 18 digits, got {validation_number!r}")
        with self._lock:
            if not self._enabled or self._locked_reason() or not self._status_bits & STATUS_TICKET_REDEMPTION:
                return False
            self._escrow = validation_number
            self._redemption = _Redemption(validation_number, REDEEM_WAITING)
            self._queue(0x67)
            return True

    def open_door(self, door: str = "main") -> None:
        opened, _ = DOOR_EXCEPTIONS[door]
        with self._lock:
            if door in self._doors:
                return
            self._doors.add(door)
            if door == "main":
                self._add(DOOR_COUNT, 1)
            self._queue(opened)

    def close_door(self, door: str = "main") -> None:
        _, closed = DOOR_EXCEPTIONS[door]
        with self._lock:
            if door not in self._doors:
                return
            self._doors.discard(door)
            if door == "main":
                self._meters[0x26] = 0
            self._queue(closed)

    def trigger_handpay(self, cents: int, level: int = HANDPAY_NON_PROGRESSIVE) -> bool:
        """Lock up in a handpay of `cents`: 40 jackpot, 80 cancelled credits, 01–20 progressive."""
        if cents <= 0:
            raise ValueError(f"a handpay is worth something, got {cents}")
        if level in (HANDPAY_NON_PROGRESSIVE, HANDPAY_CANCELLED_CREDITS) and cents % self.denom_cents:
            raise ValueError(f"level {level:02X} handpays are whole credits of {self.denom_cents} cents")
        if not (0x01 <= level <= 0x20 or level in (HANDPAY_NON_PROGRESSIVE, HANDPAY_CANCELLED_CREDITS)):
            raise ValueError(f"not a handpay level: {level:02X}")
        with self._lock:
            if self._locked_reason():
                return False
            if level == HANDPAY_CANCELLED_CREDITS and cents > self._credits_cents:
                raise ValueError(f"cannot cancel {cents} cents of {self._credits_cents} cents of credits")
            self._start_handpay(level, cents)
            return True

    def _start_handpay(self, level: int, cents: int) -> None:
        amount = cents if 0x01 <= level <= 0x20 else cents // self.denom_cents
        self._handpay = Handpay(level, amount, cents)
        self._handpay_read = False
        self._handpay_unread = None
        self._queue(0x51)

    def key_off_handpay(self) -> Handpay | None:
        """The attendant keys the handpay off at the cabinet: meters, then 52."""
        with self._lock:
            handpay = self._handpay
            if handpay is None:
                return None
            if handpay.level == HANDPAY_CANCELLED_CREDITS:
                self._credits_cents -= handpay.amount_cents
                self._add(0x03, handpay.amount_cents)
                self._add(0x04, handpay.amount_cents)
            else:
                self._add(0x02, handpay.amount_cents)
            self._handpay = None
            if not self._handpay_read:
                self._handpay_unread = handpay
            self._queue(0x52)
            return handpay

    def ram_clear(self) -> None:
        """The operator clears NVRAM: meters, credits and pending work are gone."""
        with self._lock:
            self._reset_memory()
            self._queue(0x3A)
            if self.validation == "secure_enhanced":
                self._queue(0x3F)

    def power_cycle(self, off_s: float = 0.0) -> None:
        """Power off for `off_s` seconds (silent on the line), then on: 17 is raised."""
        with self._lock:
            self._off_until = time.monotonic() + off_s
            self._add(POWER_COUNT, 1)
            self._meters[0x25] = 0
            self._signature = None
            if self._escrow is not None:
                # The validator returns the ticket: the redemption ends unpaid.
                self._escrow = None
                if self._redemption is not None:
                    self._redemption.status = REDEEM_REJECTED
            self._queue(0x17)

    def _powered_off(self) -> bool:
        return time.monotonic() < self._off_until

    # ------------------------------------------------------------ faults

    def drop_next_reply(self, times: int | None = 1, command: FaultTarget = None) -> None:
        """The next matching message goes unanswered and unheard (the host times out)."""
        self._add_fault(_Fault("drop", command, times))

    def corrupt_next_reply(self, times: int | None = 1, command: FaultTarget = None) -> None:
        """The next matching reply is sent with its last byte inverted (a bad CRC)."""
        self._add_fault(_Fault("corrupt", command, times))

    def garbage(self, times: int | None = 1, command: FaultTarget = None, length: int = 6) -> None:
        """The next matching reply is replaced by `length` random bytes."""
        self._add_fault(_Fault("garbage", command, times, length=length))

    def nack(self, times: int | None = 1, command: FaultTarget = None) -> None:
        """The next matching long poll is NACKed (`addr|0x80`), as if it had arrived damaged, and not acted on."""
        self._add_fault(_Fault("nack", command, times))

    def busy(self, times: int | None = 1, command: FaultTarget = None) -> None:
        """The next matching long poll is answered busy (`addr 00`) and not acted on."""
        self._add_fault(_Fault("busy", command, times))

    def slow(self, delay_s: float = 0.05, times: int | None = 1, command: FaultTarget = None) -> None:
        """The next matching reply is sent `delay_s` late (the spec allows 20 ms)."""
        self._add_fault(_Fault("slow", command, times, delay_s=delay_s))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining is not None and fault.remaining < 1:
            raise ValueError(f"times must be at least 1 (or None for until cleared), got {fault.remaining}")
        with self._lock:
            self._faults.append(fault)

    def _take_faults(self, message: bytes) -> dict[str, _Fault]:
        """The faults that apply to `message`, one use of each consumed."""
        general = is_general_poll(message)
        command = None if general else message[1]
        taken: dict[str, _Fault] = {}
        for fault in self._faults:
            if fault.kind in taken:
                continue
            if fault.target == ANY:
                hit = True
            elif fault.target == GENERAL:
                hit = general
            elif fault.target is None:
                hit = not general
            else:
                hit = command == fault.target
            if not hit or (fault.kind in ("busy", "nack") and general):
                continue
            taken[fault.kind] = fault
            if fault.remaining is not None:
                fault.remaining -= 1
        self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
        return taken

    # ------------------------------------------------------------ the wire

    def respond(self, message: bytes) -> tuple[bytes | None, float]:
        """What this EGM sends for one whole host message addressed to it, and
        how many seconds late (a `slow` fault). None: no answer."""
        with self._lock:
            if self._powered_off():
                return None, 0.0
            general = is_general_poll(message)
            if not general and (len(message) < 2 or message[1] not in POLL_SHAPES):
                # A long poll outside the subset: a real EGM ignores what it does not support.
                return None, 0.0
            faults = self._take_faults(message)
            if "drop" in faults:
                return None, 0.0
            if "busy" in faults:
                return busy(self.address), 0.0
            if "nack" in faults:
                return nack(self.address), 0.0
            if self._record_sent is not None and message != self._record_sent[0]:
                # Implied ACK: the host moved on from the validation record it read.
                if self._records and self._records[0] is self._record_sent[1]:
                    self._records.popleft()
                self._record_sent = None
            reply = self._general_poll() if general else self._long_poll(message)
            if reply is None:
                return None, 0.0
            if "garbage" in faults:
                reply = bytes(self._rng.randrange(256) for _ in range(faults["garbage"].length))
            if "corrupt" in faults:
                reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
            return reply, faults["slow"].delay_s if "slow" in faults else 0.0

    def _general_poll(self) -> bytes:
        if self._signature is not None and time.monotonic() >= self._signature_at:
            signature, self._signature = self._signature, None
            return encode_reply(self.address, RomSignature(signature))
        return bytes([self._next_exception()])

    def _long_poll(self, message: bytes) -> bytes | None:
        try:
            poll = parse_poll(message)
        except BadCrc:
            return nack(self.address)
        except BadField:
            if message[1] == 0x58:
                return encode_reply(self.address, ValidationNumberStatus(VALIDATION_REJECTED))
            return nack(self.address)
        except FrameError:
            return nack(self.address)
        handler = _HANDLERS.get(type(poll.request))
        if handler is None:
            return None
        reply = handler(self, poll.request, message)
        if isinstance(reply, EgmReply):
            return encode_reply(self.address, reply)
        return reply

    # ------------------------------------------------------------ long polls

    def _lp_disable(self, _poll: HostPoll, _message: bytes) -> bytes:
        self._enabled = False
        return ack(self.address)

    def _lp_enable(self, _poll: HostPoll, _message: bytes) -> bytes:
        self._enabled = True
        return ack(self.address)

    def _lp_machine_info(self, _poll: HostPoll, _message: bytes) -> EgmReply:
        return MachineInfo(
            game_id=self.game_id,
            additional_id=self.additional_id,
            denomination_code=self.denom_code,
            max_bet=self.max_bet,
            progressive_group=self.progressive_group,
            game_options=self.game_options,
            paytable_id=self.paytable,
            base_percent=self.base_pct,
        )

    def _lp_basic_meters(self, _poll: HostPoll, _message: bytes) -> EgmReply:
        return BasicMeters(**{name: self._wire_meter(src, 4) for name, src in BASIC_METER_SOURCES.items()})

    def _lp_selected_meters(self, poll: ReadSelectedMeters, _message: bytes) -> EgmReply | None:
        if poll.game not in (0, 1):
            return None
        meters = tuple((code, self._wire_meter(code, meter_width(code))) for code in poll.codes if code in METERS)
        return SelectedMeters(game=poll.game, meters=meters)

    def _lp_rom_signature(self, poll: ReadRomSignature, _message: bytes) -> bytes:
        self._signature = self.rom_signature(poll.seed)
        self._signature_at = time.monotonic() + self.signature_delay_s
        return ack(self.address)

    def _lp_set_validation_id(self, poll: SetValidationId, _message: bytes) -> EgmReply:
        self._machine_id = poll.machine_id
        self._sequence = poll.sequence
        return ValidationId(machine_id=poll.machine_id, sequence=poll.sequence)

    def _lp_validation_record(self, poll: ReadValidationRecord, message: bytes) -> EgmReply:
        empty = ValidationRecord(0, 0, None, "0" * 16, 0, 0, 0, None, 0)
        if poll.function in (CURRENT_RECORD, LOOK_AHEAD):
            if not self._records:
                return empty
            if poll.function == CURRENT_RECORD:
                self._record_sent = (message, self._records[0])
            return self._records[0]
        return self._record_history.get(poll.function, empty)

    def _lp_handpay_info(self, _poll: HostPoll, _message: bytes) -> EgmReply:
        handpay = self._handpay
        if handpay is not None:
            self._handpay_read = True
        elif self._handpay_unread is not None:
            handpay, self._handpay_unread = self._handpay_unread, None
        if handpay is None:
            return HandpayInfo(0, 0, 0, 0, 0)
        return HandpayInfo(self.progressive_group if handpay.level <= 0x20 else 0, handpay.level, handpay.amount, 0, 0)

    def _lp_pending_cashout(self, _poll: HostPoll, _message: bytes) -> EgmReply:
        if not self._cashout_cents:
            return PendingCashout(CASHOUT_NONE, 0)
        return PendingCashout(CASHOUT_CASHABLE, self._cashout_cents)

    def _lp_validation_number(self, poll: SendValidationNumber, _message: bytes) -> EgmReply:
        if not self._cashout_cents:
            repeat = self._last_validation == (poll.system_id, poll.validation)
            return ValidationNumberStatus(VALIDATION_ACCEPTED if repeat else VALIDATION_NOT_IN_CASHOUT)
        amount, self._cashout_cents = self._cashout_cents, 0
        self._last_validation = (poll.system_id, poll.validation)
        if poll.system_id != 0:
            self._print_ticket(amount, poll.system_id, poll.validation)
        return ValidationNumberStatus(VALIDATION_ACCEPTED)

    def _lp_ticket_data(self, _poll: HostPoll, _message: bytes) -> EgmReply:
        if self._escrow is None:
            return TicketValidationData(NO_TICKET, 0, 0, "0" * 18)
        return TicketValidationData(TICKET_IN_ESCROW, 0, 0, self._escrow)

    def _lp_redeem(self, poll: RedeemTicket, _message: bytes) -> EgmReply:
        redemption = self._redemption
        if self._escrow is None:
            if redemption is not None and redemption.validation == poll.validation:
                # A repeat of the poll that settled this ticket: its outcome, nothing moves.
                return self._redeem_status(redemption)
            return RedeemStatus(REDEEM_NONE, 0, 0, poll.validation)
        assert redemption is not None
        code = poll.transfer_code
        if poll.validation != self._escrow:
            outcome = REDEEM_NUMBER_MISMATCH
        elif code >= TRANSFER_REJECT:
            outcome = REDEEM_REJECTED
        elif code > 0x02:
            outcome = REDEEM_BAD_TRANSFER_CODE
        elif poll.amount_cents <= 0:
            outcome = REDEEM_BAD_AMOUNT
        else:
            outcome = code
        if outcome <= 0x02:
            amount = poll.amount_cents
            self._credits_cents += amount
            in_meter, count_meter = ((0x0D, 0x11), (0x0F, 0x13), (0x84, 0x85))[outcome]
            for meter, value in ((in_meter, amount), (count_meter, 1), (0x15, amount), (0x24, amount)):
                self._add(meter, value)
            redemption.amount_cents = amount
            self.tickets_redeemed.append(Ticket(self._escrow, amount, self.now()))
        redemption.status = outcome
        self._escrow = None
        self._queue(0x68)
        return RedeemStatus(REDEEM_PENDING, poll.amount_cents, 0, poll.validation)

    def _lp_redeem_status(self, _poll: HostPoll, _message: bytes) -> EgmReply:
        if self._redemption is None:
            return RedeemStatus(REDEEM_NONE, 0, 0, "0" * 18)
        return self._redeem_status(self._redemption)

    @staticmethod
    def _redeem_status(redemption: _Redemption) -> RedeemStatus:
        return RedeemStatus(redemption.status, redemption.amount_cents, 0, redemption.validation)

    def _lp_extended_validation(self, poll: SetExtendedValidationStatus, _message: bytes) -> EgmReply:
        mask = poll.control_mask
        self._status_bits = (self._status_bits & ~mask & 0xFFFF) | (poll.status_bits & mask)
        self._cashable_expiry_days = poll.cashable_expiry_days
        self._restricted_expiry_days = poll.restricted_expiry_days
        return ExtendedValidationStatus(
            asset_number=self.asset_number,
            status_bits=self._status_bits,
            cashable_expiry_days=self._cashable_expiry_days,
            restricted_expiry_days=self._restricted_expiry_days,
        )

    def _lp_set_clock(self, poll: SetDateTime, _message: bytes) -> bytes:
        self._clock_offset = poll.when - datetime.now()
        return ack(self.address)

    # ------------------------------------------------------------ serving

    def serve(self, transport: WakeupTransport) -> SasLine:
        """Answer the host on `transport` from a thread; returns the started line."""
        return SasLine(transport, [self]).start()

    def autoplay(self, rate: float = 1.0) -> _Autoplay:
        """Play like a patron, `rate` steps a second, on a thread (the demo's floor)."""
        with self._lock:
            if self._autoplay is not None:
                self._autoplay.stop()
            self._autoplay = _Autoplay(self, rate)
        self._autoplay.start()
        return self._autoplay

    def stop_autoplay(self) -> None:
        with self._lock:
            autoplay, self._autoplay = self._autoplay, None
        if autoplay is not None:
            autoplay.stop()


# Each handler takes the EGM, the typed poll and its raw bytes; answers a reply, raw bytes or None.
_Handler = Callable[..., "EgmReply | bytes | None"]
_HANDLERS: dict[type[HostPoll], _Handler] = {
    DisableGame: SasEgm._lp_disable,
    EnableGame: SasEgm._lp_enable,
    ReadMachineInfo: SasEgm._lp_machine_info,
    ReadBasicMeters: SasEgm._lp_basic_meters,
    ReadSelectedMeters: SasEgm._lp_selected_meters,
    ReadRomSignature: SasEgm._lp_rom_signature,
    SetValidationId: SasEgm._lp_set_validation_id,
    ReadValidationRecord: SasEgm._lp_validation_record,
    ReadHandpayInfo: SasEgm._lp_handpay_info,
    ReadPendingCashout: SasEgm._lp_pending_cashout,
    SendValidationNumber: SasEgm._lp_validation_number,
    ReadTicketValidationData: SasEgm._lp_ticket_data,
    RedeemTicket: SasEgm._lp_redeem,
    QueryRedeemStatus: SasEgm._lp_redeem_status,
    SetExtendedValidationStatus: SasEgm._lp_extended_validation,
    SetDateTime: SasEgm._lp_set_clock,
}


class SasLine:
    """One serial line with one or more EGMs on it, answered from a thread.

    Every EGM on a multidrop line hears every host message; only the one
    whose address it carries answers. Bytes without the wakeup bit before a
    message start (other EGMs' traffic, noise) are skipped.
    """

    def __init__(
        self,
        transport: WakeupTransport,
        egms: Iterable[SasEgm],
        *,
        inter_byte_timeout: float = 0.05,
    ) -> None:
        self.transport = transport
        self.egms: dict[int, SasEgm] = {}
        for egm in egms:
            if egm.address in self.egms:
                raise ValueError(f"two EGMs at address {egm.address} on one line")
            self.egms[egm.address] = egm
        # The spec's 5 ms between bytes, with room for a loaded test machine.
        self.inter_byte_timeout = inter_byte_timeout
        self.messages = 0
        self.skipped_bytes = 0
        self.cut_short = 0
        self._held: deque[tuple[int, bool]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SasLine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sas-line", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering (the transport stays open: whoever opened it closes it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> SasLine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._next_message()
                if message:
                    self._dispatch(message)
            except TransportClosed:
                return
            except Exception:
                # One bad message must never take the line down.
                log.exception("SAS line emulator failed on a message")

    def _read(self, n: int, timeout: float) -> list[tuple[int, bool]]:
        if self._held:
            return [self._held.popleft() for _ in range(min(n, len(self._held)))]
        return self.transport.read_marked(n, timeout)

    def _next_message(self) -> bytes | None:
        """The next whole host message, completed by its poll's length rather
        than by an idle gap, so the answer can go out within 20 ms."""
        got = self._read(1, IDLE_WAIT_S)
        if not got:
            return None
        first, wakeup = got[0]
        if not wakeup:
            self.skipped_bytes += 1
            return None
        message = bytearray([first])
        if first & GENERAL_POLL_BIT or first not in self.egms:
            # A general poll is one byte; the rest of someone else's poll is skipped as it comes.
            return bytes(message)
        while (needs := poll_needs(bytes(message))) > 0:
            more = self._read(needs, self.inter_byte_timeout)
            if not more:
                self.cut_short += 1
                return None
            for index, (byte, marked) in enumerate(more):
                if marked:
                    # A new message began before this one was whole: drop this one, keep that one.
                    self._held.extend(more[index:])
                    self.cut_short += 1
                    return None
                message.append(byte)
        return bytes(message)

    def _dispatch(self, message: bytes) -> None:
        egm = self.egms.get(message[0] & 0x7F)
        if egm is None:
            return
        self.messages += 1
        reply, delay = egm.respond(message)
        if delay:
            time.sleep(delay)
        if reply:
            self.transport.send(reply, wakeup=False)


class _Autoplay:
    """A patron at the cabinet: bills or tickets in, games, the odd cash-out."""

    def __init__(self, egm: SasEgm, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"autoplay rate must be positive, got {rate}")
        self.egm = egm
        self.period = 1.0 / rate
        self._rng = random.Random(egm._rng.random())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sas-autoplay-{egm.address}", daemon=True)
        self._handpay_ticks = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.step()
            except Exception:
                log.exception("autoplay step failed on egm %d", self.egm.address)

    def step(self) -> None:
        egm, rng = self.egm, self._rng
        if egm.handpay is not None:
            # The attendant arrives after a few steps and keys it off.
            self._handpay_ticks += 1
            if self._handpay_ticks >= 5:
                egm.key_off_handpay()
                self._handpay_ticks = 0
            return
        bet_cents = egm.max_bet * egm.denom_cents
        roll = rng.random()
        if egm.credits_cents < bet_cents:
            if egm.credits_cents and roll < 0.3:
                egm.cash_out()
                return
            # Re-insert a ticket this cabinet printed, now and then; otherwise a bill.
            unused = [t for t in egm.tickets_printed if t.validation_number not in _redeemed(egm)]
            if unused and roll < 0.6:
                egm.insert_ticket(rng.choice(unused).validation_number)
            else:
                egm.insert_bill(rng.choice((100, 500, 1000, 2000)))
            return
        if roll < 0.01:
            egm.cash_out()
        elif roll < 0.012:
            egm.trigger_handpay(rng.choice((120_000, 150_000, 250_000)) // egm.denom_cents * egm.denom_cents)
        elif roll < 0.02:
            egm.open_door()
            egm.close_door()
        else:
            egm.play(1, rng.randint(1, egm.max_bet))


def _redeemed(egm: SasEgm) -> set[str]:
    return {t.validation_number for t in egm.tickets_redeemed}


def main(argv: list[str] | None = None) -> None:
    """Run EGMs on a new pty (or an existing one) until interrupted; prints the path."""
    parser = argparse.ArgumentParser(description="SAS EGM emulator on a pty")
    parser.add_argument("--address", type=int, action="append", help="EGM address (repeat for a multidrop line)")
    parser.add_argument("--pty", help="open this pty path instead of creating one")
    parser.add_argument("--validation", choices=("system", "secure_enhanced"), default="system")
    parser.add_argument("--rate", type=float, default=0.0, help="autoplay steps per second (0: none)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.pty:
        transport, path = StreamTransport.open_path(args.pty), args.pty
    else:
        transport, path = StreamTransport.create_pty()
    egms = [SasEgm(a, validation=args.validation, seed=args.seed) for a in args.address or [1]]
    line = SasLine(transport, egms).start()
    print(path, flush=True)
    if args.rate > 0:
        for egm in egms:
            egm.autoplay(args.rate)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for egm in egms:
            egm.stop_autoplay()
        line.stop()
        transport.close()


if __name__ == "__main__":
    main()
