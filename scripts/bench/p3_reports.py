"""P3: `win` + `meters` reports for one gaming day and for month-to-date over 2,000 terminals with 365 days of
history, against the same aggregates as hand-written SQL in the same run (performance.md).

    .venv/bin/python -m scripts.bench.p3_reports [--terminals 2000] [--days 365] [--db sqlite|URL] [--repeat 3]

The history is bulk-inserted straight into meter_days and play_days (executemany in 10,000-row chunks); the
reports are built through the product code (reports.core.build + the JSON renderer) exactly as the API does.
URL: an admin PostgreSQL URL; a scratch database is created and dropped.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid

from sqlalchemy import create_engine, insert, text

from scripts.bench import common

END_DAY = dt.date(2026, 6, 15)  # mid-month, mid-year: the day report, MTD over 15 days, YTD over 166
METERS = ("coin_in_cents", "coin_out_cents", "jackpot_cents", "handpay_cancelled_credits_cents", "bills_in_cents",
          "voucher_in_cents", "voucher_out_cents", "games_played", "games_won", "door_open_count")


def generate(db, terminals: int, days: int) -> tuple[int, float]:
    from terminals.models import MeterDay, PlayDay, Terminal

    rnd = random.Random(3)
    with db.engine.begin() as c:
        c.execute(insert(Terminal), [{"egm_id": f"EGM{i:05d}", "protocol": "mqtt", "location": {"bank": f"B{i // 20:03d}"},
                                      "connection": {}, "enabled": True, "comms": "online"} for i in range(terminals)])
    first = END_DAY - dt.timedelta(days=days - 1)
    level = {i: dict.fromkeys(METERS, 0) for i in range(terminals)}
    rows = 0
    t0 = time.perf_counter()
    chunk_m, chunk_p = [], []

    def flush(c):
        nonlocal chunk_m, chunk_p
        if chunk_m:
            c.execute(insert(MeterDay), chunk_m)
            c.execute(insert(PlayDay), chunk_p)
        chunk_m, chunk_p = [], []

    with db.engine.begin() as c:
        for d in range(days):
            day = first + dt.timedelta(days=d)
            for i in range(terminals):
                ci = rnd.randrange(50_000, 2_000_000)
                co = ci * rnd.randrange(80, 98) // 100
                jp = rnd.choice((0, 0, 0, 0, 120_000))
                games = ci // 100
                delta = {"coin_in_cents": ci, "coin_out_cents": co, "jackpot_cents": jp,
                         "handpay_cancelled_credits_cents": 0, "bills_in_cents": ci // 3, "voucher_in_cents": ci // 4,
                         "voucher_out_cents": co // 2, "games_played": games, "games_won": games // 3,
                         "door_open_count": rnd.randrange(0, 2)}
                opening = dict(level[i])
                for m in METERS:
                    level[i][m] += delta[m]
                chunk_m.append({"egm_id": f"EGM{i:05d}", "gaming_day": day, **delta, "opening": opening,
                                "closing": dict(level[i]), "snapshots": 288, "ram_clears": 0})
                chunk_p.append({"egm_id": f"EGM{i:05d}", "gaming_day": day, "theme": "Sevens",
                                "paytable_id": f"PT{i % 7}", "denom_cents": (1, 5, 25, 100)[i % 4], "games": games,
                                "wager_cents": ci, "win_cents": co})
                rows += 2
                if len(chunk_m) >= 10_000:
                    flush(c)
        flush(c)
    return rows, time.perf_counter() - t0


BASELINE_WIN = """
SELECT m.egm_id, t.location,
  SUM(CASE WHEN m.gaming_day = :d THEN m.coin_in_cents ELSE 0 END), SUM(CASE WHEN m.gaming_day = :d THEN m.coin_out_cents ELSE 0 END),
  SUM(CASE WHEN m.gaming_day = :d THEN m.jackpot_cents ELSE 0 END),
  SUM(CASE WHEN m.gaming_day >= :a AND m.gaming_day <= :d THEN m.coin_in_cents ELSE 0 END),
  SUM(CASE WHEN m.gaming_day >= :a AND m.gaming_day <= :d THEN m.coin_out_cents ELSE 0 END),
  SUM(CASE WHEN m.gaming_day >= :a AND m.gaming_day <= :d THEN m.jackpot_cents ELSE 0 END),
  SUM(CASE WHEN m.gaming_day >= :m THEN m.coin_in_cents ELSE 0 END), SUM(CASE WHEN m.gaming_day >= :m THEN m.coin_out_cents ELSE 0 END),
  SUM(CASE WHEN m.gaming_day >= :m THEN m.jackpot_cents ELSE 0 END),
  SUM(m.coin_in_cents), SUM(m.coin_out_cents), SUM(m.jackpot_cents),
  p.w_day, p.w_mtd, p.w_ytd
FROM meter_days m JOIN terminals t ON t.egm_id = m.egm_id
LEFT JOIN (SELECT egm_id, SUM(CASE WHEN gaming_day >= :a AND gaming_day <= :d THEN wager_cents ELSE 0 END) w_day,
                  SUM(CASE WHEN gaming_day >= :m THEN wager_cents ELSE 0 END) w_mtd, SUM(wager_cents) w_ytd
           FROM play_days WHERE gaming_day >= :y AND gaming_day <= :d GROUP BY egm_id) p ON p.egm_id = m.egm_id
