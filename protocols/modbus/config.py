"""Holding-register writes the host makes: config push, enable/disable, clock, handpay reset.

A device holds one game, so a config package maps to the registers of its first game;
a package that does not fit is refused with ConfigNotMappable(reason).
"""

from collections.abc import Sequence

from protocols.modbus.codec import join32, split32
from protocols.modbus.exceptions import ConfigNotMappable, MapError
from protocols.modbus.map import HOLDING

Write = tuple[int, list[int]]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _game_registers(package: dict) -> list[int]:
    """Registers 110-114 for the package's first game."""
    if not isinstance(package, dict):
        raise ConfigNotMappable("package is not an object")
    games = package.get("games")
    if not isinstance(games, list) or not games:
        raise ConfigNotMappable("package has no games")
    game = games[0]
    if not isinstance(game, dict):
        raise ConfigNotMappable("first game is not an object")

    denoms = game.get("denoms_cents")
    if not isinstance(denoms, list) or not denoms or not all(_is_int(d) for d in denoms):
        raise ConfigNotMappable("first game has no integer denominations")
    denom = min(denoms)
    if not 1 <= denom <= 0xFFFF:
        raise ConfigNotMappable(f"denomination {denom} cents does not fit one register")

    max_bet = game.get("max_bet_cents")
    if not _is_int(max_bet) or not 0 <= max_bet <= 0xFFFFFFFF:
        raise ConfigNotMappable(f"max bet {max_bet!r} cents does not fit 32 bits")

    paytable_id = game.get("paytable_id")
    # isdigit() alone would accept "²" and other Unicode digits.
    if not isinstance(paytable_id, str) or not paytable_id.isascii() or not paytable_id.isdigit():
        raise ConfigNotMappable(f"paytable_id {paytable_id!r} is not all digits")
    paytable = int(paytable_id)
    if paytable > 0xFFFF:
        raise ConfigNotMappable(f"paytable_id {paytable_id} is over 65535")

    rtp = game.get("rtp_bp")
    if not _is_int(rtp) or not 0 <= rtp <= 0xFFFF:
        raise ConfigNotMappable(f"rtp_bp {rtp!r} does not fit one register")

    return [denom, *split32(max_bet), paytable, rtp]


def config_writes(package: dict, deployment_id: int) -> list[Write]:
    """The writes of a config push, in order: 110-114 in one write, then 120-121 (deployment id) last.

    Raises ConfigNotMappable for a package a one-game device cannot hold, MapError for a
    deployment id that does not fit 32 bits.
    """
    game = _game_registers(package)
    if not _is_int(deployment_id) or not 0 <= deployment_id <= 0xFFFFFFFF:
        raise MapError(f"deployment id {deployment_id!r} does not fit 32 bits")
    return [
        (HOLDING["denom_cents"].address, game),
        # Written last and on its own: the device starts applying when it sees it.
        (HOLDING["config_id_applying"].address, split32(deployment_id)),
    ]


def enable_write(enabled: bool) -> Write:
    """The write that enables (1) or disables (0) play."""
    return (HOLDING["play_enabled"].address, [1 if enabled else 0])


def clock_write(unix_seconds: int) -> Write:
    """The write that sets the device clock, unix seconds (32-bit, rolls over in 2106)."""
    if not _is_int(unix_seconds) or unix_seconds < 0:
        raise MapError(f"clock {unix_seconds!r} is not a non-negative integer")
    return (HOLDING["clock"].address, split32(unix_seconds % (1 << 32)))


def handpay_reset_write() -> Write:
    """The write that tells the device its pending handpay was paid."""
    return (HOLDING["handpay_reset"].address, [1])


CONFIG_IDS_ADDRESS = HOLDING["config_id_applying"].address
CONFIG_IDS_COUNT = 4


def decode_config_ids(registers: Sequence[int]) -> tuple[int, int]:
    """(being applied, in force) from a read of the 4 holding registers at 120."""
    if len(registers) < CONFIG_IDS_COUNT:
        raise MapError(f"short read: {len(registers)} registers, need {CONFIG_IDS_COUNT}")
    return join32(registers[0], registers[1]), join32(registers[2], registers[3])
