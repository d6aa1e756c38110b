"""P2: ticket-in round trip at the terminal (voucher.redeem → voucher.redeem.reply), p50/p99, under
P1-style background load from 2,000 terminals at 1,000 msg/s, beside an MQTT echo round trip through the
same broker under the same load (performance.md).

    .venv/bin/python -m scripts.bench.p2_voucher [--terminals 2000] [--rate 1000] [--vouchers 400] [--db sqlite|URL]

The host runs as a subprocess (`floorhost serve`); the background generator, the echo responder and the
measuring terminal are separate processes or threads with their own MQTT connections.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from scripts.bench import common
from terminals.gateway import _no_delay
from scripts.bench.p1_ingest import generator_main, prepare_instance
from tests.support.brokers import free_port


def _client(name: str, url: str) -> mqtt.Client:
    from urllib.parse import urlparse

    u = urlparse(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}", clean_session=True)
    c.on_socket_open = _no_delay  # the baseline and the terminal alike: no Nagle delay on small messages
    common._connect(c, u.hostname, u.port)
    return c


def echo_main(url: str, stop) -> None:
    """Answers every echo request at once: the broker's own round trip, with no processing."""
    c = _client("echo", url)
    c.on_message = lambda cl, _u, m: cl.publish("bench/echo/resp", m.payload, qos=1)
    c.subscribe("bench/echo/req", qos=1)
    stop.wait()
    c.disconnect()
    c.loop_stop()


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def measure_echo(url: str, n: int) -> list[float]:
    c = _client("echo-probe", url)
    got: queue.Queue = queue.Queue()
    c.on_message = lambda _c, _u, m: got.put(time.perf_counter())
    c.subscribe("bench/echo/resp", qos=1)
    time.sleep(0.5)
    rtts = []
    for i in range(n):
        t0 = time.perf_counter()
        c.publish("bench/echo/req", json.dumps({"i": i}).encode(), qos=1)
        try:
            rtts.append(got.get(timeout=5) - t0)
        except queue.Empty:
            continue
        time.sleep(0.01)
    c.disconnect()
    c.loop_stop()
    return rtts


def measure_redeem(url: str, root: str, egm_id: str, numbers: list[str]) -> tuple[list[float], int]:
    from protocols.mqtt import encode_up

    c = _client(f"egm-{egm_id}", url)
    replies: queue.Queue = queue.Queue()
    c.on_message = lambda _c, _u, m: replies.put((time.perf_counter(), json.loads(m.payload)))
    c.subscribe(f"{root}/egm/{egm_id}/down", qos=1)
    time.sleep(0.5)
    seq = 10
    rtts, authorized = [], 0
    for vn in numbers:
        seq += 1
        t0 = time.perf_counter()
        c.publish(f"{root}/egm/{egm_id}/up", encode_up(seq, "voucher.redeem", {"validation_number": vn}), qos=1)
        while True:
            try:
                at, msg = replies.get(timeout=3)
            except queue.Empty:
                break
            if msg.get("re") == seq:
                rtts.append(at - t0)
                if msg["body"].get("result") == "authorized":
                    authorized += 1
                    seq += 1
                    c.publish(f"{root}/egm/{egm_id}/up", encode_up(seq, "voucher.redeem.commit", {
                        "validation_number": vn, "amount_cents": msg["body"]["amount_cents"]}), qos=1)
                break
        time.sleep(0.02)
    c.disconnect()
    c.loop_stop()
    return rtts, authorized


