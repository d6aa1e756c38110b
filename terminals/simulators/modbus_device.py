"""Modbus floor device simulator: a cabinet with a meter-interface board, over real Modbus TCP.

It is a pymodbus server built on the SimData/SimDevice API and speaks register map v1
(spec/modbus-map.md). The device's state lives in this object; a SimDevice action refreshes
the register image from it on every request and turns host writes into state changes, so
tests and the demo drive it with plain method calls (`play`, `open_door`, ...) from any
thread. It can also misbehave on purpose (exception responses, silence, wrong map version,
a config that never applies) for the host's error paths.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import threading
import time

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocols.modbus.codec import join32, sha256_to_registers, split32
from protocols.modbus.map import (
    BIT,
    HOLDING,
    HOLDING_COUNT,
    HOLDING_FIRST,
    INPUT,
    INPUT_COUNT,
    INPUT_FIRST,
    MAP_VERSION,
    METER_NAMES,
)

log = logging.getLogger(__name__)

U32 = 1 << 32
DEFAULT_SHA256 = hashlib.sha256(b"floorhost modbus device simulator").hexdigest()

BAD_EXCEPTION = "exception"  # every request gets a Modbus exception response (device failure)
BAD_SILENT = "silent"  # requests are swallowed: the host times out
BAD_WRONG_MAP = "wrong_map"  # register 0 reads a map version the host does not know
BAD_STUCK_CONFIG = "stuck_config"  # 122 never follows 120
BAD_MODES = (BAD_EXCEPTION, BAD_SILENT, BAD_WRONG_MAP, BAD_STUCK_CONFIG)

# (probability, win as a multiple of the bet): hits about one game in three, RTP about 86 %.
PAYTABLE = ((0.0001, 1000), (0.002, 50), (0.01, 10), (0.04, 5), (0.08, 2), (0.2, 1))
BET_UNITS = (1, 2, 5, 10, 25, 50, 100)
BILLS_CENTS = (500, 1000, 2000, 5000, 10000)
DEFAULT_GAME = {"denom_cents": 1, "max_bet_cents": 500, "paytable": 1, "rtp_bp": 8600}
GAME_FIELDS = tuple(DEFAULT_GAME)

FC_READ_INPUT = 4
FC_HOLDING = (3, 6, 16, 23)


class ModbusDevice:
    """One simulated Modbus floor device (one unit id) and, once started, its TCP server."""

    def __init__(
        self,
        unit: int = 1,
        sha256: str = DEFAULT_SHA256,
        seed: int | None = 0,
        *,
        enabled: bool = True,
        apply_delay: float = 0.2,
        reset_delay: float = 0.05,
        handpay_limit_cents: int = 120_000,
        bad_mode: str | None = None,
    ) -> None:
        self.unit = unit
        self.sha256 = sha256
        self.apply_delay = apply_delay
        self.reset_delay = reset_delay
        self.handpay_limit_cents = handpay_limit_cents
        self.port: int | None = None
        self._sha_registers = sha256_to_registers(sha256)
        self._rng = random.Random(seed)
        # Tests call in from their own thread while the server's loop serves requests.
        self._lock = threading.RLock()
        self._meters = dict.fromkeys(METER_NAMES, 0)
        self._status = 0 if enabled else 1 << BIT["disabled"]
        self._event_counter = 0
        self._handpay_cents = 0
        self._handpay_since = 0.0
        self._clock_offset = 0
        self._game = dict(DEFAULT_GAME)  # registers 110-114 as last written
        self._game_in_force = dict(DEFAULT_GAME)
        self._config_applying = 0
        self._config_in_force = 0
        self._handpay_reset = 0
        self._bad_mode: str | None = None
        self.set_bad_mode(bad_mode)
        self._server: ModbusTcpServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._autoplay: asyncio.Task | None = None

    # ------------------------------------------------------------------ driving the device

    def play(self, n_games: int = 1, bet_cents: int | None = None) -> int:
        """Play up to n_games instantly; returns how many were played (stops when it cannot play)."""
        played = 0
        with self._lock:
            for _ in range(n_games):
                if not self._play_one(bet_cents):
                    break
                played += 1
        return played

    def insert_bill(self, cents: int) -> bool:
        """A bill goes into the acceptor; refused (False) while play is disabled."""
        if cents <= 0:
            raise ValueError("bill amount must be positive")
        with self._lock:
            if self._bit("disabled"):
                return False
            self._accept_bill(cents)
            return True

    def open_door(self, door: str = "main") -> None:
        """Open the main or the cashbox door."""
        self._set_door(door, True)

    def close_door(self, door: str = "main") -> None:
        """Close the main or the cashbox door."""
        self._set_door(door, False)

    def tilt(self) -> None:
        """Raise a tilt; the device will not play until clear_tilt()."""
        with self._lock:
            self._set_bit("tilt", True)

    def clear_tilt(self) -> None:
        """Clear the tilt."""
        with self._lock:
            self._set_bit("tilt", False)

    def set_fault(self, active: bool = True) -> None:
        """Raise or clear a printer/acceptor fault."""
        with self._lock:
            self._set_bit("fault", active)

    def ram_clear(self) -> None:
        """NVRAM clear: meters, credits and any pending handpay are lost; bit 7 latches."""
        with self._lock:
            self._meters = dict.fromkeys(METER_NAMES, 0)
            self._handpay_cents = 0
            self._set_bit("handpay_pending", False)
            self._set_bit("ram_cleared", True)

    def trigger_handpay(self, cents: int) -> None:
        """Lock up for a handpay of `cents` until the host writes 130 (or autoplay keys it off)."""
        if not 0 < cents < U32:
            raise ValueError("handpay amount must be 1 .. 2^32-1 cents")
        with self._lock:
            if self._bit("handpay_pending"):
                raise ValueError("a handpay is already pending")
            self._lock_for_handpay(cents)

    def set_meter(self, name: str, value: int) -> None:
        """Set a meter outright, e.g. near 2^32 to test rollover or lower to test a backwards meter."""
        if name not in self._meters:
            raise ValueError(f"unknown meter {name!r}")
        if not 0 <= value < U32:
            raise ValueError("meter value must be 0 .. 2^32-1")
        with self._lock:
            self._meters[name] = value

    def set_bad_mode(self, mode: str | None) -> None:
        """Misbehave: one of BAD_MODES, or None to behave."""
        if mode is not None and mode not in BAD_MODES:
            raise ValueError(f"unknown bad mode {mode!r}")
        with self._lock:
            self._bad_mode = mode

    def meters(self) -> dict[str, int]:
        """The device's own meters (a copy)."""
        with self._lock:
            return dict(self._meters)

    @property
    def status_bits(self) -> int:
        """Status register 1 as the device holds it now."""
        with self._lock:
            return self._status

    @property
    def config_in_force(self) -> int:
        """The config id in force (register 122)."""
        with self._lock:
            return self._config_in_force

    @property
    def game_in_force(self) -> dict[str, int]:
        """The game settings in force: denom_cents, max_bet_cents, paytable, rtp_bp."""
        with self._lock:
            return dict(self._game_in_force)

    # ------------------------------------------------------------------ serving

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start serving Modbus TCP on the running loop; returns the bound port."""
        if self._server is not None:
            raise RuntimeError("device already started")
        self._loop = asyncio.get_running_loop()
        self._server = ModbusTcpServer(
            self._sim_device(), address=(host, port), trace_packet=self._trace_packet
        )
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]
        log.info("modbus device unit=%s listening on %s:%s", self.unit, host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop autoplay, pending device work and the server."""
        if self._autoplay is not None:
            self._autoplay.cancel()
            self._autoplay = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    def run_in_thread(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 5.0) -> int:
        """Serve from a background thread with its own event loop; returns the bound port."""
        if self._thread is not None:
            raise RuntimeError("device already running in a thread")
        started = threading.Event()
        outcome: dict[str, object] = {}

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                outcome["port"] = loop.run_until_complete(self.start(host, port))
            except Exception as exc:  # handed to the caller's thread below
                outcome["error"] = exc
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            # Finish whatever the server left behind before the loop goes away.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=main, name=f"modbus-device-{self.unit}", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("modbus device did not start in time")
        if "error" in outcome:
            self._thread.join(timeout)
            self._thread = None
            raise outcome["error"]  # type: ignore[misc]
        return outcome["port"]  # type: ignore[return-value]

    def stop_thread(self, timeout: float = 5.0) -> None:
        """Stop a device started with run_in_thread and wait for its thread."""
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def start_autoplay(self, games_per_second: float = 3.0, handpay_keyoff_s: float = 60.0) -> None:
        """Play by itself like a floor cabinet (demo): games, wins, bills, door opens, rare handpays."""
        if self._loop is None:
            raise RuntimeError("start the device before autoplay")

        def begin() -> None:
            if self._autoplay is None:
                self._autoplay = asyncio.ensure_future(
                    self._autoplay_loop(games_per_second, handpay_keyoff_s)
                )

        self._loop.call_soon_threadsafe(begin)

    def stop_autoplay(self) -> None:
        """Stop autoplay (the device keeps serving)."""
        if self._loop is None:
            return

        def end() -> None:
            if self._autoplay is not None:
                self._autoplay.cancel()
                self._autoplay = None

        self._loop.call_soon_threadsafe(end)

    # ------------------------------------------------------------------ pymodbus glue

    def _sim_device(self) -> SimDevice:
        """Non-shared blocks: input registers 0-45, holding registers 100-130 (reserved ones read-only)."""
        regs = DataType.REGISTERS
        holding = [
            SimData(100, count=3, datatype=regs),
            SimData(103, count=7, datatype=regs, readonly=True),
            SimData(110, count=5, datatype=regs),
            SimData(115, count=5, datatype=regs, readonly=True),
            SimData(120, count=2, datatype=regs),
            # Only the device changes the config id in force.
            SimData(122, count=2, datatype=regs, readonly=True),
            SimData(124, count=6, datatype=regs, readonly=True),
            SimData(130, count=1, datatype=regs),
        ]
        inputs = [SimData(INPUT_FIRST, count=INPUT_COUNT, datatype=regs, readonly=True)]
        # The API wants a coil and a discrete-input block; the action refuses their function codes.
        bits = [SimData(0, values=0, datatype=DataType.BITS)]
        return SimDevice(
            id=self.unit,
            simdata=(bits, list(bits), holding, inputs),
            action=self._on_request,
        )

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Called by pymodbus before every access: refresh the block from state, apply host writes."""
        with self._lock:
            if self._bad_mode == BAD_EXCEPTION:
                return ExcCodes.DEVICE_FAILURE
            if self._bad_mode == BAD_SILENT:
                # Nothing is sent back (see _trace_packet) and a write is not applied.
                return None
            if function_code == FC_READ_INPUT:
                offset = INPUT_FIRST - start_address
                registers[offset : offset + INPUT_COUNT] = self._input_image()
                status = INPUT["status"].address
                if address <= status < address + count:
                    # The response already carries bit 7; reading register 1 clears it.
                    self._status &= ~(1 << BIT["ram_cleared"])
                return None
            if function_code in FC_HOLDING:
                if set_values is not None:
                    refused = self._host_write(address, [int(v) for v in set_values])
                    if refused is not None:
                        return refused
                offset = HOLDING_FIRST - start_address
                registers[offset : offset + HOLDING_COUNT] = self._holding_image()
                return None
            return ExcCodes.ILLEGAL_FUNCTION

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Swallow every response while silent, so the host sees timeouts."""
        if sending and self._bad_mode == BAD_SILENT:
            return b""
        return data

    def _input_image(self) -> list[int]:
        regs = [0] * INPUT_COUNT

        def put(name: str, words: list[int]) -> None:
            at = INPUT[name].address - INPUT_FIRST
            regs[at : at + len(words)] = words

        put("map_version", [MAP_VERSION + 1 if self._bad_mode == BAD_WRONG_MAP else MAP_VERSION])
        put("status", [self._status])
        put("event_counter", split32(self._event_counter % U32))
        for name in METER_NAMES:
            put(name, split32(self._meters[name]))
        put("handpay_pending_cents", split32(self._handpay_cents))
        put("software_sha256", self._sha_registers)
        return regs

    def _holding_image(self) -> list[int]:
        regs = [0] * HOLDING_COUNT

        def put(name: str, words: list[int]) -> None:
            at = HOLDING[name].address - HOLDING_FIRST
            regs[at : at + len(words)] = words

        put("play_enabled", [0 if self._bit("disabled") else 1])
        put("clock", split32((int(time.time()) + self._clock_offset) % U32))
        put("denom_cents", [self._game["denom_cents"]])
        put("max_bet_cents", split32(self._game["max_bet_cents"]))
        put("paytable", [self._game["paytable"]])
        put("rtp_bp", [self._game["rtp_bp"]])
        put("config_id_applying", split32(self._config_applying))
        put("config_id_in_force", split32(self._config_in_force))
        put("handpay_reset", [self._handpay_reset])
        return regs

    def _host_write(self, address: int, values: list[int]) -> ExcCodes | None:
        """Apply a host write to holding registers; refuse a bad value before changing anything."""
        image = self._holding_image()
        at = address - HOLDING_FIRST
        image[at : at + len(values)] = values
        written = set(range(address, address + len(values)))

        def hit(name: str) -> bool:
            reg = HOLDING[name]
            return not written.isdisjoint(range(reg.address, reg.end))

        def value(name: str) -> int:
            reg = HOLDING[name]
            i = reg.address - HOLDING_FIRST
            return image[i] if reg.size == 1 else join32(image[i], image[i + 1])

        for name in ("play_enabled", "handpay_reset"):
            if hit(name) and value(name) not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
        if hit("play_enabled"):
            self._set_bit("disabled", value("play_enabled") == 0)
        if hit("clock"):
            self._clock_offset = value("clock") - int(time.time())
        for name in GAME_FIELDS:
            if hit(name):
                self._game[name] = value(name)
        if hit("config_id_applying"):
            self._config_applying = value("config_id_applying")
            self._later("apply", self.apply_delay, self._apply_config)
        if hit("handpay_reset") and value("handpay_reset") == 1:
            self._handpay_reset = 1
            self._later("handpay_reset", self.reset_delay, self._reset_handpay)
        return None

    def _later(self, name: str, delay: float, callback) -> None:
        """Run device work after a delay on the server loop; a newer write restarts the wait."""
        if (old := self._timers.pop(name, None)) is not None:
            old.cancel()
        self._timers[name] = asyncio.get_running_loop().call_later(delay, callback)

    def _apply_config(self) -> None:
        with self._lock:
            self._timers.pop("apply", None)
            if self._bad_mode == BAD_STUCK_CONFIG:
                return
            self._game_in_force = dict(self._game)
            self._config_in_force = self._config_applying
            log.info("modbus device unit=%s config %s in force", self.unit, self._config_in_force)

    def _reset_handpay(self) -> None:
        with self._lock:
            self._timers.pop("handpay_reset", None)
            self._key_off_handpay()
            self._handpay_reset = 0

    # ------------------------------------------------------------------ the game

    def _bit(self, name: str) -> bool:
        return bool(self._status >> BIT[name] & 1)

    def _set_bit(self, name: str, on: bool) -> None:
        """Set a status bit; a change counts on the event counter."""
        new = self._status | 1 << BIT[name] if on else self._status & ~(1 << BIT[name])
        if new != self._status:
            self._status = new
            self._event_counter += 1

    def _set_door(self, door: str, is_open: bool) -> None:
        bit = {"main": "main_door_open", "cashbox": "cashbox_door_open"}.get(door)
        if bit is None:
            raise ValueError(f"unknown door {door!r}")
        with self._lock:
            self._set_bit(bit, is_open)

    def _add(self, meter: str, amount: int) -> None:
        self._meters[meter] = (self._meters[meter] + amount) % U32

    def _can_play(self) -> bool:
        blocked = ("disabled", "tilt", "handpay_pending", "main_door_open")
        game = self._game_in_force
        # A max bet under one denomination allows no wager at all.
        return game["max_bet_cents"] >= max(1, game["denom_cents"]) and not any(
            self._bit(name) for name in blocked
        )

    def _play_one(self, bet_cents: int | None) -> bool:
        """One game under the lock: wager, outcome, meters. False when the device cannot play."""
        if not self._can_play():
            return False
        denom = max(1, self._game_in_force["denom_cents"])
        credits = self._meters["current_credits_cents"]
        if bet_cents is None:
            bet_cents = denom * self._rng.choice(BET_UNITS)
        # Whole credits only, within the max bet and what is on the meter.
        bet = min(bet_cents, self._game_in_force["max_bet_cents"], credits) // denom * denom
        if bet <= 0:
            return False
        win = 0
        roll = self._rng.random()
        for chance, multiple in PAYTABLE:
            if roll < chance:
                win = bet * multiple
                break
            roll -= chance
        self._add("coin_in_cents", bet)
        self._add("games_played", 1)
        self._add("current_credits_cents", -bet)
        if win:
            self._add("games_won", 1)
            if win >= self.handpay_limit_cents:
                # Paid by hand: the jackpot meter moves when the handpay is reset, not now.
                self._lock_for_handpay(win)
            else:
                self._add("coin_out_cents", win)
                self._add("current_credits_cents", win)
        return True

    def _accept_bill(self, cents: int) -> None:
        self._add("bills_in_cents", cents)
        self._add("current_credits_cents", cents)
        # A bill is not a status change but still counts on the event counter.
        self._event_counter += 1

    def _lock_for_handpay(self, cents: int) -> None:
        self._handpay_cents = cents
        self._handpay_since = time.monotonic()
        self._set_bit("handpay_pending", True)

    def _key_off_handpay(self) -> None:
        if self._bit("handpay_pending"):
            self._add("jackpot_cents", self._handpay_cents)
            self._handpay_cents = 0
            self._set_bit("handpay_pending", False)

    async def _autoplay_loop(self, games_per_second: float, handpay_keyoff_s: float) -> None:
        """A player at the cabinet: spins, feeds bills, and now and then an attendant opens a door."""
        period = 1.0 / games_per_second
        rng = self._rng
        # When the door autoplay opened closes again; None while it has not opened one.
        door_until: float | None = None
        while True:
            now = time.monotonic()
            with self._lock:
                if door_until is not None and now >= door_until:
                    door_until = None
                    self._set_bit("main_door_open", False)
                if self._bit("handpay_pending") and now - self._handpay_since >= handpay_keyoff_s:
                    # No one paid it from the host: the attendant keys it off at the cabinet.
                    self._key_off_handpay()
                if not self._bit("main_door_open") and rng.random() < period / 300:
                    door_until = now + rng.uniform(5.0, 15.0)
                    self._set_bit("main_door_open", True)
                playable = self._can_play()
                if playable and self._meters["current_credits_cents"] < max(
                    1, self._game_in_force["denom_cents"]
                ):
                    self._accept_bill(rng.choice(BILLS_CENTS))
                if playable:
                    self._set_bit("game_in_progress", True)
            if not playable:
                await asyncio.sleep(period)
                continue
            await asyncio.sleep(period * rng.uniform(0.5, 0.8))
            with self._lock:
                self._set_bit("game_in_progress", False)
                played = self._play_one(None)
                if played and not self._bit("handpay_pending") and rng.random() < 1 / 3000:
                    # A progressive hit: rare, and always over the handpay limit.
                    self._lock_for_handpay(rng.choice((120_000, 150_000, 250_000)))
            await asyncio.sleep(period * rng.uniform(0.2, 0.5))
