"""Player accounts: enrolment, cards (and their replacement), exclusions, manual point adjustments,
points redemption as a promo voucher at the cage, and the profile every reader sees.

Every operator change here is audited (server.audit) with before and after.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server import audit
from server.audit import Actor
from server.auth import hash_password
from server.config import Settings
from server.db import iso_z as _iso
from server.errors import Conflict, InvalidInput, NotFound, RuleViolation
from server.gamingday import GamingDayClock
from players import rules as point_rules
from players import sessions
from players.models import Exclusion, Player, PlayerCard, PointTransaction, RatedSession, SessionDay

CARD_ID_RE = re.compile(r"^[!-~]{1,64}$")  # printable ASCII, no spaces: what a card reader sends
PIN_RE = re.compile(r"^\d{4,8}$")
EXCLUSION_KINDS = ("self", "ban")



def age_on(born: dt.date, day: dt.date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _parse_date(raw: Any, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be YYYY-MM-DD", code="invalid_input", field=field) from None


def _audit_view(p: Player) -> dict:
    return {"id": p.id, "first_name": p.first_name, "last_name": p.last_name, "birth_date": p.birth_date.isoformat(),
            "id_type": p.id_type, "id_number": p.id_number, "address": p.address, "pin_set": p.pin_hash is not None}


def get(session: Session, player_id: int) -> Player:
    p = session.get(Player, player_id)
    if p is None:
        raise NotFound(f"no player {player_id}", code="player_not_found")
    return p


def _check_card_free(session: Session, card_id: str) -> None:
    if not isinstance(card_id, str) or not CARD_ID_RE.match(card_id):
        raise InvalidInput("card_id must be 1-64 printable characters without spaces", code="invalid_input",
                           field="card_id")
    if sessions.find_card(session, card_id) is not None:
        raise Conflict(f"card {card_id} is already issued", code="card_in_use")


def enrol(session: Session, settings: Settings, actor: Actor, *, card_id: str, first_name: str, last_name: str,
          birth_date: str, now: dt.datetime, id_type: str | None = None, id_number: str | None = None,
          address: str | None = None, pin: str | None = None) -> Player:
    """A new player with an active card; adults only (settings.minimum_age → 422 too_young)."""
    born = _parse_date(birth_date, "birth_date")
    today = now.astimezone(settings.zone).date()
    if age_on(born, today) < settings.minimum_age:
        raise RuleViolation(f"players must be at least {settings.minimum_age}", code="too_young", field="birth_date")
    if pin is not None and not PIN_RE.match(pin):
        raise InvalidInput("the PIN must be 4 to 8 digits", code="invalid_input", field="pin")
    if not first_name.strip() or not last_name.strip():
        raise InvalidInput("first and last name are required", code="invalid_input", field="first_name")
    _check_card_free(session, card_id)
    p = Player(first_name=first_name.strip(), last_name=last_name.strip(), birth_date=born, id_type=id_type,
               id_number=id_number, address=address, pin_hash=hash_password(pin) if pin else None, points=0,
               created_at=now, created_by=actor.username)
    session.add(p)
    session.flush()
    session.add(PlayerCard(card_id=card_id, player_id=p.id, status="active", issued_at=now, issued_by=actor.username))
    session.flush()
    audit.append(session, actor, "player.enrol", f"player:{p.id}", None, {**_audit_view(p), "card_id": card_id},
                 at=now)
    return p


def replace_card(session: Session, actor: Actor, player_id: int, new_card_id: str, reason: str,
                 now: dt.datetime) -> PlayerCard:
    """A lost or worn card: every active card of the player is blocked (kept), a new one issued."""
    p = get(session, player_id)
    _check_card_free(session, new_card_id)
    old = list(session.execute(select(PlayerCard).where(PlayerCard.player_id == p.id,
                                                        PlayerCard.status == "active")).scalars())
    for c in old:
        c.status, c.blocked_at, c.blocked_by, c.blocked_reason = "blocked", now, actor.username, reason
    card = PlayerCard(card_id=new_card_id, player_id=p.id, status="active", issued_at=now, issued_by=actor.username)
    session.add(card)
    session.flush()
    audit.append(session, actor, "player.card_replace", f"player:{p.id}", {"active_cards": [c.card_id for c in old]},
                 {"active_cards": [new_card_id], "blocked": [c.card_id for c in old], "reason": reason}, at=now)
    return card


def exclude(session: Session, clock: GamingDayClock, actor: Actor, player_id: int, *, until: str | None,
            permanent: bool, reason: str, kind: str, now: dt.datetime) -> Exclusion:
    """Self-exclusion or ban, to a date (inclusive, a gaming day) or for ever. Open sessions end unpaid."""
    p = get(session, player_id)
    if kind not in EXCLUSION_KINDS:
        raise InvalidInput("kind must be self or ban", code="invalid_input", field="kind")
    if permanent == (until is not None):
        raise InvalidInput("give either until or permanent: true", code="invalid_input", field="until")
    end = None
    if until is not None:
        end = _parse_date(until, "until")
        if end < clock.day_of(now):
            raise RuleViolation("until is in the past", code="invalid_until", field="until")
    before = exclusion_dict(sessions.active_exclusion(session, p.id, clock.day_of(now)))
    e = Exclusion(player_id=p.id, kind=kind, until=end, reason=reason, created_at=now, created_by=actor.username)
    session.add(e)
    session.flush()
    # An excluded player earns nothing (rules.md 20): a session still open is closed without points.
    for rs in sessions.open_for_player(session, p.id):
        sessions.close(session, clock, rs, now, "excluded", credit=False)
    audit.append(session, actor, "player.exclude", f"player:{p.id}", {"exclusion": before},
                 {"exclusion": exclusion_dict(e)}, at=now)
    return e


def adjust_points(session: Session, actor: Actor, player_id: int, delta: int, reason: str,
                  now: dt.datetime) -> PointTransaction:
    """A manager's manual adjustment (rules.md 21): audited with the balance before and after."""
    p = get(session, player_id)
    if delta == 0:
        raise InvalidInput("delta must not be zero", code="invalid_input", field="delta")
    before = int(p.points)
    tx = sessions.move_points(session, p.id, delta, "adjust", actor.username, now, reason=reason)
    audit.append(session, actor, "player.points_adjust", f"player:{p.id}", {"points": before},
                 {"points": int(tx.balance_after), "delta": delta, "reason": reason}, at=now)
    return tx


