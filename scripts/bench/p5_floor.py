"""P5 floor size (spec/performance.md): N terminals connected at once, each with its own MQTT
connection, each sending `hello` then meters every 20 s; all shown `online`; host RSS < 1 GiB.

    .venv/bin/python -m scripts.bench.p5_floor [--terminals 5000] [--broker mosquitto]
        [--processes 2] [--steady 60] [--http-register 300] [--no-docs]

What runs, each in its own process:
  broker     Mosquitto on a free port (`max_connections -1`; in-flight window and queue as in
             common.py), the soft RLIMIT_NOFILE raised to the hard limit first (inherited by
             the broker, the host and the simulators: one descriptor per connection each)
  host       `python -m server.cli serve` on a fresh SQLite instance with N registered, enabled
             MQTT terminals whose software is approved (registered with terminals.registry in
             batches of 500 per transaction: registrations/s is printed); the broker is
             anonymous, so the per-terminal MQTT passwords are not used
  HTTP       --http-register more terminals registered one by one through
             POST /api/v1/terminals (one client, sequential): the spec's >= 50/s
  floor      terminals.simulators.floor.ProcessFloor: --processes child processes, each a
             SimFloor of its share of the N terminals, each terminal its own paho connection
             (500 per selector thread); no game load (rate 0): on connect a terminal publishes
             its retained status, `hello` and a meters snapshot, then meters every 20 s

Figures: the time from the first connect until all N terminals are `online` in the host
(`terminals.comms` in the database, polled every 0.5 s; at the end also checked through
GET /api/v1/terminals with a token); host RSS (VmRSS) before the floor connects, when all are
online and after --steady seconds of steady state; applied/s from
floorhost_terminal_messages_total{result="applied"} against what the floor generated
(whether the host keeps up), and floorhost_gateway_queue_depth sampled every 5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from scripts.bench import common
from tests.support.brokers import free_port

APPLIED = "floorhost_terminal_messages_total"
QUEUE = "floorhost_gateway_queue_depth"
RSS_TARGET_MB = 1024.0
METERS_INTERVAL = 20.0


# ---- setup ---------------------------------------------------------------------------------------

def prepare_instance(instance: Path, database_url: str, egm_ids: list[str], software: dict,
                     batch: int = 500) -> dict[str, Any]:
    """Migrates, approves the software, creates a bench admin, registers and enables the terminals
    (batch per transaction). Returns the admin's credentials and registrations/s."""
    from server import auth, migrate
    from server.audit import SYSTEM
    from server.config import load_settings
    from server.errors import Conflict
    from server.host import Host
    from terminals import registry
    from terminals import software as sw

    h = Host(load_settings({"instance": str(instance), "database_url": database_url, "scheduler": "off"},
                           environ={}))
    password = "Bench-" + secrets.token_urlsafe(16)
    try:
        migrate.upgrade(h.db)
        with h.db.begin() as s:
            try:
                sw.approve(s, SYSTEM, software["name"], software["version"], software["sha256"], h.now())
            except Conflict:
                pass
            auth.create_operator(s, h.settings, SYSTEM, "bench", "admin", password, h.now())
        t0 = time.perf_counter()
        for chunk in range(0, len(egm_ids), batch):
            with h.db.begin() as s:
                for egm_id in egm_ids[chunk:chunk + batch]:
                    reg = registry.register(s, SYSTEM, egm_id, "mqtt", {"bank": "P5"}, {}, h.now())
                    registry.set_enabled(s, SYSTEM, reg.terminal, True, h.now())
        elapsed = time.perf_counter() - t0
        return {"username": "bench", "password": password, "register_per_s": len(egm_ids) / elapsed,
                "register_s": elapsed}
    finally:
        h.db.dispose()


