"""Handpays: a terminal's win or cancelled credits that a cashier pays by hand (rules.md 14–16).

create() is called by whoever learns of the handpay (MQTT gateway, SAS and Modbus pollers);
pay() and void() by the cage page and the API. Status moves only forward, pending → paid or
pending → void, each by one conditional UPDATE, so two cashiers cannot both pay one slip.

The lock of rules.md 14 ("a win at or above the threshold locks the terminal until a handpay
is recorded") is the pending handpay itself: while a terminal has one, its `handpay_pending`
flag is set (floor state `handpay`); paying or voiding the last one clears the flag, and a
paid one sends the terminal `cmd handpay.reset` after the commit. Every handpay, whatever its
amount, sets the flag, since the machine stays locked until someone pays it.

Slip numbers come from the `counters` row "handpay_slip", taken with one
`UPDATE … SET value = value + 1 RETURNING value` in the creating transaction: the row lock
(PostgreSQL) or the write lock (SQLite's BEGIN IMMEDIATE) serializes creators, and a rolled
back creation rolls back its number too, so slips are consecutive, without gaps or repeats.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cashier import aml, drawers
from cashier.models import Drawer, Handpay, W2G
from server import audit
from server.audit import Actor
from server.auth import check_password, record_failure
from server.config import Settings
from server.db import iso_z as _iso
from server.errors import Conflict, InvalidInput, NotFound, RuleViolation
from server.gamingday import GamingDayClock
from server.models import Counter, Operator
from terminals import commands, registry
from terminals.models import Terminal

log = logging.getLogger("floorhost.handpays")

KINDS = ("jackpot", "cancelled_credit")
STATUSES = ("pending", "paid", "void")
PATRON_FIELDS = ("first_name", "last_name", "birth_date", "id_type", "id_number", "address")
SECOND_SIGNER_ROLES = frozenset({"cashier", "manager"})
SLIP_COUNTER = "handpay_slip"

# What a new handpay means to other packages (players: the carded or excluded patron, rules.md 20):
# hook(session, clock, handpay, now). PAY_HOOKS run once the patron's identity is known:
# hook(session, clock, handpay, patron_or_None, now). They register from dispatch.HANDLER_MODULES.
CREATED_HOOKS: list = []
PAY_HOOKS: list = []


def _load_hooks() -> None:
    from terminals import dispatch

    dispatch.load_handlers()


class HandpayNotPayable(Conflict):
    """A handpay that is no longer pending; `reason` is its status (paid / void)."""

    def __init__(self, status: str):
        super().__init__(f"handpay already {status}", code=f"handpay_{status}", reason=status)



def win_date(settings: Settings, instant: dt.datetime) -> dt.date:
    """The local calendar date of a win: it picks the tax threshold (rules.md 14), not the gaming day."""
    return instant.astimezone(settings.zone).date()


def to_dict(h: Handpay) -> dict:
    d = {"id": h.id, "slip_number": h.slip_number, "egm_id": h.egm_id, "amount_cents": h.amount_cents,
         "kind": h.kind, "status": h.status, "created_at": _iso(h.created_at),
         "tax_form_required": h.tax_form_required, "gaming_day": h.gaming_day.isoformat(), "source": h.source}
    if h.player_id is not None:
        d["player_id"] = h.player_id
    if h.status == "paid":
        d.update(paid_at=_iso(h.paid_at), paid_by=h.paid_by, second_signer=h.second_signer,
                 drawer_id=h.drawer_id, reset_at=_iso(h.reset_at))
    if h.status == "void":
        d.update(voided_at=_iso(h.voided_at), voided_by=h.voided_by, void_reason=h.void_reason)
    if h.flagged:
        d["flagged"] = h.flagged
    return d


def next_slip_number(session: Session) -> int:
    """The next consecutive slip number, taken in the caller's transaction (see the module docstring)."""
    bump = (update(Counter).where(Counter.name == SLIP_COUNTER).values(value=Counter.value + 1)
            .returning(Counter.value))
    value = session.execute(bump).scalar()
    if value is None:
        # First handpay ever: start after any slip already stored, racing creators insert once.
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        start = session.execute(select(func.coalesce(func.max(Handpay.slip_number), 0))).scalar_one()
        session.execute(insert(Counter).values(name=SLIP_COUNTER, value=start)
                        .on_conflict_do_nothing(index_elements=["name"]))
        value = session.execute(bump).scalar_one()
    return int(value)


def _terminal(session: Session, egm_id: str) -> Terminal | None:
    return session.execute(select(Terminal).where(Terminal.egm_id == egm_id)).scalar_one_or_none()


