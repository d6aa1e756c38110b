"""A simulated floor of MQTT terminals: the demo's floor and the load generator (P1, P2, P5).

N SimTerminals, each with its own MQTT connection and credentials, share a few
MqttLoop selector threads (one per `per_loop` connections, paho's external-loop
API); each loop also runs its terminals' logic and makes its share of the
load: in "mix" mode `rate` up messages per second over the floor in the P1
mix (game.end, meters, events); in "play" mode `rate` play steps per second
(games, bills, vouchers, cards, handpays, doors) on random terminals.
One Python process pushes what one core can (its GIL); ProcessFloor splits a
floor over several processes for loads beyond that. run_sim() is what
`floorhost sim` calls.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import random
import re
import signal
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from terminals.simulators.mqtt_terminal import MqttLoop, SimTerminal, VoucherWallet

log = logging.getLogger("floorhost.sim.floor")

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,26}\Z")


def _run_window(floor, duration: float) -> dict[str, Any]:
    """Starts a floor if needed, lets it run `duration` seconds, and returns its stats for that window."""
    floor.start()
    before = floor.stats()
    time.sleep(duration)
    after = floor.stats()
    elapsed = after["at"] - before["at"]
    window = {k: after[k] - before[k] for k in ("generated", "sent", "acked", "replies")}
    return {
        **after,
        "window_s": elapsed,
        "window": window,
        "acked_per_s": window["acked"] / elapsed if elapsed > 0 else 0.0,
        "generated_per_s": window["generated"] / elapsed if elapsed > 0 else 0.0,
    }


class SimFloor:
    """N simulated terminals on a few threads; see the module docstring."""

    def __init__(
        self,
        n: int,
        broker_url: str,
        egm_ids: Sequence[str] | None = None,
        passwords: Mapping[str, str] | Sequence[str] | str | None = None,
        rate: float = 0.0,
        mix: Sequence[float] = (0.7, 0.2, 0.1),
        state_dir: Path | str | None = None,
        seed: int | None = None,
        *,
        prefix: str = "SIM",
        mode: str = "mix",
        per_loop: int = 500,
        meters_interval: float | None = None,
        keepalive: int = 30,
        reply_timeout: float = 5.0,
        connect_rate: float = 2000.0,
        topic_root: str = "sbg/v1",
        fsync: bool = True,
        terminal_options: dict[str, Any] | None = None,
    ):
        if n < 1:
            raise ValueError("a floor has at least one terminal")
        if mode not in ("mix", "play"):
            raise ValueError("mode is 'mix' or 'play'")
        if len(mix) != 3 or any(p < 0 for p in mix) or sum(mix) <= 0:
            raise ValueError("mix is three non-negative weights: game.end, meters, events")
        if egm_ids is None:
            if not _PREFIX_RE.match(prefix):
                raise ValueError(f"prefix must be 1-26 chars of [A-Za-z0-9_-], not {prefix!r}")
            egm_ids = [f"{prefix}{i:05d}" for i in range(1, n + 1)]
        egm_ids = list(egm_ids)[:n]
        if len(egm_ids) < n:
            raise ValueError(f"{n} terminals asked for, {len(egm_ids)} egm_ids given")
        self.n = n
        self.mode = mode
        total = float(sum(mix))
        self._rng = random.Random(seed)
        self._connect_rate = connect_rate
        self.wallet = VoucherWallet()
        self._generating = False
        count = max(1, math.ceil(n / per_loop))
        self._shares = [
            _LoadShare(self, (mix[0] / total, (mix[0] + mix[1]) / total), random.Random(self._rng.getrandbits(64)))
            for _ in range(count)
        ]
        self._loops = [MqttLoop(name=f"sim-mqtt-{i}", tick=share.tick) for i, share in enumerate(self._shares)]
        options: dict[str, Any] = {
            "keepalive": keepalive,
            "reply_timeout": reply_timeout,
            "meters_interval": meters_interval,
            "fsync": fsync,
            "topic_root": topic_root,
            # paho's TCP connect blocks its loop thread: a broker that drops SYNs must not hold it long.
            "connect_timeout": 2.0,
        }
        if mode == "mix":
            # The P1 mix has no handpays: a locked terminal would stop playing until an attendant comes.
            options["jackpot_rate"] = 0.0
        options.update(terminal_options or {})
        self.terminals: list[SimTerminal] = []
        for i, egm_id in enumerate(egm_ids):
            k = i * count // n
            terminal = SimTerminal(
                egm_id,
                broker_url,
                password=_password_for(passwords, egm_id, i),
                state_dir=state_dir,
                seed=self._rng.getrandbits(64),
                loop=self._loops[k],
                driver=self._loops[k],
                wallet=self.wallet,
                autostart=False,
                **options,
            )
            self.terminals.append(terminal)
            self._shares[k].terminals.append(terminal)
        self.rate = rate
        self._started = False
        self._stopped = False

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        """Messages (mix) or play steps (play) per second over the floor; may change while running."""
        self._rate = float(value)
        for share in self._shares:
            share.rate = self._rate * len(share.terminals) / self.n

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> int:
        """Connect every terminal (paced at connect_rate), wait until all are online or timeout,
        then start the load. Returns the number connected."""
        if self._started:
            return self.connected
        self._started = True
        for loop in self._loops:
            loop.start()
        begin = time.monotonic()
        for i, terminal in enumerate(self.terminals):
            terminal.start()
            # Pace the connects: a burst of thousands would overflow the broker's accept backlog.
            ahead = (i + 1) / self._connect_rate - (time.monotonic() - begin)
            if ahead > 0.005:
                time.sleep(ahead)
        deadline = begin + timeout
        while self.connected < self.n and time.monotonic() < deadline:
            time.sleep(0.05)
        connected = self.connected
        log.info("sim floor: %d/%d terminals online after %.1f s", connected, self.n, time.monotonic() - begin)
        # hello.reply says whether play is enabled; the load should start from that.
        hello_deadline = min(deadline, time.monotonic() + 5.0)
        while any(t.hello_pending for t in self.terminals if t.connected) and time.monotonic() < hello_deadline:
            time.sleep(0.05)
        if self.mode == "mix" and self.rate > 0:
            # Players sit down with a bill, so the first game slots are games, not bills.
            for terminal in self.terminals:
                if terminal.credits_cents == 0:
                    terminal.insert_bill(2000)
            # The load starts from a quiet floor, so its measured window holds only its own messages.
            quiet_deadline = min(deadline, time.monotonic() + 5.0)
            while self.outbox and time.monotonic() < quiet_deadline:
                time.sleep(0.02)
        self._generating = True
        return connected

    def stop(self, graceful: bool = True, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._generating = False
        deadline = time.monotonic() + timeout
        if self._started:
            if graceful:
                # Let in-flight messages be acknowledged before saying goodbye.
                while self.outbox and time.monotonic() < deadline - timeout / 2:
                    time.sleep(0.05)
            for terminal in self.terminals:
                terminal.begin_stop(graceful, drain_timeout=0)
            for terminal in self.terminals:
                terminal.finish_stop(deadline)
        for loop in self._loops:
            loop.stop()

    def run(self, duration: float) -> dict[str, Any]:
        """Start if needed, run the load for duration seconds, and return the stats of that window."""
        return _run_window(self, duration)

    def __enter__(self) -> SimFloor:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ counters

    @property
    def connected(self) -> int:
        return sum(1 for t in self.terminals if t.connected)

    @property
    def generated(self) -> int:
        return sum(t.generated_count for t in self.terminals)

    @property
    def sent(self) -> int:
        return sum(t.sent_count for t in self.terminals)

    @property
    def acked(self) -> int:
        return sum(t.acked_count for t in self.terminals)

    @property
    def replies(self) -> int:
        return sum(t.reply_count for t in self.terminals)

    @property
    def outbox(self) -> int:
        return sum(t.outbox_size for t in self.terminals)

    def stats(self) -> dict[str, Any]:
        return {
            "at": time.monotonic(),
            "terminals": self.n,
            "connected": self.connected,
            "generated": self.generated,
            "sent": self.sent,
            "acked": self.acked,
            "replies": self.replies,
            "outbox": self.outbox,
            "mix": self.mix_counts,
        }

    @property
    def mix_counts(self) -> dict[str, int]:
        """What the load generator made, by kind (a game slot without credits becomes a bill event)."""
        counts = {"game.end": 0, "meters": 0, "event": 0, "step": 0}
        for share in self._shares:
            for kind, value in share.counts.items():
                counts[kind] += value
        return counts


class _LoadShare:
    """The part of the load made by one loop thread, on that loop's terminals."""

    def __init__(self, floor: SimFloor, mix: tuple[float, float], rng: random.Random):
        self.floor = floor
        self.terminals: list[SimTerminal] = []
        self.rate = 0.0
        self._mix_game, self._mix_meters = mix
        self._rng = rng
        self._credit = 0.0
        self._last_tick: float | None = None
        self._open_doors: deque[SimTerminal] = deque()
        self._backlogged = False
        self._checked_at = 0.0
        self.counts = {"game.end": 0, "meters": 0, "event": 0, "step": 0}

    def tick(self, now: float) -> None:
        if not self.floor._generating or self.rate <= 0 or not self.terminals:
            self._last_tick = None
            return
        if self._last_tick is None:
            self._last_tick = now
            return
        if now - self._checked_at >= 0.02:
            self._checked_at = now
            # Offered faster than the broker acknowledges: pause rather than grow the outboxes
            # and starve the I/O on this thread; the stats then show the rate really reached.
            backlog = sum(t.outbox_size for t in self.terminals)
            self._backlogged = backlog > min(max(100.0, self.rate * 0.05), 2000.0)
        if self._backlogged:
            self._credit = 0.0
            self._last_tick = now
            return
        # Credit accrues at `rate`; capped at 50 ms worth so a stalled pass does not turn into a burst.
        self._credit = min(self._credit + (now - self._last_tick) * self.rate, max(self.rate * 0.05, 1.0))
        self._last_tick = now
        count = int(self._credit)
        self._credit -= count
        emit = self._emit_mix if self.floor.mode == "mix" else self._emit_play
        for _ in range(count):
            emit()

    def _pick(self, playable: bool = False) -> SimTerminal:
        terminals = self.terminals
        terminal = terminals[self._rng.randrange(len(terminals))]
        for _ in range(8):
            if terminal.connected and (not playable or terminal.can_play):
                break
            terminal = terminals[self._rng.randrange(len(terminals))]
        return terminal

    def _emit_mix(self) -> None:
        r = self._rng.random()
        if r < self._mix_game:
            terminal = self._pick(playable=True)
            if terminal.play_game() is not None:
                self.counts["game.end"] += 1
                return
            # Out of credits (or not enabled): a bill is what a player would do next.
            if terminal.insert_bill() is not None:
                self.counts["event"] += 1
                return
            terminal.send_meters()
            self.counts["meters"] += 1
        elif r < self._mix_meters:
            self._pick().send_meters()
            self.counts["meters"] += 1
        else:
            self._emit_event()

    def _emit_event(self) -> None:
        if self._open_doors:
            # A door opened earlier is closed now, so no terminal stays out of play for long.
            if self._open_doors.popleft().close_door("main") is not None:
                self.counts["event"] += 1
                return
        terminal = self._pick(playable=True)
        if self._rng.random() < 0.7 and terminal.insert_bill(self._rng.choice((500, 1000, 2000, 5000))) is not None:
            self.counts["event"] += 1
            return
        if terminal.open_door("main") is not None:
            self._open_doors.append(terminal)
            self.counts["event"] += 1
            return
        terminal.send_meters()
        self.counts["meters"] += 1

    def _emit_play(self) -> None:
        for _ in range(4):
            if self._pick(playable=True).step() is not None:
                self.counts["step"] += 1
                return