def http_json(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 60.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def http_register(base: str, token: str, egm_ids: list[str]) -> dict[str, Any]:
    """POST /api/v1/terminals one by one; returns registrations/s and failures."""
    failures = 0
    t0 = time.perf_counter()
    for egm_id in egm_ids:
        status, _ = http_json("POST", f"{base}/api/v1/terminals", {"egm_id": egm_id, "protocol": "mqtt",
                                                                   "location": {"bank": "P5-http"}}, token)
        failures += status != 201
    elapsed = time.perf_counter() - t0
    return {"http_register_per_s": len(egm_ids) / elapsed if elapsed else None, "http_register_n": len(egm_ids),
            "http_register_failures": failures}


class OnlineCounter:
    """Counts terminals by comms state straight from the database (read-only)."""

    def __init__(self, database_url: str, prefix: str):
        from sqlalchemy import create_engine

        self.engine = create_engine(database_url)
        self.prefix = prefix

    def count(self) -> int:
        from sqlalchemy import text

        with self.engine.connect() as c:
            return int(c.execute(text("SELECT COUNT(*) FROM terminals WHERE comms = 'online' AND egm_id LIKE :p"),
                                 {"p": self.prefix + "%"}).scalar_one())

    def close(self) -> None:
        self.engine.dispose()


# ---- the run -------------------------------------------------------------------------------------

def run(args) -> dict[str, Any]:
    from terminals.simulators.floor import ProcessFloor, SimFloor
    from terminals.simulators.mqtt_terminal import default_software

    soft, hard = common.raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="floorhost-p5-"))
    instance = work / "instance"
    instance.mkdir(parents=True)
    database_url = f"sqlite:///{instance / 'floorhost.db'}"
    run_id = os.urandom(2).hex().upper()
    prefix = f"P5{run_id}"
    egm_ids = [f"{prefix}{i:05d}" for i in range(1, args.terminals + 1)]
    software = default_software()
    res: dict[str, Any] = {"broker": args.broker, "terminals": args.terminals, "processes": args.processes,
                           "machine": common.machine(), "date": common.today(), "nofile": (soft, hard),
                           "loadavg_start": os.getloadavg()[0], "steady_s": args.steady}
    print(f"P5 setup: terminals={args.terminals} processes={args.processes} nofile soft={soft} hard={hard} "
          f"work={work}", flush=True)
    if soft < args.terminals + 500:
        print(f"P5 WARNING: soft RLIMIT_NOFILE {soft} < terminals + 500: connections will fail", flush=True)
    broker = common.start_broker(args.broker, work, extra_conf="max_connections -1\n")
    host = None
    floor = None
    counter = None
    try:
        prep = prepare_instance(instance, database_url, egm_ids, software, batch=args.register_batch)
        res["register_per_s"], res["register_s"] = prep["register_per_s"], prep["register_s"]
        print(f"P5 registered {args.terminals} terminals (service calls, {args.register_batch} per transaction) "
              f"in {prep['register_s']:.1f}s = {prep['register_per_s']:.0f}/s", flush=True)
        host = common.HostProcess(instance, database_url, broker.url, free_port(), work / "host.log")
        host.start()
        status, body = http_json("POST", f"{host.url}/api/v1/auth/token",
                                 {"username": prep["username"], "password": prep["password"]})
        if status != 200:
            raise RuntimeError(f"token refused: {status} {body}")
        token = body["token"]
        if args.http_register > 0:
            res.update(http_register(host.url, token, [f"P5H{run_id}{i:05d}" for i in range(1, args.http_register + 1)]))
            print(f"P5 HTTP registration: {res['http_register_n']} via POST /api/v1/terminals (one client, "
                  f"sequential) = {res['http_register_per_s']:.0f}/s failures={res['http_register_failures']}",
                  flush=True)
        time.sleep(1.0)
        res["rss_mb_idle"] = common.rss_mb(host.pid)
        res["broker_rss_mb_idle"] = common.rss_mb(common.broker_pid(broker))

        counter = OnlineCounter(database_url, prefix)
        options = dict(egm_ids=egm_ids, rate=0.0, meters_interval=METERS_INTERVAL, per_loop=500,
                       keepalive=args.keepalive, connect_rate=args.connect_rate, fsync=False, prefix="P5")
        if args.processes > 1:
            floor = ProcessFloor(args.processes, args.terminals, broker.url, **options)
        else:
            floor = SimFloor(args.terminals, broker.url, **options)
        m_start = common.scrape(host.url)
        cpu_start = common.cpu_seconds(host.pid)
        t_begin = time.monotonic()
        started: dict[str, Any] = {}
        th = threading.Thread(target=lambda: started.update(connected=floor.start(timeout=args.connect_timeout)),
                              daemon=True)
        th.start()
        online_at = None
        progress = []
        peak_queue = 0.0
        last_print = 0.0
        while time.monotonic() - t_begin < args.online_timeout:
            n = counter.count()
            now = time.monotonic() - t_begin
            try:
                q = common.sample(common.scrape(host.url, timeout=5), QUEUE)
                peak_queue = max(peak_queue, q)
            except OSError:
                q = float("nan")
            progress.append((round(now, 1), n, q))
            if now - last_print >= 5:
                last_print = now
                print(f"P5 t={now:5.1f}s online={n}/{args.terminals} queue_depth={q:.0f} "
                      f"host_rss={common.rss_mb(host.pid):.0f}MiB", flush=True)
            if n >= args.terminals:
                online_at = now
                break
            if host.proc.poll() is not None:
                raise RuntimeError(f"host died:\n{host.log_tail()}")
            time.sleep(0.5)
        th.join(args.connect_timeout + 60)
        res["sim_connected"] = started.get("connected")
        res["online_s"] = online_at
        res["online_max"] = max((n for _, n, _ in progress), default=0)
        res["online_peak_queue"] = peak_queue
        res["rss_mb_online"] = common.rss_mb(host.pid)
        m_online = common.scrape(host.url)
        cpu_online = common.cpu_seconds(host.pid)
        res["connect_phase_applied"] = common.sample(m_online, APPLIED, result="applied") \
            - common.sample(m_start, APPLIED, result="applied")
        res["connect_phase_host_cpu_s"] = (cpu_online - cpu_start) if cpu_start is not None else None
        print(f"P5 online: {res['online_max']}/{args.terminals} "
              f"{'after %.1fs' % online_at if online_at is not None else 'NOT ALL after %.0fs' % args.online_timeout} "
              f"(sim connected={res['sim_connected']}) host_rss={res['rss_mb_online']:.0f}MiB", flush=True)

        # steady state: meters every 20 s from every terminal
        s0 = floor.stats()
        m0, t0, cpu0 = common.scrape(host.url), time.monotonic(), common.cpu_seconds(host.pid)
        bcpu0 = common.cpu_seconds(common.broker_pid(broker))
        samples = []
        while time.monotonic() - t0 < args.steady:
            time.sleep(5.0)
            m = common.scrape(host.url)
            samples.append({"t": round(time.monotonic() - t0, 1), "rss": common.rss_mb(host.pid),
                            "queue": common.sample(m, QUEUE),
                            "applied": common.sample(m, APPLIED, result="applied") - common.sample(m0, APPLIED, result="applied")})
            print(f"P5 steady t={samples[-1]['t']:5.1f}s rss={samples[-1]['rss']:.0f}MiB "
                  f"queue_depth={samples[-1]['queue']:.0f} applied={samples[-1]['applied']:.0f} "
                  f"online={counter.count()}", flush=True)
        s1 = floor.stats()
        m1, t1, cpu1 = common.scrape(host.url), time.monotonic(), common.cpu_seconds(host.pid)
        bcpu1 = common.cpu_seconds(common.broker_pid(broker))
        elapsed = t1 - t0
        applied = common.sample(m1, APPLIED, result="applied") - common.sample(m0, APPLIED, result="applied")
        res.update(
            steady_window_s=elapsed,
            steady_applied_per_s=applied / elapsed,
            steady_generated_per_s=(s1["generated"] - s0["generated"]) / elapsed,
            expected_meters_per_s=args.terminals / METERS_INTERVAL,
            # Backlog: messages the floor generated (each seq once) that the host has not applied or
            # rejected yet. Duplicates are not in it: a terminal whose request got no reply within
            # 5 s sends the same seq again, and the host drops the copy as a duplicate.
            backlog_start=int(s0["generated"]) - int(sum(common.sample(m0, APPLIED, result=r) for r in ("applied", "rejected"))),
            backlog_end=int(s1["generated"]) - int(sum(common.sample(m1, APPLIED, result=r) for r in ("applied", "rejected"))),
            duplicates_connect=common.sample(m0, APPLIED, result="duplicate"),
            duplicates_steady=common.sample(m1, APPLIED, result="duplicate") - common.sample(m0, APPLIED, result="duplicate"),
            sim_sent_connect=s0["sent"], sim_generated_connect=s0["generated"],
            sim_outbox_end=s1["outbox"],
            queue_depth_samples=[x["queue"] for x in samples],
            rss_samples=[x["rss"] for x in samples],
            rss_mb_steady=common.rss_mb(host.pid),
            host_cpu_pct=100 * (cpu1 - cpu0) / elapsed if cpu0 is not None and cpu1 is not None else None,
            broker_cpu_pct=100 * (bcpu1 - bcpu0) / elapsed if bcpu0 is not None and bcpu1 is not None else None,
            broker_rss_mb=common.rss_mb(common.broker_pid(broker)),
            online_end=counter.count(),
            rejected_total=common.sample(m1, APPLIED, result="rejected"),
            sim_connected_end=s1["connected"],
        )
        # the operator's view: GET /api/v1/terminals
        t_api = time.perf_counter()
        status, listing = http_json("GET", f"{host.url}/api/v1/terminals", token=token, timeout=120)
        res["api_list_s"] = time.perf_counter() - t_api
        if status == 200:
            mine = [t for t in listing if t["egm_id"].startswith(prefix)]
            res["api_online"] = sum(1 for t in mine if t["state"] not in ("offline", "unknown"))
            res["api_states"] = {st: sum(1 for t in mine if t["state"] == st) for st in {t["state"] for t in mine}}
        else:
            res["api_online"] = None
            res["api_error"] = f"{status} {listing}"
        print(f"P5 GET /api/v1/terminals: {status} in {res['api_list_s']:.2f}s states={res.get('api_states')}",
              flush=True)
    finally:
        common.stop_floor(floor, "P5")
        if counter is not None:
            counter.close()
        if host is not None:
            res["host_log_warnings"] = _count_log(work / "host.log")
            host.stop()
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()[0]
    return res


