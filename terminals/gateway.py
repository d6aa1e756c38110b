"""The MQTT gateway: the whole life of a terminal message, from the broker to the database and back.

    paho thread ──enqueue──▶ worker (one per shard of terminals, so each terminal's
    messages stay in order): decode envelope ─▶ dedup (egm_id, seq) ─▶ handlers
    (terminals.dispatch) in ONE transaction for the batch ─▶ commit ─▶ publish
    replies ─▶ PUBACK to the broker.

Requests a terminal waits on (ticket-in, cash-out, handpay, card-in) go first: a
bulk batch being applied stops at the next message when one arrives, commits what
it has, and the request — with its terminal's earlier messages, so that terminal's
order holds — is applied in a small transaction of its own (see `_Lane`).

The host subscribes with a persistent session and acknowledges each QoS 1
message only after its effects are committed (paho manual_ack), so a host killed
mid-batch gets the unacknowledged messages again from the broker and the
(egm_id, seq) ledger drops what was already applied. Replies are published only
after the commit that made them true.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import sys
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from protocols.mqtt import EnvelopeError, Limits, Up, decode_status, decode_up, encode_down
from protocols.mqtt.topics import down_topic, parse_topic, subscriptions
from server.alerts import raise_alert
from server.db import bulk, writer
from server.host import Host
from terminals import dispatch, registry
from terminals.commands import Outgoing, new_message_id
from terminals.models import Terminal, TerminalMessage

log = logging.getLogger("floorhost.gateway")


def _no_delay(_client, _userdata, sock) -> None:
    """Replies are small and a terminal waits on them: no Nagle delay (paho leaves it on)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a unix socket or a TLS wrapper without it)
        pass


@dataclass
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received: float  # time.monotonic() at receipt, for the apply-latency histogram
    connection: int = 0  # which broker connection delivered it: a PUBACK only means something on that one
    egm_id: str = ""  # from the topic, for ordering within the worker's lane
    urgent: bool = False  # a request a terminal waits on (see URGENT_TYPES)
    decoded: "_Pending | None" = None  # kept when a batch is cut, so the message is not decoded twice


# Up types whose reply a terminal (and a patron) waits on. Spotted in the raw payload by the network
# thread without decoding: the guess only orders work, it never decides what is done.
URGENT_TYPES = (b'"voucher.redeem"', b'"voucher.issue"', b'"handpay"', b'"card.in"')


def is_urgent(topic: str, payload: bytes) -> bool:
    return topic.endswith("/up") and any(t in payload for t in URGENT_TYPES)


_CHUNK = 100  # messages per read of terminals and ledger inside a batch


class _Lane:
    """One worker's inbox. Messages keep their arrival order per terminal; requests a terminal
    waits on are taken first, together with every queued message of the same terminal."""

    def __init__(self) -> None:
        self._items: deque[Inbound] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self.urgent = 0  # requests waiting; read without the lock by the applying worker, as a hint
        self.unfinished = 0  # taken or waiting, not yet finished

    def put(self, item: Inbound) -> None:
        with self._cond:
            self._items.append(item)
            self.unfinished += 1
            if item.urgent:
                self.urgent += 1
            self._cond.notify()

    def put_back(self, items: list[Inbound]) -> None:
        """Messages cut from a batch go back to the front, in their order."""
        with self._cond:
            self._items.extendleft(reversed(items))
            self.urgent += sum(1 for it in items if it.urgent)
            self._cond.notify()

    def done(self, n: int) -> None:
        with self._cond:
            self.unfinished -= n

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def take(self, max_batch: int, wait: float) -> list[Inbound] | None:
        """The next batch; None once stopped and empty. Waits up to `wait` to fill a bulk batch,
        never while a request is waiting."""
        with self._cond:
            while not self._items:
                if self._stopped:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + wait
            while len(self._items) < max_batch and not self.urgent and not self._stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self.urgent:
                return self._take_requests()
            return [self._items.popleft() for _ in range(min(max_batch, len(self._items)))]

    def _take_requests(self) -> list[Inbound]:
        terminals = {it.egm_id for it in self._items if it.urgent}
        batch: list[Inbound] = []
        rest: deque[Inbound] = deque()
        for it in self._items:
            (batch if it.egm_id in terminals else rest).append(it)
        self._items = rest
        self.urgent -= sum(1 for it in batch if it.urgent)
        return batch


