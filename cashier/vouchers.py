"""TITO vouchers: issue, redeem at a terminal (hold → commit / abort), redeem at the cage, void,
reinstate, expire — one function per action, whoever asks (terminal gateway, cage page, API, SAS poller).

Every change of status is one conditional UPDATE that states the rule (`WHERE status = 'issued'`),
so racing redeemers cannot both win, on SQLite (BEGIN IMMEDIATE) as on PostgreSQL (row locks).
Each change also writes a VoucherTransition row; operator actions go to the audit log too.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server import audit
from server.alerts import raise_alert
from server.audit import Actor
from server.db import iso_z as _iso
from server.errors import Conflict, NotFound, RuleViolation
from server.gamingday import GamingDayClock
from cashier.models import DrawerTransaction, Voucher, VoucherTransition

log = logging.getLogger("floorhost.vouchers")

CREDIT_TYPES = ("cashable", "promo")


class VoucherNotPayable(Conflict):
    """A voucher that cannot be paid now; `reason` is the terminal-mqtt.md reject reason."""

    def __init__(self, reason: str, status: int = 409):
        super().__init__(f"voucher {reason.replace('_', ' ')}", code=f"voucher_{reason}", status=status,
                         reason=reason)


@dataclass(frozen=True)
class Policy:
    """What the vouchers need of the settings."""

    clock: GamingDayClock
    expiry_days: int
    max_cents: int
    system_id: int = 1



def to_dict(v: Voucher) -> dict:
    d = {"validation_number": v.validation_number, "amount_cents": v.amount_cents, "credit_type": v.credit_type,
         "status": v.status, "issued_at": _iso(v.issued_at), "issued_by": v.issued_by,
         "expires_at": _iso(v.expires_at)}
    if v.redeemed_at:
        d.update(redeemed_at=_iso(v.redeemed_at), redeemed_by=v.redeemed_by)
    if v.status == "pending":
        d.update(held_by=v.held_by, held_at=_iso(v.held_at))
    if v.status == "voided":
        d.update(voided_at=_iso(v.voided_at), voided_by=v.voided_by, void_reason=v.void_reason)
    if v.flagged:
        d["flagged"] = v.flagged
    return d


def _transition(session: Session, policy: Policy, vn: str, frm: str | None, to: str, now: dt.datetime,
                actor: str, kind: str, amount: int, reason: str | None = None) -> None:
    session.add(VoucherTransition(validation_number=vn, from_status=frm, to_status=to, at=now,
                                  gaming_day=policy.clock.day_of(now), actor=actor, actor_kind=kind,
                                  amount_cents=amount, reason=reason))


def new_validation_number(session: Session, system_id: int) -> str:
    """18 digits: a 2-digit system id and 16 digits from the OS's CSPRNG (rules.md 9), unique forever."""
    while True:
        number = f"{system_id:02d}{secrets.randbelow(10**16):016d}"
        if session.execute(select(Voucher.id).where(Voucher.validation_number == number)).first() is None:
            return number


def issue(session: Session, policy: Policy, *, amount_cents: int, credit_type: str, issued_by: str,
          source: str, now: dt.datetime, validation_number: str | None = None,
          actor: Actor | None = None) -> Voucher:
    """A new voucher, `issued`. A SAS EGM that numbers its own tickets passes `validation_number`."""
    if credit_type not in CREDIT_TYPES:
        raise RuleViolation("credit_type must be cashable or promo", code="invalid_input", status=400,
                            field="credit_type")
    if amount_cents <= 0:
        raise RuleViolation("amount must be positive", code="invalid_input", status=400, field="amount_cents")
    if amount_cents > policy.max_cents:
        raise RuleViolation(f"amount over the voucher limit of {policy.max_cents} cents", code="over_limit",
                            field="amount_cents")
    number = validation_number or new_validation_number(session, policy.system_id)
    v = Voucher(validation_number=number, amount_cents=amount_cents, credit_type=credit_type, status="issued",
                issued_at=now, issued_by=issued_by, issued_source=source, issued_gaming_day=policy.clock.day_of(now),
                expires_at=now + dt.timedelta(days=policy.expiry_days))
    session.add(v)
    _transition(session, policy, number, None, "issued", now, issued_by,
                "operator" if source == "cage" else "terminal", amount_cents)
    session.flush()
    if actor is not None:
        audit.append(session, actor, "voucher.issue", f"voucher:{number}", None, to_dict(v), at=now)
    return v


