"""The report definitions (http-api.md names): columns, rows and totals of each; rendering is shared."""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from sqlalchemy import func, select

from reports import reconciliation, win
from reports.core import Column as C
from reports.core import Ctx, Table, iso, ratio_bp, report
from reports.vouchers import voucher_activity, voucher_liability

WIN_COLUMNS = [C("scope", "Scope"), C("key", "Terminal / bank / denom"), C("period", "Period"),
               C("coin_in_cents", "Coin in", "cents"), C("coin_out_cents", "Coin out", "cents"),
               C("jackpot_cents", "Jackpots", "cents"), C("net_win_cents", "Net win", "cents"),
               C("hold_bp", "Hold", "bp"), C("theoretical_win_cents", "Theo win", "cents"),
               C("theoretical_hold_bp", "Theo hold", "bp")]


@report("meters", "Meters")
def meters(ctx: Ctx) -> Table:
    """Per terminal: opening and closing meters of the period and their deltas."""
    rows, totals = win.meter_rows(ctx.session, ctx.period.start, ctx.period.end)
    return Table([C("egm_id", "Terminal"), C("meter", "Meter"), C("opening", "Opening", "int"),
                  C("closing", "Closing", "int"), C("delta", "Delta", "int"), C("snapshots", "Readings", "int"),
                  C("ram_clears", "RAM clears", "int")], rows, totals)


@report("win", "Win and hold")
def win_report(ctx: Ctx) -> Table:
    """Coin-in, coin-out, jackpots, net win, actual and theoretical hold by terminal, bank, denomination, total."""
    rows, totals = win.win_rows(ctx.session, ctx.period.start, ctx.period.end)
    return Table(WIN_COLUMNS, rows, totals)


def _sum_days(ctx: Ctx, fn) -> list[dict]:
    return [fn(ctx.session, d) for d in ctx.period.days()]


@report("voucher-liability", "Voucher liability")
def liability(ctx: Ctx) -> Table:
    """Opening + issued − redeemed − voided − expired = closing; outstanding vouchers by issue day."""
    days = _sum_days(ctx, voucher_liability)
    totals = {"opening_cents": days[0]["totals"]["opening_cents"]}
    for k in ("issued_cents", "redeemed_cents", "voided_cents", "expired_cents"):
        totals[k] = sum(d["totals"][k] for d in days)
    totals["closing_cents"] = days[-1]["totals"]["closing_cents"]
    totals["outstanding_count"] = days[-1]["totals"]["outstanding_count"]
    return Table([C("issue_day", "Issued on (gaming day)", "date"), C("count", "Vouchers", "int"),
                  C("amount_cents", "Outstanding", "cents")], days[-1]["rows"], totals)


@report("voucher-activity", "Voucher activity")
def activity(ctx: Ctx) -> Table:
    """Issued and redeemed (by terminal and by cage), voided, expired, reinstated."""
    days = _sum_days(ctx, voucher_activity)
    totals = {k: sum(d["totals"][k] for d in days) for k in days[0]["totals"]}
    rows: dict[str, dict] = {}
    for d in days:
        for r in d["rows"]:
            acc = rows.setdefault(r["category"], {"category": r["category"], "count": 0, "amount_cents": 0})
            acc["count"] += r["count"]
            acc["amount_cents"] += r["amount_cents"]
    return Table([C("category", "Category"), C("count", "Vouchers", "int"), C("amount_cents", "Amount", "cents")],
                 list(rows.values()), totals)


