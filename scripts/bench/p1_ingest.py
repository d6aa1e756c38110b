"""P1 ingest (spec/performance.md): terminal `up` messages durably applied per second, sustained,
as a ratio of raw QoS 1 broker throughput measured in the same run; then kill -9 mid-load,
restart, drain, and check nothing was lost.

    .venv/bin/python -m scripts.bench.p1_ingest [--broker mosquitto|embedded] [--seconds 60]
        [--terminals 200] [--db sqlite|URL] [--rate 0] [--no-docs]

What runs, each in its own process:
  broker     Mosquitto on a free port (in-flight window 2000, queue unbounded: see common.py),
             or the embedded amqtt broker
  baseline   a paho publisher process -> broker -> a paho subscriber process, QoS 1, no processing;
             measured before and after the host run (the machine is shared: both are printed,
             the ratio uses their mean)
  host       `python -m server.cli serve` on a fresh instance (SQLite in a temp dir, or --db URL),
             N registered, enabled MQTT terminals with approved software
  generator  one paho publisher process: a hello per terminal, then the P1 mix (70 % game.end,
             20 % meters, 10 % events) with increasing seqs per terminal, as fast as the host
             takes it (or at --rate). It keeps at most --max-backlog messages published but not
             yet applied (it reads the host's applied count, scraped by the bench), so the host is
             always saturated but the broker's queue stays bounded and the drain stays short.

Figures: applied msgs/s from /metrics (floorhost_terminal_messages_total{result="applied"})
between two scrapes after warm-up; p99 apply latency from the
floorhost_gateway_apply_latency_seconds buckets over the same window (receipt by the host's
paho thread -> commit; time spent queued in the broker is not in it); host RSS (VmRSS) at the
start and end of the window. At saturation that latency is only the in-flight window divided by
the throughput, so the generator then offers half the measured rate for --latency-seconds and
p50/p99 are read again. Then, still at half load, kill -9, restart, drain, and count
terminal_messages rows of this run's terminals against the messages the generator got PUBACKs
for (per terminal too: rows == highest seq). Where the host's time goes: scripts.bench.p1_profile.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from scripts.bench import common
from tests.support.brokers import free_port

APPLIED = "floorhost_terminal_messages_total"
LATENCY = "floorhost_gateway_apply_latency_seconds"

# generator counters (a shared array of int64): what it published, what the broker PUBACKed,
# what the host has applied so far (written by the bench from /metrics, read by the generator),
# and the target rate in msgs/s (0: as fast as the backlog bound allows; the bench may change it)
PUBLISHED, ACKED, CONSUMED, RATE = 0, 1, 2, 3


# ---- the load generator (its own process) -------------------------------------------------------

class MixSource:
    """The P1 message mix for a set of terminals: a hello each, then 70 % game.end, 20 % meters,
    10 % events (bills, door open/close), with increasing seqs and consistent meters per terminal."""

    def __init__(self, egm_ids: list[str], software: dict, topic_root: str = "sbg/v1", seed: int = 1):
        from protocols.mqtt import METER_NAMES

        self.rng = random.Random(seed)
        self.egm_ids = list(egm_ids)
        self.software = software
        n = len(self.egm_ids)
        self.topics = [f"{topic_root}/egm/{e}/up" for e in self.egm_ids]
        self.seqs = [0] * n
        self.credits = [100_000] * n
        self.door_open = [False] * n
        self.meters = [{m: 0 for m in METER_NAMES} for _ in range(n)]
        self._dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        self._ts = (0.0, "")

    def ts(self) -> str:
        import datetime as dt

        from protocols.mqtt import format_ts

        now = time.time()
        if now - self._ts[0] > 0.001:
            self._ts = (now, format_ts(dt.datetime.fromtimestamp(now, dt.timezone.utc)))
        return self._ts[1]

    def envelope(self, i: int, type_: str, body: dict) -> bytes:
        self.seqs[i] += 1
        return self._dumps({"v": 1, "seq": self.seqs[i], "ts": self.ts(), "type": type_, "body": body}).encode()

    def hello(self, i: int) -> tuple[str, bytes]:
        body = {"manufacturer": "Bench", "model": "P1", "serial": f"SN-{self.egm_ids[i]}", "denoms_cents": [1, 5, 25],
                "software": self.software, "config": {"deployment_id": None, "sha256": None}}
        return self.topics[i], self.envelope(i, "hello", body)

    def next(self) -> tuple[str, bytes]:
        i = self.rng.randrange(len(self.egm_ids))
        r = self.rng.random()
        return self.topics[i], (self._game(i) if r < 0.7 else self._meters(i) if r < 0.9 else self._event(i))

    def _game(self, i: int) -> bytes:
        m, rng = self.meters[i], self.rng
        wager = 50
        win = 0 if rng.random() < 0.7 else 25 * rng.randrange(1, 9)
        if self.credits[i] < wager:
            self.credits[i] += 10_000
            m["bills_in_cents"] += 10_000
        self.credits[i] += win - wager
        m["coin_in_cents"] += wager
        m["coin_out_cents"] += win
        m["games_played"] += 1
        m["games_won"] += win > 0
        return self.envelope(i, "game.end", {"game": {"theme": "Gems", "paytable_id": "PT1"}, "denom_cents": 1,
                                             "wager_cents": wager, "win_cents": win,
                                             "credits_after_cents": self.credits[i]})

    def _meters(self, i: int) -> bytes:
        m = self.meters[i]
        m["current_credits_cents"] = self.credits[i]
        return self.envelope(i, "meters", {"meters": dict(m)})

    def _event(self, i: int) -> bytes:
        if self.door_open[i]:
            self.door_open[i] = False
            return self.envelope(i, "event", {"code": "door.main.closed", "detail": {}})
        if self.rng.random() < 0.3:
            self.door_open[i] = True
            self.meters[i]["door_open_count"] += 1
            return self.envelope(i, "event", {"code": "door.main.open", "detail": {}})
        amount = self.rng.choice((500, 1000, 2000, 5000))
        self.credits[i] += amount
        self.meters[i]["bills_in_cents"] += amount
        return self.envelope(i, "event", {"code": "bill.accepted", "detail": {"amount_cents": amount}})


def generator_main(url: str, topic_root: str, egm_ids: list[str], software: dict, counters, stop, started,
                   max_backlog: int, seed: int, result_q) -> None:
    """One paho connection publishing for all of this run's terminals (the broker is anonymous)."""
    from urllib.parse import urlparse

    import paho.mqtt.client as mqtt

    src = MixSource(egm_ids, software, topic_root, seed)
    u = urlparse(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-gen-{os.getpid()}", clean_session=True)
    window = 1000
    c.max_inflight_messages_set(window)
    c.max_queued_messages_set(0)
    acked = [0]

    def on_publish(_c, _u, _mid, _rc, _p):
        acked[0] += 1

    c.on_publish = on_publish
    common._connect(c, u.hostname, u.port)
    n = len(egm_ids)
    sent = 0

    def publish(topic: str, payload: bytes) -> None:
        nonlocal sent
        # Keep paho's own queue short; and keep the broker's backlog for the host bounded.
        while sent - acked[0] >= 2 * window or (max_backlog and sent - counters[CONSUMED] >= max_backlog):
            if stop.is_set() and sent - acked[0] < 2 * window:
                break
            counters[ACKED] = acked[0]
            time.sleep(0.001)
        c.publish(topic, payload, qos=1)
        sent += 1
        if sent % 256 == 0:
            counters[PUBLISHED], counters[ACKED] = sent, acked[0]

    for i in range(n):
        publish(*src.hello(i))
    started.set()
    credit, last = 0.0, time.monotonic()
    while not stop.is_set():
        rate = counters[RATE]
        if rate > 0:  # token bucket, at most 50 ms of burst
            now = time.monotonic()
            credit = min(credit + (now - last) * rate, max(1.0, rate * 0.05))
            last = now
            if credit < 1:
                time.sleep(0.001)
                continue
            credit -= 1
        publish(*src.next())
    counters[PUBLISHED] = sent
    deadline = time.monotonic() + 120
    while acked[0] < sent and time.monotonic() < deadline:
        counters[ACKED] = acked[0]
        time.sleep(0.01)
    counters[ACKED] = acked[0]
    c.disconnect()
    c.loop_stop()
    result_q.put({"published": sent, "acked": acked[0], "seqs": dict(zip(egm_ids, src.seqs))})


# ---- setup ---------------------------------------------------------------------------------------

def prepare_instance(instance: Path, database_url: str, egm_ids: list[str], software: dict) -> float:
    """Migrates the database, registers, enables and approves; returns terminals registered per second."""
    from server import migrate
    from server.audit import SYSTEM
    from server.config import load_settings
    from server.errors import Conflict
    from server.host import Host
    from terminals import registry
    from terminals import software as sw

    h = Host(load_settings({"instance": str(instance), "database_url": database_url, "scheduler": "off"},
                           environ={}))
    try:
        migrate.upgrade(h.db)
        with h.db.begin() as s:
            try:
                sw.approve(s, SYSTEM, software["name"], software["version"], software["sha256"], h.now())
            except Conflict:
                pass
        t0 = time.perf_counter()
        for chunk in range(0, len(egm_ids), 100):
            with h.db.begin() as s:
                for egm_id in egm_ids[chunk:chunk + 100]:
                    reg = registry.register(s, SYSTEM, egm_id, "mqtt", {"bank": "P1"}, {}, h.now())
                    registry.set_enabled(s, SYSTEM, reg.terminal, True, h.now())
        return len(egm_ids) / (time.perf_counter() - t0)
    finally:
        h.db.dispose()


def ledger_counts(database_url: str, egm_ids: list[str]) -> dict[str, tuple[int, int]]:
    """egm_id -> (rows in terminal_messages, highest seq) for this run's terminals."""
    from sqlalchemy import create_engine, text

    eng = create_engine(database_url)
    out: dict[str, tuple[int, int]] = {}
    try:
        with eng.connect() as c:
            for chunk in range(0, len(egm_ids), 500):
                ids = egm_ids[chunk:chunk + 500]
                params = {f"e{k}": e for k, e in enumerate(ids)}
                sql = ("SELECT egm_id, COUNT(*), MAX(seq) FROM terminal_messages WHERE egm_id IN ("
                       + ",".join(f":e{k}" for k in range(len(ids))) + ") GROUP BY egm_id")
                for egm_id, count, top in c.execute(text(sql), params):
                    out[egm_id] = (int(count), int(top))
    finally:
        eng.dispose()
    return out


class Scraper(threading.Thread):
    """Scrapes the host every 0.25 s and tells the generator how much the host has applied
    (across restarts: the applied count of a killed host is added to its successor's)."""

    def __init__(self, counters):
        super().__init__(daemon=True, name="scraper")
        self.counters = counters
        self.base = 0.0
        self.last = 0.0
        self.host: common.HostProcess | None = None
        self.stop_evt = threading.Event()

    def switch(self, host: common.HostProcess | None) -> None:
        """Call when the host is killed (None) or a new one is up."""
        self.base += self.last
        self.last = 0.0
        self.host = host

    def run(self) -> None:
        while not self.stop_evt.wait(0.25):
            host = self.host
            if host is None:
                continue
            try:
                m = common.scrape(host.url, timeout=2)
            except OSError:
                continue
            if self.host is host:
                self.last = common.sample(m, APPLIED, result="applied")
                self.counters[CONSUMED] = int(self.base + self.last)


# ---- the run -------------------------------------------------------------------------------------

def run(args) -> dict[str, Any]:
    from terminals.simulators.mqtt_terminal import default_software

    work = Path(tempfile.mkdtemp(prefix="floorhost-p1-"))
    instance = work / "instance"
    database_url = f"sqlite:///{instance / 'floorhost.db'}" if args.db == "sqlite" else args.db
    db_label = "sqlite" if args.db == "sqlite" else args.db.split("://", 1)[0].split("+", 1)[0]
    run_id = os.urandom(2).hex().upper()
    egm_ids = [f"P1{run_id}{i:05d}" for i in range(1, args.terminals + 1)]
    software = default_software()
    res: dict[str, Any] = {"broker": args.broker, "db": db_label, "terminals": args.terminals,
                           "seconds": args.seconds, "machine": common.machine(), "date": common.today(),
                           "loadavg_start": os.getloadavg()[0]}
    broker = common.start_broker(args.broker, work)
    ctx = mp.get_context("spawn")
    gen = None
    host = host2 = None
    scraper = None
    try:
        print(f"P1 setup: broker={args.broker} {broker.url} db={db_label} terminals={args.terminals} "
              f"work={work}", flush=True)
        base1 = common.measure_baseline(broker, args.baseline_seconds)
        print(f"P1 baseline (before) raw_qos1_msgs_per_s={base1['msgs_per_s']:.0f} "
              f"window_s={base1['window_s']:.1f} payload_bytes={base1['payload_bytes']}", flush=True)

        instance.mkdir(parents=True)
        res["register_per_s"] = prepare_instance(instance, database_url, egm_ids, software)
        http_port = free_port()
        host = common.HostProcess(instance, database_url, broker.url, http_port, work / "host.log")
        host.start()

        counters = ctx.Array("q", 4, lock=False)
        counters[RATE] = int(args.rate)
        stop, started, result_q = ctx.Event(), ctx.Event(), ctx.Queue()
        scraper = Scraper(counters)
        scraper.switch(host)
        scraper.start()
        gen = ctx.Process(target=generator_main, daemon=True,
                          args=(broker.url, "sbg/v1", egm_ids, software, counters, stop, started,
                                args.max_backlog, 1, result_q))
        gen.start()
        if not started.wait(60):
            raise RuntimeError("generator did not start")
        time.sleep(args.warmup)

        m0, t0 = common.scrape(host.url), time.monotonic()
        rss0, cpu0, pub0 = common.rss_mb(host.pid), common.cpu_seconds(host.pid), counters[PUBLISHED]
        time.sleep(args.seconds)
        m1, t1 = common.scrape(host.url), time.monotonic()
        rss1, cpu1, pub1 = common.rss_mb(host.pid), common.cpu_seconds(host.pid), counters[PUBLISHED]
        elapsed = t1 - t0
        applied = common.sample(m1, APPLIED, result="applied") - common.sample(m0, APPLIED, result="applied")
        res.update(
            host_applied_msgs_per_s=applied / elapsed, window_s=elapsed,
            offered_msgs_per_s=(pub1 - pub0) / elapsed,
            backlog_end=counters[PUBLISHED] - counters[CONSUMED],
            p50_apply_ms=_ms(common.histogram_quantile(0.50, m0, m1, LATENCY)),
            p99_apply_ms=_ms(common.histogram_quantile(0.99, m0, m1, LATENCY)),
            rss_mb_start=rss0, rss_mb_end=rss1,
            host_cpu_pct=100 * (cpu1 - cpu0) / elapsed if cpu0 is not None and cpu1 is not None else None,
            rejected=common.sample(m1, APPLIED, result="rejected"),
            duplicates=common.sample(m1, APPLIED, result="duplicate"),
            batch_mean=_mean(m0, m1, "floorhost_gateway_batch_size"),
            batch_seconds_mean=_mean(m0, m1, "floorhost_gateway_batch_seconds"),
        )
        print(f"P1 window applied={applied:.0f} in {elapsed:.1f}s offered={res['offered_msgs_per_s']:.0f}/s "
              f"backlog_end={res['backlog_end']} batch_mean={res['batch_mean']} "
              f"host_cpu={res['host_cpu_pct']:.0f}%", flush=True)

        # Latency below saturation: at a saturated host the apply latency is only the broker's
        # in-flight window divided by the throughput (Little's law). Offer half of what was just
        # measured, let the backlog drain, then read the histogram again.
        if args.latency_seconds > 0 and applied > 0:
            counters[RATE] = max(1, int(0.5 * applied / elapsed))
            deadline = time.monotonic() + 300
            while counters[PUBLISHED] - counters[CONSUMED] > max(2 * counters[RATE], 500) \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2.0)
            m3, t3 = common.scrape(host.url), time.monotonic()
            time.sleep(args.latency_seconds)
            m4, t4 = common.scrape(host.url), time.monotonic()
            res.update(
                half_rate=counters[RATE],
                half_applied_per_s=(common.sample(m4, APPLIED, result="applied")
                                    - common.sample(m3, APPLIED, result="applied")) / (t4 - t3),
                half_p50_apply_ms=_ms(common.histogram_quantile(0.50, m3, m4, LATENCY)),
                half_p99_apply_ms=_ms(common.histogram_quantile(0.99, m3, m4, LATENCY)),
            )
            print(f"P1 at half load: offered={res['half_rate']}/s applied={res['half_applied_per_s']:.0f}/s "
                  f"p50={_fmt(res['half_p50_apply_ms'], 1)}ms p99={_fmt(res['half_p99_apply_ms'], 1)}ms", flush=True)

        # kill -9 mid-load, restart on the same instance and broker session, let it drain
        time.sleep(1.0)
        scraper.switch(None)
        host.kill9()
        killed_at = counters[PUBLISHED]
        print(f"P1 kill -9 host pid={host.pid} after {killed_at} published", flush=True)
        host2 = common.HostProcess(instance, database_url, broker.url, http_port, work / "host.log")
        host2.start()
        scraper.switch(host2)
        time.sleep(args.after_kill)
        stop.set()
        gen_result = result_q.get(timeout=180)
        gen.join(30)
        res["generator_published"], res["generator_acked"] = gen_result["published"], gen_result["acked"]
        expected = gen_result["seqs"]
        want = sum(expected.values())
        t_drain = time.monotonic()
        last_total, last_change = -1, time.monotonic()
        counts: dict[str, tuple[int, int]] = {}
        while True:
            counts = ledger_counts(database_url, egm_ids)
            total = sum(c for c, _ in counts.values())
            if total >= want:
                break
            if total != last_total:
                last_total, last_change = total, time.monotonic()
            elif time.monotonic() - last_change > args.drain_stall:
                break
            time.sleep(1.0)
        m2 = common.scrape(host2.url)
        res.update(
            drain_s=time.monotonic() - t_drain, ledger_rows=total, expected_rows=want,
            lost_after_kill=want - total,
            short_terminals=sum(1 for e, s in expected.items() if counts.get(e, (0, 0))[0] != s),
            duplicates_after_restart=common.sample(m2, APPLIED, result="duplicate"),
            rejected_after_restart=common.sample(m2, APPLIED, result="rejected"),
            acked_equals_published=gen_result["acked"] == gen_result["published"],
        )
    finally:
        if scraper:
            scraper.stop_evt.set()
        if gen is not None and gen.is_alive():
            gen.kill()
        for h in (host2, host):
            if h:
                h.stop()
        if args.baseline_after and "lost_after_kill" in res:
            base2 = common.measure_baseline(broker, args.baseline_seconds)
            res["baseline_after"] = base2["msgs_per_s"]
            print(f"P1 baseline (after) raw_qos1_msgs_per_s={base2['msgs_per_s']:.0f}", flush=True)
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    res["baseline_before"] = base1["msgs_per_s"]
    both = [res["baseline_before"]] + ([res["baseline_after"]] if "baseline_after" in res else [])
    res["baseline_qos1_msgs_per_s"] = sum(both) / len(both)
    res["ratio"] = res["host_applied_msgs_per_s"] / res["baseline_qos1_msgs_per_s"]
    res["loadavg_end"] = os.getloadavg()[0]
    return res