def redeem_points(session: Session, host, actor: Actor, player_id: int, points: int, now: dt.datetime):
    """Points → a promo voucher printed at the cage (the voucher service issues it and audits it)."""
    from cashier import vouchers

    p = get(session, player_id)
    if points <= 0:
        raise InvalidInput("points must be positive", code="invalid_input", field="points")
    if sessions.active_exclusion(session, p.id, host.clock.day_of(now)) is not None:
        raise RuleViolation("an excluded player cannot redeem points", code="player_excluded")
    cents = points * point_rules.current(session)["redeem_cents_per_point"]
    before = int(p.points)
    tx = sessions.move_points(session, p.id, -points, "redeem", actor.username, now, reason="redeemed at the cage")
    v = vouchers.issue(session, vouchers.policy_for(host), amount_cents=cents, credit_type="promo",
                       issued_by=actor.username, source="cage", now=now, actor=actor)
    tx.ref = v.validation_number
    audit.append(session, actor, "player.points_redeem", f"player:{p.id}", {"points": before},
                 {"points": int(tx.balance_after), "redeemed": points, "voucher": v.validation_number,
                  "amount_cents": cents}, at=now)
    return tx, v


# ---- reading -----------------------------------------------------------------------------------

def exclusion_dict(e: Exclusion | None) -> dict | None:
    if e is None:
        return None
    return {"id": e.id, "kind": e.kind, "until": e.until.isoformat() if e.until else None,
            "permanent": e.until is None, "reason": e.reason, "created_at": _iso(e.created_at),
            "created_by": e.created_by}


