"""Meter-vs-transaction reconciliation (rules.md 5).

For each terminal and period, what its meters say against what the host itself recorded:
  voucher_out  ↔ vouchers the terminal issued          voucher_in ↔ vouchers redeemed at the terminal
  jackpot      ↔ jackpot handpays (not void)           handpay_cancelled_credits ↔ cancelled-credit handpays
  bills_in     ↔ bill.accepted events (detail amount_cents)
A difference is an exception when it exceeds 2 % of the larger figure or $100, whichever is greater.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cashier.models import Handpay, VoucherTransition
from terminals.models import Event, MeterDay

ABSOLUTE_CENTS = 10_000  # $100
PERCENT = 2

ITEMS = (("voucher_out", "voucher_out_cents"), ("voucher_in", "voucher_in_cents"), ("jackpot", "jackpot_cents"),
         ("handpay_cancelled_credits", "handpay_cancelled_credits_cents"), ("bills_in", "bills_in_cents"))


def is_exception(meter: int, host: int) -> bool:
    diff = abs(meter - host)
    base = max(abs(meter), abs(host))
    return diff > ABSOLUTE_CENTS and diff * 100 > base * PERCENT


def host_totals(session: Session, start: dt.date, end: dt.date) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: {item: 0 for item, _ in ITEMS})
    T = VoucherTransition
    for actor, frm, to, cents in session.execute(
            select(T.actor, T.from_status, T.to_status, func.sum(T.amount_cents))
            .where(T.gaming_day >= start, T.gaming_day <= end, T.actor_kind == "terminal")
            .group_by(T.actor, T.from_status, T.to_status)):
        if frm is None:
            out[actor]["voucher_out"] += int(cents)
        elif to == "redeemed":
            out[actor]["voucher_in"] += int(cents)
    for egm, kind, cents in session.execute(
            select(Handpay.egm_id, Handpay.kind, func.sum(Handpay.amount_cents))
            .where(Handpay.gaming_day >= start, Handpay.gaming_day <= end, Handpay.status != "void")
            .group_by(Handpay.egm_id, Handpay.kind)):
        out[egm]["jackpot" if kind == "jackpot" else "handpay_cancelled_credits"] += int(cents)
    for egm, detail in session.execute(select(Event.egm_id, Event.detail).where(
            Event.gaming_day >= start, Event.gaming_day <= end, Event.code == "bill.accepted")):
        amount = (detail or {}).get("amount_cents")
        if isinstance(amount, int) and amount > 0:
            out[egm]["bills_in"] += amount
    return out


def reconcile(session: Session, start: dt.date, end: dt.date) -> list[dict]:
    M = MeterDay
    meter_cols = [func.sum(getattr(M, col)).label(item) for item, col in ITEMS]
    metered = {r["egm_id"]: r for r in session.execute(
        select(M.egm_id, *meter_cols).where(M.gaming_day >= start, M.gaming_day <= end).group_by(M.egm_id)).mappings()}
    host = host_totals(session, start, end)
    rows = []
    for egm in sorted(set(metered) | set(host)):
        for item, _ in ITEMS:
            m = int((metered.get(egm) or {}).get(item) or 0)
            h = host[egm][item] if egm in host else 0
            if m == 0 and h == 0:
                continue
            rows.append({"egm_id": egm, "item": item, "meter_cents": m, "host_cents": h,
                         "difference_cents": m - h, "exception": is_exception(m, h),
                         "metered": egm in metered})
    return rows