WHERE m.gaming_day >= :y AND m.gaming_day <= :d
GROUP BY m.egm_id, t.id, p.w_day, p.w_mtd, p.w_ytd
"""

BASELINE_METERS = """
SELECT s.*, o.opening, c.closing FROM (
  SELECT egm_id, MIN(gaming_day) f, MAX(gaming_day) l, SUM(coin_in_cents), SUM(coin_out_cents), SUM(jackpot_cents),
         SUM(handpay_cancelled_credits_cents), SUM(bills_in_cents), SUM(voucher_in_cents), SUM(voucher_out_cents),
         SUM(games_played), SUM(games_won), SUM(door_open_count)
  FROM meter_days WHERE gaming_day >= :a AND gaming_day <= :d GROUP BY egm_id) s
JOIN meter_days o ON o.egm_id = s.egm_id AND o.gaming_day = s.f
JOIN meter_days c ON c.egm_id = s.egm_id AND c.gaming_day = s.l
"""


def _decoded(v):
    return json.loads(v) if isinstance(v, str) else v  # SQLite hands JSON over as text, psycopg decodes it


def measure(db, settings, clock, period_start: dt.date, repeat: int) -> dict:
    from reports import core
    from reports.render import to_json

    d = END_DAY
    params = {"a": period_start, "d": d, "m": d.replace(day=1), "y": d.replace(month=1, day=1)}
    out = {}
    for name, sql in (("win", BASELINE_WIN), ("meters", BASELINE_METERS)):
        base, prod, full, nrows = [], [], [], 0
        for _ in range(repeat):
            with db.engine.connect() as c:
                t0 = time.perf_counter()
                rows = c.execute(text(sql), params).all()
                if name == "meters":  # the readings are JSON text: a reader needs them decoded, as the report does
                    rows = [(*r[:-2], _decoded(r[-2]), _decoded(r[-1])) for r in rows]
                base.append(time.perf_counter() - t0)
            with db.read() as s:
                t0 = time.perf_counter()
                doc = core.build(s, clock, settings, name, core.Period(period_start, d), dt.datetime.now(dt.timezone.utc))
                prod.append(time.perf_counter() - t0)
                body = to_json(doc)
                full.append(time.perf_counter() - t0)
                nrows = len(doc.rows)
            assert rows and body
        out[name] = (statistics.median(base), statistics.median(prod), statistics.median(full), nrows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--terminals", type=int, default=2000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--db", default="sqlite")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from server.config import load_settings
    from server.db import Database
    from server.gamingday import GamingDayClock
    import server.models_all  # noqa: F401

    tmp = tempfile.mkdtemp(prefix="p3-")
    scratch = None
    if args.db == "sqlite":
        url, kind = f"sqlite:///{tmp}/p3.db", "sqlite"
    else:
        scratch = "fh_p3_" + uuid.uuid4().hex[:8]
        admin = create_engine(args.db, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{scratch}"'))
        url, kind = args.db.rsplit("/", 1)[0] + "/" + scratch, "postgresql"
    try:
        db = Database(url)
        db.create_all()
        settings = load_settings({"instance": tmp, "database_url": url, "timezone": "America/Los_Angeles"}, environ={})
        clock = GamingDayClock(settings.zone, settings.gaming_day_start_time)
        load_start = os.getloadavg()[0]
        rows, gen_s = generate(db, args.terminals, args.days)
        if kind == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("ANALYZE"))
        results = {"day": measure(db, settings, clock, END_DAY, args.repeat),
                   "month-to-date": measure(db, settings, clock, END_DAY.replace(day=1), args.repeat)}
        load_end = os.getloadavg()[0]
        table, verdicts = [], []
        for period, res in results.items():
            for name, (base, prod, full, nrows) in res.items():
                ratio = prod / base if base else float("inf")
                ok = ratio <= 3 and full < 2
                verdicts.append(ok)
                table.append((f"`{name}` for {period}: report (query + rows + totals) / hand-written SQL",
                              f"{prod * 1000:.0f} / {base * 1000:.0f} ms = **{ratio:.2f} × — "
                              f"{'PASS' if ok else 'FAIL'}** ({nrows} rows)"))
                table.append((f"`{name}` for {period}: the same plus rendering the JSON body (< 2 s)",
                              f"{full * 1000:.0f} ms ({full / base:.2f} × the SQL)"))
        header = [f"### P3 reports — {kind}", "",
                  f"`.venv/bin/python -m scripts.bench.p3_reports --terminals {args.terminals} --days {args.days} "
                  f"--db {'sqlite' if kind == 'sqlite' else 'postgresql+psycopg://…'}`", "",
                  f"- date: {common.today()}",
                  f"- machine: nproc={os.cpu_count()} python={platform.python_version()} (load average "
                  f"{load_start:.1f} at start, {load_end:.1f} at end: shared with other jobs)",
                  f"- history: {args.terminals} terminals × {args.days} gaming days ending {END_DAY} "
                  f"({rows:,} meter_days + play_days rows, bulk-inserted in {gen_s:.0f} s); medians of {args.repeat} runs",
                  "- target: ≤ 3 × baseline and < 2 s; the `win` report for a day also carries month- and year-to-date "
                  "rows (as does the baseline query)", ""]
        note = ("Baseline: one hand-written SQL statement per report returning the same aggregates (win: meter_days "
                "conditional sums for day/MTD/YTD joined with terminals and play_days wager; meters: sums plus the first "
                "and last day's opening/closing readings, their JSON decoded), fetched with `.all()`. The report side also computes RTP-"
                "weighted theoretical win and the bank and denomination rows; the ≤ 3 × criterion compares the report's "
                "data (a Document: rows and totals) with the SQL, the < 2 s one includes rendering the JSON body; the "
                "meters report has one row per terminal and meter (20,000 rows), so its JSON rendering is the larger "
                "part of its time. Overall: "
                + ("PASS" if all(verdicts) else "FAIL") + ".")
        common.write_section(f"P3-{kind}", common.table_section(header, table, note))
        print("\n".join(f"{a}: {b}" for a, b in table))
        db.dispose()
    finally:
        if scratch:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