class ProcessFloor:
    """A SimFloor split over `processes` child processes, with the same start/run/stop/stats.

    Children are spawned (never forked: the parent may run threads) and each
    runs a SimFloor over its slice of the terminals and of the rate.
    """

    def __init__(
        self,
        processes: int,
        n: int,
        broker_url: str,
        egm_ids: Sequence[str] | None = None,
        passwords: Mapping[str, str] | Sequence[str] | str | None = None,
        rate: float = 0.0,
        seed: int | None = None,
        *,
        prefix: str = "SIM",
        **floor_options: Any,
    ):
        if processes < 1:
            raise ValueError("processes must be at least 1")
        if egm_ids is None:
            if not _PREFIX_RE.match(prefix):
                raise ValueError(f"prefix must be 1-26 chars of [A-Za-z0-9_-], not {prefix!r}")
            egm_ids = [f"{prefix}{i:05d}" for i in range(1, n + 1)]
        egm_ids = list(egm_ids)[:n]
        if len(egm_ids) < n:
            raise ValueError(f"{n} terminals asked for, {len(egm_ids)} egm_ids given")
        self.n = n
        self._rate = float(rate)
        processes = min(processes, n)
        bounds = [i * n // processes for i in range(processes + 1)]
        self._slices = [egm_ids[bounds[i]:bounds[i + 1]] for i in range(processes)]
        context = multiprocessing.get_context("spawn")
        self._pipes = []
        self._children = []
        for i, ids in enumerate(self._slices):
            if isinstance(passwords, Mapping):
                part: Any = {egm_id: passwords[egm_id] for egm_id in ids if egm_id in passwords}
            elif passwords is None or isinstance(passwords, str):
                part = passwords
            else:
                part = list(passwords)[bounds[i]:bounds[i + 1]]
            options = {
                **floor_options,
                "egm_ids": ids,
                "passwords": part,
                "rate": self._rate * len(ids) / n,
                "seed": None if seed is None else seed * 1000 + i,
            }
            parent_end, child_end = context.Pipe()
            child = context.Process(
                target=_child_main, args=(child_end, len(ids), broker_url, options), name=f"sim-floor-{i}", daemon=True
            )
            self._pipes.append(parent_end)
            self._children.append(child)
        self._started = False
        self._stopped = False
        self._final: list[dict[str, Any] | None] = []

    def start(self, timeout: float = 60.0) -> int:
        if self._started:
            return self.stats()["connected"]
        self._started = True
        for child in self._children:
            child.start()
        self._tell("start", timeout)
        return sum(self._ask(pipe, timeout + 30) or 0 for pipe in self._pipes)

    def _tell(self, command: str, arg: Any = None) -> None:
        for pipe in self._pipes:
            try:
                pipe.send((command, arg))
            except (BrokenPipeError, OSError):
                log.warning("sim floor: a child process is gone")

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._rate = float(value)
        for ids, pipe in zip(self._slices, self._pipes):
            try:
                pipe.send(("rate", self._rate * len(ids) / self.n))
            except (BrokenPipeError, OSError):
                log.warning("sim floor: a child process is gone")

    def stats(self) -> dict[str, Any]:
        """Counters summed over the children (after stop: their last counters)."""
        if self._stopped:
            parts = self._final
        else:
            self._tell("stats")
            parts = [self._ask(pipe, 10.0) for pipe in self._pipes]
        total: dict[str, Any] = {"terminals": self.n, "connected": 0, "generated": 0, "sent": 0, "acked": 0,
                                 "replies": 0, "outbox": 0, "mix": {"game.end": 0, "meters": 0, "event": 0, "step": 0}}
        for part in parts:
            if not part:
                continue
            for key in ("connected", "generated", "sent", "acked", "replies", "outbox"):
                total[key] += part[key]
            for kind, value in part["mix"].items():
                total["mix"][kind] += value
        total["at"] = time.monotonic()
        return total

    def run(self, duration: float) -> dict[str, Any]:
        return _run_window(self, duration)

    def stop(self, graceful: bool = True, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self._tell("stop", (graceful, timeout))
            self._final = [self._ask(pipe, timeout + 5) for pipe in self._pipes]
            for child in self._children:
                child.join(5)
                if child.is_alive():
                    child.kill()
                    child.join(1)
        for pipe in self._pipes:
            pipe.close()

    def __enter__(self) -> ProcessFloor:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @staticmethod
    def _ask(pipe: Any, timeout: float) -> Any:
        try:
            if pipe.poll(timeout):
                return pipe.recv()
        except (EOFError, OSError):
            pass
        return None


def _child_main(pipe: Any, n: int, broker_url: str, options: dict[str, Any]) -> None:
    """One ProcessFloor child: a SimFloor obeying its parent's pipe until stop or the parent is gone."""
    # Ctrl-C reaches the whole process group; the parent alone decides, through the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    floor = SimFloor(n, broker_url, **options)
    try:
        while True:
            try:
                command, arg = pipe.recv()
            except EOFError:
                return
            if command == "start":
                pipe.send(floor.start(timeout=arg))
            elif command == "stats":
                pipe.send(floor.stats())
            elif command == "rate":
                floor.rate = arg
            elif command == "stop":
                graceful, timeout = arg
                floor.stop(graceful=graceful, timeout=timeout)
                pipe.send(floor.stats())
                return
    finally:
        floor.stop(graceful=False)


def _password_for(passwords: Mapping[str, str] | Sequence[str] | str | None, egm_id: str, index: int) -> str | None:
    if passwords is None:
        return None
    if isinstance(passwords, str):
        return passwords
    if isinstance(passwords, Mapping):
        return passwords.get(egm_id)
    return passwords[index]


def run_sim(
    terminals: int,
    rate: float,
    broker_url: str,
    prefix: str = "SIM",
    duration: float | None = None,
    credentials: dict[str, str] | None = None,
    state_dir: Path | str | None = None,
    *,
    mode: str = "mix",
    meters_interval: float | None = None,
    processes: int = 1,
    report_every: float = 10.0,
) -> int:
    """Run a simulated floor until duration passes or Ctrl-C, printing one summary line every
    report_every seconds. With credentials (egm_id → password) the floor uses those terminals
    (the first `terminals` of them in sorted order). processes > 1 splits the floor over child
    processes (one Python process tops out near one core). Returns the process exit code."""
    egm_ids = None
    if credentials:
        egm_ids = sorted(credentials)
        if terminals and terminals < len(egm_ids):
            egm_ids = egm_ids[:terminals]
        terminals = len(egm_ids)
    if terminals <= 0:
        print("sim: no terminals to run")
        return 2
    options: dict[str, Any] = {
        "egm_ids": egm_ids,
        "passwords": credentials,
        "rate": rate,
        "state_dir": state_dir,
        "prefix": prefix,
        "mode": mode,
        "meters_interval": meters_interval,
    }
    floor: SimFloor | ProcessFloor
    try:
        if processes > 1:
            floor = ProcessFloor(processes, terminals, broker_url, **options)
        else:
            floor = SimFloor(terminals, broker_url, **options)
    except ValueError as exc:
        print(f"sim: {exc}")
        return 2
    stop_at = None if duration is None else time.monotonic() + duration
    code = 0
    try:
        connected = floor.start(timeout=min(60.0, duration) if duration else 60.0)
        print(f"sim: {connected}/{terminals} terminals online at {broker_url}, {mode} load at {rate:g}/s", flush=True)
        if connected == 0:
            code = 1
            return code
        last = floor.stats()
        while stop_at is None or time.monotonic() < stop_at:
            wait = report_every if stop_at is None else min(report_every, stop_at - time.monotonic())
            _sleep(max(wait, 0))
            now = floor.stats()
            span = now["at"] - last["at"]
            if span > 0.5:
                print(_summary(now, last, span), flush=True)
            last = now
    except KeyboardInterrupt:
        print("sim: interrupted", flush=True)
    finally:
        floor.stop()
        final = floor.stats()
        print(
            f"sim: stopped; generated={final['generated']} acked={final['acked']} replies={final['replies']} "
            f"unsent={final['outbox']}",
            flush=True,
        )
    return code


def _sleep(seconds: float) -> None:
    # Short sleeps keep Ctrl-C prompt on every platform.
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))


def _summary(now: dict[str, Any], last: dict[str, Any], span: float) -> str:
    acked = now["acked"] - last["acked"]
    generated = now["generated"] - last["generated"]
    replies = now["replies"] - last["replies"]
    return (
        f"sim: online={now['connected']}/{now['terminals']} generated={generated / span:.0f}/s "
        f"acked={acked / span:.0f}/s replies={replies / span:.0f}/s unsent={now['outbox']} "
        f"total_acked={now['acked']}"
    )


__all__ = ["ProcessFloor", "SimFloor", "run_sim"]
