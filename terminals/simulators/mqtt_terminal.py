"""A simulated floor terminal (EGM) that speaks terminal-mqtt.md through a real broker.

Written from the contract alone, like another vendor's terminal: it logs in
with its own credentials, keeps its seq, meters and unsent messages in an
NVRAM file, plays games, takes bills, prints and redeems vouchers, raises
handpays, reads player cards, obeys commands and installs signed config
packages. It drives the demo and the end-to-end tests, and SimFloor
(floor.py) runs thousands of them as the load generator.

Threads: an MqttLoop does all paho I/O of one or many terminals with paho's
external-loop API (loop_read / loop_write / loop_misc on a selector). Paho
callbacks only append to the terminal's inbox; the terminal's logic (pump)
drains it under the terminal's lock, on a Driver thread for a lone terminal,
or on the loop thread itself after each I/O pass for a floor. Public methods
take the same lock, so tests may call them from any thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import itertools
import json
import logging
import math
import os
import random
import re
import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

log = logging.getLogger("floorhost.sim.mqtt")

EGM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")

METER_NAMES = (
    "coin_in_cents",
    "coin_out_cents",
    "jackpot_cents",
    "handpay_cancelled_credits_cents",
    "bills_in_cents",
    "voucher_in_cents",
    "voucher_out_cents",
    "current_credits_cents",
    "games_played",
    "games_won",
    "door_open_count",
)

# Request types and the reply type the host answers them with.
REPLY_TYPES = {
    "hello": "hello.reply",
    "card.in": "card.reply",
    "voucher.issue": "voucher.issue.reply",
    "voucher.redeem": "voucher.redeem.reply",
    "handpay": "handpay.reply",
}

COMMANDS = ("enable", "disable", "meters.request", "time.set", "handpay.reset", "message", "software.verify")

DOORS = ("main", "cashbox", "logic")

BILL_CENTS = (100, 500, 1000, 2000, 5000, 10000)

# Win multipliers and their weights; the hit rate is scaled so that the mean
# return is exactly the configured RTP.
_PAYTABLE = ((1, 40), (2, 25), (3, 15), (5, 10), (10, 6), (20, 3), (100, 1))
_PAY_MULTS = [m for m, _ in _PAYTABLE]
_PAY_WEIGHTS = [w for _, w in _PAYTABLE]
_PAY_MEAN = sum(m * w for m, w in _PAYTABLE) / sum(_PAY_WEIGHTS)

_OFFLINE = b'{"state":"offline"}'


def default_software(name: str = "floorhost-sim", version: str = "1.0.0") -> dict[str, str]:
    """The software block a simulated terminal reports in hello (sha256 of its name and version)."""
    digest = hashlib.sha256(f"{name} {version}".encode()).hexdigest()
    return {"name": name, "version": version, "sha256": digest}


def canonical_sha256(package: Any) -> bytes:
    """Raw sha256 of a config package's canonical JSON (terminal-mqtt.md, "Canonical JSON")."""
    canonical = json.dumps(package, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def rfc3339(instant: datetime) -> str:
    instant = instant.astimezone(timezone.utc)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


_ts_cache: tuple[int, str] = (-1, "")


def _rfc3339_epoch(epoch: float) -> str:
    """rfc3339() of a time.time() value; the seconds part is formatted once per second."""
    global _ts_cache
    whole = int(epoch // 1)
    cached_second, prefix = _ts_cache
    if whole != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole))
        _ts_cache = (whole, prefix)
    return f"{prefix}{int((epoch - whole) * 1000):03d}Z"


# One encoder for every envelope: json.dumps with options builds a new encoder per call.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def parse_rfc3339(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return instant


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None


