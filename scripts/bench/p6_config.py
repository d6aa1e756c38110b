"""P6 config push (spec/performance.md): one signed package to N simulated terminals, all `installed`;
target < 10 s for 1,000.

    .venv/bin/python -m scripts.bench.p6_config [--terminals 1000] [--processes 2] [--no-docs]

What runs, each in its own process:
  broker     Mosquitto on a free port (common.start_broker)
  host       `python -m server.cli serve` on a fresh SQLite instance with the scheduler ON (the
             deployments job re-drives what a lost message left behind every 2 s); N registered,
             enabled MQTT terminals with approved software (scripts.bench.p5_floor.prepare_instance)
  floor      ProcessFloor: --processes child processes of SimTerminals, each its own paho connection,
             no play (idle), periodic meters off; they verify sha256 and the Ed25519 signature with
             the key from hello.reply, and report received / verified / installed

The clock starts just before POST /api/v1/deployments (the package is stored before) and stops when
GET /api/v1/deployments/{id} shows all N `installed`. In between, for every terminal: the host's
meters request (rules.md 25: meters first), the terminal's meters, the push (published after the
commit of the meters), and three config.status messages. Run it once: the machine is shared.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.bench import common
from scripts.bench.p5_floor import OnlineCounter, http_json, prepare_instance
from tests.support.brokers import free_port

TARGET_S = 10.0
QUEUE = "floorhost_gateway_queue_depth"


def add_manager(instance: Path, database_url: str) -> dict[str, str]:
    import secrets

    from server import auth
    from server.audit import SYSTEM
    from server.config import load_settings
    from server.host import Host

    h = Host(load_settings({"instance": str(instance), "database_url": database_url, "scheduler": "off"},
                           environ={}))
    password = "Bench-" + secrets.token_urlsafe(16)
    try:
        with h.db.begin() as s:
            auth.create_operator(s, h.settings, SYSTEM, "bench_mgr", "manager", password, h.now())
    finally:
        h.db.dispose()
    return {"username": "bench_mgr", "password": password}


def token(base: str, creds: dict) -> str:
    status, body = http_json("POST", f"{base}/api/v1/auth/token", {"username": creds["username"],
                                                                  "password": creds["password"]})
    if status != 200:
        raise RuntimeError(f"token refused: {status} {body}")
    return body["token"]


def run(args) -> dict[str, Any]:
    from terminals.simulators.floor import ProcessFloor, SimFloor
    from terminals.simulators.mqtt_terminal import default_software

    common.raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="floorhost-p6-"))
    instance = work / "instance"
    instance.mkdir(parents=True)
    database_url = f"sqlite:///{instance / 'floorhost.db'}"
    prefix = f"P6{os.urandom(2).hex().upper()}"
    egm_ids = [f"{prefix}{i:05d}" for i in range(1, args.terminals + 1)]
    res: dict[str, Any] = {"terminals": args.terminals, "processes": args.processes, "machine": common.machine(),
                           "date": common.today(), "loadavg_start": os.getloadavg()[0]}
    broker = common.start_broker("mosquitto", work, extra_conf="max_connections -1\n")
    host = floor = counter = None
    try:
        admin = prepare_instance(instance, database_url, egm_ids, default_software())
        manager = add_manager(instance, database_url)
        host = common.HostProcess(instance, database_url, broker.url, free_port(), work / "host.log",
                                  extra_env={"FLOORHOST_SCHEDULER": "on"})
        host.start()
        admin_token, manager_token = token(host.url, admin), token(host.url, manager)
        counter = OnlineCounter(database_url, prefix)
        options = dict(egm_ids=egm_ids, rate=0.0, meters_interval=None, per_loop=500, keepalive=30,
                       connect_rate=1000.0, fsync=False, prefix="P6")
        floor = ProcessFloor(args.processes, args.terminals, broker.url, **options) if args.processes > 1 \
            else SimFloor(args.terminals, broker.url, **options)
        floor.start(timeout=120)
        deadline = time.monotonic() + 120
        while counter.count() < args.terminals and time.monotonic() < deadline:
            time.sleep(0.5)
        res["online"] = counter.count()
        # Let every hello.reply (it carries the public key) land before the push.
        while time.monotonic() < deadline:
            if common.sample(common.scrape(host.url), QUEUE) == 0 and floor.stats()["outbox"] == 0:
                break
            time.sleep(0.5)
        time.sleep(2.0)
        print(f"P6 {res['online']}/{args.terminals} online", flush=True)

        status, pkg = http_json("POST", f"{host.url}/api/v1/config-packages", {
            "name": "p6-bench", "version": prefix,
            "games": [{"theme": "Bench Sevens", "paytable_id": "6", "rtp_bp": 9300, "denoms_cents": [1, 5, 25],
                       "max_bet_cents": 500}],
            "settings": {"attract_mode": True, "volume": 4}}, admin_token)
        if status != 201:
            raise RuntimeError(f"package refused: {status} {pkg}")
        t0 = time.monotonic()
        status, dep = http_json("POST", f"{host.url}/api/v1/deployments",
                                {"package_id": pkg["id"], "terminals": [{"bank": "P5"}], "apply": "idle"},
                                manager_token, timeout=120)
        res["post_s"] = time.monotonic() - t0
        if status != 201:
            raise RuntimeError(f"deployment refused: {status} {dep}")
        progress = []
        counts: dict[str, int] = {}
        while time.monotonic() - t0 < args.timeout:
            status, body = http_json("GET", f"{host.url}/api/v1/deployments/{dep['id']}", token=manager_token)
            counts = body.get("counts", {}) if status == 200 else {}
            elapsed = time.monotonic() - t0
            progress.append((round(elapsed, 2), dict(counts)))
            if counts.get("installed", 0) >= args.terminals:
                res["all_installed_s"] = elapsed
                break
            time.sleep(0.2)
        res["final_counts"] = counts
        res["first_installed_s"] = next((t for t, c in progress if c.get("installed")), None)
        res["half_installed_s"] = next((t for t, c in progress if c.get("installed", 0) >= args.terminals / 2), None)
        res["progress"] = progress[:: max(1, len(progress) // 12)]
        res["rss_mb"] = common.rss_mb(host.pid)
        for t, c in res["progress"]:
            print(f"P6 t={t:6.2f}s {c}", flush=True)
    finally:
        common.stop_floor(floor, "P6")
        if counter is not None:
            counter.close()
        if host is not None:
            log = (work / "host.log").read_text(errors="replace") if (work / "host.log").exists() else ""
            res["host_log"] = {k: log.count(k) for k in ("WARNING", "ERROR", "Traceback")}
            host.stop()
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()[0]
    return res


def doc_section(r: dict, note: str) -> str:
    t = r.get("all_installed_s")
    verdict = "PASS" if t is not None and t < TARGET_S and r["terminals"] >= 1000 else "MISS"
    fmt = lambda v, d=2: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
    rows = [
        ("terminals online before the push", f"{r.get('online')} / {r['terminals']} ({r['processes']} simulator processes)"),
        ("POST /api/v1/deployments (create + meters requests to all, after commit)", f"{fmt(r.get('post_s'))} s"),
        ("first terminal `installed`", f"{fmt(r.get('first_installed_s'))} s"),
        ("half `installed`", f"{fmt(r.get('half_installed_s'))} s"),
        (f"**all {r['terminals']} `installed`** (target < {TARGET_S:g} s)", f"**{fmt(t)} s — {verdict}**"),
        ("final per-state counts", str(r.get("final_counts"))),
        ("host RSS at the end", f"{fmt(r.get('rss_mb'), 1)} MiB"),
        ("host log", ", ".join(f"{k} {v}" for k, v in (r.get("host_log") or {}).items())),
    ]
    header = [f"### P6 config push — {r['terminals']} terminals", "",
              f"`.venv/bin/python -m scripts.bench.p6_config --terminals {r['terminals']} --processes {r['processes']}`",
              "",
              f"- date: {r['date']}",
              f"- machine: {r['machine']} (load average {r['loadavg_start']:.1f} at start, {r['loadavg_end']:.1f} "
              "at end; shared with other engineers' work, run once)",
              "- broker: mosquitto, DB: sqlite, scheduler on; per terminal: meters request → meters → signed "
              "`config.push` (apply idle) → `received`, `verified`, `installed`", ""]
    return common.table_section(header, rows, note)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench.p6_config", description=__doc__.split("\n\n")[0])
    p.add_argument("--terminals", type=int, default=1000)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--note", default="")
    p.add_argument("--no-docs", dest="docs", action="store_false")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    r = run(args)
    print(f"P6 all_installed_s={r.get('all_installed_s')} counts={r.get('final_counts')}", flush=True)
    if args.docs:
        common.write_section("P6", doc_section(r, args.note))
        print(f"P6 wrote {common.BENCHMARKS_MD}", flush=True)
    t = r.get("all_installed_s")
    return 0 if t is not None and t < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