def get(session: Session, vn: str) -> Voucher:
    v = session.execute(select(Voucher).where(Voucher.validation_number == vn)).scalar_one_or_none()
    if v is None:
        raise NotFound(f"no voucher {vn}", code="voucher_not_found", reason="not_found")
    return v


def why_not(session: Session, vn: str, now: dt.datetime) -> str:
    """The reject reason for a voucher that a conditional UPDATE did not take."""
    row = session.execute(select(Voucher.status, Voucher.expires_at).where(Voucher.validation_number == vn)).first()
    if row is None:
        return "not_found"
    status, expires_at = row
    if status == "issued" and expires_at <= now:
        return "expired"
    return status  # "issued" here means a rule of the caller's refused it (e.g. the amount limit)


def redeem_at_terminal(session: Session, policy: Policy, egm_id: str, vn: str, now: dt.datetime) -> Voucher:
    """Ticket-in: an issued, unexpired voucher is held by this terminal (`pending`) until commit or abort."""
    row = session.execute(
        update(Voucher)
        .where(Voucher.validation_number == vn, Voucher.status == "issued", Voucher.expires_at > now,
               Voucher.amount_cents <= policy.max_cents)
        .values(status="pending", held_by=egm_id, held_at=now)
        .returning(Voucher.id, Voucher.amount_cents)
    ).first()
    if row is None:
        reason = why_not(session, vn, now)
        if reason == "issued":  # issued and unexpired but not taken: only the amount limit is left
            reason = "over_limit"
        raise _refusal(session, policy, vn, now, reason)
    _transition(session, policy, vn, "issued", "pending", now, egm_id, "terminal", row.amount_cents)
    return session.get(Voucher, row.id)


def commit_redemption(session: Session, policy: Policy, egm_id: str, vn: str, amount_cents: int,
                      now: dt.datetime) -> Voucher | None:
    """Credits were given at the terminal: pending (held by it) → redeemed. Anything else is flagged."""
    day = policy.clock.day_of(now)
    row = session.execute(
        update(Voucher)
        .where(Voucher.validation_number == vn, Voucher.status == "pending", Voucher.held_by == egm_id)
        .values(status="redeemed", redeemed_at=now, redeemed_by=egm_id, redeemed_source="terminal",
                redeemed_gaming_day=day, held_by=None)
        .returning(Voucher.id, Voucher.amount_cents)
    ).first()
    if row is None:
        # The hold ran out and the voucher went back to issued, but the terminal paid it: it is redeemed.
        row = session.execute(
            update(Voucher)
            .where(Voucher.validation_number == vn, Voucher.status == "issued")
            .values(status="redeemed", redeemed_at=now, redeemed_by=egm_id, redeemed_source="terminal",
                    redeemed_gaming_day=day, held_by=None, flagged="committed after its hold had expired")
            .returning(Voucher.id, Voucher.amount_cents)
        ).first()
        if row is None:
            raise_alert(session, "voucher_mismatch",
                        f"{egm_id} says it paid voucher {vn}, which is {why_not(session, vn, now)} and not held by it",
                        now, severity="critical", egm_id=egm_id, detail={"validation_number": vn,
                                                                         "amount_cents": amount_cents})
            log.error("egm=%s commit of voucher %s that it does not hold", egm_id, vn)
            return None
        from_status = "issued"
    else:
        from_status = "pending"
    _transition(session, policy, vn, from_status, "redeemed", now, egm_id, "terminal", row.amount_cents)
    v = session.get(Voucher, row.id)
    if amount_cents != row.amount_cents:
        v.flagged = f"terminal credited {amount_cents} cents for a voucher of {row.amount_cents}"
        raise_alert(session, "voucher_mismatch", f"{egm_id} credited {amount_cents} for voucher {vn} of "
                    f"{row.amount_cents} cents", now, severity="critical", egm_id=egm_id,
                    detail={"validation_number": vn})
    return v