@report("handpays", "Handpays and W-2G")
def handpays(ctx: Ctx) -> Table:
    """Every handpay of the period with its slip, status, payer, second signer and W-2G."""
    from cashier.models import W2G, Handpay

    p = ctx.period
    q = (select(Handpay, W2G).outerjoin(W2G, W2G.handpay_id == Handpay.id)
         .where(Handpay.gaming_day >= p.start, Handpay.gaming_day <= p.end).order_by(Handpay.slip_number))
    rows, totals = [], Counter()
    for h, w in ctx.session.execute(q).all():
        rows.append({"slip_number": h.slip_number, "gaming_day": h.gaming_day.isoformat(), "egm_id": h.egm_id,
                     "kind": h.kind, "amount_cents": h.amount_cents, "status": h.status,
                     "created_at": iso(h.created_at), "paid_at": iso(h.paid_at), "paid_by": h.paid_by,
                     "second_signer": h.second_signer, "w2g": w is not None,
                     "w2g_name": f"{w.first_name} {w.last_name}" if w else None,
                     "w2g_id": f"{w.id_type} {w.id_number[-4:].rjust(len(w.id_number), '*')}" if w else None,
                     "tax_year": w.tax_year if w else None, "voided_by": h.voided_by, "void_reason": h.void_reason})
        totals["count"] += 1
        totals[f"{h.status}_count"] += 1
        totals[f"{h.status}_cents"] += h.amount_cents
        if w is not None:
            totals["w2g_count"] += 1
            totals["w2g_cents"] += w.amount_cents
    keys = ("count", "paid_count", "paid_cents", "pending_count", "pending_cents", "void_count", "void_cents",
            "w2g_count", "w2g_cents")
    return Table([C("slip_number", "Slip", "int"), C("gaming_day", "Gaming day", "date"), C("egm_id", "Terminal"),
                  C("kind", "Kind"), C("amount_cents", "Amount", "cents"), C("status", "Status"),
                  C("created_at", "Won", "instant"), C("paid_at", "Paid", "instant"), C("paid_by", "Paid by"),
                  C("second_signer", "2nd signer"), C("w2g", "W-2G", "bool"), C("w2g_name", "W-2G name"),
                  C("w2g_id", "ID"), C("tax_year", "Tax year"), C("voided_by", "Voided by"),
                  C("void_reason", "Void reason")], rows, {k: totals[k] for k in keys})


@report("aml", "AML: CTR, MTL and structuring")
def aml(ctx: Ctx) -> Table:
    """Currency transaction reports, the multiple-transaction log and structuring alerts."""
    from cashier.models import CurrencyTransactionReport as CTR
    from cashier.models import MtlEntry
    from server.models import Alert

    p = ctx.period
    rows = []
    for c in ctx.session.execute(select(CTR).where(CTR.gaming_day >= p.start, CTR.gaming_day <= p.end)
                                 .order_by(CTR.id)).scalars():
        rows.append({"record": "CTR", "gaming_day": c.gaming_day.isoformat(), "patron_key": c.patron_key,
                     "patron_name": c.patron_name, "direction": c.direction, "kind": None,
                     "amount_cents": c.total_cents, "count": None, "at": iso(c.created_at), "operator": None})
    for m in ctx.session.execute(select(MtlEntry).where(MtlEntry.gaming_day >= p.start, MtlEntry.gaming_day <= p.end)
                                 .order_by(MtlEntry.id)).scalars():
        rows.append({"record": "MTL", "gaming_day": m.gaming_day.isoformat(), "patron_key": m.patron_key,
                     "patron_name": m.patron_name, "direction": m.direction, "kind": m.kind,
                     "amount_cents": m.amount_cents, "count": None, "at": iso(m.at), "operator": m.operator})
    days = {d.isoformat() for d in p.days()}
    for a in ctx.session.execute(select(Alert).where(Alert.kind == "structuring").order_by(Alert.id)).scalars():
        d = a.detail or {}
        if d.get("gaming_day") in days:
            rows.append({"record": "structuring", "gaming_day": d["gaming_day"], "patron_key": d.get("patron_key"),
                         "patron_name": d.get("patron_name"), "direction": d.get("direction"), "kind": a.status,
                         "amount_cents": d.get("total_cents"), "count": d.get("count"), "at": iso(a.created_at),
                         "operator": a.acked_by})
    tot = Counter()
    for r in rows:
        tot[f"{r['record'].lower()}_count"] += 1
        tot[f"{r['record'].lower()}_cents"] += r["amount_cents"] or 0
    return Table([C("record", "Record"), C("gaming_day", "Gaming day", "date"), C("patron_key", "Patron"),
                  C("patron_name", "Name"), C("direction", "Cash"), C("kind", "Kind / status"),
                  C("amount_cents", "Amount", "cents"), C("count", "Transactions", "int"), C("at", "At", "instant"),
                  C("operator", "Operator")], rows,
                 {k: tot[k] for k in ("ctr_count", "ctr_cents", "mtl_count", "mtl_cents", "structuring_count",
                                      "structuring_cents")})