def create(session: Session, clock: GamingDayClock, settings: Settings, *, egm_id: str, amount_cents: int,
           kind: str, now: dt.datetime, source: str = "mqtt", seq: int | None = None,
           player_id: int | None = None, terminal_ts: dt.datetime | None = None) -> Handpay:
    """A new pending handpay with the next slip number; the terminal shows `handpay` until it is paid or voided."""
    if kind not in KINDS:
        raise InvalidInput("kind must be jackpot or cancelled_credit", code="invalid_input", field="kind")
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool) or amount_cents <= 0:
        raise InvalidInput("amount must be a positive number of cents", code="invalid_input", field="amount_cents")
    t = _terminal(session, egm_id)
    if t is None:
        raise NotFound(f"no terminal {egm_id}", code="terminal_not_found")
    threshold = settings.tax_threshold_cents(win_date(settings, now))
    h = Handpay(slip_number=next_slip_number(session), egm_id=egm_id, amount_cents=amount_cents, kind=kind,
                status="pending", created_at=now, gaming_day=clock.day_of(now),
                tax_form_required=amount_cents >= threshold, source=source, seq=seq, player_id=player_id)
    session.add(h)
    session.flush()
    _load_hooks()
    for hook in CREATED_HOOKS:
        hook(session, clock, h, now)
    t.handpay_pending = True
    registry.add_event(session, clock, t, "handpay", now, seq=seq, terminal_ts=terminal_ts, source=source,
                       detail={"handpay_id": h.id, "slip_number": h.slip_number, "amount_cents": amount_cents,
                               "kind": kind, "tax_form_required": h.tax_form_required})
    log.info("egm=%s seq=%s handpay %s slip %s %s %d cents%s", egm_id, seq, h.id, h.slip_number, kind,
             amount_cents, " (tax form)" if h.tax_form_required else "")
    return h


def get(session: Session, handpay_id: int) -> Handpay:
    h = session.get(Handpay, handpay_id)
    if h is None:
        raise NotFound(f"no handpay {handpay_id}", code="handpay_not_found")
    return h


def list_(session: Session, status: str | None = None, *, egm_id: str | None = None,
          limit: int | None = None) -> list[Handpay]:
    """Handpays, newest slip first."""
    if status is not None and status not in STATUSES:
        raise InvalidInput("status must be pending, paid or void", code="invalid_input", field="status")
    q = select(Handpay).order_by(Handpay.slip_number.desc())
    if status is not None:
        q = q.where(Handpay.status == status)
    if egm_id is not None:
        q = q.where(Handpay.egm_id == egm_id)
    if limit is not None:
        q = q.limit(limit)
    return list(session.execute(q).scalars())


def open_for_terminal(session: Session, egm_id: str) -> list[Handpay]:
    """A terminal's pending handpays, oldest first (pollers check here before creating one again)."""
    return list(session.execute(select(Handpay).where(Handpay.egm_id == egm_id, Handpay.status == "pending")
                                .order_by(Handpay.slip_number)).scalars())


def _clean_patron(patron: dict | None, required: bool) -> dict | None:
    """The patron's identity with every field present and non-empty, or a 422 naming the first missing one."""
    if patron is None:
        if required:
            raise RuleViolation("this handpay is at or above the tax threshold: the patron's identity is required",
                                code="patron_identity_required", field="patron")
        return None
    if not isinstance(patron, dict):
        raise InvalidInput("patron must be an object", code="invalid_input", field="patron")
    out = {}
    for f in PATRON_FIELDS:
        v = patron.get(f)
        if v is not None and not isinstance(v, str):
            raise InvalidInput(f"patron.{f} must be a string", code="invalid_input", field=f"patron.{f}")
        if not v or not v.strip():
            raise RuleViolation(f"patron.{f} is required", code="patron_identity_required", field=f"patron.{f}")
        out[f] = v.strip()
    return out


def _check_second_signer(session: Session, settings, actor: Actor, signer: dict | None, now: dt.datetime) -> str:
    """The username of a valid second signer: another active cashier or manager who gave their password."""
    if not isinstance(signer, dict) or not signer.get("username") or not signer.get("password"):
        raise RuleViolation("this handpay needs a second employee's signature", code="second_signer_required",
                            field="second_signer")
    username, password = signer["username"], signer["password"]
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidInput("second_signer username and password must be strings", code="invalid_input",
                           field="second_signer")
    if username == actor.username:
        raise RuleViolation("the second signer must be a different employee", code="second_signer_invalid",
                            field="second_signer.username")
    op = session.execute(select(Operator).where(Operator.username == username)).scalar_one_or_none()
    if (op is None or not op.active or (op.locked_until is not None and op.locked_until > now)
            or op.password_expires_at <= now or not check_password(op.password_hash, password)):
        exc = RuleViolation("second signer: unknown, disabled, locked or wrong password",
                            code="second_signer_invalid", field="second_signer")
        # A wrong signer password counts toward that operator's lockout like a failed login.
        exc.after_rollback.append(lambda s: record_failure(s, settings, username, now))
        raise exc
    if op.role not in SECOND_SIGNER_ROLES:
        raise RuleViolation("the second signer must be a cashier or a manager", code="second_signer_invalid",
                            field="second_signer.username")
    return op.username


@dataclass(frozen=True)
class Paid:
    """A paid handpay, its W-2G if any, and the handpay.reset command to deliver after the commit.

    `reset` is one of: "sent" (`command` holds the Outgoing), "terminal_offline", "no_route" (this
    process cannot reach the terminal's protocol), "handpays_pending" (the terminal has another
    pending handpay, so it stays locked), "no_terminal".
    """

    handpay: Handpay
    w2g: W2G | None
    command: commands.Outgoing | None
    reset: str