def abort_redemption(session: Session, policy: Policy, egm_id: str, vn: str, reason: str, now: dt.datetime) -> bool:
    """The ticket came back out of the terminal: pending → issued."""
    row = session.execute(
        update(Voucher)
        .where(Voucher.validation_number == vn, Voucher.status == "pending", Voucher.held_by == egm_id)
        .values(status="issued", held_by=None, held_at=None)
        .returning(Voucher.amount_cents)
    ).first()
    if row is None:
        log.warning("egm=%s abort of voucher %s that it does not hold", egm_id, vn)
        return False
    _transition(session, policy, vn, "pending", "issued", now, egm_id, "terminal", row.amount_cents, reason)
    return True


def release_holds(session: Session, policy: Policy, now: dt.datetime, hold_seconds: int) -> list[str]:
    """Pending vouchers that saw neither commit nor abort in time go back to issued (a scheduler job)."""
    cutoff = now - dt.timedelta(seconds=hold_seconds)
    rows = session.execute(
        update(Voucher).where(Voucher.status == "pending", Voucher.held_at < cutoff)
        .values(status="issued", held_by=None, held_at=None)
        .returning(Voucher.validation_number, Voucher.amount_cents)
    ).all()
    for vn, amount in rows:
        _transition(session, policy, vn, "pending", "issued", now, "system", "system", amount,
                    f"hold expired after {hold_seconds} s")
    return [vn for vn, _ in rows]


def mark_printed(session: Session, policy: Policy, egm_id: str, vn: str, now: dt.datetime) -> bool:
    res = session.execute(update(Voucher).where(Voucher.validation_number == vn, Voucher.issued_by == egm_id)
                          .values(printed=True))
    return res.rowcount == 1


def print_failed(session: Session, policy: Policy, egm_id: str, vn: str, now: dt.datetime) -> bool:
    """The ticket never came out: the voucher is voided and the credits stay on the terminal."""
    row = session.execute(
        update(Voucher).where(Voucher.validation_number == vn, Voucher.issued_by == egm_id, Voucher.status == "issued")
        .values(status="voided", printed=False, voided_at=now, voided_by=egm_id, void_reason="print_failed")
        .returning(Voucher.amount_cents)
    ).first()
    if row is None:
        return False
    _transition(session, policy, vn, "issued", "voided", now, egm_id, "terminal", row.amount_cents, "print_failed")
    return True


def redeem_at_cage(session: Session, policy: Policy, actor: Actor, vn: str, drawer_id: int, now: dt.datetime) -> Voucher:
    """Cage pay-out from the cashier's open drawer."""
    day = policy.clock.day_of(now)
    row = session.execute(
        update(Voucher)
        .where(Voucher.validation_number == vn, Voucher.status == "issued", Voucher.expires_at > now)
        .values(status="redeemed", redeemed_at=now, redeemed_by=actor.username, redeemed_source="cage",
                redeemed_gaming_day=day, drawer_id=drawer_id)
        .returning(Voucher.id, Voucher.amount_cents)
    ).first()
    if row is None:
        reason = why_not(session, vn, now)
        raise _refusal(session, policy, vn, now, reason, status=404 if reason == "not_found" else 409)
    _transition(session, policy, vn, "issued", "redeemed", now, actor.username, "operator", row.amount_cents)
    session.add(DrawerTransaction(drawer_id=drawer_id, kind="voucher_redeem", amount_cents=-row.amount_cents,
                                  ref=vn, at=now))  # pay-out: money leaves the drawer
    v = session.get(Voucher, row.id)
    audit.append(session, actor, "voucher.redeem", f"voucher:{vn}", {"status": "issued"}, to_dict(v), at=now)
    return v


