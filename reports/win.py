"""Win and meters over gaming days (rules.md 2–5): per terminal, bank, denomination and total; day, MTD, YTD.

Actual figures come from the meters (meter_days: sums of snapshot deltas); theoretical win comes from the
play counted per paytable (play_days): Σ wager × (1 − RTP). Denomination rows come from play_days too,
because meters are per terminal, not per denomination.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from reports.core import div_round, ratio_bp
from terminals.models import CUMULATIVE_METERS, MeterDay, PlayDay, Terminal

# RTP assumed for a paytable the catalog does not know (yet): 90.00 %. Documented in docs/reports.md.
DEFAULT_RTP_BP = 9000


def paytable_rtp_bp(session: Session, paytable_ids) -> dict[str, int]:
    """RTP in basis points per paytable id. THE one place theoretical hold learns RTPs: from the config
    catalog (the newest package naming the paytable); a paytable no package names gets DEFAULT_RTP_BP."""
    from terminals.packages import paytable_rtp_bp as catalog_rtp

    rtps = {str(p): DEFAULT_RTP_BP for p in paytable_ids}
    rtps.update(catalog_rtp(session, list(rtps)))
    return rtps


def periods_for(start: dt.date, end: dt.date) -> dict[str, tuple[dt.date, dt.date]]:
    """The report's own period, and month- and year-to-date ending with its last day."""
    return {"day" if start == end else "range": (start, end),
            "mtd": (end.replace(day=1), end),
            "ytd": (end.replace(month=1, day=1), end)}


def _per_period(session: Session, periods, make_query) -> dict[str, list]:
    """Runs one plain GROUP BY per distinct period (cheaper than CASE sums over the widest one: each period
    reads only its own days through the gaming_day index); equal periods share a result."""
    cache: dict[tuple, list] = {}
    out = {}
    for label, (a, b) in periods.items():
        if (a, b) not in cache:
            cache[(a, b)] = session.execute(make_query(a, b)).all()
        out[label] = cache[(a, b)]
    return out


def terminal_win(session: Session, periods: dict[str, tuple[dt.date, dt.date]]) -> dict[str, dict[str, dict]]:
    """{egm_id: {period: {coin_in_cents, coin_out_cents, jackpot_cents, games_played}}} from meter_days."""
    M = MeterDay
    names = ("coin_in_cents", "coin_out_cents", "jackpot_cents", "games_played")
    res = _per_period(session, periods, lambda a, b: select(M.egm_id, *[func.sum(getattr(M, n)) for n in names])
                      .where(M.gaming_day >= a, M.gaming_day <= b).group_by(M.egm_id))
    zero = dict.fromkeys(names, 0)
    out: dict[str, dict[str, dict]] = {}
    for label, rows in res.items():
        for egm, *vals in rows:
            out.setdefault(egm, {p: zero for p in periods})[label] = {n: int(v or 0) for n, v in zip(names, vals)}
    return out


def play_theo(session: Session, periods: dict[str, tuple[dt.date, dt.date]]):
    """Per terminal and per denomination: played wager, won, and the theoretical-win numerator
    Σ wager × (10000 − RTP bp), per period. Returns (by_terminal, by_denom)."""
    P = PlayDay
    res = _per_period(session, periods, lambda a, b: select(
        P.egm_id, P.paytable_id, P.denom_cents, func.sum(P.wager_cents), func.sum(P.win_cents), func.sum(P.games))
        .where(P.gaming_day >= a, P.gaming_day <= b).group_by(P.egm_id, P.paytable_id, P.denom_cents))
    rtp = paytable_rtp_bp(session, {r[1] for rows in res.values() for r in rows})
    blank = lambda: {p: {"wager_cents": 0, "win_cents": 0, "games": 0, "theo_num": 0} for p in periods}  # noqa: E731
    by_terminal: dict[str, dict] = defaultdict(blank)
    by_denom: dict[int, dict] = defaultdict(blank)
    for p, rows in res.items():
        for egm, paytable, denom, wager, won, games in rows:
            keep = 10000 - rtp[str(paytable)]
            wager, won, games = int(wager or 0), int(won or 0), int(games or 0)
            for target in (by_terminal[egm][p], by_denom[int(denom)][p]):
                target["wager_cents"] += wager
                target["win_cents"] += won
                target["games"] += games
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
    if start == end:
        # One day: the meter_days row is the sum already.
        q = (select(M.egm_id, M.snapshots, M.ram_clears, *[getattr(M, m) for m in CUMULATIVE_METERS],
                    M.opening, M.closing).where(M.gaming_day == start).order_by(M.egm_id))
    else:
        sums = (select(M.egm_id, func.min(M.gaming_day).label("first"), func.max(M.gaming_day).label("last"),
                       func.sum(M.snapshots).label("snapshots"), func.sum(M.ram_clears).label("ram_clears"),
                       *[func.sum(getattr(M, m)).label(m) for m in CUMULATIVE_METERS])
                .where(M.gaming_day >= start, M.gaming_day <= end).group_by(M.egm_id)).subquery()
        M2 = MeterDay.__table__.alias("m2")
        q = (select(sums.c.egm_id, sums.c.snapshots, sums.c.ram_clears, *[sums.c[m] for m in CUMULATIVE_METERS],
                    M.opening, M2.c.closing)
             .join(M, and_(M.egm_id == sums.c.egm_id, M.gaming_day == sums.c.first))
             .join(M2, and_(M2.c.egm_id == sums.c.egm_id, M2.c.gaming_day == sums.c.last))
             .order_by(sums.c.egm_id))
    data = session.execute(q).all()
    rows: list[dict] = []
    totals = dict.fromkeys(CUMULATIVE_METERS, 0)
    n = len(CUMULATIVE_METERS)
    for egm, snaps, clears, *rest in data:
        deltas, opening, closing = rest[:n], rest[n] or {}, rest[n + 1] or {}
        snaps, clears = int(snaps), int(clears)
        for m, delta in zip(CUMULATIVE_METERS, deltas):
            delta = int(delta or 0)
            totals[m] += delta
            rows.append({"egm_id": egm, "meter": m, "opening": opening.get(m), "closing": closing.get(m),
                         "delta": delta, "snapshots": snaps, "ram_clears": clears})
    totals["terminals"] = len(data)
    return rows, totals
