"""The cage's voucher actions as one service each: drawer, voucher and AML in one transaction.

The cage page and the API both call these, so the rules (an open drawer, identity at the
AML thresholds, the cash log) cannot differ between them.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from cashier import aml, drawers, vouchers
from cashier.models import Voucher
from server.audit import Actor
from server.errors import RuleViolation


def _aml(session: Session, host, actor: Actor, patron: dict | None, direction: str, kind: str, amount: int,
         ref: str, now: dt.datetime) -> None:
    """Logs a cage cash transaction for the patron; refuses one that needs an identity it lacks."""
    day = host.clock.day_of(now)
    key = aml.patron_key(patron) if patron else None
    if key is None:
        if aml.identity_required(session, host.settings, None, amount, direction, day):
            raise RuleViolation("this amount needs the patron's identity (AML)", code="patron_identity_required",
                                field="patron")
        return
    aml.record_cash(session, host.clock, host.settings, patron_key=key, patron_name=aml.patron_name(patron),
                    direction=direction, kind=kind, amount_cents=amount, ref=ref, now=now, operator=actor.username)


def redeem_voucher(session: Session, host, actor: Actor, validation_number: str, now: dt.datetime,
                   patron: dict | None = None) -> Voucher:
    """Pays a voucher from the cashier's open drawer; the pay-out is cash out for AML."""
    drawer = drawers.require_open(session, actor.username)
    v = vouchers.redeem_at_cage(session, vouchers.policy_for(host), actor, validation_number, drawer.id, now)
    _aml(session, host, actor, patron, "out", "voucher_redeem", v.amount_cents, validation_number, now)
    return v


def issue_voucher(session: Session, host, actor: Actor, amount_cents: int, credit_type: str, now: dt.datetime,
                  patron: dict | None = None) -> Voucher:
    """Sells a voucher for cash at the cage: money into the drawer, cash in for AML."""
    drawer = drawers.require_open(session, actor.username)
    v = vouchers.issue(session, vouchers.policy_for(host), amount_cents=amount_cents, credit_type=credit_type,
                       issued_by=actor.username, source="cage", now=now, actor=actor)
    drawers.record(session, drawer, "voucher_issue", v.amount_cents, v.validation_number, now)
    if credit_type == "cashable":
        _aml(session, host, actor, patron, "in", "voucher_issue", amount_cents, v.validation_number, now)
    return v
