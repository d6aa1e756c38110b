"""The Modbus poller: polls Modbus floor devices (register map v1) and ends in the same services as MQTT.

One asyncio loop in a thread of its own owns every pymodbus client (pymodbus is not
thread-safe); database work runs on one worker thread beside it, each poll in a short
transaction, so a slow commit never stalls the polls of other devices.

```
device task (one per terminal, every interval_s) ──read input 0-45──▶ decode_inputs
   ─▶ DB worker: went_online, status-bit edges → add_event, rising bit 3 → handpays.create,
      meters → record_snapshot(moduli 2^32), RAM clear → one new series + one alert
3 failed polls in a row ─▶ went_offline(cause "link")
```

Commands (`deliver_command`) and config pushes (`apply_config`) are written from the same
loop and acknowledged in the database after the write succeeded or failed.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from sqlalchemy import select

from protocols.modbus import (
    CONFIG_IDS_ADDRESS,
    CONFIG_IDS_COUNT,
    INPUT_COUNT,
    INPUT_FIRST,
    MAP_VERSION,
    ConfigNotMappable,
    DeviceReading,
    MapError,
    clock_write,
    config_writes,
    decode_config_ids,
    decode_inputs,
    enable_write,
    handpay_raised,
    handpay_reset_write,
    status_edges,
)
from protocols.modbus.map import DEFAULT_SERIAL, DEFAULT_TCP_PORT
from server.alerts import raise_alert
from server.host import Host
from terminals import commands, meters, registry
from terminals.commands import Outgoing
from terminals.models import Terminal

log = logging.getLogger("floorhost.modbus")

DEFAULT_INTERVAL_S = 2.0
OFFLINE_AFTER = 3  # failed polls in a row (modbus-map.md)
METER_MODULI = 1 << 32
# Label values of floorhost_modbus_errors{kind}.
ERROR_KINDS = ("connect", "timeout", "exception", "map_version", "decode", "db")

Outcome = tuple[str, "str | None"]  # ("installed" | "rejected" | "failed", reason)


class ModbusError(Exception):
    """One failed request, with the kind it is counted under."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass
class _Link:
    """One pymodbus client: a TCP host:port or a serial port; every unit behind it shares it."""

    key: tuple
    client: Any
    users: set[str] = field(default_factory=set)

    def describe(self) -> str:
        return ":".join(str(k) for k in self.key[1:])


@dataclass
class _Device:
    """What the poller keeps about one terminal between polls (the database has the rest)."""

    egm_id: str
    link_key: tuple
    unit: int
    interval_s: float
    connection: dict
    comms: str  # online / offline / unknown, as last written to the registry
    last_bits: int | None = None  # status register at the last good poll; None before the first
    sha256: str | None = None
    synced: bool = False  # enable state written since the device last came online
    failures: int = 0
    last_error: str | None = None
    last_ok_at: float | None = None
    polls: int = 0
    task: asyncio.Task | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _link_key(conn: dict) -> tuple:
    if "serial_port" in conn:
        return ("rtu", conn["serial_port"])
    return ("tcp", conn.get("host"), int(conn.get("port", DEFAULT_TCP_PORT)))