def parse_broker_url(url: str) -> BrokerAddress:
    """Split "mqtt://[user:pass@]host[:port]" into its parts."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        raise ValueError(f"broker URL must be mqtt://[user:pass@]host[:port], not {url!r}")
    if not parts.hostname:
        raise ValueError(f"broker URL has no host: {url!r}")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or 1883,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class MqttLoop:
    """One selector thread doing the network I/O of many paho clients.

    Every call into a paho client it owns happens on this thread; other
    threads hand it work with call_soon(). It can also be the driver of its
    terminals (add/wake): their logic then runs on this thread after each
    I/O pass, never inside a paho callback. A floor needs that: with a
    separate logic thread every socket call hands the GIL over and back,
    which cut throughput by half or more.
    """

    def __init__(
        self,
        name: str = "mqtt-loop",
        misc_interval: float = 0.5,
        sweep_interval: float = 0.25,
        tick: Callable[[float], None] | None = None,
        tick_interval: float = 0.005,
    ):
        self.name = name
        self._misc_interval = misc_interval
        self._sweep_interval = sweep_interval
        self._tick = tick
        self._tick_interval = tick_interval
        self._terminals: list[SimTerminal] = []
        self._ready: deque[SimTerminal] = deque()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._calls_lock = threading.Lock()
        self._signaled = False
        self._timers: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._timer_ids = itertools.count()
        # Clients whose paho queue got packets since the last pass: written at the end of the pass.
        self._to_write: set[mqtt.Client] = set()
        # Clients whose socket is in the selector for EVENT_WRITE (the kernel buffer was full).
        self._write_interest: set[mqtt.Client] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            for key in list(self._sel.get_map().values()):
                if key.data is not None:
                    key.fileobj.close()
            self._sel.close()
            self._wake_r.close()
            self._wake_w.close()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) on the loop thread (thread-safe)."""
        with self._calls_lock:
            self._calls.append((fn, args))
            # On the loop thread the pass runs the calls anyway: no wake-up byte needed.
            signal = not self._signaled and threading.current_thread() is not self._thread
            self._signaled = self._signaled or signal
        if signal:
            self._wake()

    # driver role: the terminals whose logic runs on this thread

    def add(self, terminal: SimTerminal) -> None:
        self._terminals = [*self._terminals, terminal]

    def remove(self, terminal: SimTerminal) -> None:
        self._terminals = [t for t in self._terminals if t is not terminal]

    def wake(self, terminal: SimTerminal) -> None:
        self._ready.append(terminal)
        if threading.current_thread() is not self._thread:
            with self._calls_lock:
                signal = not self._signaled
                self._signaled = True
            if signal:
                self._wake()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) on the loop thread after delay seconds (loop thread only)."""
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_ids), fn, args))

    def attach(self, client: mqtt.Client) -> None:
        """Route a paho client's socket events to this loop."""
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    # paho socket hooks: always called on the loop thread, since only it drives the clients.

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._sel.register(sock, selectors.EVENT_READ, client)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._to_write.discard(client)
        self._write_interest.discard(client)
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._to_write.add(client)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if client in self._write_interest:
            self._write_interest.discard(client)
            try:
                self._sel.modify(sock, selectors.EVENT_READ, client)
            except (KeyError, ValueError, OSError):
                pass

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    def _run(self) -> None:
        next_misc = time.monotonic() + self._misc_interval
        next_sweep = time.monotonic()
        next_tick = time.monotonic()
        while True:
            now = time.monotonic()
            timeout = min(next_misc - now, 1.0)
            if self._timers:
                timeout = min(timeout, self._timers[0][0] - now)
            if self._terminals:
                timeout = min(timeout, next_sweep - now)
            if self._tick is not None:
                timeout = min(timeout, next_tick - now)
            if self._to_write or self._ready or self._calls:
                timeout = 0
            for key, mask in self._sel.select(max(timeout, 0)):
                client = key.data
                if client is None:
                    self._drain_wake()
                    continue
                if mask & selectors.EVENT_READ:
                    self._guard(client, client.loop_read)
                    self._read_tls_pending(client)
                if mask & selectors.EVENT_WRITE and client.socket() is not None:
                    self._guard(client, client.loop_write)
            if not self._stopping:
                now = time.monotonic()
                while self._ready:
                    terminal = self._ready.popleft()
                    self._guard(None, terminal.pump, now)
                if self._tick is not None and now >= next_tick:
                    next_tick = now + self._tick_interval
                    self._guard(None, self._tick, now)
                if now >= next_sweep:
                    next_sweep = now + self._sweep_interval
                    for terminal in self._terminals:
                        self._guard(None, terminal.pump, now)
            self._run_calls()
            if self._stopping:
                return
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn, args = heapq.heappop(self._timers)
                self._guard(None, fn, *args)
            self._write_queued()
            if now >= next_misc:
                next_misc = now + self._misc_interval
                for key in list(self._sel.get_map().values()):
                    if key.data is not None:
                        self._guard(key.data, key.data.loop_misc)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _run_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, []
            self._signaled = False
        for fn, args in calls:
            self._guard(None, fn, *args)

    def _write_queued(self) -> None:
        # Write at once what fits in the kernel buffer; ask the selector only for the rest.
        while self._to_write:
            client = self._to_write.pop()
            sock = client.socket()
            if sock is None:
                continue
            self._guard(client, client.loop_write)
            sock = client.socket()
            if sock is not None and client.want_write() and client not in self._write_interest:
                self._write_interest.add(client)
                try:
                    self._sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
                except (KeyError, ValueError, OSError):
                    self._write_interest.discard(client)

    def _read_tls_pending(self, client: mqtt.Client) -> None:
        # A TLS socket can hold decrypted bytes the selector does not see.
        for _ in range(100):
            sock = client.socket()
            pending = getattr(sock, "pending", None)
            if sock is None or pending is None or pending() <= 0:
                return
            self._guard(client, client.loop_read)

    def _guard(self, client: mqtt.Client | None, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            who = client._client_id.decode(errors="replace") if client is not None else "-"
            log.exception("mqtt loop %s: error in %s for %s", self.name, getattr(fn, "__name__", fn), who)


class Driver:
    """A thread running the logic of a lone terminal (or a few): inbox, timers and autoplay.

    A floor does not use it: there each MqttLoop drives its own terminals.
    """

    def __init__(self, name: str = "sim-driver", sweep_interval: float = 0.05):
        self.name = name
        self._sweep_interval = sweep_interval
        self._terminals: list[SimTerminal] = []
        self._ready: deque[SimTerminal] = deque()
        self._event = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def add(self, terminal: SimTerminal) -> None:
        self._terminals = [*self._terminals, terminal]

    def remove(self, terminal: SimTerminal) -> None:
        self._terminals = [t for t in self._terminals if t is not terminal]

    def wake(self, terminal: SimTerminal) -> None:
        self._ready.append(terminal)
        self._event.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        next_sweep = time.monotonic()
        while not self._stopping:
            self._event.wait(max(next_sweep - time.monotonic(), 0))
            # Cleared before draining: a wake that lands meanwhile is seen on the next turn.
            self._event.clear()
            while self._ready:
                self._pump(self._ready.popleft(), time.monotonic())
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + self._sweep_interval
                for terminal in self._terminals:
                    self._pump(terminal, now)

    def _pump(self, terminal: SimTerminal, now: float) -> None:
        try:
            terminal.pump(now)
        except Exception:
            log.exception("terminal %s: error in pump", terminal.egm_id)


class VoucherWallet:
    """Validation numbers of printed tickets in players' pockets, shared by the terminals of a floor."""

    def __init__(self, numbers: list[str] | tuple[str, ...] = ()):
        self._numbers = list(numbers)
        self._lock = threading.Lock()

    def put(self, number: str) -> None:
        with self._lock:
            self._numbers.append(number)

    def take(self, rng: random.Random) -> str | None:
        with self._lock:
            if not self._numbers:
                return None
            i = rng.randrange(len(self._numbers))
            self._numbers[i], self._numbers[-1] = self._numbers[-1], self._numbers[i]
            return self._numbers.pop()

    def __len__(self) -> int:
        return len(self._numbers)


@dataclass
class _Up:
    """One up message in the outbox: its bytes never change, so a replay is byte-identical."""

    seq: int
    type: str
    payload: bytes
    state: str = "queued"  # queued → inflight → removed on PUBACK


@dataclass
class _Request:
    """An up message that waits for its reply, re-sent with the same seq until it comes."""

    seq: int
    type: str
    payload: bytes
    context: dict[str, Any] = field(default_factory=dict)
    deadline: float = 0.0
    tries: int = 1
    created: float = field(default_factory=time.monotonic)


class SimTerminal:
    """One simulated MQTT floor terminal.

    Play: step() (one random action) or play_game, insert_bill, cash_out, insert_ticket,
    card_in/card_out, jackpot, open_door/close_door, send_meters, send_event.
    Outages: disconnect(), reconnect(), kill() (power loss), stop().
    Looking: state, seq, connected, outbox_size, last_reply(type), wait_for(predicate),
    the *_count counters and reply_latencies.
    """

    def __init__(
        self,
        egm_id: str,
        broker_url: str,
        password: str | None = None,
        state_dir: Path | str | None = None,
        topic_root: str = "sbg/v1",
        seed: int | None = None,
        keepalive: int = 10,
        software: dict[str, str] | None = None,
        denoms_cents: list[int] | tuple[int, ...] = (1, 5, 25),
        client: mqtt.Client | None = None,
        *,
        loop: MqttLoop | None = None,
        driver: Driver | MqttLoop | None = None,
        autostart: bool = True,
        rtp: float = 0.92,
        max_bet: int = 5,
        reply_timeout: float = 5.0,
        meters_interval: float | None = 60.0,
        play_interval: float | None = None,
        player_cards: list[str] | tuple[str, ...] = (),
        wallet: VoucherWallet | None = None,
        vouchers: list[str] | tuple[str, ...] = (),
        manufacturer: str = "Floorhost Sim",
        model: str = "MQTT-SIM-1",
        serial: str | None = None,
        reject_configs: bool = False,
        software_sha256: str | None = None,
        drop_replies: int | dict[str, int] = 0,
        fsync: bool = True,
        print_fail_rate: float = 0.02,
        abort_rate: float = 0.01,
        jackpot_rate: float = 0.0002,
        handpay_limit_cents: int = 120_000,
        voucher_limit_cents: int = 1_000_000,
        max_inflight: int = 100,
        clean_session: bool = True,
        connect_timeout: float = 5.0,
    ):
        if not isinstance(egm_id, str) or not EGM_ID_RE.match(egm_id):
            raise ValueError(f"egm_id must be 1-32 chars of [A-Za-z0-9_-], not {egm_id!r}")
        if not denoms_cents or any(not isinstance(d, int) or d <= 0 for d in denoms_cents):
            raise ValueError("denoms_cents must be positive integers")
        self.egm_id = egm_id
        self.topic_root = topic_root.rstrip("/")
        self.up_topic = f"{self.topic_root}/egm/{egm_id}/up"
        self.down_topic = f"{self.topic_root}/egm/{egm_id}/down"
        self.status_topic = f"{self.topic_root}/egm/{egm_id}/status"
        address = parse_broker_url(broker_url)
        self._address = address
        self.keepalive = keepalive
        self.software = dict(software or default_software())
        self.denoms_cents = list(denoms_cents)
        self.rtp = rtp
        self.max_bet = max_bet
        self.reply_timeout = reply_timeout
        self.meters_interval = meters_interval
        self.play_interval = play_interval
        self.player_cards = list(player_cards)
        self.wallet = wallet if wallet is not None else VoucherWallet()
        for number in vouchers:
            self.wallet.put(number)
        self.manufacturer = manufacturer
        self.model = model
        self.serial = serial or f"SIM-{egm_id}"
        # Test knobs: refuse every config push; pose as unapproved software; lose replies.
        self.reject_configs = reject_configs
        self.software_sha256 = software_sha256
        self.drop_replies = drop_replies
        self.print_fail_rate = print_fail_rate
        self.abort_rate = abort_rate
        self.jackpot_rate = jackpot_rate
        self.handpay_limit_cents = handpay_limit_cents
        self.voucher_limit_cents = voucher_limit_cents
        self.max_inflight = max_inflight
        self._fsync = fsync
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

        # NVRAM: everything below is saved to the state file before a message leaves.
        self._seq = 0
        self._outbox: dict[int, _Up] = {}
        self._requests: dict[int, _Request] = {}
        self._meters = {name: 0 for name in METER_NAMES if name != "current_credits_cents"}
        self._cashable = 0
        self._promo = 0
        self._enabled = False
        self._handpay: dict[str, Any] | None = None
        self._busy: int | None = None
        self._session: dict[str, Any] | None = None
        self._card_pending: int | None = None
        self._doors = {door: False for door in DOORS}
        self._config: dict[str, Any] = {"deployment_id": None, "sha256": None}
        self._pending_config: dict[str, Any] | None = None
        self._config_key: bytes | None = None

        self._queue: list[int] = []
        self._inflight = 0
        self._connected = False
        self._epoch = 0
        self._clock_offset = 0.0
        self._voucher_expiry_days: int | None = None
        self._expected_config: dict[str, Any] | None = None
        self._last_replies: dict[str, dict[str, Any]] = {}
        self._last_message: str | None = None
        self._last_error: str | None = None
        self._dirty = False
        self._persisted_at = 0.0
        self._next_meters = math.inf
        self._next_play = math.inf
        self._next_due = 0.0
        self._stopped = False

        # generated: messages given a seq; sent: publishes including replays and re-sends;
        # acked: PUBACKs; replies: replies matched to a request; received: every down message.
        self.generated_count = 0
        self.sent_count = 0
        self.acked_count = 0
        self.reply_count = 0
        self.received_count = 0
        # Seconds from a request's first send to its reply arriving, per request type (P2).
        self.reply_latencies: dict[str, deque[float]] = {t: deque(maxlen=100_000) for t in REPLY_TYPES}

        self._state_path: Path | None = None
        if state_dir is not None:
            state_dir = Path(state_dir)
            state_dir.mkdir(parents=True, exist_ok=True)
            self._state_path = state_dir / f"{egm_id}.json"
            self._load()

        # Network side: touched only on the loop thread once started.
        self._inbox: deque[tuple[str, Any]] = deque()
        self._wake_pending = False
        self._want_connected = False
        self._reconnect_pending = False
        self._backoff = 0.5
        self._net_epoch = 0
        self._mids: dict[int, int] = {}
        self._net_closed = threading.Event()
        self._net_closed.set()

        self._own_loop = loop is None
        self._loop = loop or MqttLoop(name=f"mqtt-{egm_id}")
        self._own_driver = driver is None
        self._driver: Driver | MqttLoop = driver or Driver(name=f"sim-{egm_id}")
        self._driver.add(self)
        self._client = client or mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"egm-{egm_id}",
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        self._setup_client(address, password, connect_timeout)
        self._started = False
        if autostart:
            self.start()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the threads this terminal owns and connect to the broker."""
        if self._started:
            return
        self._started = True
        if self._own_loop:
            self._loop.start()
        if self._own_driver:
            self._driver.start()
        self.reconnect()

    def reconnect(self) -> None:
        """Connect again after disconnect(); what was buffered meanwhile is replayed in order."""
        self._net_closed.clear()
        self._loop.call_soon(self._net_want, True)

    def disconnect(self, timeout: float = 5.0) -> bool:
        """Simulate an outage: drop the TCP connection without DISCONNECT (the broker publishes
        the last will). Messages generated meanwhile are buffered. Returns when offline."""
        self._loop.call_soon(self._net_drop)
        return self.wait_for(lambda: not self._connected and self._net_closed.is_set(), timeout)

    def stop(self, graceful: bool = True, timeout: float = 5.0) -> None:
        """Switch the terminal off. graceful: wait for the outbox to drain, publish status
        offline and DISCONNECT; otherwise cut the connection like a power loss."""
        if self._stopped:
            return
        deadline = time.monotonic() + timeout
        self.begin_stop(graceful, drain_timeout=timeout / 2)
        self.finish_stop(deadline)

    def begin_stop(self, graceful: bool = True, drain_timeout: float = 2.0) -> None:
        if graceful and self._connected:
            self.wait_for(lambda: not self._outbox, drain_timeout)
        self._loop.call_soon(self._net_close if graceful else self._net_drop)

    def finish_stop(self, deadline: float) -> None:
        self._net_closed.wait(max(deadline - time.monotonic(), 0))
        with self._lock:
            self._stopped = True
            self._connected = False
            if self._dirty:
                self._persist()
        self._driver.remove(self)
        if self._own_driver:
            self._driver.stop()
        if self._own_loop:
            self._loop.stop()

    def kill(self) -> None:
        """Power loss: no graceful goodbye; NVRAM keeps what was written before each publish."""
        self.stop(graceful=False)

    # ------------------------------------------------------------------ helpers for tests

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
        """Wait until predicate() is true (polled on every change and every 20 ms)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if predicate():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.02))

    def last_reply(self, type_: str) -> dict[str, Any] | None:
        """The last down message of this type (whole envelope), or None."""
        with self._lock:
            return self._last_replies.get(type_)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def can_play(self) -> bool:
        """Whether a game could start now (read without the lock: a hint for load generators)."""
        return self._can_play() and self._cashable + self._promo >= min(self.denoms_cents)

    @property
    def hello_pending(self) -> bool:
        """True until the host answered this connection's hello."""
        with self._lock:
            return not self._connected or any(r.type == "hello" for r in self._requests.values())

    @property
    def credits_cents(self) -> int:
        return self._cashable + self._promo

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def outbox_size(self) -> int:
        return len(self._outbox)

    @property
    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "egm_id": self.egm_id,
                "connected": self._connected,
                "seq": self._seq,
                "enabled": self._enabled,
                "credits_cents": self._cashable + self._promo,
                "cashable_cents": self._cashable,
                "promo_cents": self._promo,
                "meters": self._meter_snapshot(),
                "session": dict(self._session) if self._session else None,
                "handpay": dict(self._handpay) if self._handpay else None,
                "locked": self._handpay is not None,
                "busy": self._busy,
                "doors": dict(self._doors),
                "config": dict(self._config),
                "pending_config": (self._pending_config or {}).get("deployment_id"),
                "expected_config": self._expected_config,
                "outbox": len(self._outbox),
                "awaiting_replies": sorted(self._requests),
                "message": self._last_message,
                "last_error": self._last_error,
                "config_key": base64.b64encode(self._config_key).decode() if self._config_key else None,
                "voucher_expiry_days": self._voucher_expiry_days,
            }

    # ------------------------------------------------------------------ play model

    def step(self) -> str | None:
        """One thing a player or attendant does; returns its name, or None when nothing can happen."""
        with self._lock:
            if self._stopped or not self._enabled or self._handpay or self._busy is not None:
                return None
            open_doors = [d for d, is_open in self._doors.items() if is_open]
            if open_doors:
                return "door" if self.close_door(open_doors[0]) else None
            credits = self._cashable + self._promo
            r = self._rng.random()
            if credits < min(self.denoms_cents):
                if r < 0.55:
                    action = "bill"
                elif r < 0.8:
                    action = "ticket" if len(self.wallet) else "bill"
                elif r < 0.93:
                    action = "card"
                else:
                    action = "door"
            elif r < 0.90:
                action = "game"
            elif r < 0.93:
                action = "bill"
            elif r < 0.96:
                action = "cashout"
            elif r < 0.975:
                action = "ticket" if len(self.wallet) else "game"
            elif r < 0.99:
                action = "card"
            else:
                action = "door"
            if action == "game":
                done = self.play_game()
            elif action == "bill":
                done = self.insert_bill()
            elif action == "ticket":
                done = self.insert_ticket()
            elif action == "cashout":
                done = self.cash_out()
            elif action == "card":
                done = self.card_out() if self._session else self.card_in()
            else:
                done = self.open_door(self._rng.choice(DOORS))
            return action if done is not None else None

    def _can_play(self) -> bool:
        return (
            not self._stopped
            and self._enabled
            and self._handpay is None
            and self._busy is None
            and not any(self._doors.values())
        )

    def play_game(self, bet: int | None = None, denom_cents: int | None = None, jackpot_cents: int | None = None) -> int | None:
        """Play one game; returns the game.end seq, or None if the terminal cannot play or lacks credits.
        jackpot_cents forces a jackpot of that amount (paid by handpay)."""
        with self._lock:
            if not self._can_play():
                return None
            credits = self._cashable + self._promo
            denom = denom_cents or self._rng.choice(self.denoms_cents)
            bet = bet or self._rng.randint(1, self.max_bet)
            while bet > 1 and denom * bet > credits:
                bet -= 1
            wager = denom * bet
            if wager > credits:
                denom = min(self.denoms_cents)
                wager = denom
                if wager > credits:
                    return None
            # Restricted (promo) credits are played first, as on a real cabinet.
            from_promo = min(self._promo, wager)
            self._promo -= from_promo
            self._cashable -= wager - from_promo
            self._meters["coin_in_cents"] += wager
            self._meters["games_played"] += 1
            if jackpot_cents is None and self._rng.random() < self.jackpot_rate:
                jackpot_cents = self._rng.randrange(self.handpay_limit_cents, 5 * self.handpay_limit_cents, 100)
            win = 0
            if jackpot_cents:
                win = jackpot_cents
            elif self._rng.random() < min(self.rtp / _PAY_MEAN, 1.0):
                win = wager * self._rng.choices(_PAY_MULTS, _PAY_WEIGHTS)[0]
            if win:
                self._meters["games_won"] += 1
            # A win at or over the handpay limit is paid by an attendant, not to the credit meter.
            handpay = win if win >= self.handpay_limit_cents else 0
            if win and not handpay:
                self._cashable += win
                self._meters["coin_out_cents"] += win
            seq = self._emit(
                "game.end",
                {
                    "game": {"theme": "Lucky Sevens", "paytable_id": f"LS-{round(self.rtp * 10000)}"},
                    "denom_cents": denom,
                    "wager_cents": wager,
                    "win_cents": win,
                    "credits_after_cents": self._cashable + self._promo,
                },
            )
            if handpay:
                self._request_handpay(handpay, "jackpot")
            return seq

    def insert_bill(self, amount_cents: int | None = None) -> int | None:
        """A bill goes into the validator; returns the bill.accepted event seq, or None if refused."""
        with self._lock:
            if not self._can_play():
                return None
            amount = amount_cents if amount_cents is not None else self._rng.choice(BILL_CENTS)
            self._cashable += amount
            self._meters["bills_in_cents"] += amount
            return self._emit("event", {"code": "bill.accepted", "detail": {"amount_cents": amount}})

    def open_door(self, door: str = "main") -> int | None:
        with self._lock:
            if self._stopped or door not in DOORS or self._doors[door]:
                return None
            self._doors[door] = True
            self._meters["door_open_count"] += 1
            return self._emit("event", {"code": f"door.{door}.open", "detail": {}})

    def close_door(self, door: str = "main") -> int | None:
        with self._lock:
            if self._stopped or door not in DOORS or not self._doors[door]:
                return None
            self._doors[door] = False
            return self._emit("event", {"code": f"door.{door}.closed", "detail": {}})

    def send_event(self, code: str, detail: dict[str, Any] | None = None) -> int | None:
        """Any event code, as is (tilts, printer faults, unknown codes for host tests)."""
        with self._lock:
            if self._stopped:
                return None
            return self._emit("event", {"code": code, "detail": detail or {}})

    def send_meters(self) -> int | None:
        with self._lock:
            if self._stopped:
                return None
            return self._emit("meters", {"meters": self._meter_snapshot()})

    def cash_out(self) -> int | None:
        """Cash-out: voucher.issue for the cashable credits (else the promo ones); a handpay
        (cancelled credit) above the voucher limit. Returns the request seq."""
        with self._lock:
            if self._stopped or self._handpay or self._busy is not None:
                return None
            if self._cashable > 0:
                amount, credit_type = self._cashable, "cashable"
            elif self._promo > 0:
                amount, credit_type = self._promo, "promo"
            else:
                return None
            if amount > self.voucher_limit_cents:
                return self._request_handpay(amount, "cancelled_credit")
            seq = self._emit(
                "voucher.issue",
                {"amount_cents": amount, "credit_type": credit_type},
                context={"amount_cents": amount, "credit_type": credit_type},
            )
            self._busy = seq
            return seq

    def insert_ticket(self, validation_number: str | None = None) -> int | None:
        """Ticket-in of a voucher (one from the wallet when none is given); returns the request seq."""
        with self._lock:
            if not self._can_play():
                return None
            number = validation_number or self.wallet.take(self._rng)
            if not number:
                return None
            seq = self._emit(
                "voucher.redeem", {"validation_number": number}, context={"validation_number": number}
            )
            self._busy = seq
            return seq

    def card_in(self, card_id: str | None = None) -> int | None:
        with self._lock:
            if self._stopped or self._session or self._card_pending is not None:
                return None
            if card_id is None:
                card_id = self._rng.choice(self.player_cards) if self.player_cards else f"C{self._rng.randrange(10**8):08d}"
            seq = self._emit("card.in", {"card_id": card_id}, context={"card_id": card_id})
            self._card_pending = seq
            return seq

    def card_out(self) -> int | None:
        with self._lock:
            if self._stopped or not self._session:
                return None
            card_id = self._session["card_id"]
            self._session = None
            return self._emit("card.out", {"card_id": card_id})

    def jackpot(self, amount_cents: int | None = None) -> int | None:
        """Play a game that hits a jackpot paid by handpay; the terminal locks until handpay.reset."""
        amount = amount_cents or self.handpay_limit_cents
        return self.play_game(jackpot_cents=max(amount, self.handpay_limit_cents))

    def _request_handpay(self, amount: int, kind: str) -> int:
        seq = self._emit("handpay", {"amount_cents": amount, "kind": kind}, context={"amount_cents": amount, "kind": kind})
        self._handpay = {"seq": seq, "amount_cents": amount, "kind": kind, "handpay_id": None}
        self._persist()
        return seq

    def _meter_snapshot(self) -> dict[str, int]:
        meters = dict(self._meters)
        meters["current_credits_cents"] = self._cashable + self._promo
        return {name: meters[name] for name in METER_NAMES}

    def _is_idle(self) -> bool:
        """Idle as rules.md 25 means it: no credits, no game in progress, no handpay, doors closed."""
        return (self._cashable + self._promo == 0 and self._busy is None and self._handpay is None
                and not any(self._doors.values()))

    # ------------------------------------------------------------------ the up stream

    def _now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self._clock_offset)

    def _emit(self, type_: str, body: dict[str, Any], context: dict[str, Any] | None = None) -> int:
        """Give the message the next seq, save NVRAM, then queue it for the broker."""
        seq = self._seq + 1
        self._seq = seq
        envelope = {"v": 1, "seq": seq, "ts": _rfc3339_epoch(time.time() + self._clock_offset), "type": type_, "body": body}
        payload = _encode(envelope).encode("utf-8")
        self._outbox[seq] = _Up(seq, type_, payload)
        heapq.heappush(self._queue, seq)
        if type_ in REPLY_TYPES:
            self._requests[seq] = _Request(
                seq, type_, payload, dict(context or {}), deadline=time.monotonic() + self.reply_timeout
            )
            self._next_due = 0.0
        self.generated_count += 1
        self._persist()
        self._flush()
        self._changed.notify_all()
        return seq

    def _flush(self) -> None:
        """Hand queued messages, in seq order, to the loop thread while connected and under the window."""
        if not self._connected or self._stopped:
            return
        batch: list[tuple[int, bytes]] = []
        while self._queue and self._inflight < self.max_inflight:
            seq = heapq.heappop(self._queue)
            up = self._outbox.get(seq)
            if up is None or up.state != "queued":
                continue
            up.state = "inflight"
            self._inflight += 1
            batch.append((seq, up.payload))
        if batch:
            self.sent_count += len(batch)
            self._loop.call_soon(self._net_publish, self._epoch, batch)

    def _requeue(self, up: _Up) -> None:
        if up.state == "inflight":
            self._inflight -= 1
        if up.state != "queued":
            up.state = "queued"
            heapq.heappush(self._queue, up.seq)

    # ------------------------------------------------------------------ logic thread

    def pump(self, now: float | None = None) -> None:
        """Process what the network brought, re-send overdue requests, send meters on time,
        install a deferred config when idle. Called by the driver."""
        now = time.monotonic() if now is None else now
        self._wake_pending = False
        if not self._inbox and now < self._next_due:
            return
        with self._lock:
            if self._stopped:
                self._inbox.clear()
                return
            while self._inbox:
                kind, value = self._inbox.popleft()
                self._on_event(kind, value)
            self._run_timers(now)
            self._flush()
            self._changed.notify_all()

    def _on_event(self, kind: str, value: Any) -> None:
        if kind == "ack":
            up = self._outbox.get(value)
            if up is not None and up.state == "inflight":
                del self._outbox[value]
                self._inflight -= 1
                self.acked_count += 1
                self._dirty = True
        elif kind == "msg":
            self.received_count += 1
            self._on_down(*value)
        elif kind == "conn":
            self._on_connected(value)
        elif kind == "lost":
            if value == self._epoch and self._connected:
                self._connected = False
                log.info("terminal %s: connection lost; buffering", self.egm_id)
                for up in self._outbox.values():
                    if up.state == "inflight":
                        self._requeue(up)
                self._inflight = 0
        elif kind == "unsent":
            for seq in value:
                up = self._outbox.get(seq)
                if up is not None:
                    self._requeue(up)
        elif kind == "refused":
            self._last_error = f"broker refused connection: {value}"
            log.warning("terminal %s: %s", self.egm_id, self._last_error)

    def _on_connected(self, epoch: int) -> None:
        self._connected = True
        self._epoch = epoch
        self._last_error = None
        for up in self._outbox.values():
            if up.state == "inflight":
                self._requeue(up)
        self._inflight = 0
        # Requests whose reply may have been lost while offline go again, in seq order with the rest.
        for seq, request in list(self._requests.items()):
            if request.type == "hello":
                del self._requests[seq]
            elif seq not in self._outbox:
                self._outbox[seq] = _Up(seq, request.type, request.payload)
                heapq.heappush(self._queue, seq)
                request.deadline = time.monotonic() + self.reply_timeout
        log.info("terminal %s: connected; %d buffered message(s) to replay", self.egm_id, len(self._outbox))
        self._send_hello()
        if self.meters_interval:
            self.send_meters()
            # A random phase, so a floor that connected together does not report together.
            self._next_meters = time.monotonic() + self.meters_interval * self._rng.uniform(0.5, 1.5)
        if self.play_interval:
            self._next_play = time.monotonic() + self.play_interval

    def _send_hello(self) -> int:
        software = dict(self.software)
        if self.software_sha256:
            software["sha256"] = self.software_sha256
        return self._emit(
            "hello",
            {
                "manufacturer": self.manufacturer,
                "model": self.model,
                "serial": self.serial,
                "software": software,
                "denoms_cents": list(self.denoms_cents),
                "config": {"deployment_id": self._config["deployment_id"], "sha256": self._config["sha256"]},
            },
        )

    def _run_timers(self, now: float) -> None:
        due = math.inf
        for request in self._requests.values():
            if request.deadline <= now:
                # No reply in time: send the same seq again; the host dedups and answers again.
                up = self._outbox.get(request.seq)
                if up is None:
                    self._outbox[request.seq] = _Up(request.seq, request.type, request.payload)
                    heapq.heappush(self._queue, request.seq)
                    request.tries += 1
                    log.info(
                        "terminal %s: no %s for seq %d; sending it again (try %d)",
                        self.egm_id, REPLY_TYPES[request.type], request.seq, request.tries,
                    )
                request.deadline = now + self.reply_timeout
            due = min(due, request.deadline)
        if self._connected and self.meters_interval and now >= self._next_meters:
            self._next_meters = now + self.meters_interval
            self.send_meters()
        if self.meters_interval and self._connected:
            due = min(due, self._next_meters)
        if self._pending_config is not None:
            if self._is_idle():
                pending, self._pending_config = self._pending_config, None
                self._install_config(pending)
            else:
                due = min(due, now + 0.2)
        if self.play_interval and self._connected:
            if now >= self._next_play:
                self._next_play = now + self.play_interval
                self.step()
            due = min(due, self._next_play)
        if self._dirty:
            if now - self._persisted_at >= 1.0:
                self._persist()
            else:
                due = min(due, self._persisted_at + 1.0)
        self._next_due = due

    # ------------------------------------------------------------------ down messages

    def _on_down(self, payload: bytes, arrived: float) -> None:
        try:
            envelope = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            log.warning("terminal %s: down message is not JSON; ignored", self.egm_id)
            return
        if not isinstance(envelope, dict) or envelope.get("v") != 1 or not isinstance(envelope.get("type"), str):
            log.warning("terminal %s: down message without v=1 and a type; ignored", self.egm_id)
            return
        type_ = envelope["type"]
        body = envelope.get("body")
        if not isinstance(body, dict):
            body = {}
        if type_ in REPLY_TYPES.values():
            self._on_reply(type_, envelope, body, arrived)
        elif type_ == "cmd":
            self._last_replies[type_] = envelope
            self._on_command(envelope, body)
        elif type_ == "config.push":
            self._last_replies[type_] = envelope
            self._on_config_push(body)
        else:
            self._last_replies[type_] = envelope
            log.warning("terminal %s: unknown down type %r; ignored", self.egm_id, type_)

    def _drop_reply(self, type_: str) -> bool:
        knob = self.drop_replies
        if isinstance(knob, dict):
            if knob.get(type_, 0) > 0:
                knob[type_] -= 1
                return True
            return False
        if knob > 0:
            self.drop_replies = knob - 1
            return True
        return False

    def _on_reply(self, type_: str, envelope: dict[str, Any], body: dict[str, Any], arrived: float) -> None:
        if self._drop_reply(type_):
            log.info("terminal %s: dropping %s re %r (test knob)", self.egm_id, type_, envelope.get("re"))
            return
        self.reply_count += 1
        self._last_replies[type_] = envelope
        request = self._requests.get(envelope.get("re"))
        if request is None:
            # A reply to a seq already answered (the host answers every copy): nothing to do.
            return
        if REPLY_TYPES[request.type] != type_:
            log.warning("terminal %s: %s for seq %d, a %s; ignored", self.egm_id, type_, request.seq, request.type)
            return
        del self._requests[request.seq]
        self.reply_latencies[request.type].append(arrived - request.created)
        self._dirty = True
        if body.get("result") == "error":
            log.warning("terminal %s: host refused seq %d (%s): %s", self.egm_id, request.seq, request.type, body.get("reason"))
        handler = getattr(self, "_on_" + request.type.replace(".", "_") + "_reply")
        handler(request, body)

    def _on_hello_reply(self, request: _Request, body: dict[str, Any]) -> None:
        if body.get("result") == "error":
            return
        host_time = parse_rfc3339(body.get("time"))
        if host_time is not None:
            self._clock_offset = (host_time - datetime.now(timezone.utc)).total_seconds()
        key = body.get("config_key")
        if isinstance(key, str):
            try:
                raw = base64.b64decode(key, validate=True)
                Ed25519PublicKey.from_public_bytes(raw)
                self._config_key = raw
            except (ValueError, binascii.Error):
                log.warning("terminal %s: hello.reply config_key is not an Ed25519 key", self.egm_id)
        voucher = body.get("voucher")
        if isinstance(voucher, dict) and isinstance(voucher.get("expiry_days"), int):
            self._voucher_expiry_days = voucher["expiry_days"]
        expected = body.get("expected_config")
        self._expected_config = expected if isinstance(expected, dict) else None
        if isinstance(body.get("enabled"), bool):
            self._set_enabled(body["enabled"])

    def _set_enabled(self, enabled: bool) -> None:
        if enabled != self._enabled:
            self._enabled = enabled
            self._emit("event", {"code": "game.enabled" if enabled else "game.disabled", "detail": {}})

    def _on_voucher_issue_reply(self, request: _Request, body: dict[str, Any]) -> None:
        self._busy = None
        number = body.get("validation_number")
        if body.get("result") != "ok" or not isinstance(number, str) or not number:
            return
        amount = request.context["amount_cents"]
        if self._rng.random() < self.print_fail_rate:
            self._emit("voucher.print_failed", {"validation_number": number})
            return
        if request.context["credit_type"] == "promo":
            self._promo = max(self._promo - amount, 0)
        else:
            self._cashable = max(self._cashable - amount, 0)
        self._meters["voucher_out_cents"] += amount
        self._emit("voucher.printed", {"validation_number": number})
        self.wallet.put(number)

    def _on_voucher_redeem_reply(self, request: _Request, body: dict[str, Any]) -> None:
        self._busy = None
        number = request.context["validation_number"]
        if body.get("result") != "authorized":
            return
        amount = body.get("amount_cents")
        credit_type = body.get("credit_type", "cashable")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0 or credit_type not in ("cashable", "promo"):
            self._emit("voucher.redeem.abort", {"validation_number": number, "reason": "bad_reply"})
            return
        if self._rng.random() < self.abort_rate:
            self._emit("voucher.redeem.abort", {"validation_number": number, "reason": "ticket_returned"})
            self.wallet.put(number)
            return
        if credit_type == "promo":
            self._promo += amount
        else:
            self._cashable += amount
        self._meters["voucher_in_cents"] += amount
        self._emit("voucher.redeem.commit", {"validation_number": number, "amount_cents": amount})

    def _on_card_in_reply(self, request: _Request, body: dict[str, Any]) -> None:
        self._card_pending = None
        if body.get("status") == "ok":
            self._session = {"card_id": request.context["card_id"], "player": body.get("player")}
        else:
            self._session = None

    def _on_handpay_reply(self, request: _Request, body: dict[str, Any]) -> None:
        if self._handpay is not None and self._handpay["seq"] == request.seq and body.get("result") == "ok":
            self._handpay["handpay_id"] = body.get("handpay_id")

    def _on_command(self, envelope: dict[str, Any], body: dict[str, Any]) -> None:
        command_id = envelope.get("id")
        name = body.get("name")
        args = body.get("args") if isinstance(body.get("args"), dict) else {}
        refusal = None
        if name == "enable":
            self._set_enabled(True)
        elif name == "disable":
            self._set_enabled(False)
        elif name == "meters.request":
            self.send_meters()
        elif name == "software.verify":
            # Re-report the software: a new hello, which the host checks against the approved list.
            self._send_hello()
        elif name == "time.set":
            instant = parse_rfc3339(args.get("time"))
            if instant is None:
                refusal = "bad_time"
            else:
                self._clock_offset = (instant - datetime.now(timezone.utc)).total_seconds()
        elif name == "handpay.reset":
            refusal = self._reset_handpay()
        elif name == "message":
            text = args.get("text")
            if not isinstance(text, str):
                refusal = "no_text"
            else:
                self._last_message = text
        else:
            refusal = "unknown_command"
        ack: dict[str, Any] = {"id": command_id, "result": "ok" if refusal is None else "refused"}
        if refusal is not None:
            ack["reason"] = refusal
            log.info("terminal %s: refused cmd %r (%s): %s", self.egm_id, name, command_id, refusal)
        self._emit("cmd.ack", ack)

    def _reset_handpay(self) -> str | None:
        handpay = self._handpay
        if handpay is None:
            return "no_handpay_pending"
        amount = handpay["amount_cents"]
        if handpay["kind"] == "jackpot":
            self._meters["jackpot_cents"] += amount
        else:
            self._meters["handpay_cancelled_credits_cents"] += amount
            taken = min(self._cashable, amount)
            self._cashable -= taken
            self._promo = max(self._promo - (amount - taken), 0)
        self._handpay = None
        self._requests.pop(handpay["seq"], None)
        self._emit("event", {"code": "handpay.reset", "detail": {"amount_cents": amount, "kind": handpay["kind"]}})
        return None

    def _config_status(self, push: dict[str, Any], state: str, reason: str | None = None) -> None:
        body: dict[str, Any] = {"deployment_id": push.get("deployment_id"), "state": state, "sha256": push.get("sha256")}
        if reason is not None:
            body["reason"] = reason
        self._emit("config.status", body)

    def _on_config_push(self, body: dict[str, Any]) -> None:
        self._config_status(body, "received")
        reason = self._verify_package(body)
        if reason is not None:
            log.warning("terminal %s: config %r rejected: %s", self.egm_id, body.get("deployment_id"), reason)
            self._config_status(body, "rejected", reason)
            return
        self._config_status(body, "verified")
        if body.get("apply") == "now" or self._is_idle():
            self._install_config(body)
        else:
            self._pending_config = body
            self._next_due = 0.0
            self._config_status(body, "deferred", "not_idle")

    def _verify_package(self, body: dict[str, Any]) -> str | None:
        if self.reject_configs:
            return "rejected_by_terminal"
        package, digest_hex, signature = body.get("package"), body.get("sha256"), body.get("signature")
        if not isinstance(package, dict) or not isinstance(digest_hex, str) or not isinstance(signature, str):
            return "malformed_push"
        if body.get("apply", "idle") not in ("idle", "now"):
            return "bad_apply"
        digest = canonical_sha256(package)
        if digest.hex() != digest_hex.lower():
            return "sha256_mismatch"
        if self._config_key is None:
            return "no_config_key"
        try:
            Ed25519PublicKey.from_public_bytes(self._config_key).verify(
                base64.b64decode(signature, validate=True), digest
            )
        except (InvalidSignature, ValueError, binascii.Error):
            return "bad_signature"
        return None

    def _install_config(self, body: dict[str, Any]) -> None:
        package = body.get("package") or {}
        games = package.get("games")
        # A package's first game sets what this one-game cabinet plays (older flat packages still work).
        game = games[0] if isinstance(games, list) and games and isinstance(games[0], dict) else package
        denoms = game.get("denoms_cents")
        if isinstance(denoms, list) and denoms and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in denoms):
            self.denoms_cents = list(denoms)
        max_bet_cents = game.get("max_bet_cents")
        if isinstance(max_bet_cents, int) and not isinstance(max_bet_cents, bool) and max_bet_cents > 0:
            self.max_bet = max(1, max_bet_cents // min(self.denoms_cents))
        rtp_bp = game.get("rtp_bp")
        if isinstance(rtp_bp, int) and not isinstance(rtp_bp, bool) and 0 < rtp_bp <= 10000:
            self.rtp = rtp_bp / 10000
        self._config = {"deployment_id": body.get("deployment_id"), "sha256": body.get("sha256")}
        log.info("terminal %s: config %r installed", self.egm_id, body.get("deployment_id"))
        self._config_status(body, "installed")

    # ------------------------------------------------------------------ NVRAM

    def _persist(self) -> None:
        """Write-then-rename with fsync, so a power loss leaves the old or the new file, never half."""
        self._dirty = False
        self._persisted_at = time.monotonic()
        if self._state_path is None:
            return
        data = {
            "egm_id": self.egm_id,
            "seq": self._seq,
            "outbox": [[up.seq, up.type, up.payload.decode("utf-8")] for up in sorted(self._outbox.values(), key=lambda u: u.seq)],
            "requests": [[r.seq, r.type, r.payload.decode("utf-8"), r.context] for r in self._requests.values()],
            "meters": self._meters,
            "cashable_cents": self._cashable,
            "promo_cents": self._promo,
            "enabled": self._enabled,
            "handpay": self._handpay,
            "busy": self._busy,
            "session": self._session,
            "card_pending": self._card_pending,
            "doors": self._doors,
            "config": self._config,
            "pending_config": self._pending_config,
            "config_key": base64.b64encode(self._config_key).decode() if self._config_key else None,
            "denoms_cents": self.denoms_cents,
            "rtp": self.rtp,
        }
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"), ensure_ascii=False)
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self._state_path)
        if self._fsync:
            dir_fd = os.open(self._state_path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _load(self) -> None:
        assert self._state_path is not None
        if not self._state_path.exists():
            return
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            # Starting over at seq 1 would reuse seqs the host has applied: refuse instead.
            raise RuntimeError(f"terminal state file {self._state_path} is unreadable: {exc}") from exc
        if data.get("egm_id") != self.egm_id:
            raise RuntimeError(f"state file {self._state_path} belongs to {data.get('egm_id')!r}")
        self._seq = int(data["seq"])
        for seq, type_, payload in data.get("outbox", []):
            self._outbox[seq] = _Up(seq, type_, payload.encode("utf-8"))
            heapq.heappush(self._queue, seq)
        for seq, type_, payload, context in data.get("requests", []):
            self._requests[seq] = _Request(seq, type_, payload.encode("utf-8"), context, deadline=0.0)
        self._meters.update({k: int(v) for k, v in data.get("meters", {}).items() if k in self._meters})
        self._cashable = int(data.get("cashable_cents", 0))
        self._promo = int(data.get("promo_cents", 0))
        self._enabled = bool(data.get("enabled", False))
        self._handpay = data.get("handpay")
        self._busy = data.get("busy")
        self._session = data.get("session")
        self._card_pending = data.get("card_pending")
        self._doors.update(data.get("doors", {}))
        self._config = data.get("config") or self._config
        self._pending_config = data.get("pending_config")
        key = data.get("config_key")
        self._config_key = base64.b64decode(key) if key else None
        self.denoms_cents = data.get("denoms_cents") or self.denoms_cents
        self.rtp = data.get("rtp", self.rtp)
        log.info("terminal %s: NVRAM loaded: seq %d, %d message(s) unsent", self.egm_id, self._seq, len(self._outbox))

    # ------------------------------------------------------------------ network side (loop thread only)

    def _setup_client(self, address: BrokerAddress, password: str | None, connect_timeout: float) -> None:
        c = self._client
        c.username_pw_set(address.username or self.egm_id, password if password is not None else address.password)
        c.will_set(self.status_topic, _OFFLINE, qos=1, retain=True)
        # The outbox bounds what is in flight; paho must neither queue nor hold back on its own.
        c.max_inflight_messages_set(0)
        c.max_queued_messages_set(0)
        c.connect_timeout = connect_timeout
        c.on_connect = self._cb_connect
        c.on_disconnect = self._cb_disconnect
        c.on_message = self._cb_message
        c.on_publish = self._cb_publish
        self._loop.attach(c)
        c.connect_async(address.host, address.port, self.keepalive)

    def _post(self, kind: str, value: Any = None) -> None:
        self._inbox.append((kind, value))
        if not self._wake_pending:
            self._wake_pending = True
            self._driver.wake(self)

    def _net_want(self, want: bool) -> None:
        self._want_connected = want
        if want:
            self._net_connect()

    def _net_connect(self) -> None:
        self._reconnect_pending = False
        if not self._want_connected or self._client.socket() is not None:
            return
        try:
            self._client.reconnect()
        except OSError as exc:
            log.debug("terminal %s: connect failed: %s", self.egm_id, exc)
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._reconnect_pending or not self._want_connected:
            return
        self._reconnect_pending = True
        delay = self._backoff * (0.5 + self._rng.random())
        self._backoff = min(self._backoff * 2, 10.0)
        self._loop.call_later(delay, self._net_connect)

    def _net_drop(self) -> None:
        self._want_connected = False
        sock = self._client.socket()
        if sock is None:
            self._net_closed.set()
            self._post("lost", self._net_epoch)
            return
        try:
            # No DISCONNECT packet: to the broker this is a cable pulled, so it publishes the will.
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _net_close(self) -> None:
        self._want_connected = False
        if self._client.is_connected():
            self._client.publish(self.status_topic, _OFFLINE, qos=1, retain=True)
            self._client.disconnect()
        elif self._client.socket() is not None:
            self._net_drop()
        else:
            self._net_closed.set()

    def _net_publish(self, epoch: int, batch: list[tuple[int, bytes]]) -> None:
        if epoch != self._net_epoch or not self._client.is_connected():
            self._post("unsent", [seq for seq, _ in batch])
            return
        unsent = []
        for seq, payload in batch:
            info = self._client.publish(self.up_topic, payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._mids[info.mid] = seq
            else:
                unsent.append(seq)
        if unsent:
            self._post("unsent", unsent)

    def _cb_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._post("refused", str(reason))
            return
        self._backoff = 0.5
        self._net_epoch += 1
        client.subscribe(self.down_topic, qos=1)
        online = json.dumps({"state": "online", "ts": rfc3339(self._now())}, separators=(",", ":"))
        client.publish(self.status_topic, online, qos=1, retain=True)
        self._post("conn", self._net_epoch)

    def _cb_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        # Our outbox replays what was not acknowledged; paho must not replay it a second time.
        client.drop_out_messages()
        self._mids.clear()
        self._post("lost", self._net_epoch)
        if self._want_connected:
            self._schedule_reconnect()
        else:
            self._net_closed.set()

    def _cb_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._post("msg", (message.payload, time.monotonic()))

    def _cb_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        seq = self._mids.pop(mid, None)
        if seq is not None:
            self._post("ack", seq)