@dataclass
class _Pending:
    """One decoded message inside a batch, and what came of it."""

    item: Inbound
    up: Up | None = None
    status: object | None = None
    egm_id: str | None = None
    reply: dict | None = None
    reply_type: str | None = None
    result: str = "applied"  # applied / duplicate / rejected
    outgoing: list = field(default_factory=list)
    error_seq: int | None = None  # the seq of an undecodable message that still gets an error reply


class MqttGateway:
    def __init__(self, host: Host, broker_url: str, *, client_id: str = "floorhost-host", workers: int | None = None):
        self.host = host
        self.settings = host.settings
        dispatch.load_handlers()
        self.root = host.settings.topic_root
        self.limits = Limits(max_payload_bytes=host.settings.message_max_bytes,
                             max_amount_cents=host.settings.voucher_max_cents)
        u = urlparse(broker_url)
        self._broker = (u.hostname or "127.0.0.1", u.port or (8883 if u.scheme == "mqtts" else 1883))
        self._tls = u.scheme == "mqtts"
        self._creds = (u.username, u.password) if u.username else None
        self.client_id = client_id
        n = workers or host.settings.gateway_workers
        if host.settings.is_sqlite:
            n = 1  # one writer is all SQLite has; more workers would only queue on its lock
        self._lanes: list[_Lane] = [_Lane() for _ in range(n)]
        self._threads: list[threading.Thread] = []
        self._client: mqtt.Client | None = None
        self._running = False
        self.connected = False
        self._known: dict[str, float] = {}  # egm_id → time it was found unregistered (negative cache)
        self._timing = (0.0, 0.0)  # (apply, commit) seconds of the last batch
        self._cache: dict = {}  # committed per-terminal state services keep in the bulk writer's cache
        self._connection = 0  # counts broker connections; see Inbound.connection

    # ---- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        # The paho thread must get the GIL back quickly from a worker applying a batch, both to read a
        # waiting request and to write its reply; Python's default hand-over is every 5 ms.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
                        protocol=mqtt.MQTTv311, manual_ack=True)
        if self._creds:
            c.username_pw_set(*self._creds)
        if self._tls:
            c.tls_set()
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(0.2, 5)
        c.on_connect = self._on_connect
        c.on_socket_open = _no_delay
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._client = c
        self._running = True
        for i, lane in enumerate(self._lanes):
            th = threading.Thread(target=self._work, args=(lane,), name=f"gateway-worker-{i}", daemon=True)
            th.start()
            self._threads.append(th)
        c.connect_async(*self._broker, keepalive=20)
        c.loop_start()

    def stop(self) -> None:
        self._running = False
        for lane in self._lanes:
            lane.stop()
        for th in self._threads:
            th.join(timeout=10)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        self.connected = False

    def wait_connected(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected:
                return True
            time.sleep(0.02)
        return False

    def idle(self) -> bool:
        """True when no message waits in any worker queue (tests, benchmarks)."""
        return all(lane.unfinished == 0 for lane in self._lanes)

    # ---- paho callbacks: network thread, so they only enqueue -----------------------------
    def _on_connect(self, client, _userdata, _flags, reason_code, _props):
        if reason_code.is_failure:
            log.error("broker refused the host: %s", reason_code)
            return
        self.connected = True
        self._connection += 1
        client.subscribe([(s, 1) for s in subscriptions(self.root)])
        log.info("connected to broker %s:%s", *self._broker)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props):
        self.connected = False
        if self._running:
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, msg):
        parts = msg.topic.split("/")
        egm_id = parts[-2] if len(parts) >= 2 else ""
        shard = zlib.crc32(egm_id.encode()) % len(self._lanes)
        self._lanes[shard].put(Inbound(msg.topic, msg.payload, msg.mid, msg.qos, time.monotonic(),
                                       self._connection, egm_id, is_urgent(msg.topic, msg.payload)))
        self.host.metrics.queue_depth.inc()

    # ---- the way out ----------------------------------------------------------------------
    def send(self, egm_id: str, type: str, body: dict, msg_id: str | None = None, re: int | None = None) -> str:
        msg_id = msg_id or new_message_id()
        payload = encode_down(msg_id, type, body, re=re, ts=self.host.now())
        if self._client is None:
            raise RuntimeError("gateway not started")
        self._client.publish(down_topic(self.root, egm_id), payload, qos=1)
        return msg_id

    def forget(self, egm_id: str) -> None:
        """Drops a cached 'unregistered' verdict (called when a terminal is registered in this process)."""
        self._known.pop(egm_id, None)

    def deliver_command(self, out: Outgoing) -> None:
        self.send(out.egm_id, "cmd", {"name": out.name, "args": out.args}, msg_id=out.command_id)

    # ---- workers ----------------------------------------------------------------------------
    def _work(self, lane: _Lane) -> None:
        max_batch = self.settings.gateway_batch_max
        wait = self.settings.gateway_batch_wait_ms / 1000
        while True:
            batch = lane.take(max_batch, wait)
            if batch is None:
                return
            left: list[Inbound] = []
            try:
                left = self.process(batch, lane)
            except Exception:  # the worker must outlive anything one batch does
                log.exception("gateway batch failed")
            finally:
                finished = len(batch) - len(left)
                self.host.metrics.queue_depth.dec(finished)
                if left:
                    lane.put_back(left)
                lane.done(finished)

    def process(self, batch: list[Inbound], lane: _Lane | None = None) -> list[Inbound]:
        """Decodes, applies and commits a batch; then replies and acknowledges. Public for tests.

        With a lane, applying stops early when a request waits there; the messages not applied
        are returned, untouched, for the lane to take again."""
        started = time.perf_counter()
        pending: list[_Pending] = []
        undecoded: list[Inbound] = []
        for i, item in enumerate(batch):
            if lane is not None and i and lane.urgent:
                undecoded = batch[i:]  # a request waits: what is not decoded yet goes back untouched
                break
            pending.append(item.decoded or self._decode(item))
        work = [p for p in pending if p.result != "rejected"]
        left: list[_Pending] = []
        if work:
            result = self._commit_with_retry(work, lane)
            if result is None:
                return []  # stopping while the database is away: nothing acknowledged, the broker keeps it all
            left = result
        if left:
            cut = {id(p) for p in left}
            pending = [p for p in pending if id(p) not in cut]
        committed = time.perf_counter()
        self._finish(pending)
        took = time.perf_counter() - started
        if took > 0.25:  # one line when a batch holds its terminals (and the database) long
            log.warning("slow batch: %d message(s), %d left; %.0f ms to apply, %.0f ms to commit, %.0f ms in all",
                        len(pending), len(left), self._timing[0] * 1000, self._timing[1] * 1000, took * 1000)
        self.host.metrics.batch_seconds.observe(took)
        self.host.metrics.batch_size.observe(len(pending))
        for p in left:
            p.item.decoded = p
        return [p.item for p in left] + undecoded

    def _commit_with_retry(self, work: list[_Pending], lane: _Lane | None = None) -> list[_Pending] | None:
        """Commits the batch and returns what was left for later; None only when the gateway stops
        while the database is away.

        A database that is away (restart, failover, lock timeout) is waited for: nothing is
        acknowledged until its effects are committed. A message that fails by itself (a bug, not
        the database) is isolated, rejected and acknowledged, so it cannot block its terminal."""
        try:
            return self._until_committed(work, lane)
        except Exception:
            log.exception("batch of %d failed; applying one by one", len(work))
        for p in work:
            try:
                if self._until_committed([p]) is None:
                    return None
            except Exception as exc:
                log.exception("egm=%s seq=%s type=%s could not be applied", p.egm_id, p.up and p.up.seq,
                              p.up and p.up.type)
                self._reject(p, "internal_error", exc)
        return []

    def _until_committed(self, work: list[_Pending], lane: _Lane | None = None) -> list[_Pending] | None:
        delay = 0.1
        while True:
            try:
                return self._commit(work, lane)
            except (OperationalError, InterfaceError) as exc:
                self.host.metrics.db_retries.inc()
                log.error("database unavailable (%s); retrying %d message(s) in %.1fs",
                          exc.__class__.__name__, len(work), delay)
            if not self._running:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _commit(self, work: list[_Pending], lane: _Lane | None = None) -> list[_Pending]:
        for p in work:
            p.result, p.reply, p.outgoing = "applied", None, []
        t0 = time.perf_counter()
        with self.host.db.begin() as s, s.no_autoflush:
            with bulk(s) as w:
                w.cache.update(self._cache)
                left = self._apply_all(s, work, lane)
                cache = w.cache
            applied = time.perf_counter()  # the bulk writer has flushed
        self._timing = (applied - t0, time.perf_counter() - applied)  # (apply, commit), for the slow-batch line
        # Committed: what this batch learnt (each terminal's last meters) holds for the next one.
        self._cache = cache
        return left

    # ---- decode -----------------------------------------------------------------------------
    def _decode(self, item: Inbound) -> _Pending:
        p = _Pending(item)
        parsed = parse_topic(item.topic, self.root)
        if parsed is None:
            return self._reject(p, "bad_topic")
        p.egm_id, kind = parsed
        if not self._is_registered(p.egm_id):
            return self._reject(p, "unknown_terminal")
        try:
            if kind == "status":
                p.status = decode_status(item.payload)
            elif kind == "up":
                p.up = decode_up(p.egm_id, item.payload, self.limits)
                p.reply_type = p.up.reply_type
            else:
                return self._reject(p, "bad_topic")
        except EnvelopeError as exc:
            self._reject(p, exc.reason)
            if exc.reply_type and exc.seq is not None:
                p.reply_type = exc.reply_type
                p.reply = {"result": "error", "reason": exc.reason}
                p.error_seq = exc.seq
        return p

    def _reject(self, p: _Pending, reason: str, exc: Exception | None = None) -> _Pending:
        p.result = "rejected"
        proto_reason = reason.split(":", 1)[0]
        self.host.metrics.rejects.labels("mqtt", proto_reason).inc()
        log.warning("rejected egm=%s topic=%s reason=%s%s", p.egm_id, p.item.topic, reason,
                    f" ({exc.__class__.__name__})" if exc else "")
        if p.up is not None and p.up.reply_type:
            p.reply_type = p.up.reply_type
            p.reply = {"result": "error", "reason": reason}
        return p

    def _is_registered(self, egm_id: str) -> bool:
        if egm_id in self._known:
            ts = self._known[egm_id]
            if ts == 0.0 or time.monotonic() - ts < 1:
                return ts == 0.0
        with self.host.db.read() as s:
            found = s.execute(select(Terminal.id).where(Terminal.egm_id == egm_id)).first() is not None
        # Registered terminals stay known; unknown ones are re-checked after a second (they may get registered).
        self._known[egm_id] = 0.0 if found else time.monotonic()
        return found

    # ---- apply ------------------------------------------------------------------------------
    def _apply_all(self, s: Session, work: list[_Pending], lane: _Lane | None = None) -> list[_Pending]:
        """Applies the batch in order; returns the tail left unapplied because a request is waiting."""
        now = self.host.now()
        terminals: dict[str, Terminal] = {}
        seen: dict[tuple[str, int], str | None] = {}
        rows = []
        left: list[_Pending] = []
        for i, p in enumerate(work):
            if lane is not None and i and lane.urgent:
                left = work[i:]  # a terminal waits on a reply: commit this much, let its request through
                break
            if i % _CHUNK == 0:
                # Terminals and the ledger are read a chunk at a time, so a cut never waits on the whole batch.
                chunk = work[i:i + _CHUNK]
                ids = {q.egm_id for q in chunk} - terminals.keys()
                if ids:
                    terminals.update((t.egm_id, t) for t in s.execute(
                        select(Terminal).where(Terminal.egm_id.in_(ids))).scalars())
                # Only a seq at or below the terminal's highest applied one can be in the ledger already.
                maybe = [q for q in chunk if q.up is not None and (q.egm_id, q.up.seq) not in seen
                         and q.egm_id in terminals and q.up.seq <= (terminals[q.egm_id].last_seq or 0)]
                if maybe:
                    seen.update(self._already_applied(s, maybe))
            t = terminals.get(p.egm_id)
            if t is None:  # unregistered between decode and apply
                self._reject(p, "unknown_terminal")
                continue
            if p.status is not None:
                self._apply_status(s, t, p, now)
                continue
            up = p.up
            key = (p.egm_id, up.seq)
            if key in seen:
                p.result = "duplicate"
                p.reply = json.loads(seen[key]) if seen[key] else None
                continue
            handler = dispatch.HANDLERS.get(up.type)
            registry.went_online(s, self.host.clock, t, now, "mqtt")
            late = self._check_sequence(s, t, up, now)
            if handler is None:
                # A type of the contract this host version does not handle yet: refused with a reason and
                # kept in the ledger, so its seq leaves no false gap and a redelivery gets the same answer.
                self._reject(p, "unsupported_type")
            else:
                ctx = dispatch.Apply(s, self.host, t, up, now)
                p.reply = handler(ctx)
                p.outgoing = ctx.outgoing
            reply_json = dispatch.reply_bytes(p.reply)
            seen[key] = reply_json
            rows.append({"egm_id": p.egm_id, "seq": up.seq, "type": up.type, "terminal_ts": up.ts, "host_ts": now,
                         "body": p.item.payload.decode("utf-8", "replace"), "reply": reply_json, "late": late})
        if rows:
            writer(s).insert_many(TerminalMessage.__table__, rows)
        return left

    @staticmethod
    def _already_applied(s: Session, work: list[_Pending]) -> dict[tuple[str, int], str | None]:
        """(egm_id, seq) → stored reply for the messages of this batch already in the ledger.

        Grouped by terminal as `egm_id = ? AND seq IN (…)` ORed together: SQLite answers that from the
        primary key, where a row-value `(egm_id, seq) IN (…)` scans the whole ledger."""
        by_terminal: dict[str, set[int]] = {}
        for p in work:
            if p.up is not None:
                by_terminal.setdefault(p.egm_id, set()).add(p.up.seq)
        seen: dict[tuple[str, int], str | None] = {}
        items = list(by_terminal.items())
        for start in range(0, len(items), 100):
            cond = or_(*[and_(TerminalMessage.egm_id == e, TerminalMessage.seq.in_(sorted(seqs)))
                         for e, seqs in items[start:start + 100]])
            for egm_id, seq, reply in s.execute(
                    select(TerminalMessage.egm_id, TerminalMessage.seq, TerminalMessage.reply).where(cond)):
                seen[(egm_id, seq)] = reply
        return seen

    def _check_sequence(self, s: Session, t: Terminal, up: Up, now: dt.datetime) -> bool:
        """Records gaps (comms.sequence_gap) and flags late replays; returns True when late."""
        late = False
        if t.last_seq and up.seq > t.last_seq + 1:
            detail = {"expected": t.last_seq + 1, "received": up.seq, "missing": up.seq - t.last_seq - 1}
            registry.add_event(s, self.host.clock, t, "comms.sequence_gap", now, detail=detail, seq=up.seq,
                               terminal_ts=up.ts)
            raise_alert(s, "sequence_gap", f"{t.egm_id}: {detail['missing']} message(s) missing before seq {up.seq}",
                        now, egm_id=t.egm_id, detail=detail, once=True)
        elif t.last_seq and up.seq < t.last_seq:
            late = True
            log.warning("egm=%s seq=%s late replay (highest applied %s): applied and flagged", t.egm_id, up.seq,
                        t.last_seq)
        t.last_seq = max(t.last_seq or 0, up.seq)
        return late

    def _apply_status(self, s: Session, t: Terminal, p: _Pending, now: dt.datetime) -> None:
        if p.status.state == "online":
            registry.went_online(s, self.host.clock, t, now, "mqtt")
        else:
            registry.went_offline(s, self.host.clock, t, now, "will", "mqtt")
        p.result = "status"

    # ---- after commit -----------------------------------------------------------------------
    def _finish(self, pending: list[_Pending]) -> None:
        m = self.host.metrics
        now_mono = time.monotonic()
        client = self._client
        for p in pending:
            if p.result in ("applied", "duplicate", "rejected"):
                m.terminal_messages.labels(p.result).inc()
            if p.result == "applied":
                m.apply_latency.observe(now_mono - p.item.received)
            if client is None:
                continue
            seq = p.up.seq if p.up is not None else p.error_seq
            if p.reply is not None and p.reply_type and seq is not None:
                try:
                    self.send(p.egm_id, p.reply_type, p.reply, re=seq)
                except Exception:
                    log.exception("egm=%s seq=%s reply could not be published", p.egm_id, seq)
            for egm_id, type_, body in p.outgoing:
                try:
                    self.send(egm_id, type_, body)
                except Exception:
                    log.exception("egm=%s %s could not be published", egm_id, type_)
            # A message id from an earlier connection may name another message now; the broker
            # re-sends that one on the new connection anyway, and the ledger makes it a duplicate.
            if p.item.qos > 0 and p.item.connection == self._connection:
                client.ack(p.item.mid, p.item.qos)