class ModbusHost:
    """Polls every terminal registered with protocol `modbus`; the `modbus` route for commands."""

    protocol = "modbus"

    def __init__(self, host: Host, *, timeout_s: float = 1.0, offline_after: int = OFFLINE_AFTER) -> None:
        self.host = host
        self.timeout_s = timeout_s
        self.offline_after = offline_after
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._db: concurrent.futures.ThreadPoolExecutor | None = None
        self._devices: dict[str, _Device] = {}
        self._links: dict[tuple, _Link] = {}
        self._started_at: float | None = None

    # ------------------------------------------------------------------ life

    def start(self, timeout: float = 10.0) -> None:
        """Start the loop thread and the polling of every registered Modbus terminal."""
        if self._thread is not None:
            return
        self._db = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="modbus-db")
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            ready.set()
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=main, name="modbus-host", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        self._started_at = time.monotonic()
        try:
            self.reload(timeout)
        except Exception:
            # The host still runs; the next reload() (registration, restart) tries again.
            log.exception("modbus: could not load the Modbus terminals")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, close every client and the loop thread."""
        if self._thread is None or self._loop is None:
            return
        try:
            self._call(self._shutdown(), timeout)
        except Exception:
            log.exception("modbus: unclean shutdown")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self._loop = None
        if self._db is not None:
            self._db.shutdown(wait=True)
            self._db = None

    def reload(self, timeout: float = 10.0) -> None:
        """Re-read the registry: start polling new Modbus terminals, stop removed ones, follow changes."""
        self._call(self._reload(), timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def health(self) -> dict:
        """What /healthz shows: per device its comms state, failures in a row and last error."""
        devices = {
            d.egm_id: {"comms": d.comms, "failures": d.failures, "polls": d.polls, "last_error": d.last_error,
                       "last_ok_s_ago": None if d.last_ok_at is None else round(time.monotonic() - d.last_ok_at, 1)}
            for d in list(self._devices.values())
        }
        return {"running": self.running, "links": sorted(link.describe() for link in list(self._links.values())),
                "devices": devices,
                "online": sum(1 for d in devices.values() if d["comms"] == "online"),
                "offline": sum(1 for d in devices.values() if d["comms"] == "offline")}

    def _call(self, coro, timeout: float | None):
        """Run a coroutine on the poller's loop and wait for it (from any other thread)."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("modbus host is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("blocking call from the modbus loop itself")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _submit(self, coro) -> concurrent.futures.Future:
        if self._loop is None:
            coro.close()
            fut: concurrent.futures.Future = concurrent.futures.Future()
            fut.set_exception(RuntimeError("modbus host is not running"))
            return fut
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _in_db(self, fn: Callable, *args):
        """Database work on the DB worker thread, so the loop keeps polling meanwhile."""
        assert self._db is not None
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    # ------------------------------------------------------------------ devices and links

    def _load_terminals(self) -> list[tuple[str, dict, str]]:
        with self.host.db.read() as s:
            rows = s.execute(select(Terminal.egm_id, Terminal.connection, Terminal.comms)
                             .where(Terminal.protocol == "modbus")).all()
        return [(r.egm_id, dict(r.connection or {}), r.comms) for r in rows]

    async def _reload(self) -> None:
        wanted = {egm_id: (conn, comms) for egm_id, conn, comms in await self._in_db(self._load_terminals)}
        for egm_id in list(self._devices):
            dev = self._devices[egm_id]
            if egm_id not in wanted or wanted[egm_id][0] != dev.connection:
                await self._drop(dev)
        for egm_id, (conn, comms) in wanted.items():
            if egm_id in self._devices:
                continue
            try:
                link = self._link(conn)
            except Exception as exc:  # a bad serial port or a missing pyserial must not stop the others
                self._count("connect")
                log.error("egm=%s modbus: cannot open %s: %s", egm_id, conn, exc)
                continue
            dev = _Device(egm_id=egm_id, link_key=link.key, unit=int(conn.get("unit", 1)),
                          interval_s=float(conn.get("interval_s", DEFAULT_INTERVAL_S)), connection=conn,
                          comms=comms)
            link.users.add(egm_id)
            self._devices[egm_id] = dev
            dev.task = asyncio.create_task(self._poll_loop(dev), name=f"modbus-poll-{egm_id}")
            log.info("egm=%s modbus: polling unit %s on %s every %ss", egm_id, dev.unit, link.describe(),
                     dev.interval_s)

    async def _drop(self, dev: _Device) -> None:
        if dev.task is not None:
            dev.task.cancel()
            await asyncio.gather(dev.task, return_exceptions=True)
        self._devices.pop(dev.egm_id, None)
        link = self._links.get(dev.link_key)
        if link is not None:
            link.users.discard(dev.egm_id)
            if not link.users:
                link.client.close()
                del self._links[link.key]
        log.info("egm=%s modbus: no longer polled", dev.egm_id)

    async def _shutdown(self) -> None:
        for dev in list(self._devices.values()):
            if dev.task is not None:
                dev.task.cancel()
        await asyncio.gather(*(d.task for d in self._devices.values() if d.task), return_exceptions=True)
        self._devices.clear()
        for link in self._links.values():
            link.client.close()
        self._links.clear()

    def _link(self, conn: dict) -> _Link:
        key = _link_key(conn)
        link = self._links.get(key)
        if link is not None:
            if key[0] == "rtu" and conn.get("baud", DEFAULT_SERIAL["baud"]) != link.client.comm_params.baudrate:
                log.warning("modbus: units on %s ask for different baud rates; %s is used",
                            key[1], link.client.comm_params.baudrate)
            return link
        # retries=0 and no automatic reconnect: the poll loop counts failures and reconnects itself.
        if key[0] == "rtu":
            client = AsyncModbusSerialClient(
                key[1], baudrate=conn.get("baud", DEFAULT_SERIAL["baud"]), bytesize=DEFAULT_SERIAL["bytesize"],
                parity=DEFAULT_SERIAL["parity"], stopbits=DEFAULT_SERIAL["stopbits"], timeout=self.timeout_s,
                retries=0, reconnect_delay=0)
        else:
            client = AsyncModbusTcpClient(key[1], port=key[2], timeout=self.timeout_s, retries=0, reconnect_delay=0)
        link = _Link(key, client)
        self._links[key] = link
        return link

    # ------------------------------------------------------------------ requests

    def _count(self, kind: str) -> None:
        self.host.metrics.modbus_errors.labels(kind=kind).inc()

    async def _request(self, dev: _Device, what: str, call: Callable[[Any], Any]):
        """One request on the device's link; raises ModbusError(kind) for anything but a good answer."""
        link = self._links.get(dev.link_key)
        if link is None:
            raise ModbusError("connect", "no link")
        client = link.client
        if not client.connected:
            try:
                ok = await asyncio.wait_for(client.connect(), self.timeout_s + 1)
            except (asyncio.TimeoutError, OSError, ModbusException) as exc:
                ok, why = False, str(exc) or exc.__class__.__name__
            else:
                why = "refused"
            if not ok or not client.connected:
                raise ModbusError("connect", f"cannot connect to {link.describe()}: {why}")
        try:
            response = await asyncio.wait_for(call(client), self.timeout_s + 1)
        except (asyncio.TimeoutError, ModbusIOException) as exc:
            raise ModbusError("timeout", f"{what}: no answer ({exc.__class__.__name__})") from exc
        except ConnectionException as exc:
            raise ModbusError("connect", f"{what}: {exc}") from exc
        except ModbusException as exc:
            raise ModbusError("decode", f"{what}: {exc}") from exc
        if response is None or response.isError():
            code = getattr(response, "exception_code", None)
            raise ModbusError("exception", f"{what}: exception response {code}")
        return response

    async def _read_inputs(self, dev: _Device) -> list[int]:
        response = await self._request(
            dev, "read inputs 0-45",
            lambda c: c.read_input_registers(INPUT_FIRST, count=INPUT_COUNT, device_id=dev.unit))
        return list(response.registers)

    async def _write(self, dev: _Device, address: int, values: list[int]) -> None:
        await self._request(dev, f"write {address}",
                            lambda c: c.write_registers(address, values, device_id=dev.unit))

    async def _read_config_ids(self, dev: _Device) -> tuple[int, int]:
        response = await self._request(
            dev, "read config ids",
            lambda c: c.read_holding_registers(CONFIG_IDS_ADDRESS, count=CONFIG_IDS_COUNT, device_id=dev.unit))
        try:
            return decode_config_ids(response.registers)
        except MapError as exc:
            raise ModbusError("decode", exc.reason) from exc

    # ------------------------------------------------------------------ polling

    async def _poll_loop(self, dev: _Device) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.poll(dev.egm_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the device's polling
                log.exception("egm=%s modbus: poll failed", dev.egm_id)
            await asyncio.sleep(max(0.0, dev.interval_s - (loop.time() - started)))

    async def poll(self, egm_id: str) -> bool:
        """Poll one device now (on the poller's loop); True when it answered and was recorded."""
        dev = self._devices.get(egm_id)
        if dev is None:
            return False
        async with dev.lock:
            dev.polls += 1
            try:
                registers = await self._read_inputs(dev)
                if registers and registers[0] != MAP_VERSION:
                    raise ModbusError("map_version", f"map version {registers[0]}, expected {MAP_VERSION}")
                try:
                    reading = decode_inputs(registers)
                except MapError as exc:
                    raise ModbusError("decode", exc.reason) from exc
            except ModbusError as exc:
                await self._failed(dev, exc)
                return False
            try:
                want_enabled = await self._in_db(self._apply, dev, reading)
            except Exception as exc:
                self._count("db")
                dev.last_error = f"db: {exc.__class__.__name__}"
                log.exception("egm=%s modbus: reading not recorded", egm_id)
                return False
            dev.last_bits = reading.status_bits
            dev.sha256 = reading.software_sha256
            dev.comms, dev.failures, dev.last_error, dev.last_ok_at = "online", 0, None, time.monotonic()
            if want_enabled is not None:
                await self._sync_enabled(dev, want_enabled)
            return True

    def poll_sync(self, egm_id: str, timeout: float = 10.0) -> bool:
        """poll() for a plain thread (a deployment step reads the meters before it writes)."""
        if self._loop is None:
            return False
        return bool(self._call(self.poll(egm_id), timeout))

    async def _failed(self, dev: _Device, exc: ModbusError) -> None:
        self._count(exc.kind)
        dev.failures += 1
        dev.last_error = f"{exc.kind}: {exc.reason}"
        log.warning("egm=%s modbus: poll %d failed in a row: %s", dev.egm_id, dev.failures, dev.last_error)
        if exc.kind == "connect":
            # A half-open socket would time out forever; start clean on the next poll.
            link = self._links.get(dev.link_key)
            if link is not None and link.client.connected and link.key[0] == "tcp":
                link.client.close()
        if dev.failures >= self.offline_after and dev.comms != "offline":
            try:
                await self._in_db(self._mark_offline, dev.egm_id)
            except Exception:
                self._count("db")
                log.exception("egm=%s modbus: offline not recorded", dev.egm_id)
                return
            dev.comms, dev.synced = "offline", False
            log.warning("egm=%s modbus: offline after %d failed polls", dev.egm_id, dev.failures)

    def _mark_offline(self, egm_id: str) -> None:
        h = self.host
        with h.db.begin() as s:
            t = registry.get(s, egm_id)
            registry.went_offline(s, h.clock, t, h.now(), "link", "modbus")

    def _apply(self, dev: _Device, reading: DeviceReading) -> bool | None:
        """One good poll in one transaction; returns the enable state to write to the device, or None."""
        from cashier import handpays  # the cashier package imports terminals; import late

        h = self.host
        now = h.now()
        prev = dev.last_bits
        with h.db.begin() as s:
            t = registry.get(s, dev.egm_id)
            was = t.comms
            registry.went_online(s, h.clock, t, now, source="modbus")
            if was != "online":
                log.info("egm=%s modbus: online", dev.egm_id)
            enabled_before = t.enabled
            if reading.software_sha256 != dev.sha256:
                software_info = {**(t.software or {}), "sha256": reading.software_sha256}
                registry.record_cabinet(s, h.clock, t, now, manufacturer=t.manufacturer or "", model=t.model or "",
                                        serial=t.serial or "", software_info=software_info,
                                        denoms_cents=None, reported_config=t.reported_config, source="modbus")
            detail = {"event_counter": reading.event_counter}
            for code in status_edges(prev, reading.status_bits):
                registry.add_event(s, h.clock, t, code, now, detail=detail, source="modbus")
                log.info("egm=%s modbus: event %s", dev.egm_id, code)
            snap = meters.record_snapshot(s, h.clock, t, reading.meters, now, source="modbus",
                                          moduli=dict.fromkeys(reading.meters, METER_MODULI))
            if reading.ram_cleared and not snap.ram_clear:
                # The meters service raises its own alert when the meters went backwards; one alert per clear.
                raise_alert(s, "ram_clear", f"{t.egm_id} reports a RAM clear", now, severity="critical",
                            egm_id=t.egm_id, detail={"meters": reading.meters, "series": snap.series})
            if snap.ram_clear:
                log.warning("egm=%s modbus: meters went backwards (RAM clear), series %d", dev.egm_id, snap.series)
            # Levels the map states outright; the events above are their edges.
            t.door_open, t.tilt = reading.main_door_open, reading.tilt
            t.game_in_progress = reading.game_in_progress
            if handpay_raised(prev, reading.status_bits):
                self._handpay(s, handpays, t, reading, now)
            came_online = was != "online" or not dev.synced
            if came_online or t.enabled != enabled_before:
                dev.synced = True
                if reading.disabled == t.enabled:
                    return bool(t.enabled)
        return None

    def _handpay(self, s, handpays, t: Terminal, reading: DeviceReading, now: dt.datetime) -> None:
        amount = reading.handpay_pending_cents
        if handpays.open_for_terminal(s, t.egm_id):
            # Already pending (a restart, or bit 3 seen again): the cage has it.
            log.info("egm=%s modbus: handpay pending on the device is already open", t.egm_id)
            return
        if amount <= 0:
            log.warning("egm=%s modbus: handpay pending without an amount in register 24", t.egm_id)
            return
        handpays.create(s, self.host.clock, self.host.settings, egm_id=t.egm_id, amount_cents=amount,
                        kind="jackpot", now=now, source="modbus")

    async def _sync_enabled(self, dev: _Device, enabled: bool) -> None:
        """Make the device's play-enabled register agree with the registry (as a hello reply does for MQTT)."""
        try:
            await self._write(dev, *enable_write(enabled))
            log.info("egm=%s modbus: play %s to match the registry", dev.egm_id, "enabled" if enabled else "disabled")
        except ModbusError as exc:
            self._count(exc.kind)
            dev.synced = False  # try again on the next good poll
            log.warning("egm=%s modbus: could not write play enabled: %s", dev.egm_id, exc)

    # ------------------------------------------------------------------ commands

    def deliver_command(self, out: Outgoing) -> concurrent.futures.Future:
        """Send a command after its commit (the `modbus` route); the command is acknowledged when done."""
        return self._submit(self._deliver(out))

    async def _deliver(self, out: Outgoing) -> tuple[str, str | None]:
        dev = self._devices.get(out.egm_id)
        result: tuple[str, str | None]
        if dev is None:
            result = ("refused", "not a polled Modbus terminal")
        elif out.name == "message":
            result = ("refused", "Modbus devices have no display")
        elif out.name == "meters.request":
            ok = await self.poll(out.egm_id)
            result = ("ok", None) if ok else ("refused", dev.last_error or "poll failed")
        elif out.name == "software.verify":
            # Forget the last hash: the next poll reads registers of the software hash and checks it again.
            dev.sha256 = None
            ok = await self.poll(out.egm_id)
            result = ("ok", None) if ok else ("refused", dev.last_error or "poll failed")
        else:
            try:
                address, values = self._command_write(out)
            except (MapError, ValueError, TypeError) as exc:
                result = ("refused", f"bad arguments: {exc}")
            else:
                try:
                    async with dev.lock:
                        await self._write(dev, address, values)
                    result = ("ok", None)
                except ModbusError as exc:
                    self._count(exc.kind)
                    result = ("refused", f"{exc.kind}: {exc.reason}")
        log.info("egm=%s modbus: command %s %s -> %s%s", out.egm_id, out.command_id, out.name, result[0],
                 f" ({result[1]})" if result[1] else "")
        try:
            await self._in_db(self._acknowledge, out, *result)
        except Exception:
            self._count("db")
            log.exception("egm=%s modbus: ack of command %s not recorded", out.egm_id, out.command_id)
        return result

    @staticmethod
    def _command_write(out: Outgoing) -> tuple[int, list[int]]:
        if out.name in ("enable", "disable"):
            return enable_write(out.name == "enable")
        if out.name == "time.set":
            when = dt.datetime.fromisoformat(str(out.args["time"]).replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError("time without a zone")
            return clock_write(int(when.timestamp()))
        if out.name == "handpay.reset":
            return handpay_reset_write()
        raise ValueError(f"unknown command {out.name}")

    def _acknowledge(self, out: Outgoing, result: str, reason: str | None) -> None:
        h = self.host
        with h.db.begin() as s:
            if not commands.acknowledge(s, out.egm_id, out.command_id, result, reason, h.now()):
                log.warning("egm=%s modbus: command %s was not waiting for an ack", out.egm_id, out.command_id)

    # ------------------------------------------------------------------ config push

    async def apply_config(self, egm_id: str, package: dict, deployment_id: int, deadline_s: float) -> Outcome:
        """Push a config package: 110-114, then 120; `installed` once 122 == 120, else `failed` at the deadline.

        A package a one-game device cannot hold is `rejected` with the reason. Safe to await
        from any event loop: the work runs on the poller's own loop.
        """
        if self._loop is None:
            return ("failed", "modbus host is not running")
        coro = self._apply_config(egm_id, package, deployment_id, deadline_s)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def apply_config_sync(self, egm_id: str, package: dict, deployment_id: int, deadline_s: float) -> Outcome:
        """apply_config for a plain thread (a scheduler job, a request's after-commit hook): blocks till done."""
        return self._call(self._apply_config(egm_id, package, deployment_id, deadline_s), deadline_s + 30)

    async def _apply_config(self, egm_id: str, package: dict, deployment_id: int, deadline_s: float) -> Outcome:
        try:
            writes = config_writes(package, deployment_id)
        except (ConfigNotMappable, MapError) as exc:
            log.info("egm=%s modbus: deployment %s rejected: %s", egm_id, deployment_id, exc.reason)
            return ("rejected", exc.reason)
        dev = self._devices.get(egm_id)
        if dev is None:
            return ("failed", "not a polled Modbus terminal")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        try:
            async with dev.lock:
                for address, values in writes:
                    await self._write(dev, address, values)
        except ModbusError as exc:
            self._count(exc.kind)
            log.warning("egm=%s modbus: deployment %s not written: %s", egm_id, deployment_id, exc)
            return ("failed", f"{exc.kind}: {exc.reason}")
        in_force, last_error = None, None
        while True:
            try:
                async with dev.lock:
                    _, in_force = await self._read_config_ids(dev)
                if in_force == deployment_id:
                    log.info("egm=%s modbus: deployment %s installed", egm_id, deployment_id)
                    return ("installed", None)
            except ModbusError as exc:
                self._count(exc.kind)
                last_error = f"{exc.kind}: {exc.reason}"
            remaining = deadline - loop.time()
            if remaining <= 0:
                reason = (f"config id in force is {in_force}, not {deployment_id}, after {deadline_s:g} s"
                          if in_force is not None else f"no answer before the deadline ({last_error})")
                log.warning("egm=%s modbus: deployment %s failed: %s", egm_id, deployment_id, reason)
                return ("failed", reason)
            await asyncio.sleep(min(0.1, remaining))
