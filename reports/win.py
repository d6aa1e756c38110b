"""Win and meters over gaming days (rules.md 2–5): per terminal, bank, denomination and total; day, MTD, YTD.

Actual figures come from the meters (meter_days: sums of snapshot deltas); theoretical win comes from the
play counted per paytable (play_days): Σ wager × (1 − RTP). Denomination rows come from play_days too,
because meters are per terminal, not per denomination.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from reports.core import div_round, ratio_bp
from terminals.models import CUMULATIVE_METERS, MeterDay, PlayDay, Terminal

# RTP assumed for a paytable the catalog does not know (yet): 90.00 %. Documented in docs/reports.md.
DEFAULT_RTP_BP = 9000


def paytable_rtp_bp(session: Session, paytable_ids) -> dict[str, int]:
    """RTP in basis points per paytable id. THE one place theoretical hold learns RTPs.

    Today there is no config catalog in this build: every paytable gets DEFAULT_RTP_BP. The integrator
    points this function at the catalog (package/paytable table) once it is merged; unknown ids keep the
    default.
    """
    rtps = {str(p): DEFAULT_RTP_BP for p in paytable_ids}
    try:
        from terminals import catalog  # type: ignore  # arrives with the config catalog
    except ImportError:
        return rtps
    lookup = getattr(catalog, "paytable_rtp_bp", None)
    if lookup is not None:
        known = lookup(session, list(rtps))
        rtps.update({str(k): int(v) for k, v in known.items() if v is not None})
    return rtps


def periods_for(start: dt.date, end: dt.date) -> dict[str, tuple[dt.date, dt.date]]:
    """The report's own period, and month- and year-to-date ending with its last day."""
    return {"day" if start == end else "range": (start, end),
            "mtd": (end.replace(day=1), end),
            "ytd": (end.replace(month=1, day=1), end)}


def _conditional_sums(col_day, periods, columns):
    out = []
    for label, (a, b) in periods.items():
        cond = and_(col_day >= a, col_day <= b)
        for name, col in columns:
            out.append(func.coalesce(func.sum(case((cond, col), else_=0)), 0).label(f"{label}__{name}"))
    return out


def terminal_win(session: Session, periods: dict[str, tuple[dt.date, dt.date]]) -> dict[str, dict[str, dict]]:
    """{egm_id: {period: {coin_in_cents, coin_out_cents, jackpot_cents}}} from meter_days, one scan."""
    lo = min(a for a, _ in periods.values())
    hi = max(b for _, b in periods.values())
    M = MeterDay
    cols = [("coin_in_cents", M.coin_in_cents), ("coin_out_cents", M.coin_out_cents),
            ("jackpot_cents", M.jackpot_cents), ("games_played", M.games_played)]
    q = (select(M.egm_id, *_conditional_sums(M.gaming_day, periods, cols))
         .where(M.gaming_day >= lo, M.gaming_day <= hi).group_by(M.egm_id))
    out: dict[str, dict[str, dict]] = {}
    for row in session.execute(q).mappings():
        out[row["egm_id"]] = {p: {n: int(row[f"{p}__{n}"]) for n, _ in cols} for p in periods}
    return out


def play_theo(session: Session, periods: dict[str, tuple[dt.date, dt.date]]):
    """Per terminal and per denomination: played wager, won, and the theoretical-win numerator
    Σ wager × (10000 − RTP bp), per period. Returns (by_terminal, by_denom)."""
    lo = min(a for a, _ in periods.values())
    hi = max(b for _, b in periods.values())
    P = PlayDay
    cols = [("wager_cents", P.wager_cents), ("win_cents", P.win_cents), ("games", P.games)]
    q = (select(P.egm_id, P.paytable_id, P.denom_cents, *_conditional_sums(P.gaming_day, periods, cols))
         .where(P.gaming_day >= lo, P.gaming_day <= hi).group_by(P.egm_id, P.paytable_id, P.denom_cents))
    rows = session.execute(q).mappings().all()
    rtp = paytable_rtp_bp(session, {r["paytable_id"] for r in rows})
    blank = lambda: {p: {"wager_cents": 0, "win_cents": 0, "games": 0, "theo_num": 0} for p in periods}  # noqa: E731
    by_terminal: dict[str, dict] = defaultdict(blank)
    by_denom: dict[int, dict] = defaultdict(blank)
    for r in rows:
        keep = 10000 - rtp[str(r["paytable_id"])]
        for p in periods:
            wager = int(r[f"{p}__wager_cents"])
            for target in (by_terminal[r["egm_id"]][p], by_denom[int(r["denom_cents"])][p]):
                target["wager_cents"] += wager
                target["win_cents"] += int(r[f"{p}__win_cents"])
                target["games"] += int(r[f"{p}__games"])
                target["theo_num"] += wager * keep
    return by_terminal, by_denom