def _count_log(path: Path) -> dict[str, int]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    return {"WARNING": text.count("WARNING"), "ERROR": text.count("ERROR"), "Traceback": text.count("Traceback")}


def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def verdicts(r: dict) -> tuple[str, str, str]:
    all_online = r.get("online_s") is not None and r.get("online_end", 0) >= r["terminals"]
    online = ("PASS" if r["terminals"] >= 5000 else f"all {r['terminals']} online, below the 5000 of the target") \
        if all_online else "MISS"
    rss = "PASS" if r.get("rss_mb_steady") is not None and max([r["rss_mb_steady"]] + r.get("rss_samples", [])) \
        < RSS_TARGET_MB else "MISS"
    # Keeps up: over the window it applied at least what the floor generated, the backlog at the end is
    # below a second's worth, and the gateway queue stayed short in the second half of the window.
    qs = r.get("queue_depth_samples") or [0]
    keeps_up = "yes" if (r.get("steady_applied_per_s") or 0) >= 0.95 * (r.get("steady_generated_per_s") or 0) \
        and r.get("backlog_end", 1e9) <= max(r.get("expected_meters_per_s", 0), 50) \
        and max(qs[len(qs) // 2:]) < 500 else "NO"
    return online, rss, keeps_up


def summary_lines(r: dict) -> list[str]:
    online, rss, keeps_up = verdicts(r)
    return [
        f"P5 terminals={r['terminals']} online={r.get('online_end')} time_to_all_online_s={_fmt(r.get('online_s'), 1)} "
        f"api_online={_fmt(r.get('api_online'))} {online} (target 5000)",
        f"P5 host_rss_mb idle={_fmt(r.get('rss_mb_idle'), 1)} all_online={_fmt(r.get('rss_mb_online'), 1)} "
        f"steady={_fmt(r.get('rss_mb_steady'), 1)} max={_fmt(max(r.get('rss_samples') or [0]), 1)} target<1024 {rss}",
        f"P5 steady applied_per_s={_fmt(r.get('steady_applied_per_s'), 1)} generated_per_s="
        f"{_fmt(r.get('steady_generated_per_s'), 1)} expected_meters_per_s={_fmt(r.get('expected_meters_per_s'), 1)} "
        f"backlog {r.get('backlog_start')}->{r.get('backlog_end')} duplicates connect={_fmt(r.get('duplicates_connect'))} steady={_fmt(r.get('duplicates_steady'))} queue_depth_max={_fmt(max(r.get('queue_depth_samples') or [0]))} "
        f"keeps_up={keeps_up} host_cpu_pct={_fmt(r.get('host_cpu_pct'))} broker_cpu_pct={_fmt(r.get('broker_cpu_pct'))}",
        f"P5 register_per_s={_fmt(r.get('register_per_s'))} (service, 500/transaction) "
        f"http_register_per_s={_fmt(r.get('http_register_per_s'))} (POST /api/v1/terminals, n={r.get('http_register_n')}) "
        f"target>=50 {'PASS' if (r.get('http_register_per_s') or 0) >= 50 else 'MISS'}",
    ]


def doc_section(r: dict, note: str) -> str:
    online, rss, keeps_up = verdicts(r)
    qs = r.get("queue_depth_samples") or []
    rs = r.get("rss_samples") or []
    rows = [
        ("terminals connected (sim: each its own paho connection)",
         f"{_fmt(r.get('sim_connected_end'))} / {r['terminals']} ({r['processes']} simulator processes)"),
        ("**online in the host** (DB `terminals.comms`; GET /api/v1/terminals)",
         f"**{_fmt(r.get('online_end'))} / {r['terminals']}; API: {_fmt(r.get('api_online'))} — {online}**"),
        ("time from the first connect until all are online",
         f"{_fmt(r.get('online_s'), 1)} s" if r.get("online_s") is not None
         else f"not all within the timeout (max {r.get('online_max')})"),
        ("host RSS: N registered, idle → all online → after the steady window",
         f"{_fmt(r.get('rss_mb_idle'), 1)} → {_fmt(r.get('rss_mb_online'), 1)} → {_fmt(r.get('rss_mb_steady'), 1)} MiB"),
        ("**host RSS, steady state** (target < 1 GiB)",
         f"**max {_fmt(max(rs) if rs else None, 1)} MiB — {rss}**"),
        (f"steady window ({_fmt(r.get('steady_window_s'))} s): applied/s vs generated/s (N / 20 s = "
         f"{_fmt(r.get('expected_meters_per_s'))} meters/s expected)",
         f"{_fmt(r.get('steady_applied_per_s'), 1)} / {_fmt(r.get('steady_generated_per_s'), 1)} msg/s"),
        ("host keeps up (backlog = generated − handled; gateway queue depth every 5 s)",
         f"{keeps_up}: backlog {r.get('backlog_start')} → {r.get('backlog_end')}; queue depth max "
         f"{_fmt(max(qs) if qs else None)}, last {_fmt(qs[-1] if qs else None)}"),
        ("connect phase (until all online): applied (hello + meters; status messages not counted), host CPU",
         f"{_fmt(r.get('connect_phase_applied'))} applied, {_fmt(r.get('connect_phase_host_cpu_s'), 1)} CPU-s; "
         f"gateway queue depth peak {_fmt(r.get('online_peak_queue'))}; backlog when all were online "
         f"{r.get('backlog_start')}"),
        ("hello re-sent for want of a reply within 5 s (duplicates dropped by the host): connect phase / steady",
         f"{_fmt(r.get('duplicates_connect'))} / {_fmt(r.get('duplicates_steady'))}"),
        ("host / broker CPU in the steady window", f"{_fmt(r.get('host_cpu_pct'))} % / {_fmt(r.get('broker_cpu_pct'))} % of one core"),
        ("broker RSS idle → steady", f"{_fmt(r.get('broker_rss_mb_idle'), 1)} → {_fmt(r.get('broker_rss_mb'), 1)} MiB"),
        ("GET /api/v1/terminals (all terminals) response time", f"{_fmt(r.get('api_list_s'), 2)} s"),
        (f"registration, service calls ({r.get('register_batch', 500)} per transaction)",
         f"{_fmt(r.get('register_per_s'))} /s ({r['terminals']} in {_fmt(r.get('register_s'), 1)} s)"),
        ("**registration through the API** (POST /api/v1/terminals, one client, sequential; target ≥ 50/s)",
         f"**{_fmt(r.get('http_register_per_s'))} /s (n={r.get('http_register_n')}, failures "
         f"{r.get('http_register_failures')}) — {'PASS' if (r.get('http_register_per_s') or 0) >= 50 else 'MISS'}**"),
        ("host log", ", ".join(f"{k} {v}" for k, v in (r.get("host_log_warnings") or {}).items()) or "n/a"),
    ]
    out = [f"### P5 floor size — {r['terminals']} terminals", "",
           f"`.venv/bin/python -m scripts.bench.p5_floor --terminals {r['terminals']} --broker {r['broker']} "
           f"--processes {r['processes']} --steady {r['steady_s']:g}`", "",
           f"- date: {r['date']}",
           f"- machine: {r['machine']} (load average {r['loadavg_start']:.1f} at start, {r['loadavg_end']:.1f} at end)",
           f"- broker: {r['broker']} (`max_connections -1`), DB: sqlite, RLIMIT_NOFILE soft/hard "
           f"{r['nofile'][0]}/{r['nofile'][1]}; each terminal: retained status, hello and meters on connect, "
           f"then meters every 20 s (no play)", "",
           ]
    return common.table_section(out, rows, note)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench.p5_floor", description=__doc__.split("\n\n")[0])
    p.add_argument("--terminals", type=int, default=5000)
    p.add_argument("--broker", choices=("mosquitto",), default="mosquitto")
    p.add_argument("--processes", type=int, default=2, help="simulator processes (ProcessFloor); 1: SimFloor in process")
    p.add_argument("--steady", type=float, default=60.0, help="steady-state window after all are online (s)")
    p.add_argument("--online-timeout", type=float, default=300.0, help="give up waiting for all online after (s)")
    p.add_argument("--connect-timeout", type=float, default=120.0, help="the floor's own wait for CONNACKs (s)")
    p.add_argument("--connect-rate", type=float, default=1000.0, help="connects/s per simulator process")
    p.add_argument("--keepalive", type=int, default=30)
    p.add_argument("--register-batch", type=int, default=500)
    p.add_argument("--http-register", type=int, default=300,
                   help="terminals registered through POST /api/v1/terminals (0: skip)")
    p.add_argument("--note", default="")
    p.add_argument("--docs-key", default="P5", help="section key in docs/benchmarks.md")
    p.add_argument("--no-docs", dest="docs", action="store_false")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    r = run(args)
    r["register_batch"] = args.register_batch
    for line in summary_lines(r):
        print(line, flush=True)
    if args.docs:
        common.write_section(args.docs_key, doc_section(r, args.note))
        print(f"P5 wrote {common.BENCHMARKS_MD}", flush=True)
    online, rss, _ = verdicts(r)
    return 0 if online != "MISS" and rss == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