@report("events", "Significant events and exceptions")
def events(ctx: Ctx) -> Table:
    """Every significant event of the period, and the alerts (exceptions) raised in it."""
    from server.models import Alert
    from terminals.models import Event

    p = ctx.period
    start, end = ctx.bounds()
    rows = []
    for e in ctx.session.execute(select(Event).where(Event.gaming_day >= p.start, Event.gaming_day <= p.end)
                                 .order_by(Event.host_ts, Event.id)).scalars():
        rows.append({"record": "event", "host_ts": iso(e.host_ts), "terminal_ts": iso(e.terminal_ts),
                     "egm_id": e.egm_id, "code": e.code if e.code != "unknown" else f"unknown:{e.raw_code}",
                     "detail": _short(e.detail), "status": None})
    for a in ctx.session.execute(select(Alert).where(Alert.created_at >= start, Alert.created_at < end)
                                 .order_by(Alert.created_at, Alert.id)).scalars():
        rows.append({"record": "alert", "host_ts": iso(a.created_at), "terminal_ts": None, "egm_id": a.egm_id,
                     "code": a.kind, "detail": a.message, "status": a.status})
    rows.sort(key=lambda r: (r["host_ts"], r["record"]))
    codes = Counter(r["record"] for r in rows)
    return Table([C("record", "Record"), C("host_ts", "Host time", "instant"),
                  C("terminal_ts", "Terminal time", "instant"), C("egm_id", "Terminal"), C("code", "Code"),
                  C("detail", "Detail"), C("status", "Alert status")], rows,
                 {"event_count": codes["event"], "alert_count": codes["alert"],
                  "open_alert_count": sum(1 for r in rows if r["status"] == "open")})


def _short(detail) -> str:
    if not detail:
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(detail.items()))[:200]


@report("config-changes", "Configuration changes (download log)")
def config_changes(ctx: Ctx) -> Table:
    """Every config download of the period: package, version, sha256, operator, result per terminal."""
    from terminals.deployments import download_log
    rows = download_log(ctx.session, ctx.clock, ctx.period.start, ctx.period.end)
    cols = [C("gaming_day", "Gaming day", "date"), C("deployment_id", "Deployment", "int"),
            C("package_id", "Package", "int"), C("package_name", "Name"), C("package_version", "Version"),
            C("sha256", "sha256"), C("operator", "Operator"), C("apply", "Apply"), C("egm_id", "Terminal"),
            C("state", "Result"), C("started_at", "Started", "instant"), C("ended_at", "Ended", "instant"),
            C("reason", "Reason")]
    for r in rows:
        for k in ("started_at", "ended_at"):
            if isinstance(r.get(k), dt.datetime):
                r[k] = iso(r[k])
        if isinstance(r.get("gaming_day"), dt.date):
            r["gaming_day"] = r["gaming_day"].isoformat()
    states = Counter(r.get("state") for r in rows)
    return Table(cols, rows, {"downloads": len(rows), "deployments": len({r.get("deployment_id") for r in rows}),
                              "installed": states.get("installed", 0),
                              "failed": sum(v for k, v in states.items() if k not in ("installed", "pending",
                                                                                      "sent", None))})


@report("cashier", "Cashier drawers: reconciliation and variances")
def cashier(ctx: Ctx) -> Table:
    """Every drawer of the period: float, money in and out by kind, expected, counted, variance."""
    from cashier.models import Drawer, DrawerTransaction

    p = ctx.period
    drawers = ctx.session.execute(select(Drawer).where(Drawer.gaming_day >= p.start, Drawer.gaming_day <= p.end)
                                  .order_by(Drawer.id)).scalars().all()
    moves: dict[int, dict] = defaultdict(lambda: {"in": 0, "out": 0, "count": 0})
    if drawers:
        for did, amount, n in ctx.session.execute(
                select(DrawerTransaction.drawer_id, DrawerTransaction.amount_cents, func.count())
                .where(DrawerTransaction.drawer_id.in_([d.id for d in drawers]))
                .group_by(DrawerTransaction.drawer_id, DrawerTransaction.amount_cents)):
            m = moves[did]
            m["in" if amount > 0 else "out"] += amount * n if amount > 0 else -amount * n
            m["count"] += n
    rows = []
    tot = Counter()
    for d in drawers:
        m = moves[d.id]
        expected = d.expected_cents if d.status == "closed" else d.opening_cents + m["in"] - m["out"]
        rows.append({"drawer_id": d.id, "cashier": d.cashier, "gaming_day": d.gaming_day.isoformat(),
                     "status": d.status, "opened_at": iso(d.opened_at), "closed_at": iso(d.closed_at),
                     "opening_cents": d.opening_cents, "in_cents": m["in"], "out_cents": m["out"],
                     "transactions": m["count"], "expected_cents": expected, "counted_cents": d.counted_cents,
                     "variance_cents": d.variance_cents})
        tot["drawers"] += 1
        tot["open_drawers"] += d.status == "open"
        for k in ("opening_cents", "in_cents", "out_cents", "expected_cents"):
            tot[k] += rows[-1][k]
        tot["variance_cents"] += d.variance_cents or 0
        tot["drawers_with_variance"] += bool(d.variance_cents)
    return Table([C("drawer_id", "Drawer", "int"), C("cashier", "Cashier"), C("gaming_day", "Gaming day", "date"),
                  C("status", "Status"), C("opened_at", "Opened", "instant"), C("closed_at", "Closed", "instant"),
                  C("opening_cents", "Float", "cents"), C("in_cents", "In", "cents"), C("out_cents", "Out", "cents"),
                  C("transactions", "Txns", "int"), C("expected_cents", "Expected", "cents"),
                  C("counted_cents", "Counted", "cents"), C("variance_cents", "Variance", "cents")], rows,
                 {k: tot[k] for k in ("drawers", "open_drawers", "opening_cents", "in_cents", "out_cents",
                                      "expected_cents", "variance_cents", "drawers_with_variance")})