def session_rows(session: Session, clock: GamingDayClock, player_id: int, now: dt.datetime,
                 limit: int = 20) -> list[dict]:
    """The player's latest sessions with their sums over all gaming days."""
    rs_list = list(session.execute(select(RatedSession).where(RatedSession.player_id == player_id)
                                   .order_by(RatedSession.id.desc()).limit(limit)).scalars())
    sums = {}
    if rs_list:
        for row in session.execute(
                select(SessionDay.session_id, func.sum(SessionDay.games), func.sum(SessionDay.coin_in_cents),
                       func.sum(SessionDay.coin_out_cents), func.sum(SessionDay.theo_units),
                       func.sum(SessionDay.millipoints))
                .where(SessionDay.session_id.in_([r.id for r in rs_list])).group_by(SessionDay.session_id)):
            sums[row[0]] = row[1:]
    out = []
    for r in rs_list:
        games, cin, cout, theo, milli = (int(x or 0) for x in sums.get(r.id, (0, 0, 0, 0, 0)))
        end = r.ended_at or now
        out.append({"id": r.id, "egm_id": r.egm_id, "card_id": r.card_id, "started_at": _iso(r.started_at),
                    "ended_at": _iso(r.ended_at), "end_reason": r.end_reason, "open": r.ended_at is None,
                    "games": games, "coin_in_cents": cin, "coin_out_cents": cout,
                    "avg_bet_cents": cin // games if games else 0, "theo_win_cents": theo // 10000,
                    "seconds_played": int((end - r.started_at).total_seconds()),
                    "points": int(r.points_credited) if r.points_credited is not None else milli // 1000,
                    "gaming_day": clock.day_of(r.started_at).isoformat()})
    return out


def profile(session: Session, clock: GamingDayClock, p: Player, now: dt.datetime, *, history: bool = True) -> dict:
    cards = list(session.execute(select(PlayerCard).where(PlayerCard.player_id == p.id)
                                 .order_by(PlayerCard.id)).scalars())
    active = [c.card_id for c in cards if c.status == "active"]
    excl = sessions.active_exclusion(session, p.id, clock.day_of(now))
    d: dict[str, Any] = {
        "id": p.id, "card_id": active[-1] if active else None, "first_name": p.first_name,
        "last_name": p.last_name, "display_name": sessions.display_name(p), "birth_date": p.birth_date.isoformat(),
        "id_type": p.id_type, "id_number": p.id_number, "address": p.address, "pin_set": p.pin_hash is not None,
        "points": int(p.points), "tier": sessions.tier(session, p.id, now),
        "excluded": excl is not None, "exclusion": exclusion_dict(excl),
        "created_at": _iso(p.created_at), "created_by": p.created_by,
        "sessions": session_rows(session, clock, p.id, now, 20 if history else 5),
    }
    if history:
        d["cards"] = [{"card_id": c.card_id, "status": c.status, "issued_at": _iso(c.issued_at),
                       "issued_by": c.issued_by, "blocked_at": _iso(c.blocked_at), "blocked_reason": c.blocked_reason}
                      for c in cards]
        d["exclusions"] = [exclusion_dict(e) for e in session.execute(
            select(Exclusion).where(Exclusion.player_id == p.id).order_by(Exclusion.id.desc())).scalars()]
        d["points_history"] = [
            {"id": t.id, "kind": t.kind, "delta": int(t.delta), "balance_before": int(t.balance_before),
             "balance_after": int(t.balance_after), "at": _iso(t.at), "actor": t.actor, "reason": t.reason,
             "session_id": t.session_id, "ref": t.ref}
            for t in session.execute(select(PointTransaction).where(PointTransaction.player_id == p.id)
                                     .order_by(PointTransaction.id.desc()).limit(50)).scalars()]
    return d


def search(session: Session, *, card_id: str | None = None, q: str | None = None, limit: int = 50) -> list[Player]:
    """By card (any card ever issued, blocked ones too), or by name / card fragment / player id."""
    stmt = select(Player).order_by(Player.last_name, Player.first_name, Player.id).limit(limit)
    if card_id:
        stmt = stmt.join(PlayerCard, PlayerCard.player_id == Player.id).where(PlayerCard.card_id == card_id)
    if q:
        like = f"%{q.strip().lower()}%"
        conds = [func.lower(Player.first_name).like(like), func.lower(Player.last_name).like(like),
                 func.lower(Player.first_name + " " + Player.last_name).like(like),
                 Player.id.in_(select(PlayerCard.player_id).where(PlayerCard.card_id.like(f"%{q.strip()}%")))]
        if q.strip().isdigit():
            conds.append(Player.id == int(q.strip()))
        stmt = stmt.where(or_(*conds))
    return list(session.execute(stmt).scalars())
