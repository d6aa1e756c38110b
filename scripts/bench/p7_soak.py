"""P7 memory (spec/performance.md): host RSS growth over a 10-minute P1 soak, < 10 % after warm-up.

    .venv/bin/python -m scripts.bench.p7_soak [--minutes 10] [--rate R] [--fraction 0.65]
        [--terminals 200] [--broker mosquitto] [--no-docs]

What runs, each in its own process (the P1 set-up, scripts/bench/p1_ingest.py):
  broker     Mosquitto on a free port (in-flight window 2000, queue unbounded: see common.py)
  host       `python -m server.cli serve` on a fresh SQLite instance, N registered, enabled MQTT
             terminals with approved software
  generator  the P1 generator process (a hello per terminal, then 70 % game.end, 20 % meters,
             10 % events), rate-limited

The soak runs at a sustainable rate: --rate, or --fraction of the host's capacity measured
first for --probe seconds with the generator unthrottled (a short backlog bound, so the
broker's queue is drained quickly after the probe). Then --minutes of load at that rate,
sampling host RSS (VmRSS) every 10 s. Growth = RSS at the end vs RSS after the warm-up
(--warmup-minutes, 2 by default) of the soak; target < 10 %.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.bench import common
from scripts.bench.p1_ingest import (APPLIED, CONSUMED, PUBLISHED, RATE, Scraper, generator_main,
                                     prepare_instance)
from tests.support.brokers import free_port

TARGET_GROWTH = 0.10


def run(args) -> dict[str, Any]:
    from terminals.simulators.mqtt_terminal import default_software

    common.raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="floorhost-p7-"))
    instance = work / "instance"
    instance.mkdir(parents=True)
    database_url = f"sqlite:///{instance / 'floorhost.db'}"
    run_id = os.urandom(2).hex().upper()
    egm_ids = [f"P7{run_id}{i:05d}" for i in range(1, args.terminals + 1)]
    software = default_software()
    res: dict[str, Any] = {"broker": args.broker, "terminals": args.terminals, "minutes": args.minutes,
                           "machine": common.machine(), "date": common.today(), "loadavg_start": os.getloadavg()[0],
                           "warmup_minutes": args.warmup_minutes}
    broker = common.start_broker(args.broker, work)
    ctx = mp.get_context("spawn")
    gen = host = scraper = None
    stop = None
    try:
        prepare_instance(instance, database_url, egm_ids, software)
        host = common.HostProcess(instance, database_url, broker.url, free_port(), work / "host.log")
        host.start()
        res["rss_mb_fresh"] = common.rss_mb(host.pid)
        counters = ctx.Array("q", 4, lock=False)
        counters[RATE] = int(args.rate or 0)
        stop, started, result_q = ctx.Event(), ctx.Event(), ctx.Queue()
        scraper = Scraper(counters)
        scraper.switch(host)
        scraper.start()
        # a short backlog bound while probing: the broker's queue must drain fast once the rate drops
        gen = ctx.Process(target=generator_main, daemon=True,
                          args=(broker.url, "sbg/v1", egm_ids, software, counters, stop, started,
                                args.max_backlog, 7, result_q))
        gen.start()
        if not started.wait(60):
            raise RuntimeError("generator did not start")
        if not args.rate:
            time.sleep(5.0)
            m0, t0 = common.scrape(host.url), time.monotonic()
            time.sleep(args.probe)
            m1, t1 = common.scrape(host.url), time.monotonic()
            capacity = (common.sample(m1, APPLIED, result="applied")
                        - common.sample(m0, APPLIED, result="applied")) / (t1 - t0)
            res["capacity_per_s"] = capacity
            rate = max(1, int(args.fraction * capacity))
            print(f"P7 probe: host capacity {capacity:.0f} applied/s over {t1 - t0:.0f}s; soak at "
                  f"{args.fraction:.0%} = {rate}/s", flush=True)
            counters[RATE] = rate
            deadline = time.monotonic() + 120
            while counters[PUBLISHED] - counters[CONSUMED] > max(2 * rate, 500) and time.monotonic() < deadline:
                time.sleep(0.5)
        else:
            rate = int(args.rate)
            res["capacity_per_s"] = None
        res["rate"] = rate

        # the soak
        samples: list[tuple[float, float]] = []
        backlog: list[int] = []
        applied_at: list[tuple[float, int]] = []
        m_start, t_start = common.scrape(host.url), time.monotonic()
        cpu_start = common.cpu_seconds(host.pid)
        total = args.minutes * 60
        next_at = t_start
        while True:
            now = time.monotonic()
            if now >= next_at:
                samples.append((round(now - t_start, 1), common.rss_mb(host.pid)))
                backlog.append(counters[PUBLISHED] - counters[CONSUMED])
                applied_at.append((round(now - t_start, 1), counters[CONSUMED]))
                if len(samples) % 6 == 1:
                    print(f"P7 t={now - t_start:6.0f}s rss={samples[-1][1]:.1f}MiB backlog={backlog[-1]} "
                          f"applied={counters[CONSUMED]}", flush=True)
                next_at += args.sample_every
            if now - t_start >= total:
                break
            if host.proc.poll() is not None:
                raise RuntimeError(f"host died:\n{host.log_tail()}")
            time.sleep(min(1.0, max(0.0, next_at - time.monotonic())))
        m_end, t_end = common.scrape(host.url), time.monotonic()
        cpu_end = common.cpu_seconds(host.pid)
        elapsed = t_end - t_start
        warm = args.warmup_minutes * 60
        after_warm = [s for s in samples if s[0] >= warm]
        rss_warm = after_warm[0][1] if after_warm else samples[0][1]
        rss_end = samples[-1][1]
        res.update(
            soak_s=elapsed, samples=samples, backlog=backlog,
            # applied/s minute by minute: a host that cannot sustain the rate shows it here
            # (the generator then holds the backlog at --max-backlog)
            applied_by_minute=[round((b[1] - a[1]) / (b[0] - a[0])) for a, b in
                               zip(applied_at[::6], applied_at[6::6]) if b[0] > a[0]],
            saturated=max(backlog[len(backlog) // 2:]) >= 0.8 * args.max_backlog,
            applied_per_s=(common.sample(m_end, APPLIED, result="applied")
                           - common.sample(m_start, APPLIED, result="applied")) / elapsed,
            applied_total=common.sample(m_end, APPLIED, result="applied"),
            rejected=common.sample(m_end, APPLIED, result="rejected"),
            rss_mb_start=samples[0][1], rss_mb_warm=rss_warm, rss_mb_end=rss_end,
            rss_mb_min=min(s[1] for s in samples), rss_mb_max=max(s[1] for s in samples),
            rss_mb_max_after_warm=max(s[1] for s in after_warm) if after_warm else None,
            growth=(rss_end - rss_warm) / rss_warm,
            host_cpu_pct=100 * (cpu_end - cpu_start) / elapsed if cpu_start is not None else None,
            backlog_max=max(backlog), backlog_end=backlog[-1],
            db_mb=sum(f.stat().st_size for f in instance.glob("floorhost.db*")) / 2**20,
        )
        # growth over the second half alone: is it still climbing?
        half = [s for s in samples if s[0] >= total / 2]
        if half:
            res["growth_second_half"] = (rss_end - half[0][1]) / half[0][1]
    finally:
        if stop is not None:
            stop.set()
        if scraper:
            scraper.stop_evt.set()
        if gen is not None:
            gen.join(5)
            if gen.is_alive():
                gen.kill()
        if host:
            host.stop()
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()[0]
    return res


def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def verdict(r: dict) -> str:
    return "PASS" if r["growth"] < TARGET_GROWTH else "MISS"


def summary_lines(r: dict) -> list[str]:
    return [
        f"P7 rss_mb warm({r['warmup_minutes']:g}min)={r['rss_mb_warm']:.1f} end={r['rss_mb_end']:.1f} "
        f"growth={100 * r['growth']:.1f}% target<10% {verdict(r)}",
        f"P7 rss_mb fresh={_fmt(r['rss_mb_fresh'], 1)} soak_start={r['rss_mb_start']:.1f} min={r['rss_mb_min']:.1f} "
        f"max={r['rss_mb_max']:.1f} growth_second_half={_fmt(100 * r['growth_second_half'] if 'growth_second_half' in r else None, 1)}%",
        f"P7 rate={r['rate']}/s capacity={_fmt(r['capacity_per_s'])}/s applied_per_s={r['applied_per_s']:.0f} "
        f"applied_total={r['applied_total']:.0f} backlog_max={r['backlog_max']} backlog_end={r['backlog_end']} "
        f"host_cpu_pct={_fmt(r['host_cpu_pct'])} db_mb={r['db_mb']:.0f} soak_s={r['soak_s']:.0f}",
    ]


def doc_section(r: dict, note: str) -> str:
    samples = r["samples"]
    by_minute = [s for s in samples if abs(s[0] / 60 - round(s[0] / 60)) * 60 < 5]
    trace = ", ".join(f"{s[0] / 60:.0f}′ {s[1]:.0f}" for s in by_minute)
    rows = [
        ("load", f"{r['rate']} msg/s offered (" + (f"{r['rate'] / r['capacity_per_s']:.0%} of the {r['capacity_per_s']:.0f}/s "
                                                   "measured just before" if r.get("capacity_per_s") else "--rate")
         + f"), {r['applied_per_s']:.0f} applied/s over {r['soak_s'] / 60:.1f} min, {r['applied_total']:.0f} applied "
           f"in all; backlog max {r['backlog_max']}, at the end {r['backlog_end']}"),
        ("applied/s minute by minute", ", ".join(str(x) for x in r.get("applied_by_minute", []))
         + (" — the host did NOT sustain the offered rate (backlog held at the generator's bound)"
            if r.get("saturated") else "")),
        ("host RSS: fresh host → soak start", f"{_fmt(r['rss_mb_fresh'], 1)} → {r['rss_mb_start']:.1f} MiB"),
        (f"host RSS after warm-up ({r['warmup_minutes']:g} min) → end", f"{r['rss_mb_warm']:.1f} → {r['rss_mb_end']:.1f} MiB"),
        ("**growth after warm-up** (target < 10 %)", f"**{100 * r['growth']:.1f} % — {verdict(r)}**"),
        ("growth over the second half alone", f"{_fmt(100 * r['growth_second_half'] if 'growth_second_half' in r else None, 1)} %"),
        ("RSS min / max over the soak (samples every 10 s)", f"{r['rss_mb_min']:.1f} / {r['rss_mb_max']:.1f} MiB "
         f"({len(samples)} samples)"),
        ("RSS by minute (MiB)", trace),
        ("host CPU", f"{_fmt(r['host_cpu_pct'])} % of one core"),
        ("database size at the end (db + WAL)", f"{r['db_mb']:.0f} MiB"),
    ]
    out = [f"### P7 memory — {r['minutes']:g}-minute P1 soak, {r['broker']} + sqlite", "",
           f"`.venv/bin/python -m scripts.bench.p7_soak --minutes {r['minutes']:g}"
           f"{'' if r.get('capacity_per_s') else ' --rate %d' % r['rate']}`", "",
           f"- date: {r['date']}",
           f"- machine: {r['machine']} (load average {r['loadavg_start']:.1f} at start, {r['loadavg_end']:.1f} at end)",
           f"- broker: {r['broker']}, DB: sqlite, terminals: {r['terminals']}, P1 mix", "",
           ]
    return common.table_section(out, rows, note)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench.p7_soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=0.0, help="msgs/s of the soak (0: --fraction of a measured capacity)")
    p.add_argument("--fraction", type=float, default=0.65)
    p.add_argument("--probe", type=float, default=20.0, help="seconds of the capacity probe")
    p.add_argument("--warmup-minutes", type=float, default=2.0)
    p.add_argument("--sample-every", type=float, default=10.0)
    p.add_argument("--terminals", type=int, default=200)
    p.add_argument("--broker", choices=("mosquitto", "embedded"), default="mosquitto")
    p.add_argument("--max-backlog", type=int, default=3000)
    p.add_argument("--note", default="")
    p.add_argument("--no-docs", dest="docs", action="store_false")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    r = run(args)
    for line in summary_lines(r):
        print(line, flush=True)
    if args.docs:
        common.write_section("P7", doc_section(r, args.note))
        print(f"P7 wrote {common.BENCHMARKS_MD}", flush=True)
    return 0 if verdict(r) == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