@report("player-ratings", "Player ratings")
def player_ratings(ctx: Ctx) -> Table:
    """Per player and gaming day: sessions, games, coin-in/out, actual and theoretical win, points."""
    from players.reports import player_ratings as ratings
    rows = ratings(ctx.session, ctx.clock, ctx.period.start, ctx.period.end)
    for r in rows:
        if isinstance(r.get("gaming_day"), dt.date):
            r["gaming_day"] = r["gaming_day"].isoformat()
    cols = [C("gaming_day", "Gaming day", "date"), C("player_id", "Player", "int"), C("card_id", "Card"),
            C("player_name", "Name"), C("sessions", "Sessions", "int"), C("games", "Games", "int"),
            C("coin_in_cents", "Coin in", "cents"), C("coin_out_cents", "Coin out", "cents"),
            C("actual_win_cents", "Actual win", "cents"), C("theo_win_cents", "Theo win", "cents"),
            C("points", "Points", "int"), C("seconds_played", "Seconds", "int"), C("avg_bet_cents", "Avg bet", "cents")]
    sums = ("sessions", "games", "coin_in_cents", "coin_out_cents", "actual_win_cents", "theo_win_cents", "points",
            "seconds_played")
    totals = {"players": len({r.get("player_id") for r in rows}), **{k: sum(int(r.get(k) or 0) for r in rows)
                                                                     for k in sums}}
    return Table(cols, rows, totals)


@report("terminal-availability", "Terminal availability")
def availability(ctx: Ctx) -> Table:
    """Offline time per terminal within the period (comms periods), and availability."""
    from terminals.models import CommsPeriod, Terminal

    start, end = ctx.bounds()
    stop = min(end, max(ctx.now, start))
    span = int((end - start).total_seconds())
    offline: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for egm, off, on in ctx.session.execute(
            select(CommsPeriod.egm_id, CommsPeriod.offline_at, CommsPeriod.online_at)
            .where(CommsPeriod.offline_at < end,
                   (CommsPeriod.online_at.is_(None)) | (CommsPeriod.online_at > start))):
        a = max(off, start)
        b = min(on, end) if on is not None else stop
        if b > a:
            offline[egm][0] += 1
            offline[egm][1] += int((b - a).total_seconds())
    rows = []
    for egm, created in ctx.session.execute(select(Terminal.egm_id, Terminal.created_at)
                                            .where(Terminal.created_at < end).order_by(Terminal.egm_id)):
        n, secs = offline.get(egm, [0, 0])
        rows.append({"egm_id": egm, "offline_periods": n, "offline_seconds": secs, "period_seconds": span,
                     "availability_bp": ratio_bp(span - secs, span)})
    total_secs = sum(r["offline_seconds"] for r in rows)
    return Table([C("egm_id", "Terminal"), C("offline_periods", "Offline periods", "int"),
                  C("offline_seconds", "Offline seconds", "int"), C("period_seconds", "Period seconds", "int"),
                  C("availability_bp", "Availability", "bp")], rows,
                 {"terminals": len(rows), "offline_periods": sum(r["offline_periods"] for r in rows),
                  "offline_seconds": total_secs,
                  "availability_bp": ratio_bp(span * len(rows) - total_secs, span * len(rows))})


@report("meter-reconciliation", "Meter vs transaction reconciliation")
def meter_reconciliation(ctx: Ctx) -> Table:
    """Meters against the host's own vouchers, handpays and bills per terminal; exceptions flagged (rules.md 5)."""
    rows = reconciliation.reconcile(ctx.session, ctx.period.start, ctx.period.end)
    return Table([C("egm_id", "Terminal"), C("item", "Item"), C("meter_cents", "Meters", "cents"),
                  C("host_cents", "Host transactions", "cents"), C("difference_cents", "Difference", "cents"),
                  C("exception", "Exception", "bool"), C("metered", "Has meters", "bool")], rows,
                 {"compared": len(rows), "exceptions": sum(1 for r in rows if r["exception"]),
                  "difference_cents": sum(abs(r["difference_cents"]) for r in rows if r["exception"])})