def _ms(seconds: float | None) -> float | str | None:
    if seconds is None:
        return None
    if seconds == float("inf"):
        return ">5000"  # beyond the histogram's last finite bucket (5 s)
    return seconds * 1000


def _mean(m0: dict, m1: dict, name: str) -> float | None:
    n = common.sample(m1, f"{name}_count") - common.sample(m0, f"{name}_count")
    s = common.sample(m1, f"{name}_sum") - common.sample(m0, f"{name}_sum")
    return round(s / n, 4) if n else None


def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def summary_lines(r: dict) -> list[str]:
    verdict = "PASS" if r["ratio"] >= 0.5 else "MISS"
    lost = "PASS" if r["lost_after_kill"] == 0 and r["short_terminals"] == 0 else "FAIL"
    return [
        f"P1 baseline_qos1_msgs_per_s={_fmt(r['baseline_qos1_msgs_per_s'])} "
        f"(before={_fmt(r['baseline_before'])} after={_fmt(r.get('baseline_after'))})",
        f"P1 host_applied_msgs_per_s={_fmt(r['host_applied_msgs_per_s'])} ratio={r['ratio']:.3f} target>=0.5 {verdict}",
        f"P1 p99_apply_ms={_fmt(r['p99_apply_ms'], 1)} p50_apply_ms={_fmt(r['p50_apply_ms'], 1)} (saturated; "
        f"at half load {_fmt(r.get('half_rate'))}/s: p99_apply_ms={_fmt(r.get('half_p99_apply_ms'), 1)} "
        f"p50_apply_ms={_fmt(r.get('half_p50_apply_ms'), 1)})",
        f"P1 rss_mb_start={_fmt(r['rss_mb_start'], 1)} rss_mb_end={_fmt(r['rss_mb_end'], 1)}",
        f"P1 lost_after_kill={r['lost_after_kill']} rows={r['ledger_rows']} expected={r['expected_rows']} "
        f"short_terminals={r['short_terminals']} duplicates_after_restart={_fmt(r['duplicates_after_restart'])} "
        f"drain_s={r['drain_s']:.1f} {lost}",
        f"P1 broker={r['broker']} db={r['db']} terminals={r['terminals']} seconds={r['seconds']} "
        f"window_s={r['window_s']:.1f} offered_msgs_per_s={_fmt(r['offered_msgs_per_s'])} "
        f"backlog_end={r['backlog_end']} batch_mean={_fmt(r['batch_mean'], 1)} "
        f"host_cpu_pct={_fmt(r['host_cpu_pct'])} loadavg={r['loadavg_start']:.1f}->{r['loadavg_end']:.1f}",
    ]


