"""P4 SAS line (spec/performance.md): 8 emulated EGMs on one pty line, polled by the host's SasHost.

Figures, measured at the EGM end of the line (what the cabinets see):
- per-EGM poll period (time between two messages to one EGM), p50 / p99 / min / max, against the
  configured 200 ms (target: p99 within ±10 %);
- exception 57 → LP 58: from the general poll answered 57 to the LP 58 arriving at that EGM
  (target: within 2 periods + 50 ms; LP 57 and LP 58 each take the EGM's next slot).
Baseline in the same run: the configured period, and the wire time of the messages at 19200 baud.

    .venv/bin/python -m scripts.bench.p4_sas [--seconds 30] [--egms 8] [--no-write]
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

BAUD = 19200
BITS = 11  # start + 8 data + wakeup/parity + stop


def wire_ms(n_bytes: int) -> float:
    return n_bytes * BITS / BAUD * 1000


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def egm_side(n_egms: int, seconds: float, conn) -> None:
    """The cabinets, in a process of their own (as on a real floor, they do not share the host's CPU
    time or its interpreter lock): a pty, the emulated EGMs, the patrons' cash-outs, the timings."""
    from protocols.sas.transport import StreamTransport
    from terminals.simulators.sas_egm import SasEgm, SasLine

    egm_end, path = StreamTransport.create_pty()
    egms = [SasEgm(a, seed=a) for a in range(1, n_egms + 1)]
    seen: dict[int, list[float]] = {e.address: [] for e in egms}
    answered_57: dict[int, list[float]] = {e.address: [] for e in egms}
    lp58: dict[int, list[float]] = {e.address: [] for e in egms}
    lock = threading.Lock()

    def wrap(egm):
        respond = egm.respond

        def timed(message: bytes):
            at = time.monotonic()
            reply, delay = respond(message)
            with lock:
                seen[egm.address].append(at)
                if len(message) == 1 and reply == b"\x57":
                    answered_57[egm.address].append(at)
                elif len(message) > 1 and message[1] == 0x58:
                    lp58[egm.address].append(at)
            return reply, delay

        egm.respond = timed

    for e in egms:
        wrap(e)
    line = SasLine(egm_end, egms).start()
    conn.send(path)
    conn.recv()  # the host has linked up every EGM
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        egm = egms[i % n_egms]
        i += 1
        if egm.insert_bill(500):
            egm.cash_out()
        time.sleep(max(0.2, 1.5 / n_egms))
    end = time.monotonic()
    time.sleep(1.5)  # the last cash-outs finish
    with lock:
        conn.send({"start": start, "end": end, "seen": seen, "answered_57": answered_57, "lp58": lp58,
                   "tickets": sum(len(e.tickets_printed) for e in egms)})
    conn.recv()
    line.stop()
    egm_end.close()


def run(seconds: float, n_egms: int, poll_ms: int) -> dict:
    import multiprocessing as mp

    from protocols.sas.long_polls import MachineInfo
    from server import migrate
    from server.audit import SYSTEM
    from server.config import load_settings
    from server.host import Host
    from terminals import registry, software
    from terminals.sas_host import ROM_SEED, SasHost, sas_software_sha256
    from terminals.simulators.sas_egm import SasEgm

    import os

    load_start = os.getloadavg()[0]
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=egm_side, args=(n_egms, seconds, there), daemon=True)
    child.start()
    path = here.recv()

    inst = Path(tempfile.mkdtemp(prefix="fh-p4-"))
    settings = load_settings({"instance": str(inst), "database_url": f"sqlite:///{inst / 'p4.db'}",
                              "scheduler": "off"}, environ={})
    host = Host(settings)
    migrate.upgrade(host.db)
    now = host.now()
    with host.db.begin() as s:
        for a in range(1, n_egms + 1):
            e = SasEgm(a)  # the same identity as the child's cabinets: approve its software
            t = registry.register(s, SYSTEM, f"P4-{a:02d}", "sas", {},
                                  {"port": path, "address": a, "poll_ms": poll_ms}, now).terminal
            registry.set_enabled(s, SYSTEM, t, True, now)
            info = MachineInfo(e.game_id, e.additional_id, e.denom_code, e.max_bet, e.progressive_group,
                               e.game_options, e.paytable, e.base_pct)
            sha = sas_software_sha256(info, ROM_SEED, e.rom_signature(ROM_SEED))
            if not software.is_approved(s, sha):
                software.approve(s, SYSTEM, "bench", "1", sha, now)
    sas = SasHost(host, meter_interval_s=3600)
    sas.start()
    poller = sas.lines[path]
    try:
        deadline = time.monotonic() + 30
        while poller.health()["online"] < n_egms and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.0)  # link-up jobs (LP 1F, 21, 7F, 7B, 02, meters) done
        here.send("go")
        got = here.recv()
        errors = poller.health()["errors"]
        here.send("bye")
    finally:
        sas.stop()
        child.join(10)
        host.close()

    start, end = got["start"], got["end"]
    periods: list[float] = []
    worst_p99 = 0.0
    for times in got["seen"].values():
        window = [t for t in times if start <= t <= end]
        gaps = [(b - a) * 1000 for a, b in zip(window, window[1:])]
        periods += gaps
        worst_p99 = max(worst_p99, pct(gaps, 0.99))
    latencies: list[float] = []
    for address, answered in got["answered_57"].items():
        for t57 in answered:
            if not start <= t57 <= end + 1.0:
                continue
            after = [t for t in got["lp58"][address] if t > t57]
            if after:
                latencies.append((after[0] - t57) * 1000)
    return {
        "egms": n_egms, "poll_ms": poll_ms, "seconds": round(end - start, 1), "polls": len(periods),
        "period_p50": pct(periods, 0.5), "period_p99": pct(periods, 0.99), "period_p01": pct(periods, 0.01),
        "period_min": min(periods) if periods else float("nan"), "period_max": max(periods) if periods else float("nan"),
        "period_worst_egm_p99": worst_p99, "tickets": got["tickets"],
        "lat_n": len(latencies), "lat_p50": pct(latencies, 0.5), "lat_p99": pct(latencies, 0.99),
        "lat_max": max(latencies) if latencies else float("nan"),
        "wire_gp_ms": wire_ms(2), "wire_57_58_ms": wire_ms(2 + 10) + wire_ms(13 + 5),
        "errors": errors, "load": (load_start, os.getloadavg()[0]),
    }


