"""The SAS host: one poller thread per serial line, ending in the same services as the MQTT gateway.

    SasHost (host.components["sas"], routes["sas"])
      └─ LinePoller per `connection.port` (host.components["sas_lines"][port]), one thread each:
           every EGM has a slot every `poll_ms` (default 200 ms, 200..5000):
             no job → general poll → exception code → event / alert / a job (money flows first)
             a job  → its next long poll takes the slot (LP 57, LP 58, LP 70, LP 71, LP 4D, LP 1B, ...)
           a job is a generator: it yields the long poll to send and receives the typed reply; between
           yields it calls the services (vouchers, handpays, meters, registry) in short transactions,
           so every poll that moves money (LP 58, LP 71 authorize) is sent only after the commit.

Line rules (spec/sas-host.md): NACK, busy, timeout or a bad frame → counted in
`floorhost_serial_errors{line,kind}`, logged, and the same poll is repeated in the EGM's next
slot; after the original and two repeats the job is given up (its generator sees `GaveUp`).
No valid reply for 5 s → `comms.offline` (cause `link`); the next valid reply → `comms.online`
and the link-up job (LP 1F, LP 21 ROM signature, LP 4C, LP 7F, LP 7B, enable/disable, meters).

Decisions where the contract is loose are listed in docs/sas.md.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

from sqlalchemy import select
from sqlalchemy.orm import Session

from cashier import handpays, vouchers
from cashier.models import Voucher
from protocols.sas import (
    Ack,
    Busy,
    ExceptionReport,
    FrameError,
    Nack,
    ShortFrame,
    describe,
    encode_poll,
    open_transport,
    parse_reply,
    reply_needs,
    secure_enhanced_number,
    split_validation_number,
)
from protocols.sas.long_polls import (
    CASHOUT_NONE,
    CASHOUT_RESTRICTED,
    CURRENT_RECORD,
    TICKET_IN_ESCROW,
    TRANSFER_CASHABLE,
    TRANSFER_REJECT,
    TRANSFER_RESTRICTED,
    VALIDATION_ACCEPTED,
    BasicMeters,
    DisableGame,
    EnableGame,
    ExtendedValidationStatus,
    GeneralPoll,
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
    UnsupportedDenomination,
    ValidationNumberStatus,
    ValidationRecord,
    denomination_cents,
)
from protocols.sas.transport import Transport, TransportError
from server.alerts import raise_alert
from server.db import bulk
from server.errors import DomainError
from server.host import Host
from terminals import commands, meters, play, registry
from terminals.commands import Outgoing
from terminals.models import Terminal
from terminals.sas_models import SasValidationState

log = logging.getLogger("floorhost.sas")

DEFAULT_POLL_MS = 200
MIN_POLL_MS = 200
MAX_POLL_MS = 5000
LINK_DOWN_S = 5.0
# How often an EGM that is down is still polled (recovery is noticed within this).
OFFLINE_PERIOD_S = 1.0
# The original poll and two repeats (spec: NACK handling).
MAX_ATTEMPTS = 3
# A linked EGM's last_seen_at is refreshed this often, so the heartbeat job leaves it online.
TOUCH_S = 10.0
CLOCK_EVERY = dt.timedelta(hours=23)
# LP 21 seed. SAS EGMs cannot report a sha256: the host derives one from the LP 1F identity and
# the ROM signature for this seed, and that is what the approved-software list holds (docs/sas.md).
ROM_SEED = 0x0000
SIGNATURE_WAIT_POLLS = 10
# How far ahead of the stored sequence a secure-enhanced number is looked for (missed records).
SEQUENCE_WINDOW = 64
# LP 7B status bits: printer as cash-out device (0) and ticket redemption (5), both on.
VALIDATION_STATUS_BITS = 0x0021
# LP 2F meters read with LP 1C: handpaid cancelled credits, bills in, current credits, ticket in/out.
SELECTED_METERS = (0x03, 0x0B, 0x0C, 0x0D, 0x0E)
BITS_PER_BYTE = 11  # start + 8 data + wakeup/parity + stop

# LP 71 transfer codes for a refused ticket (SAS 6.03), by the voucher service's reject reason.
REJECT_CODES = {
    "not_found": 0x82,  # validation number not in system
    "pending": 0x83,  # ticket marked pending in system
    "redeemed": 0x84,  # ticket already redeemed
    "expired": 0x85,  # ticket expired
    "over_limit": 0x88,  # amount exceeds the auto-redemption limit
}
REJECT_INVALID_NUMBER = 0x81
REJECT_OTHER = TRANSFER_REJECT

# Exceptions whose long poll starts a job, and the event-less exceptions the host acts on.
GAME_ENDED = 0x7F
GAME_STARTED = 0x7E
HANDPAY_RESET = 0x52
BUFFER_OVERFLOW = 0x70


class GaveUp(Exception):
    """Thrown into a job when its poll got no valid answer after the original and two repeats."""


class _Timeout(ShortFrame):
    reason = "timeout"


class _Garbage(FrameError):
    reason = "garbage"


class _Deferred:
    """Database work a job waits for (`result = yield _Deferred(fn)`): run by the line's database
    thread while the EGM's slots go on with general polls; the job resumes at the first slot after."""

    def __init__(self, fn: Callable[[Session], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None


Flow = Generator["HostPoll | _Deferred", Any, None]


@dataclass
class _Job:
    name: str
    gen: Flow
    poll: Any = None
    attempts: int = 0


@dataclass
class EgmState:
    """What the poller knows of one EGM on its line (memory only; the database has the rest)."""

    egm_id: str
    address: int
    period: float
    validation: str = "system"
    validation_id: int = 0
    next_due: float = 0.0
    linked: bool = False
    # monotonic time of the last valid reply (None: never since start).
    last_valid: float | None = None
    started: float = field(default_factory=time.monotonic)
    offline_reported: bool = False
    last_touch: float = 0.0
    denom_cents: int | None = None
    machine_info: MachineInfo | None = None
    signature_pending: bool = False
    signature: int | None = None
    asset: int | None = None
    clock_set_at: dt.datetime | None = None
    next_meters: float = 0.0
    meters_queued: bool = False
    # Bills-in meter (code 0B, credits) as last read: exception 4F's amount is read as its change.
    bills_in_credits: int | None = None
    # The ticket this host authorized and is waiting to hear the end of (LP 71 FF).
    held_ticket: str | None = None
    job: _Job | None = None
    gp_owed: bool = False
    urgent: deque = field(default_factory=deque)
    normal: deque = field(default_factory=deque)

    def drop_jobs(self) -> None:
        if self.job is not None:
            self.job.gen.close()
        self.job = None
        for q in (self.urgent, self.normal):
            while q:
                _name, gen = q.popleft()
                gen.close()
        self.meters_queued = False


def sas_software_sha256(info: MachineInfo, seed: int, signature: int) -> str:
    """The software identity of a SAS EGM, for the approved-software list: a sha256 over the
    LP 1F game identity and the LP 21 ROM signature for `seed`."""
    text = (f"sas-rom:{info.game_id}:{info.additional_id}:{info.paytable_id}:"
            f"seed={seed:04x}:signature={signature:04x}")
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _egm_spec(t: Terminal) -> dict:
    c = t.connection or {}
    poll_ms = min(MAX_POLL_MS, max(MIN_POLL_MS, int(c.get("poll_ms", DEFAULT_POLL_MS))))
    return {"egm_id": t.egm_id, "address": int(c["address"]), "period": poll_ms / 1000,
            "validation": c.get("validation", "system"), "validation_id": int(c.get("validation_id", 0)),
            "baud": int(c.get("baud", 19200))}


class LinePoller:
    """One serial line (one `connection.port`) and the EGMs on it, polled from one thread."""

    def __init__(self, manager: "SasHost", port: str) -> None:
        self.manager = manager
        self.host: Host = manager.host
        self.port = port
        self.egms: dict[int, EgmState] = {}
        self.errors: dict[str, int] = {}
        self.transport: Transport | None = None
        self.byte_time = BITS_PER_BYTE / 19200
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_open = 0.0
        self._dbq: queue.Queue[_Deferred | None] = queue.Queue()
        self._db_thread: threading.Thread | None = None

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._db_thread = threading.Thread(target=self._db_worker, name=f"sas-db-{self.port}", daemon=True)
        self._db_thread.start()
        self._thread = threading.Thread(target=self._run, name=f"sas-line-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._close_transport()
        # What the line learnt before it stopped is still written.
        self._dbq.put(None)
        if self._db_thread is not None and self._db_thread is not threading.current_thread():
            self._db_thread.join(timeout=10)

    def update(self, specs: list[dict]) -> None:
        """Takes the line's EGMs as registered now: new ones join, gone ones leave, others keep their state."""
        now = time.monotonic()
        with self._lock:
            wanted = {s["address"]: s for s in specs}
            for address in list(self.egms):
                if address not in wanted or wanted[address]["egm_id"] != self.egms[address].egm_id:
                    self.egms.pop(address).drop_jobs()
            n = max(1, len(wanted))
            for i, (address, s) in enumerate(sorted(wanted.items())):
                e = self.egms.get(address)
                if e is None:
                    # Staggered first slots: EGMs of one line do not all want the wire at once.
                    e = EgmState(egm_id=s["egm_id"], address=address, period=s["period"],
                                 next_due=now + i * s["period"] / n)
                    self.egms[address] = e
                e.period, e.validation, e.validation_id = s["period"], s["validation"], s["validation_id"]
                self.byte_time = BITS_PER_BYTE / s["baud"]
        self._wake.set()

    def health(self) -> dict:
        with self._lock:
            return {"egms": len(self.egms), "online": sum(1 for e in self.egms.values() if e.linked),
                    "errors": dict(self.errors)}

    def egm(self, egm_id: str) -> EgmState | None:
        with self._lock:
            return next((e for e in self.egms.values() if e.egm_id == egm_id), None)

    def queue(self, egm_id: str, name: str, flow: Callable[[EgmState], Flow], *, urgent: bool = False) -> bool:
        with self._lock:
            e = self.egm(egm_id)
            if e is None:
                return False
            (e.urgent if urgent else e.normal).append((name, flow(e)))
            return True

    # ---- the loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        log.info("line=%s poller started", self.port)
        while not self._stop.is_set():
            try:
                self._housekeeping()
                with self._lock:
                    e = min(self.egms.values(), key=lambda x: x.next_due, default=None)
                if e is None:
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                wait = e.next_due - time.monotonic()
                if wait > 0:
                    self._wake.wait(min(wait, 0.25))
                    self._wake.clear()
                    continue
                with self._lock:
                    if self.egms.get(e.address) is not e:
                        continue
                self._slot(e)
            except Exception:
                # Nothing on the line may take the poller down.
                log.exception("line=%s poller step failed", self.port)
                self._count("internal")
                time.sleep(0.05)
        log.info("line=%s poller stopped", self.port)

    def _count(self, kind: str, e: EgmState | None = None, detail: str = "") -> None:
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
        self.host.metrics.serial_errors.labels(line=self.port, kind=kind).inc()
        if e is None or e.linked:
            log.warning("line=%s egm=%s addr=%s serial error %s %s", self.port, e.egm_id if e else "-",
                        e.address if e else "-", kind, detail)

    def _open_transport(self) -> bool:
        if self.transport is not None:
            return True
        if time.monotonic() < self._next_open:
            return False
        try:
            self.transport = self.manager.transport_factory(self.port)
            log.info("line=%s opened", self.port)
            return True
        except Exception as exc:
            self._next_open = time.monotonic() + 2.0
            self._count("open", detail=str(exc))
            return False

    def _close_transport(self) -> None:
        t, self.transport = self.transport, None
        if t is not None:
            try:
                t.close()
            except Exception:
                pass

    def _slot(self, e: EgmState) -> None:
        # The next slot is counted from this one's start: polls to one EGM are never closer than its period.
        e.next_due = time.monotonic() + (e.period if e.linked or not e.offline_reported else OFFLINE_PERIOD_S)
        if not self._open_transport():
            return
        job = self._current_job(e)
        while job is not None and isinstance(job.poll, _Deferred) and job.poll.done.is_set():
            done = job.poll
            self._step(e, job, lambda: job.gen.send(done.result))
            job = e.job
        if job is None or isinstance(job.poll, (GeneralPoll, _Deferred)):
            # No long poll ready (or the job asks for one): this slot is a general poll.
            reply = self._general_poll(e)
            if job is not None and isinstance(job.poll, GeneralPoll):
                self._advance(e, job, reply)
            return
        frame = encode_poll(e.address, job.poll)
        try:
            reply = self._exchange(frame)
        except FrameError as exc:
            self._count(exc.reason, e, f"LP {frame[1]:02X}: {exc}")
            reply = None
        except TransportError as exc:
            self._count("transport", e, str(exc))
            self._close_transport()
            return
        if isinstance(reply, (Nack, Busy)):
            self._count("nack" if isinstance(reply, Nack) else "busy", e, f"LP {frame[1]:02X}")
            self._alive(e)
        if reply is None or isinstance(reply, (Nack, Busy)):
            job.attempts += 1
            if job.attempts >= MAX_ATTEMPTS:
                log.error("line=%s egm=%s job %s: LP %02X gave up after %d attempts", self.port, e.egm_id,
                          job.name, frame[1], job.attempts)
                self._step(e, job, lambda: job.gen.throw(GaveUp(f"LP {frame[1]:02X}")))
            return
        self._alive(e)
        self._advance(e, job, reply)

    def _current_job(self, e: EgmState) -> _Job | None:
        while e.job is None:
            if e.gp_owed or not (e.urgent or e.normal):
                # Between two jobs a general poll: exceptions are never starved by a queue of jobs.
                e.gp_owed = False
                return None
            name, gen = (e.urgent or e.normal).popleft()
            job = _Job(name, gen)
            e.job = job
            self._step(e, job, lambda: next(gen))
        return e.job

    def _advance(self, e: EgmState, job: _Job, reply: Any) -> None:
        job.attempts = 0
        self._step(e, job, lambda: job.gen.send(reply))

    def _step(self, e: EgmState, job: _Job, resume: Callable[[], Any]) -> None:
        try:
            job.poll = resume()
            if isinstance(job.poll, _Deferred):
                self._dbq.put(job.poll)
            return
        except StopIteration:
            pass
        except GaveUp:
            pass
        except Exception:
            log.exception("line=%s egm=%s job %s failed", self.port, e.egm_id, job.name)
            self._count("job_failed", e)
        if e.job is job:
            e.job = None
            e.gp_owed = True
            if job.name == "meters":
                e.meters_queued = False

    # ---- bytes ------------------------------------------------------------------------------
    def _exchange(self, frame: bytes, *, signature_pending: bool = False, general: bool = False) -> Any:
        """Sends one poll and reads its reply by the lengths of the spec; typed reply or FrameError."""
        t = self.transport
        assert t is not None
        t.reset_input()
        t.send(frame, wakeup=True)
        received = b""
        reply_timeout = self.manager.reply_timeout
        while (needs := reply_needs(frame, received, signature_pending=signature_pending)) > 0:
            wait = reply_timeout if not received else self.manager.inter_byte_timeout + needs * self.byte_time
            chunk = t.read(needs, wait)
            if not chunk:
                break
            received += chunk
        if not received:
            raise _Timeout("no reply", frame)
        if general and len(received) == 1:
            # A one-byte answer cannot carry a CRC: bytes right behind it mean it was noise.
            extra = t.read(64, 0.0)
            if extra:
                raise _Garbage(f"{(received + extra).hex(' ')}", received + extra)
        return parse_reply(frame, received)

    def _alive(self, e: EgmState) -> None:
        e.last_valid = time.monotonic()
        if not e.linked:
            e.linked = True
            e.offline_reported = False
            e.last_touch = e.last_valid
            e.next_meters = e.last_valid + self.manager.meter_interval_s
            now = self.host.now()

            def online(s: Session) -> None:
                t = registry.get(s, e.egm_id)
                registry.went_online(s, self.host.clock, t, now, "sas")

            self._later(online)
            log.info("line=%s egm=%s addr=%d link up", self.port, e.egm_id, e.address)
            e.drop_jobs()
            e.normal.append(("link_up", self._link_up(e)))

    def _general_poll(self, e: EgmState) -> Any:
        frame = bytes([0x80 | e.address])
        try:
            reply = self._exchange(frame, signature_pending=e.signature_pending, general=True)
        except FrameError as exc:
            self._count(exc.reason, e, f"general poll: {exc}")
            return None
        except TransportError as exc:
            self._count("transport", e, str(exc))
            self._close_transport()
            return None
        self._alive(e)
        if isinstance(reply, RomSignature):
            e.signature, e.signature_pending = reply.signature, False
        elif isinstance(reply, ExceptionReport):
            self._on_exception(e, reply.code)
        return reply

    # ---- housekeeping -----------------------------------------------------------------------
    def _housekeeping(self) -> None:
        mono = time.monotonic()
        with self._lock:
            egms = list(self.egms.values())
        touch = []
        for e in egms:
            silent_since = e.last_valid if e.last_valid is not None else e.started
            if mono - silent_since >= LINK_DOWN_S and (e.linked or not e.offline_reported):
                self._link_down(e)
            if e.linked and mono - e.last_touch >= TOUCH_S:
                e.last_touch = mono
                touch.append(e.egm_id)
            if e.linked and e.job is None and not e.meters_queued and mono >= e.next_meters:
                self._queue_meters(e)
            if e.linked and e.clock_set_at is not None and self.host.now() - e.clock_set_at >= CLOCK_EVERY:
                e.clock_set_at = self.host.now()
                e.normal.append(("clock", self._clock(e)))
        if touch:
            now = self.host.now()

            def seen(s: Session) -> None:
                for t in s.execute(select(Terminal).where(Terminal.egm_id.in_(touch))).scalars():
                    registry.went_online(s, self.host.clock, t, now, "sas")

            self._later(seen)
        if self.transport is None and egms:
            self._open_transport()

    def _link_down(self, e: EgmState) -> None:
        was = e.linked
        e.linked, e.offline_reported = False, True
        e.drop_jobs()
        e.signature_pending = False
        e.held_ticket = None
        now = self.host.now()

        def offline(s: Session) -> None:
            t = registry.get(s, e.egm_id)
            registry.went_offline(s, self.host.clock, t, now, "link", "sas")

        self._later(offline)
        log.warning("line=%s egm=%s addr=%d link down (no valid reply for %.0f s)%s", self.port, e.egm_id,
                    e.address, LINK_DOWN_S, "" if was else " since start")

    def _queue_meters(self, e: EgmState, command_id: str | None = None) -> None:
        e.meters_queued = True
        e.next_meters = time.monotonic() + self.manager.meter_interval_s
        e.normal.append(("meters", self._meters(e, command_id)))

    # ---- the database -----------------------------------------------------------------------
    def _later(self, fn: Callable[[Session], Any]) -> _Deferred:
        """Queues `fn` for the line's database thread (in order); the line's timing never waits on a commit."""
        d = _Deferred(fn)
        self._dbq.put(d)
        return d

    def _db_worker(self) -> None:
        while True:
            d = self._dbq.get()
            if d is None:
                return
            d.result = self._db(d.fn)
            d.done.set()

    def _db(self, fn: Callable[[Session], Any]) -> Any:
        """Runs `fn` in one short write transaction; a failure is logged and counted, never raised."""
        try:
            with self.host.db.begin() as s:
                return fn(s)
        except Exception:
            log.exception("line=%s database work failed", self.port)
            self._count("db")
            return None

    def _event(self, e: EgmState, code: str, detail: dict | None = None, raw_code: str | None = None) -> None:
        now = self.host.now()

        def add(s: Session) -> None:
            t = registry.get(s, e.egm_id)
            registry.add_event(s, self.host.clock, t, code, now, detail=detail, raw_code=raw_code, source="sas")

        self._later(add)

    # ---- exceptions -------------------------------------------------------------------------
    def _on_exception(self, e: EgmState, code: int) -> None:
        if code == 0x00 or code == GAME_STARTED:
            return
        if code == GAME_ENDED:
            # SAS gives no wager or win with 7F: play is counted from the meters, read soon after.
            if not e.meters_queued:
                self._queue_meters(e)
            return
        info = describe(code)
        log.info("line=%s egm=%s exception %02X %s", self.port, e.egm_id, code, info.name)
        now = self.host.now()
        if info.event is not None or not info.known or info.alert:
            def record(s: Session) -> None:
                t = registry.get(s, e.egm_id)
                if not info.known:
                    registry.add_event(s, self.host.clock, t, "unknown", now, raw_code=f"sas:{code:02X}",
                                       detail={"flagged": True}, source="sas")
                    return
                if info.event is not None:
                    detail: dict = {"sas_exception": f"{code:02X}"}
                    if info.reason:
                        detail["reason"] = info.reason
                    if info.event == "bill.accepted":
                        detail["amount_cents"] = info.amount_cents
                        if info.amount_cents is None:
                            return  # 4F: recorded by _bill_other with the amount from the bill meter
                    registry.add_event(s, self.host.clock, t, info.event, now, detail=detail, source="sas")
                if info.alert:
                    kind = "sequence_gap" if code == BUFFER_OVERFLOW else "memory_error"
                    severity = "critical" if info.event == "ram.clear" else "warning"
                    raise_alert(s, kind, f"{e.egm_id}: SAS exception {code:02X} {info.name}", now,
                                severity=severity, egm_id=e.egm_id, detail={"sas_exception": f"{code:02X}"})
                if code == HANDPAY_RESET:
                    # Keyed off at the cabinet: paid handpays waiting for it are stamped; pending ones stay.
                    handpays.mark_reset(s, e.egm_id, now)

            self._later(record)
        if info.event == "bill.accepted" and info.amount_cents is not None and e.bills_in_credits is not None \
                and e.denom_cents:
            e.bills_in_credits += info.amount_cents // e.denom_cents  # keeps the 4F baseline current
        flows = {
            0x4F: ("bill_other", self._bill_other, True),
            0x57: ("cashout", self._cashout, True),
            0x67: ("ticket_in", self._ticket_in, True),
            0x68: ("ticket_done", self._ticket_done, True),
            0x3D: ("ticket_record", self._ticket_record, True),
            0x3E: ("handpay_record", self._handpay_record, True),
            0x51: ("handpay", self._handpay, True),
            0x3C: ("options", self._options_changed, False),
            0x3F: ("validation_id", self._validation_id_job, True),
        }
        if code in flows:
            name, flow, urgent = flows[code]
            (e.urgent if urgent else e.normal).append((name, flow(e)))

    # ---- jobs (generators: yield a poll, receive its reply) --------------------------------
    def _read_software(self, e: EgmState) -> Flow:
        """LP 1F (game identity, paytable) and LP 21 (ROM signature): what the software check compares."""
        info = yield ReadMachineInfo()
        self._take_machine_info(e, info)
        ack = yield ReadRomSignature(seed=ROM_SEED)
        if isinstance(ack, RomSignature):
            e.signature = ack.signature
        elif isinstance(ack, Ack):
            e.signature, e.signature_pending = None, True
            for _ in range(SIGNATURE_WAIT_POLLS):
                if e.signature is not None:
                    break
                yield GeneralPoll()

    def _link_up(self, e: EgmState) -> Flow:
        yield from self._read_software(e)
        if e.validation == "secure_enhanced":
            yield from self._validation_id_job(e)
        yield from self._clock(e)
        status = yield SetExtendedValidationStatus(
            control_mask=VALIDATION_STATUS_BITS, status_bits=VALIDATION_STATUS_BITS,
            cashable_expiry_days=min(9999, self.host.settings.voucher_expiry_days),
            restricted_expiry_days=min(9999, self.host.settings.voucher_expiry_days))
        asset = status.asset_number if isinstance(status, ExtendedValidationStatus) else None
        e.asset = asset
        enabled = yield _Deferred(lambda s: self._record_cabinet(s, e, asset))
        if enabled is not None:
            yield EnableGame() if enabled else DisableGame()
        yield from self._meters(e, None)

    def _take_machine_info(self, e: EgmState, info: Any) -> None:
        if not isinstance(info, MachineInfo):
            return
        e.machine_info = info
        try:
            e.denom_cents = denomination_cents(info.denomination_code)
        except UnsupportedDenomination as exc:
            log.error("line=%s egm=%s %s: meters are not converted", self.port, e.egm_id, exc)
            e.denom_cents = None

    def _record_cabinet(self, s: Session, e: EgmState, asset: int | None) -> bool:
        """Stores the machine info and checks the software (rules.md 23); returns whether play is enabled."""
        now = self.host.now()
        t = registry.get(s, e.egm_id)
        info = e.machine_info
        if info is not None:
            sha = sas_software_sha256(info, ROM_SEED, e.signature) if e.signature is not None else None
            software_info = {"name": f"{info.game_id}{info.additional_id}", "version": info.paytable_id,
                             "sha256": sha, "rom_signature": None if e.signature is None else f"{e.signature:04X}",
                             "rom_seed": f"{ROM_SEED:04X}"}
            reported = {"sas_machine_info": _info_dict(info)}
            registry.record_cabinet(s, self.host.clock, t, now, manufacturer="SAS", model=info.game_id,
                                    serial=str(asset if asset is not None else e.address),
                                    software_info=software_info,
                                    denoms_cents=[e.denom_cents] if e.denom_cents else None,
                                    reported_config=reported, source="sas")
        return bool(t.enabled)

    def _clock(self, e: EgmState) -> Flow:
        local = self.host.now().astimezone(self.host.settings.zone).replace(tzinfo=None, microsecond=0)
        reply = yield SetDateTime(when=local)
        if isinstance(reply, Ack):
            now = self.host.now()
            e.clock_set_at = now

            def stamp(s: Session) -> None:
                registry.get(s, e.egm_id).clock_set_at = now

            self._later(stamp)

    def _validation_id_job(self, e: EgmState) -> Flow:
        machine_id = e.validation_id
        now = self.host.now()

        def last_sequence(s: Session) -> int:
            row = s.get(SasValidationState, e.egm_id)
            if row is None or row.machine_id != machine_id:
                if row is None:
                    row = SasValidationState(egm_id=e.egm_id, machine_id=machine_id, sequence=0, updated_at=now)
                    s.add(row)
                row.machine_id, row.sequence, row.updated_at = machine_id, 0, now
            return row.sequence

        sequence = yield _Deferred(last_sequence)
        if sequence is None:
            return
        reply = yield SetValidationId(machine_id=machine_id, sequence=sequence)
        log.info("line=%s egm=%s LP 4C machine id %06X sequence %d: %s", self.port, e.egm_id, machine_id,
                 sequence, reply)

    def _bill_other(self, e: EgmState) -> Flow:
        """Exception 4F, a bill of another value: its amount is the change of the bills-in meter (0B)."""
        reply = yield ReadSelectedMeters(codes=(0x0B,))
        amount = None
        if isinstance(reply, SelectedMeters) and 0x0B in reply.values and e.denom_cents:
            credits = reply.values[0x0B]
            if e.bills_in_credits is not None and credits > e.bills_in_credits:
                amount = (credits - e.bills_in_credits) * e.denom_cents
            e.bills_in_credits = credits
        now = self.host.now()
        detail = {"sas_exception": "4F", "amount_cents": amount}
        if amount is None:
            detail["flagged"] = True  # no earlier reading to compare with: the amount is unknown

        def record(s: Session) -> None:
            registry.add_event(s, self.host.clock, registry.get(s, e.egm_id), "bill.accepted", now, detail=detail,
                               source="sas")

        self._later(record)

    def _meters(self, e: EgmState, command_id: str | None) -> Flow:
        try:
            if e.denom_cents is None:
                self._take_machine_info(e, (yield ReadMachineInfo()))
            if e.denom_cents is None:
                return
            basic = yield ReadBasicMeters()
            if not isinstance(basic, BasicMeters):
                return
            try:
                selected = yield ReadSelectedMeters(codes=SELECTED_METERS)
            except GaveUp:
                selected = None
            values, moduli = _meter_values(basic, selected if isinstance(selected, SelectedMeters) else None,
                                           e.denom_cents)
            if isinstance(selected, SelectedMeters) and 0x0B in selected.values:
                e.bills_in_credits = selected.values[0x0B]
            now = self.host.now()
            info = e.machine_info

            def record(s: Session) -> None:
                t = registry.get(s, e.egm_id)
                with bulk(s):
                    result = meters.record_snapshot(s, self.host.clock, t, values, now, source="sas", moduli=moduli)
                    if info is not None:
                        _count_play(s, self.host, t, now, result.deltas, info, e.denom_cents or 1)
                if command_id:
                    commands.acknowledge(s, e.egm_id, command_id, "ok", None, now)

            self._later(record)
        finally:
            e.meters_queued = False

    def _cashout(self, e: EgmState) -> Flow:
        pending = yield ReadPendingCashout()
        if not isinstance(pending, PendingCashout) or pending.cashout_type == CASHOUT_NONE:
            return
        if pending.amount_cents <= 0:
            return
        credit_type = "promo" if pending.cashout_type == CASHOUT_RESTRICTED else "cashable"
        now = self.host.now()
        policy = vouchers.policy_for(self.host)

        def issue(s: Session) -> str | None:
            try:
                return vouchers.issue(s, policy, amount_cents=pending.amount_cents, credit_type=credit_type,
                                      issued_by=e.egm_id, source="terminal", now=now).validation_number
            except DomainError as exc:
                log.warning("line=%s egm=%s cash-out of %d cents refused: %s", self.port, e.egm_id,
                            pending.amount_cents, exc.code)
                return None

        number = yield _Deferred(issue)
        if number is None:
            # System id 00 denies the cash-out: the credits stay on the EGM.
            yield SendValidationNumber(system_id=0, validation="0" * 16)
            return
        # Committed: only now may the EGM print it.
        system_id, digits = split_validation_number(number)
        try:
            status = yield SendValidationNumber(system_id=system_id, validation=digits)
        except GaveUp:
            self._later(lambda s: raise_alert(
                s, "voucher_mismatch", f"{e.egm_id}: no answer to LP 58 for voucher {number}; check the ticket",
                self.host.now(), egm_id=e.egm_id, detail={"validation_number": number}))
            raise
        if isinstance(status, ValidationNumberStatus) and status.status != VALIDATION_ACCEPTED:
            log.warning("line=%s egm=%s LP 58 refused (%02X): voucher %s voided", self.port, e.egm_id,
                        status.status, number)
            self._later(lambda s: vouchers.print_failed(s, policy, e.egm_id, number, self.host.now()))
            return
        log.info("line=%s egm=%s voucher %s for %d cents sent (LP 58)", self.port, e.egm_id, number,
                 pending.amount_cents)

    def _ticket_record(self, e: EgmState) -> Flow:
        record = yield ReadValidationRecord(function=CURRENT_RECORD)
        if not isinstance(record, ValidationRecord) or record.empty:
            return
        if record.validation_type not in (0x00, 0x01, 0x02, 0x03) or record.amount_cents <= 0:
            log.info("line=%s egm=%s LP 4D record type %02X not a ticket", self.port, e.egm_id,
                     record.validation_type)
            return
        self._later(lambda s: self._store_ticket(s, e, record))

    def _store_ticket(self, s: Session, e: EgmState, record: ValidationRecord) -> None:
        now = self.host.now()
        policy = vouchers.policy_for(self.host)
        number = record.validation_number
        existing = s.execute(select(Voucher).where(Voucher.validation_number == number)).scalar_one_or_none()
        if existing is not None:
            # A system-validation ticket the host numbered (or a record read twice): printed.
            vouchers.mark_printed(s, policy, e.egm_id, number, now)
            return
        flag = None
        if e.validation == "secure_enhanced":
            state = s.get(SasValidationState, e.egm_id)
            last = state.sequence if state is not None and state.machine_id == e.validation_id else 0
            step = next((k for k in range(1, SEQUENCE_WINDOW + 1)
                         if secure_enhanced_number(e.validation_id, (last + k) & 0xFFFFFF) == number), None)
            if step is None:
                flag = (f"secure-enhanced number does not match machine id {e.validation_id:06X} "
                        f"after sequence {last}")
            else:
                if step > 1:
                    flag = f"secure-enhanced sequence jumped from {last} to {last + step}"
                if state is None:
                    state = SasValidationState(egm_id=e.egm_id, machine_id=e.validation_id, sequence=0,
                                               updated_at=now)
                    s.add(state)
                state.sequence, state.updated_at = (last + step) & 0xFFFFFF, now
        else:
            flag = "ticket printed with a number this host did not issue"
        credit_type = "promo" if record.validation_type in (0x01, 0x03) else "cashable"
        try:
            v = vouchers.issue(s, policy, amount_cents=record.amount_cents, credit_type=credit_type,
                               issued_by=e.egm_id, source="terminal", now=now, validation_number=number)
        except DomainError as exc:
            # The ticket is already printed: a person must look at it.
            raise_alert(s, "voucher_mismatch", f"{e.egm_id}: printed ticket {number} of {record.amount_cents} "
                        f"cents could not be stored: {exc.code}", now, severity="critical", egm_id=e.egm_id,
                        detail={"validation_number": number, "amount_cents": record.amount_cents})
            log.error("line=%s egm=%s ticket %s not stored: %s", self.port, e.egm_id, number, exc.code)
            return
        v.printed = True
        if flag:
            v.flagged = flag
            raise_alert(s, "voucher_mismatch", f"{e.egm_id}: voucher {number}: {flag}", now, severity="critical",
                        egm_id=e.egm_id, detail={"validation_number": number, "amount_cents": record.amount_cents})
            log.error("line=%s egm=%s voucher %s flagged: %s", self.port, e.egm_id, number, flag)
        else:
            log.info("line=%s egm=%s voucher %s for %d cents stored (LP 4D)", self.port, e.egm_id, number,
                     record.amount_cents)

    def _handpay_record(self, e: EgmState) -> Flow:
        record = yield ReadValidationRecord(function=CURRENT_RECORD)
        if isinstance(record, ValidationRecord) and not record.empty:
            log.info("line=%s egm=%s handpay validated: %s %d cents", self.port, e.egm_id,
                     record.validation_number, record.amount_cents)

    def _ticket_in(self, e: EgmState) -> Flow:
        data = yield ReadTicketValidationData()
        if not isinstance(data, TicketValidationData) or data.ticket_status != TICKET_IN_ESCROW:
            return
        number = data.validation
        if data.parsing_code != 0 or len(number) != 18:
            log.warning("line=%s egm=%s ticket with parsing code %02X refused", self.port, e.egm_id,
                        data.parsing_code)
            yield RedeemTicket(transfer_code=REJECT_INVALID_NUMBER, amount_cents=0, validation="0" * 18)
            return
        now = self.host.now()
        policy = vouchers.policy_for(self.host)

        def hold(s: Session) -> tuple[int, str, dt.datetime] | str:
            # A refusal is returned, not raised: what the service wrote on the way (an expiry) commits.
            try:
                v = vouchers.redeem_at_terminal(s, policy, e.egm_id, number, now)
            except DomainError as exc:
                return str(getattr(exc, "reason", None) or exc.code)
            return v.amount_cents, v.credit_type, v.expires_at

        held = yield _Deferred(hold)
        if not isinstance(held, tuple):
            code = REJECT_CODES.get(held or "", REJECT_OTHER)
            log.info("line=%s egm=%s ticket %s refused: %s (LP 71 %02X)", self.port, e.egm_id, number,
                     held or "database unavailable", code)
            yield RedeemTicket(transfer_code=code, amount_cents=0, validation=number)
            return
        amount, credit_type, expires_at = held
        # The hold is committed: now the EGM may credit.
        e.held_ticket = number
        if credit_type == "promo":
            expiry = expires_at.astimezone(self.host.settings.zone).date()
            yield RedeemTicket(transfer_code=TRANSFER_RESTRICTED, amount_cents=amount, validation=number,
                               restricted_expiry=expiry)
        else:
            yield RedeemTicket(transfer_code=TRANSFER_CASHABLE, amount_cents=amount, validation=number)

    def _ticket_done(self, e: EgmState) -> Flow:
        status = yield QueryRedeemStatus()
        if not isinstance(status, RedeemStatus):
            return
        number = status.validation or e.held_ticket
        now = self.host.now()
        policy = vouchers.policy_for(self.host)
        if status.redeemed:
            self._later(lambda s: vouchers.commit_redemption(s, policy, e.egm_id, number, status.amount_cents, now))
            log.info("line=%s egm=%s ticket %s redeemed for %d cents", self.port, e.egm_id, number,
                     status.amount_cents)
        elif status.rejected and number and number == e.held_ticket:
            self._later(lambda s: vouchers.abort_redemption(s, policy, e.egm_id, number,
                                                         f"sas_status_{status.machine_status:02x}", now))
        if number == e.held_ticket:
            e.held_ticket = None

    def _handpay(self, e: EgmState) -> Flow:
        info = yield ReadHandpayInfo()
        if not isinstance(info, HandpayInfo) or not info.pending:
            return
        if e.denom_cents is None and not info.progressive:
            self._take_machine_info(e, (yield ReadMachineInfo()))
        denom = e.denom_cents or 1
        amount = info.amount_cents(denom)
        kind = "cancelled_credit" if info.cancelled_credits else "jackpot"
        now = self.host.now()

        def create(s: Session) -> None:
            try:
                handpays.create(s, self.host.clock, self.host.settings, egm_id=e.egm_id, amount_cents=amount,
                                kind=kind, now=now, source="sas")
            except DomainError as exc:
                log.error("line=%s egm=%s handpay of %d cents refused: %s", self.port, e.egm_id, amount, exc.code)

        self._later(create)

    def _options_changed(self, e: EgmState) -> Flow:
        before = e.machine_info
        info = yield ReadMachineInfo()
        if not isinstance(info, MachineInfo):
            return
        self._take_machine_info(e, info)
        if before is not None and info != before:
            now = self.host.now()

            def changed(s: Session) -> None:
                t = registry.get(s, e.egm_id)
                t.reported_config = {**(t.reported_config or {}), "sas_machine_info": _info_dict(info)}
                registry.add_event(s, self.host.clock, t, "unknown", now, raw_code="sas:3C options_changed",
                                   detail={"flagged": True, "before": _info_dict(before), "after": _info_dict(info)},
                                   source="sas")

            self._later(changed)

    # ---- commands ---------------------------------------------------------------------------
    def command(self, e: EgmState, out: Outgoing) -> Flow:
        now = self.host.now()
        if out.name == "meters.request":
            yield from self._meters(e, out.command_id)
            return
        if out.name in ("enable", "disable"):
            reply = yield EnableGame() if out.name == "enable" else DisableGame()
            ok = isinstance(reply, Ack)
        elif out.name == "software.verify":
            # On demand (rules.md 23): read LP 1F and LP 21 again and check them against the approved list.
            e.signature = None
            yield from self._read_software(e)
            ok = e.signature is not None
            if ok:
                enabled = yield _Deferred(lambda s: self._record_cabinet(s, e, e.asset))
                if enabled is False:
                    yield DisableGame()
        elif out.name == "time.set":
            reply = yield SetDateTime(when=self.host.now().astimezone(self.host.settings.zone)
                                      .replace(tzinfo=None, microsecond=0))
            ok = isinstance(reply, Ack)
            if ok:
                e.clock_set_at = self.host.now()
        else:
            return
        refusal = "no ROM signature from the EGM" if out.name == "software.verify" else "no ACK from the EGM"
        self._later(lambda s: commands.acknowledge(s, e.egm_id, out.command_id, "ok" if ok else "refused",
                                                None if ok else refusal, now))


def _info_dict(info: MachineInfo) -> dict:
    return {"game_id": info.game_id, "additional_id": info.additional_id,
            "denomination_code": info.denomination_code, "max_bet": info.max_bet,
            "progressive_group": info.progressive_group, "game_options": info.game_options,
            "paytable_id": info.paytable_id, "base_percent": info.base_percent}


def _meter_values(basic: BasicMeters, selected: SelectedMeters | None,
                  denom: int) -> tuple[dict[str, int], dict[str, int]]:
    """LP 1C (+ LP 2F) in the meter names and cents of terminal-mqtt.md, with each meter's rollover."""
    credits4 = 10 ** 8 * denom
    values = {
        "coin_in_cents": basic.coin_in * denom,
        "coin_out_cents": basic.coin_out * denom,
        "jackpot_cents": basic.jackpot * denom,
        "games_played": basic.games_played,
        "games_won": basic.games_won,
        "door_open_count": basic.slot_door_opened,
    }
    moduli = {"coin_in_cents": credits4, "coin_out_cents": credits4, "jackpot_cents": credits4,
              "games_played": 10 ** 8, "games_won": 10 ** 8, "door_open_count": 10 ** 8}
    if selected is not None:
        got = selected.values
        for code, name, unit_cents in ((0x03, "handpay_cancelled_credits_cents", False),
                                       (0x0B, "bills_in_cents", False), (0x0C, "current_credits_cents", False),
                                       (0x0D, "voucher_in_cents", True), (0x0E, "voucher_out_cents", True)):
            if code in got:
                values[name] = got[code] if unit_cents else got[code] * denom
                moduli[name] = 10 ** 10 if unit_cents else credits4
    return values, moduli


def _count_play(s: Session, host: Host, t: Terminal, now: dt.datetime, deltas: dict[str, int], info: MachineInfo,
                denom: int) -> None:
    """Play from meter deltas (SAS 7F carries no wager): n games share the coin-in and win deltas."""
    n = deltas.get("games_played", 0)
    if n <= 0:
        return
    wager = deltas.get("coin_in_cents", 0)
    win = deltas.get("coin_out_cents", 0) + deltas.get("jackpot_cents", 0)
    for i in range(n):
        play.record_game(s, host.clock, t, now, theme=info.game_id, paytable_id=info.paytable_id, denom_cents=denom,
                         wager_cents=wager // n + (1 if i < wager % n else 0),
                         win_cents=win // n + (1 if i < win % n else 0), credits_after_cents=None)


class SasHost:
    """All SAS lines of this host: `reload()` after registrations, `deliver_command()` for commands."""

    def __init__(self, host: Host, *, transport_factory: Callable[[str], Transport] = open_transport,
                 meter_interval_s: float = 60.0, reply_timeout: float = 0.08, inter_byte_timeout: float = 0.02):
        self.host = host
        self.transport_factory = transport_factory
        self.meter_interval_s = meter_interval_s
        self.reply_timeout = reply_timeout
        self.inter_byte_timeout = inter_byte_timeout
        self.lines: dict[str, LinePoller] = {}
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        self._running = True
        self.host.components["sas"] = self
        self.host.components.setdefault("routes", {})["sas"] = self
        self.host.components["sas_lines"] = self.lines
        self.reload()

    def stop(self) -> None:
        self._running = False
        with self._lock:
            lines = list(self.lines.values())
            self.lines.clear()
        for poller in lines:
            poller.stop()

    def reload(self) -> None:
        """Reads the SAS terminals of the registry and (re)arranges the lines and their EGMs."""
        with self.host.db.read() as s:
            terminals = [t for t in registry.list_all(s) if t.protocol == "sas"]
            by_port: dict[str, list[dict]] = {}
            for t in terminals:
                try:
                    by_port.setdefault(t.connection["port"], []).append(_egm_spec(t))
                except (KeyError, TypeError, ValueError):
                    log.error("egm=%s has no usable SAS connection: %s", t.egm_id, t.connection)
        with self._lock:
            if not self._running:
                return
            for port in list(self.lines):
                if port not in by_port:
                    self.lines.pop(port).stop()
            for port, specs in by_port.items():
                poller = self.lines.get(port)
                if poller is None:
                    poller = LinePoller(self, port)
                    self.lines[port] = poller
                    poller.update(specs)
                    poller.start()
                else:
                    poller.update(specs)
        log.info("SAS: %d line(s), %d EGM(s)", len(by_port), sum(len(v) for v in by_port.values()))

    def _poller_of(self, egm_id: str) -> LinePoller | None:
        with self._lock:
            return next((p for p in self.lines.values() if p.egm(egm_id) is not None), None)

    def deliver_command(self, out: Outgoing) -> None:
        """A command committed by commands.send: queued for the EGM's next slot, or refused at once."""
        poller = self._poller_of(out.egm_id)
        if poller is None:
            self.reload()
            poller = self._poller_of(out.egm_id)
        reason = None
        if out.name == "handpay.reset":
            reason = "SAS has no host handpay reset: key the handpay off at the cabinet"
        elif out.name == "message":
            reason = "SAS EGMs do not show host messages"
        elif out.name not in ("enable", "disable", "time.set", "meters.request", "software.verify"):
            reason = f"{out.name} is not supported on SAS"
        elif poller is None:
            reason = "no SAS line serves this terminal"
        if reason is None:
            assert poller is not None
            if poller.queue(out.egm_id, f"cmd:{out.name}", lambda e: poller.command(e, out)):
                return
            reason = "no SAS line serves this terminal"
        now = self.host.now()
        with self.host.db.begin() as s:
            commands.acknowledge(s, out.egm_id, out.command_id, "refused", reason, now)
        log.info("egm=%s command %s %s refused: %s", out.egm_id, out.command_id, out.name, reason)