def run(args) -> dict:
    from cashier import vouchers
    from server.config import load_settings
    from server.host import Host
    from terminals.simulators.mqtt_terminal import default_software

    work = Path(tempfile.mkdtemp(prefix="floorhost-p2-"))
    broker = common.start_broker("mosquitto", work)
    host_proc = None
    procs = []
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    try:
        instance = work / "instance"
        instance.mkdir()
        url = f"sqlite:///{instance / 'floorhost.db'}" if args.db == "sqlite" else args.db
        software = default_software()
        egm_ids = [f"BG{i:05d}" for i in range(1, args.terminals + 1)]
        prepare_instance(instance, url, egm_ids + ["TICKET1"], software)
        h = Host(load_settings({"instance": str(instance), "database_url": url, "scheduler": "off"}, environ={}))
        with h.db.begin() as s:
            policy = vouchers.policy_for(h)
            numbers = [vouchers.issue(s, policy, amount_cents=2_000 + i, credit_type="cashable", issued_by="BG00001",
                                      source="terminal", now=h.now()).validation_number for i in range(args.vouchers)]
        h.close()
        host_proc = common.HostProcess(instance, url, broker.url, free_port(), work / "host.log")
        host_proc.start()
        counters = ctx.Array("d", 8)
        from scripts.bench import p1_ingest

        counters[p1_ingest.RATE] = args.rate
        started = ctx.Event()
        result_q = ctx.Queue()
        gen = ctx.Process(target=generator_main, args=(broker.url, "sbg/v1", egm_ids, software, counters, stop,
                                                        started, 0, 1, result_q))  # 0: no backlog bound
        echo = ctx.Process(target=echo_main, args=(broker.url, stop))
        procs = [gen, echo]
        for p in list(procs):
            p.start()
        started.wait(120)
        time.sleep(5)  # warm-up under load
        echo_rtts = measure_echo(broker.url, args.vouchers)
        redeem_rtts, authorized = measure_redeem(broker.url, "sbg/v1", "TICKET1", numbers)
        m = common.scrape(host_proc.url)
        applied = common.sample(m, "floorhost_terminal_messages_total", result="applied")
        r = {
            "terminals": args.terminals, "rate": args.rate, "vouchers": args.vouchers, "authorized": authorized,
            "echo_p50_ms": _percentile(echo_rtts, 0.5) * 1000, "echo_p99_ms": _percentile(echo_rtts, 0.99) * 1000,
            "redeem_p50_ms": _percentile(redeem_rtts, 0.5) * 1000,
            "redeem_p99_ms": _percentile(redeem_rtts, 0.99) * 1000,
            "redeem_mean_ms": statistics.mean(redeem_rtts) * 1000, "samples": len(redeem_rtts),
            "applied_total": applied, "machine": common.machine(), "db": args.db,
        }
        r["slowest"] = sorted(((v * 1000, i) for i, v in enumerate(redeem_rtts)), reverse=True)[:5]
        r["ratio_p99"] = r["redeem_p99_ms"] / r["echo_p99_ms"] if r["echo_p99_ms"] else None
        return r
    finally:
        stop.set()
        for p in procs:
            if p.pid is None:
                continue
            p.join(30)
            if p.is_alive():
                p.kill()
        if host_proc:
            host_proc.stop()
        broker.stop()
        if os.environ.get("FLOORHOST_BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench.p2_voucher")
    p.add_argument("--terminals", type=int, default=2000)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--vouchers", type=int, default=400)
    p.add_argument("--db", default="sqlite")
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args(argv)
    r = run(args)
    verdict = "PASS" if r["ratio_p99"] is not None and r["ratio_p99"] <= 5 and r["redeem_p99_ms"] <= 25 else "MISS"
    print(f"P2 echo_p50_ms={r['echo_p50_ms']:.2f} echo_p99_ms={r['echo_p99_ms']:.2f}")
    print(f"P2 redeem_p50_ms={r['redeem_p50_ms']:.2f} redeem_p99_ms={r['redeem_p99_ms']:.2f} "
          f"ratio_p99={r['ratio_p99']:.2f} target<=5x_and<=25ms {verdict} samples={r['samples']} "
          f"authorized={r['authorized']}/{r['vouchers']}")
    print("P2 slowest (ms, sample #): " + ", ".join(f"{v:.1f} #{i}" for v, i in r["slowest"]))
    if not args.no_docs:
        body = f"""### P2 voucher latency — mosquitto + {r['db']}

`.venv/bin/python -m scripts.bench.p2_voucher --terminals {r['terminals']} --rate {r['rate']:.0f} --vouchers {r['vouchers']}`

- date: {common.today()}
- machine: {r['machine']}
- background: {r['terminals']} terminals at {r['rate']:.0f} msg/s (P1 mix) through Mosquitto into the host

| figure | value |
|---|---|
| baseline: MQTT echo round trip through the same broker, p50 / p99 | {r['echo_p50_ms']:.2f} / {r['echo_p99_ms']:.2f} ms |
| voucher.redeem → voucher.redeem.reply at the terminal, p50 / p99 | {r['redeem_p50_ms']:.2f} / {r['redeem_p99_ms']:.2f} ms ({r['samples']} samples, {r['authorized']} authorized) |
| slowest five round trips (ms, sample #) | {", ".join(f"{v:.1f} #{i}" for v, i in r["slowest"])} |
| **p99 ratio** (target ≤ 5 × baseline and ≤ 25 ms) | **{r['ratio_p99']:.2f} — {verdict}** |
"""
        common.write_section("P2-mosquitto-" + ("sqlite" if r["db"] == "sqlite" else "postgresql"), body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