def win_figures(coin_in: int, coin_out: int, jackpot: int, wager: int, theo_num: int) -> dict:
    net = coin_in - coin_out - jackpot
    return {"coin_in_cents": coin_in, "coin_out_cents": coin_out, "jackpot_cents": jackpot, "net_win_cents": net,
            "hold_bp": ratio_bp(net, coin_in), "theoretical_win_cents": div_round(theo_num, 10000),
            "theoretical_hold_bp": div_round(theo_num, wager) if wager else 0}


def win_rows(session: Session, start: dt.date, end: dt.date) -> tuple[list[dict], dict]:
    periods = periods_for(start, end)
    own = next(iter(periods))
    meters = terminal_win(session, periods)
    theo_t, theo_d = play_theo(session, periods)
    banks = dict(session.execute(select(Terminal.egm_id, Terminal.location)).all())
    zero = {"coin_in_cents": 0, "coin_out_cents": 0, "jackpot_cents": 0, "games_played": 0}
    rows: list[dict] = []
    bank_sum: dict[str, dict] = defaultdict(lambda: {p: [0, 0, 0, 0, 0] for p in periods})
    total = {p: [0, 0, 0, 0, 0] for p in periods}
    for egm in sorted(set(meters) | set(theo_t)):
        bank = str((banks.get(egm) or {}).get("bank") or "-")
        for p in periods:
            m = meters.get(egm, {}).get(p, zero)
            t = theo_t[egm][p] if egm in theo_t else {"wager_cents": 0, "theo_num": 0}
            vals = (m["coin_in_cents"], m["coin_out_cents"], m["jackpot_cents"], t["wager_cents"], t["theo_num"])
            rows.append({"scope": "terminal", "key": egm, "period": p, **win_figures(*vals)})
            for acc in (bank_sum[bank][p], total[p]):
                for i, v in enumerate(vals):
                    acc[i] += v
    for bank in sorted(bank_sum):
        for p in periods:
            rows.append({"scope": "bank", "key": bank, "period": p, **win_figures(*bank_sum[bank][p])})
    for denom in sorted(theo_d):
        for p in periods:
            d = theo_d[denom][p]
            # Per denomination only game.end play is known: coin-out is what the games paid.
            rows.append({"scope": "denomination", "key": f"{denom}", "period": p,
                         **win_figures(d["wager_cents"], d["win_cents"], 0, d["wager_cents"], d["theo_num"])})
    for p in periods:
        rows.append({"scope": "total", "key": "all", "period": p, **win_figures(*total[p])})
    t = win_figures(*total[own])
    totals = {k: t[k] for k in ("coin_in_cents", "coin_out_cents", "jackpot_cents", "net_win_cents", "hold_bp",
                                "theoretical_hold_bp")}
    return rows, totals


def meter_rows(session: Session, start: dt.date, end: dt.date) -> tuple[list[dict], dict]:
    """Per terminal and meter: opening (first reading of the period), closing (last), delta (Σ deltas)."""
    M = MeterDay
    sums = (select(M.egm_id, func.min(M.gaming_day).label("first"), func.max(M.gaming_day).label("last"),
                   func.sum(M.snapshots).label("snapshots"), func.sum(M.ram_clears).label("ram_clears"),
                   *[func.sum(getattr(M, m)).label(m) for m in CUMULATIVE_METERS])
            .where(M.gaming_day >= start, M.gaming_day <= end).group_by(M.egm_id)).subquery()
    if start == end:
        q = (select(sums, M.opening, M.closing).join(M, and_(M.egm_id == sums.c.egm_id, M.gaming_day == start))
             .order_by(sums.c.egm_id))
        data = [(r, r["opening"], r["closing"]) for r in session.execute(q).mappings()]
    else:
        M2 = MeterDay.__table__.alias("m2")
        q = (select(sums, M.opening, M2.c.closing)
             .join(M, and_(M.egm_id == sums.c.egm_id, M.gaming_day == sums.c.first))
             .join(M2, and_(M2.c.egm_id == sums.c.egm_id, M2.c.gaming_day == sums.c.last))
             .order_by(sums.c.egm_id))
        data = [(r, r["opening"], r["closing"]) for r in session.execute(q).mappings()]
    rows: list[dict] = []
    totals = {m: 0 for m in CUMULATIVE_METERS}
    for r, opening, closing in data:
        for m in CUMULATIVE_METERS:
            delta = int(r[m] or 0)
            totals[m] += delta
            rows.append({"egm_id": r["egm_id"], "meter": m, "opening": (opening or {}).get(m),
                         "closing": (closing or {}).get(m), "delta": delta,
                         "snapshots": int(r["snapshots"]), "ram_clears": int(r["ram_clears"])})
    totals["terminals"] = len(data)
    return rows, totals