def doc_section(r: dict, note: str) -> str:
    verdict = "PASS" if r["ratio"] >= 0.5 else "MISS"
    lost = "PASS" if r["lost_after_kill"] == 0 and r["short_terminals"] == 0 else "FAIL"
    rows = [
        ("baseline: raw QoS 1, paho publisher process → broker → paho subscriber process",
         f"{_fmt(r['baseline_qos1_msgs_per_s'])} msg/s (before {_fmt(r['baseline_before'])}, "
         f"after {_fmt(r.get('baseline_after'))})"),
        ("host: applied msg/s, sustained", f"{_fmt(r['host_applied_msgs_per_s'])} msg/s over {r['window_s']:.1f} s"),
        ("**ratio** (target ≥ 0.5)", f"**{r['ratio']:.3f} — {verdict}**"),
        ("offered by the generator during the window", f"{_fmt(r['offered_msgs_per_s'])} msg/s "
         f"(backlog at the end {r['backlog_end']}: {'host saturated' if r['backlog_end'] > 1000 else 'host NOT saturated'})"),
        ("apply latency (host receipt → commit) p50 / p99, saturated",
         f"{_fmt(r['p50_apply_ms'], 1)} / {_fmt(r['p99_apply_ms'], 1)} ms (≈ the broker's in-flight window"
         f"{f' ({common.BENCH_INFLIGHT})' if r['broker'] == 'mosquitto' else ''} ÷ throughput)"),
        (f"apply latency p50 / p99 at half load ({_fmt(r.get('half_rate'))} msg/s offered, "
         f"{_fmt(r.get('half_applied_per_s'))} applied)",
         f"{_fmt(r.get('half_p50_apply_ms'), 1)} / {_fmt(r.get('half_p99_apply_ms'), 1)} ms"),
        ("mean batch size / mean batch time", f"{_fmt(r['batch_mean'], 1)} msgs / "
         f"{_fmt(None if r['batch_seconds_mean'] is None else r['batch_seconds_mean'] * 1000, 1)} ms"),
        ("host CPU during the window", f"{_fmt(r['host_cpu_pct'])} % of one core"),
        ("host RSS start → end of window", f"{_fmt(r['rss_mb_start'], 1)} → {_fmt(r['rss_mb_end'], 1)} MiB"),
        ("kill -9 mid-load (at half load), restart, drain: lost", f"{r['lost_after_kill']} — {lost} "
         f"({r['ledger_rows']} ledger rows {'=' if r['ledger_rows'] == r['expected_rows'] else '≠'} "
         f"{r['expected_rows']} PUBACKed by the broker, {r['short_terminals']} terminals short; "
         f"{_fmt(r['duplicates_after_restart'])} redelivered duplicates dropped; drain {r['drain_s']:.1f} s)"),
        ("terminals registered (service calls, 100 per transaction)", f"{_fmt(r['register_per_s'])} /s"),
    ]
    out = [f"### P1 ingest — {r['broker']} + {r['db']}", "",
           f"`.venv/bin/python -m scripts.bench.p1_ingest --broker {r['broker']} --seconds {r['seconds']:g} "
           f"--terminals {r['terminals']}{'' if r['db'] == 'sqlite' else ' --db URL'}`", "",
           f"- date: {r['date']}", f"- machine: {r['machine']} (load average {r['loadavg_start']:.1f} at start, "
           f"{r['loadavg_end']:.1f} at end: shared with other jobs)",
           f"- broker: {r['broker']}, DB: {r['db']}, terminals: {r['terminals']}, window: {r['seconds']:g} s", "",
           ]
    return common.table_section(out, rows, note)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench.p1_ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--broker", choices=("mosquitto", "embedded"), default="mosquitto")
    p.add_argument("--seconds", type=float, default=60.0, help="measured window (default 60)")
    p.add_argument("--terminals", type=int, default=200)
    p.add_argument("--db", default="sqlite", help="sqlite (a temp file) or a database URL")
    p.add_argument("--rate", type=float, default=0.0, help="target msgs/s of the generator (0: as fast as taken)")
    p.add_argument("--max-backlog", type=int, default=20_000,
                   help="most messages published but not yet applied (keeps the host saturated, the broker bounded)")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--baseline-seconds", type=float, default=10.0)
    p.add_argument("--no-baseline-after", dest="baseline_after", action="store_false")
    p.add_argument("--latency-seconds", type=float, default=15.0,
                   help="after the window, measure apply latency this long at half the measured rate (0: skip)")
    p.add_argument("--after-kill", type=float, default=5.0, help="seconds of load after the restart")
    p.add_argument("--drain-stall", type=float, default=30.0, help="give up draining after this long without progress")
    p.add_argument("--note", default="", help="a line added to the docs section")
    p.add_argument("--no-docs", dest="docs", action="store_false", help="do not write docs/benchmarks.md")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database)")
    args = p.parse_args(argv)
    r = run(args)
    for line in summary_lines(r):
        print(line, flush=True)
    if args.docs:
        common.write_section(f"P1-{r['broker']}-{r['db']}", doc_section(r, args.note))
        print(f"P1 wrote {common.BENCHMARKS_MD}", flush=True)
    return 0 if r["lost_after_kill"] == 0 and r["short_terminals"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
