"""Where the host's ingest time goes: cProfile of MqttGateway.process on synthetic P1 batches, in process.

    .venv/bin/python -m scripts.bench.p1_profile [--terminals 200] [--batches 10] [--batch 1000] [--db sqlite|URL]

No broker: the gateway is built but never started and process() is driven directly
(as tests/terminals/test_gateway_fuzz.py does), with the same message mix as p1_ingest.
Prints msgs/s without and with the profiler, then the top functions by own and cumulative time.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench.p1_ingest import MixSource, prepare_instance


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench.p1_profile")
    p.add_argument("--terminals", type=int, default=200)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--db", default="sqlite")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args(argv)

    from server.config import load_settings
    from server.host import Host
    from terminals.gateway import Inbound, MqttGateway
    from terminals.simulators.mqtt_terminal import default_software

    work = Path(tempfile.mkdtemp(prefix="floorhost-p1prof-"))
    try:
        instance = work / "instance"
        instance.mkdir()
        url = f"sqlite:///{instance / 'floorhost.db'}" if args.db == "sqlite" else args.db
        egm_ids = [f"PF{i:05d}" for i in range(1, args.terminals + 1)]
        software = default_software()
        prepare_instance(instance, url, egm_ids, software)
        host = Host(load_settings({"instance": str(instance), "database_url": url, "scheduler": "off"}, environ={}))
        gw = MqttGateway(host, "mqtt://127.0.0.1:1")  # never started: no client, no replies, no acks
        src = MixSource(egm_ids, software)
        mid = 0

        def batch_of(items):
            nonlocal mid
            out = []
            for topic, payload in items:
                mid += 1
                out.append(Inbound(topic, payload, mid, 1, time.monotonic()))
            return out

        gw.process(batch_of(src.hello(i) for i in range(len(egm_ids))))
        gw.process(batch_of(src.next() for _ in range(args.batch)))  # warm-up (caches, first snapshots)

        def run(n):
            batches = [batch_of(src.next() for _ in range(args.batch)) for _ in range(n)]
            t0 = time.perf_counter()
            for b in batches:
                gw.process(b)
            return n * args.batch / (time.perf_counter() - t0)

        plain = run(args.batches)
        prof = cProfile.Profile()
        prof.enable()
        profiled = run(args.batches)
        prof.disable()
        m = host.metrics
        print(f"P1-profile msgs_per_s={plain:.0f} (under cProfile {profiled:.0f}) batch={args.batch} "
              f"terminals={args.terminals} db={'sqlite' if args.db == 'sqlite' else 'url'} "
              f"applied={m.value('floorhost_terminal_messages_total', result='applied'):.0f} "
              f"rejected={m.value('floorhost_terminal_messages_total', result='rejected'):.0f}")
        root = str(Path(__file__).resolve().parents[2])
        for title, key, restrict in (("all functions by own time", "tottime", ()),
                                     ("all functions by cumulative time", "cumulative", ()),
                                     ("project functions by cumulative time", "cumulative", (root + "/(?!.venv)",))):
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(key).print_stats(*restrict, args.top)
            print(f"---- top {args.top}: {title}")
            print(out.getvalue().replace(root + "/", ""))
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_callers(r"session.py:\d+\(_flush\)|sqlite3.Cursor")
        print("---- who flushes / who hits SQLite")
        print(out.getvalue().replace(root + "/", ""))
        host.db.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
