"""Voucher activity and liability per gaming day (rules.md 13), from the voucher transitions.

Every transition moves liability by amount × (outstanding(to) − outstanding(from)), where a
voucher is outstanding while `issued` or `pending`. Summing those over time gives the liability
at any instant, so closing = opening + issued − redeemed − voided − expired holds to the cent by
construction; a reinstated voucher (expired → issued) counts against `expired` (net), as the
liability it had left comes back.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cashier.models import Voucher, VoucherTransition

OUTSTANDING = ("issued", "pending")


def _delta():
    to_in = case((VoucherTransition.to_status.in_(OUTSTANDING), 1), else_=0)
    from_in = case((VoucherTransition.from_status.in_(OUTSTANDING), 1), else_=0)
    return VoucherTransition.amount_cents * (to_in - from_in)


def liability_at(session: Session, before_day: dt.date) -> int:
    """Outstanding voucher liability at the start of a gaming day."""
    return int(session.execute(select(func.coalesce(func.sum(_delta()), 0))
                               .where(VoucherTransition.gaming_day < before_day)).scalar_one())


def voucher_liability(session: Session, day: dt.date) -> dict:
    opening = liability_at(session, day)
    T = VoucherTransition
    rows = session.execute(
        select(
            func.coalesce(func.sum(case((T.from_status.is_(None), T.amount_cents), else_=0)), 0),
            func.coalesce(func.sum(case((T.to_status == "redeemed", T.amount_cents), else_=0)), 0),
            func.coalesce(func.sum(case((T.to_status == "voided", T.amount_cents), else_=0)), 0),
            func.coalesce(func.sum(case((T.to_status == "expired", T.amount_cents),
                                        ((T.from_status == "expired") & (T.to_status == "issued"), -T.amount_cents),
                                        else_=0)), 0),
        ).where(T.gaming_day == day)
    ).one()
    issued, redeemed, voided, expired = (int(x) for x in rows)
    closing = opening + issued - redeemed - voided - expired
    outstanding = _outstanding_by_issue_day(session, day)
    return {
        "totals": {"opening_cents": opening, "issued_cents": issued, "redeemed_cents": redeemed,
                   "voided_cents": voided, "expired_cents": expired, "closing_cents": closing,
                   "outstanding_count": sum(r["count"] for r in outstanding)},
        "rows": outstanding,
    }


def _outstanding_by_issue_day(session: Session, day: dt.date) -> list[dict]:
    """Vouchers outstanding at the end of `day`, by the gaming day they were issued."""
    T = VoucherTransition
    per_voucher = (select(T.validation_number, func.sum(_delta()).label("left"))
                   .where(T.gaming_day <= day).group_by(T.validation_number).subquery())
    rows = session.execute(
        select(Voucher.issued_gaming_day, func.count(), func.sum(per_voucher.c.left))
        .join(per_voucher, per_voucher.c.validation_number == Voucher.validation_number)
        .where(per_voucher.c.left > 0)
        .group_by(Voucher.issued_gaming_day).order_by(Voucher.issued_gaming_day)
    ).all()
    return [{"issue_day": d.isoformat(), "count": int(n), "amount_cents": int(c)} for d, n, c in rows]


def voucher_activity(session: Session, day: dt.date) -> dict:
    """Issued (by terminal and by cage), redeemed (by terminal and by cage), voided, expired in a gaming day."""
    T = VoucherTransition
    rows = session.execute(
        select(T.from_status, T.to_status, T.actor_kind, func.count(), func.sum(T.amount_cents))
        .where(T.gaming_day == day).group_by(T.from_status, T.to_status, T.actor_kind)
    ).all()
    out = {k: [0, 0] for k in ("issued_terminal", "issued_cage", "redeemed_terminal", "redeemed_cage",
                                "voided", "expired", "reinstated")}
    for frm, to, kind, n, cents in rows:
        key = None
        if frm is None:
            key = "issued_cage" if kind == "operator" else "issued_terminal"
        elif to == "redeemed":
            key = "redeemed_cage" if kind == "operator" else "redeemed_terminal"
        elif to == "voided":
            key = "voided"
        elif to == "expired":
            key = "expired"
        elif frm == "expired" and to == "issued":
            key = "reinstated"
        if key:
            out[key][0] += int(n)
            out[key][1] += int(cents)
    totals = {
        "issued_count": out["issued_terminal"][0] + out["issued_cage"][0],
        "issued_cents": out["issued_terminal"][1] + out["issued_cage"][1],
        "redeemed_count": out["redeemed_terminal"][0] + out["redeemed_cage"][0],
        "redeemed_cents": out["redeemed_terminal"][1] + out["redeemed_cage"][1],
        "voided_count": out["voided"][0], "voided_cents": out["voided"][1],
        "expired_count": out["expired"][0], "expired_cents": out["expired"][1],
    }
    rows_out = [{"category": k, "count": v[0], "amount_cents": v[1]} for k, v in out.items()]
    return {"totals": totals, "rows": rows_out}