def void(session: Session, policy: Policy, actor: Actor, vn: str, reason: str, now: dt.datetime) -> Voucher:
    row = session.execute(
        update(Voucher).where(Voucher.validation_number == vn, Voucher.status == "issued")
        .values(status="voided", voided_at=now, voided_by=actor.username, void_reason=reason)
        .returning(Voucher.id, Voucher.amount_cents)
    ).first()
    if row is None:
        raise VoucherNotPayable(why_not(session, vn, now))
    _transition(session, policy, vn, "issued", "voided", now, actor.username, "operator", row.amount_cents, reason)
    v = session.get(Voucher, row.id)
    audit.append(session, actor, "voucher.void", f"voucher:{vn}", {"status": "issued"}, to_dict(v), at=now)
    return v


def reinstate(session: Session, policy: Policy, actor: Actor, vn: str, reason: str, now: dt.datetime) -> Voucher:
    """A manager's override: an expired voucher becomes issued again with a new expiry (rules.md 12)."""
    expire_due(session, policy, now, only=vn)
    new_expiry = now + dt.timedelta(days=policy.expiry_days)
    row = session.execute(
        update(Voucher).where(Voucher.validation_number == vn, Voucher.status == "expired")
        .values(status="issued", expires_at=new_expiry, expired_at=None)
        .returning(Voucher.id, Voucher.amount_cents)
    ).first()
    if row is None:
        reason_now = why_not(session, vn, now)
        raise Conflict(f"only an expired voucher can be reinstated; this one is {reason_now}",
                       code="voucher_not_expired" if reason_now != "not_found" else "voucher_not_found",
                       status=404 if reason_now == "not_found" else 409)
    _transition(session, policy, vn, "expired", "issued", now, actor.username, "operator", row.amount_cents, reason)
    v = session.get(Voucher, row.id)
    audit.append(session, actor, "voucher.reinstate", f"voucher:{vn}", {"status": "expired"},
                 {**to_dict(v), "reason": reason}, at=now)
    return v


def expire_due(session: Session, policy: Policy, now: dt.datetime, only: str | None = None) -> list[str]:
    """Issued vouchers past their expiry become expired (a scheduler job; also run before a reinstate)."""
    stmt = update(Voucher).where(Voucher.status == "issued", Voucher.expires_at <= now)
    if only is not None:
        stmt = stmt.where(Voucher.validation_number == only)
    rows = session.execute(stmt.values(status="expired", expired_at=now)
                           .returning(Voucher.validation_number, Voucher.amount_cents)).all()
    for vn, amount in rows:
        _transition(session, policy, vn, "issued", "expired", now, "system", "system", amount)
    return [vn for vn, _ in rows]


def _refusal(session: Session, policy: Policy, vn: str, now: dt.datetime, reason: str,
             status: int = 409) -> VoucherNotPayable:
    """The refusal to raise; an overdue voucher is marked expired whether or not the caller rolls back."""
    exc = VoucherNotPayable(reason, status=status)
    if reason == "expired":
        expire_due(session, policy, now, only=vn)  # kept when the caller catches the refusal (the gateway)
        exc.after_rollback.append(lambda s: expire_due(s, policy, now, only=vn))  # and when it rolls back
    return exc


def policy_for(host) -> Policy:
    """The voucher rules of a running host (its settings and gaming-day clock)."""
    s = host.settings
    return Policy(clock=host.clock, expiry_days=s.voucher_expiry_days, max_cents=s.voucher_max_cents,
                  system_id=s.sas_system_id)