def verdicts(r: dict) -> tuple[str, str]:
    lo, hi = 0.9 * r["poll_ms"], 1.1 * r["poll_ms"]
    period_ok = lo <= r["period_p99"] <= hi and r["period_p01"] >= lo
    lat_ok = r["lat_n"] > 0 and r["lat_p99"] <= 2 * r["poll_ms"] + 50
    return ("PASS" if period_ok else "MISS"), ("PASS" if lat_ok else "MISS")


def summary_lines(r: dict) -> list[str]:
    pv, lv = verdicts(r)
    return [
        f"P4 baseline: configured period {r['poll_ms']} ms; wire time at {BAUD} baud: general poll + answer "
        f"{r['wire_gp_ms']:.2f} ms, LP 57 + LP 58 with replies {r['wire_57_58_ms']:.2f} ms",
        f"P4 poll period per EGM ({r['egms']} EGMs, {r['polls']} intervals over {r['seconds']} s): p50 "
        f"{r['period_p50']:.1f} ms, p99 {r['period_p99']:.1f} ms (ratio {r['period_p99'] / r['poll_ms']:.3f}), "
        f"p1 {r['period_p01']:.1f} ms, min {r['period_min']:.1f}, max {r['period_max']:.1f}, "
        f"worst EGM p99 {r['period_worst_egm_p99']:.1f} ms — {pv} (target p99 within ±10 %)",
        f"P4 exception 57 → LP 58 ({r['lat_n']} cash-outs, {r['tickets']} tickets printed): p50 "
        f"{r['lat_p50']:.1f} ms, p99 {r['lat_p99']:.1f} ms, max {r['lat_max']:.1f} ms "
        f"(target ≤ {2 * r['poll_ms'] + 50} ms = 2 periods + 50 ms) — {lv}",
        f"P4 line errors during the run: {r['errors'] or 'none'}",
    ]


def doc_section(r: dict) -> str:
    from scripts.bench.common import machine, today

    pv, lv = verdicts(r)
    return f"""### P4 SAS line — {r['egms']} emulated EGMs on one pty

`.venv/bin/python -m scripts.bench.p4_sas --seconds {int(r['seconds'])} --egms {r['egms']}`

- date: {today()}
- machine: {machine()} (load average {r['load'][0]:.1f} at start, {r['load'][1]:.1f} at end)
- line: a pty (the stream transport with the in-band wakeup escape); the SasLine emulator in a process of
  its own, the host's SasHost on SQLite; measured at the EGM end (arrival of each host message)

| figure | value |
|---|---|
| baseline: configured poll period | {r['poll_ms']} ms |
| baseline: wire time at {BAUD} baud (11 bits a byte), general poll + answer / LP 57 + LP 58 with replies | {r['wire_gp_ms']:.2f} / {r['wire_57_58_ms']:.2f} ms |
| per-EGM poll period p50 / p99 / p1 ({r['polls']} intervals, {r['seconds']} s) | {r['period_p50']:.1f} / {r['period_p99']:.1f} / {r['period_p01']:.1f} ms |
| **period p99 ÷ configured** (target 0.9–1.1) | **{r['period_p99'] / r['poll_ms']:.3f} — {pv}** |
| period min / max, worst single EGM p99 | {r['period_min']:.1f} / {r['period_max']:.1f} ms, {r['period_worst_egm_p99']:.1f} ms |
| **exception 57 → LP 58** p50 / p99 / max ({r['lat_n']} cash-outs) (target ≤ {2 * r['poll_ms'] + 50} ms) | **{r['lat_p50']:.1f} / {r['lat_p99']:.1f} / {r['lat_max']:.1f} ms — {lv}** |
| tickets printed / line errors | {r['tickets']} / {r['errors'] or 'none'} |

The 57 → 58 figure is two slots of that EGM (LP 57 in the slot after the general poll that saw 57,
LP 58 in the next, after the voucher's commit) plus the voucher transaction. The line's timing
does not wait on the database (a line's commits run on its own thread). On this 2-core machine
while another benchmark kept it loaded (load average ≈ 6), the cabinets' process was sometimes not
scheduled within the host's 80 ms reply timeout: the period p99 rose to 280–370 ms and 57 → 58 p99
to ≈ 475 ms, with `timeout` and `garbage` counted on the line (the late answer arriving in the
next EGM's slot) — a figure of the shared machine, not of the wire.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--egms", type=int, default=8)
    p.add_argument("--poll-ms", type=int, default=200)
    p.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = p.parse_args(argv)
    r = run(args.seconds, args.egms, args.poll_ms)
    for line in summary_lines(r):
        print(line, flush=True)
    if not args.no_write:
        from scripts.bench.common import write_section

        write_section("P4-sas", doc_section(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