def _release_lock(session: Session, egm_id: str) -> Terminal | None:
    """Clears the terminal's handpay flag unless another handpay of it is still pending."""
    t = _terminal(session, egm_id)
    if t is None:
        return None
    t.handpay_pending = bool(open_for_terminal(session, egm_id))
    return t


def pay(session: Session, settings: Settings, actor: Actor, handpay_id: int, drawer: Drawer, patron: dict | None,
        second_signer: dict | None, now: dt.datetime, *, clock: GamingDayClock | None = None,
        protocols: Collection[str] | None = None) -> Paid:
    """Pays a pending handpay from the cashier's open drawer (rules.md 15).

    At or above the tax threshold in force on the date of the win the patron's identity is
    required and a W-2G is made; at or above `second_signer_cents` a different cashier or manager
    signs with their password. Cancelled credits are cash-out for AML (jackpots are not, rules.md 17).
    `protocols`: those this process can send commands to (None: any).
    """
    h = get(session, handpay_id)
    if h.status != "pending":
        raise HandpayNotPayable(h.status)
    who = _clean_patron(patron, h.tax_form_required)
    clock = clock or GamingDayClock(settings.zone, settings.gaming_day_start_time)
    _load_hooks()
    for hook in PAY_HOOKS:
        hook(session, clock, h, who, now)
    if who is None and h.kind == "cancelled_credit" and aml.identity_required(
            session, settings, None, h.amount_cents, "out", clock.day_of(now)):
        raise RuleViolation("a cash-out this large needs the patron's identity (AML)",
                            code="patron_identity_required", field="patron")
    signer = _check_second_signer(session, settings, actor, second_signer, now) \
        if h.amount_cents >= settings.second_signer_cents else None

    row = session.execute(
        update(Handpay).where(Handpay.id == handpay_id, Handpay.status == "pending")
        .values(status="paid", paid_at=now, paid_by=actor.username, second_signer=signer, drawer_id=drawer.id)
        .returning(Handpay.id)
    ).first()
    if row is None:  # another cashier won the race
        session.refresh(h)
        raise HandpayNotPayable(h.status)
    session.refresh(h)

    w2g = None
    if h.tax_form_required:
        w2g = W2G(handpay_id=h.id, amount_cents=h.amount_cents, won_at=h.created_at,
                  tax_year=win_date(settings, h.created_at).year, created_at=now, created_by=actor.username, **who)
        session.add(w2g)
    drawers.record(session, drawer, "handpay_pay", -h.amount_cents, f"handpay:{h.slip_number}", now)
    if h.kind == "cancelled_credit" and who is not None:
        aml.record_cash(session, clock, settings, patron_key=aml.patron_key(who), patron_name=aml.patron_name(who),
                        direction="out", kind="handpay_cancelled_credit", amount_cents=h.amount_cents,
                        ref=f"handpay:{h.slip_number}", now=now, operator=actor.username)

    t = _release_lock(session, h.egm_id)
    command, reset = None, "no_terminal"
    if t is not None:
        if t.handpay_pending:
            reset = "handpays_pending"
        elif t.comms != "online":
            reset = "terminal_offline"
        elif protocols is not None and t.protocol not in protocols:
            reset = "no_route"
        else:
            command = commands.send(session, None, t, "handpay.reset",
                                    {"handpay_id": h.id, "slip_number": h.slip_number}, now)
            reset = "sent"
    session.flush()
    after = {**to_dict(h), "w2g_id": w2g.id if w2g else None, "reset": reset}
    audit.append(session, actor, "handpay.pay", f"handpay:{h.id}", {"status": "pending"}, after, at=now)
    log.info("handpay %s slip %s paid by %s (second signer %s), reset %s", h.id, h.slip_number, actor.username,
             signer, reset)
    return Paid(h, w2g, command, reset)


def void(session: Session, actor: Actor, handpay_id: int, reason: str, now: dt.datetime) -> Handpay:
    """pending → void; the slip keeps its number, with the voider and the reason (rules.md 16)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a reason is required", code="invalid_input", field="reason")
    h = get(session, handpay_id)
    row = session.execute(
        update(Handpay).where(Handpay.id == handpay_id, Handpay.status == "pending")
        .values(status="void", voided_at=now, voided_by=actor.username, void_reason=reason)
        .returning(Handpay.id)
    ).first()
    session.refresh(h)
    if row is None:
        raise HandpayNotPayable(h.status)
    _release_lock(session, h.egm_id)
    audit.append(session, actor, "handpay.void", f"handpay:{h.id}", {"status": "pending"}, to_dict(h), at=now)
    return h


def mark_reset(session: Session, egm_id: str, now: dt.datetime) -> int:
    """The terminal says its handpay lock is reset: stamps its paid handpays that were waiting for it."""
    res = session.execute(update(Handpay).where(Handpay.egm_id == egm_id, Handpay.status == "paid",
                                                Handpay.reset_at.is_(None)).values(reset_at=now))
    return res.rowcount
