"""The register map of Modbus floor devices, contract v1 (spec/modbus-map.md), as tables.

Addresses are protocol (zero-based) addresses; sizes are in 16-bit registers. Everything
else in this package (and the device simulator) reads addresses from here.
"""

from dataclasses import dataclass

MAP_VERSION = 1
DEFAULT_TCP_PORT = 502
DEFAULT_SERIAL = {"baud": 19200, "bytesize": 8, "parity": "N", "stopbits": 1}


@dataclass(frozen=True)
class Register:
    """One value in the map: where it starts, how many registers it takes, what it means."""

    name: str
    address: int
    size: int
    meaning: str

    @property
    def end(self) -> int:
        """The address just past this value."""
        return self.address + self.size


# Input registers (function 04, read-only). Names of meters are the MQTT `meters` names.
INPUT_REGISTERS: tuple[Register, ...] = (
    Register("map_version", 0, 1, "map version (= 1)"),
    Register("status", 1, 1, "status bits, see STATUS_BITS"),
    Register("event_counter", 2, 2, "increments on every status change and bill"),
    Register("coin_in_cents", 10, 2, "coin in, cents"),
    Register("coin_out_cents", 12, 2, "coin out, cents"),
    Register("jackpot_cents", 14, 2, "jackpot (handpaid), cents"),
    Register("bills_in_cents", 16, 2, "bills in, cents"),
    Register("games_played", 18, 2, "games played"),
    Register("games_won", 20, 2, "games won"),
    Register("current_credits_cents", 22, 2, "current credits, cents"),
    Register("handpay_pending_cents", 24, 2, "handpay pending amount, cents (0 if none)"),
    Register("software_sha256", 30, 16, "software sha256, first byte in the high half of 30"),
)

# Holding registers (functions 03 / 06 / 16).
HOLDING_REGISTERS: tuple[Register, ...] = (
    Register("play_enabled", 100, 1, "play enabled (1) / disabled (0)"),
    Register("clock", 101, 2, "clock, unix seconds (written by the host for time sync)"),
    Register("denom_cents", 110, 1, "denomination, cents"),
    Register("max_bet_cents", 111, 2, "max bet, cents"),
    Register("paytable", 113, 1, "paytable number"),
    Register("rtp_bp", 114, 1, "theoretical RTP, basis points"),
    Register("config_id_applying", 120, 2, "config id being applied (host writes it last)"),
    Register("config_id_in_force", 122, 2, "config id in force (read-only in effect)"),
    Register("handpay_reset", 130, 1, "host writes 1, device clears the handpay and writes 0"),
)

INPUT = {r.name: r for r in INPUT_REGISTERS}
HOLDING = {r.name: r for r in HOLDING_REGISTERS}

# The host reads input registers 0-45 in one request.
INPUT_FIRST = 0
INPUT_COUNT = 46
# Holding registers span 100-130; addresses in between are reserved.
HOLDING_FIRST = 100
HOLDING_COUNT = 31


@dataclass(frozen=True)
class StatusBit:
    """One bit of status register 1 and the MQTT event codes its edges mean."""

    bit: int
    name: str
    meaning: str
    rising: str | None
    falling: str | None


STATUS_BITS: tuple[StatusBit, ...] = (
    StatusBit(0, "main_door_open", "main door open", "door.main.open", "door.main.closed"),
    StatusBit(1, "cashbox_door_open", "cashbox door open", "door.cashbox.open", "door.cashbox.closed"),
    StatusBit(2, "tilt", "tilt", "tilt", None),
    # A rising bit 3 is a handpay (amount in register 24), not an event code.
    StatusBit(3, "handpay_pending", "handpay pending", None, None),
    StatusBit(4, "game_in_progress", "game in progress", None, None),
    StatusBit(5, "disabled", "disabled", None, None),
    StatusBit(6, "fault", "printer/acceptor fault", "printer.fault", None),
    # Latched by the device and cleared when register 1 is read: set means "happened since".
    StatusBit(7, "ram_cleared", "RAM cleared since last read", "ram.clear", None),
)

BIT = {b.name: b.bit for b in STATUS_BITS}

METER_NAMES: tuple[str, ...] = (
    "coin_in_cents",
    "coin_out_cents",
    "jackpot_cents",
    "bills_in_cents",
    "games_played",
    "games_won",
    "current_credits_cents",
)
