"""Rated sessions: card-in opens one at a terminal, game.end accrues into it per gaming day, card-out,
a card-in elsewhere, a new card at the same terminal or the terminal going offline closes it and
credits its points.

Play is summed per (session, gaming day) in SessionDay through the bulk writer, so the gateway's
thousand-message batches stay a few statements and a session that spans the gaming-day boundary is
split where it belongs. Points are credited once, at close, as floor(millipoints / 1000) per day.

One open session per player: card_in locks the player's row (SELECT … FOR UPDATE on PostgreSQL;
SQLite's BEGIN IMMEDIATE already serializes writers), so two terminals racing with one card end
with exactly one open session, the other closed as `card_in_elsewhere`.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.alerts import raise_alert
from server.db import writer
from server.gamingday import GamingDayClock
from players import rules as point_rules
from players.models import CardPresentation, Exclusion, Player, PlayerCard, PointTransaction, RatedSession, SessionDay

log = logging.getLogger("floorhost.players")

_OPEN_KEY = "players.open"  # session.info: egm_id → open RatedSession or None, for one transaction
_ALL = object()  # in that cache: every open session has been loaded


def house_edge_bp(session: Session, paytable_id: str) -> int:
    """House edge of a paytable in basis points (10000 − RTP): from the config catalog's RTP when a
    package names the paytable, else from the point rules' own table (and its default)."""
    from terminals.packages import paytable_rtp_bp

    rtp = paytable_rtp_bp(session, [paytable_id])
    if str(paytable_id) in rtp:
        return 10000 - rtp[str(paytable_id)]
    edges = point_rules.current(session)["house_edge_bp"]
    return int(edges.get("paytables", {}).get(str(paytable_id), edges["default"]))


def display_name(p: Player) -> str:
    return f"{p.first_name} {p.last_name[:1]}." if p.last_name else p.first_name


def active_exclusion(session: Session, player_id: int, today: dt.date) -> Exclusion | None:
    """The exclusion in force on `today` (a gaming day; `until` is inclusive), permanent ones first."""
    rows = session.execute(select(Exclusion).where(Exclusion.player_id == player_id)
                           .order_by(Exclusion.id.desc())).scalars().all()
    live = [e for e in rows if e.until is None or e.until >= today]
    live.sort(key=lambda e: (e.until is not None, -(e.until or today).toordinal()))
    return live[0] if live else None


def earned_in_period(session: Session, player_id: int, now: dt.datetime, days: int) -> int:
    return int(session.execute(
        select(func.coalesce(func.sum(PointTransaction.delta), 0))
        .where(PointTransaction.player_id == player_id, PointTransaction.kind == "earned",
               PointTransaction.at >= now - dt.timedelta(days=days))).scalar_one())


def tier(session: Session, player_id: int, now: dt.datetime) -> str:
    r = point_rules.current(session)
    return point_rules.tier_for(r, earned_in_period(session, player_id, now, r["tier_period_days"]))


def move_points(session: Session, player_id: int, delta: int, kind: str, actor: str, now: dt.datetime, *,
                reason: str | None = None, session_id: int | None = None, ref: str | None = None) -> PointTransaction:
    """Changes a balance in one conditional UPDATE (never below zero) and writes the ledger row."""
    from server.errors import RuleViolation

    after = session.execute(
        update(Player).where(Player.id == player_id, Player.points + delta >= 0)
        .values(points=Player.points + delta).returning(Player.points)).scalar()
    if after is None:
        raise RuleViolation("the balance would go below zero", code="insufficient_points", field="points")
    tx = PointTransaction(player_id=player_id, kind=kind, delta=delta, balance_before=after - delta,
                          balance_after=after, at=now, actor=actor, reason=reason, session_id=session_id, ref=ref)
    session.add(tx)
    session.flush()
    p = session.get(Player, player_id)
    if p is not None:
        session.refresh(p, ["points"])
    return tx


# ---- open sessions ---------------------------------------------------------------------------------

def _cache(session: Session) -> dict:
    return session.info.setdefault(_OPEN_KEY, {})


def open_at(session: Session, egm_id: str) -> RatedSession | None:
    """The terminal's open session. The first call in a transaction loads every open session at once
    (a few hundred at most: the carded players on the floor), so a gateway batch of games from many
    terminals costs one query, not one per terminal."""
    cache = _cache(session)
    if not cache.get(_ALL):
        for rs in session.execute(select(RatedSession).where(RatedSession.ended_at.is_(None))
                                  .order_by(RatedSession.id.desc())).scalars():
            cache.setdefault(rs.egm_id, rs)
        cache[_ALL] = True
    return cache.get(egm_id)


def open_for_player(session: Session, player_id: int) -> list[RatedSession]:
    return list(session.execute(select(RatedSession).where(RatedSession.player_id == player_id,
                                                           RatedSession.ended_at.is_(None))).scalars())


def split_seconds(clock: GamingDayClock, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.date, int]]:
    """The seconds of [start, end) in each gaming day they touch."""
    out = []
    day = clock.day_of(start)
    while start < end:
        seg_end = min(clock.bounds(day)[1], end)
        out.append((day, int((seg_end - start).total_seconds())))
        start, day = seg_end, day + dt.timedelta(days=1)
    return out


def close(session: Session, clock: GamingDayClock, rs: RatedSession, now: dt.datetime, reason: str, *,
          credit: bool = True) -> int:
    """Ends a session: time played per gaming day, points per day, the balance credited. Returns the points."""
    rs.ended_at, rs.end_reason = now, reason
    w = writer(session)
    for day, secs in split_seconds(clock, rs.started_at, now):
        w.add_sums(SessionDay.__table__, {"session_id": rs.id, "gaming_day": day}, adds={"seconds_played": secs},
                   inserts={"player_id": rs.player_id, "egm_id": rs.egm_id})
    if w.deferred:
        w.flush()  # the day rows must be readable now; a mid-batch flush only costs statements
    total = 0
    for day, milli in session.execute(select(SessionDay.gaming_day, SessionDay.millipoints)
                                      .where(SessionDay.session_id == rs.id)).all():
        pts = milli // 1000 if credit else 0
        session.execute(update(SessionDay).where(SessionDay.session_id == rs.id, SessionDay.gaming_day == day)
                        .values(points=pts))
        total += pts
    rs.points_credited = total
    session.flush()
    if total:
        move_points(session, rs.player_id, total, "earned", "system", now, session_id=rs.id,
                    reason=f"session {rs.id} at {rs.egm_id}")
    _cache(session)[rs.egm_id] = None
    log.info("egm=%s player=%s session %s closed (%s), %d points", rs.egm_id, rs.player_id, rs.id, reason, total)
    return total


# ---- card in / out -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CardResult:
    status: str  # ok / unknown / excluded / blocked
    player: dict | None
    player_id: int | None = None
    session_id: int | None = None

    def reply(self) -> dict:
        return {"status": self.status, "player": self.player}


def find_card(session: Session, card_id: str) -> PlayerCard | None:
    return session.execute(select(PlayerCard).where(PlayerCard.card_id == card_id)).scalar_one_or_none()


def _present(session: Session, egm_id: str, card_id: str, player_id: int | None, action: str, status: str,
             now: dt.datetime) -> None:
    session.add(CardPresentation(egm_id=egm_id, card_id=card_id, player_id=player_id, action=action, status=status,
                                 at=now))


def card_in(session: Session, clock: GamingDayClock, egm_id: str, card_id: str, now: dt.datetime) -> CardResult:
    """A card inserted at a terminal (terminal-mqtt.md card.in); the answer is the card.reply body."""
    card = find_card(session, card_id)
    if card is None:
        _present(session, egm_id, card_id, None, "in", "unknown", now)
        return CardResult("unknown", None)
    if card.status != "active":
        _present(session, egm_id, card_id, card.player_id, "in", "blocked", now)
        return CardResult("blocked", None, card.player_id)
    # The row lock that makes one card at two terminals take turns (see the module docstring).
    player = session.execute(select(Player).where(Player.id == card.player_id).with_for_update()).scalar_one()
    excl = active_exclusion(session, player.id, clock.day_of(now))
    if excl is not None:
        _present(session, egm_id, card_id, player.id, "in", "excluded", now)
        raise_alert(session, "excluded_player",
                    f"excluded player #{player.id} ({player.first_name} {player.last_name}) carded in at {egm_id}",
                    now, severity="critical", egm_id=egm_id, player_id=player.id,
                    detail={"card_id": card_id, "exclusion_id": excl.id, "kind": excl.kind})
        log.warning("egm=%s excluded player %s carded in (card %s)", egm_id, player.id, card_id)
        return CardResult("excluded", None, player.id)
    _present(session, egm_id, card_id, player.id, "in", "ok", now)
    current = None
    for rs in open_for_player(session, player.id):
        if rs.egm_id == egm_id and current is None:
            current = rs  # the same card again at the same terminal: the session goes on
        else:
            close(session, clock, rs, now, "card_in_elsewhere")
    here = open_at(session, egm_id)
    if here is not None and here.player_id != player.id:
        close(session, clock, here, now, "replaced")
    if current is None:
        current = RatedSession(player_id=player.id, card_id=card_id, egm_id=egm_id, started_at=now)
        session.add(current)
        session.flush()
    _cache(session)[egm_id] = current
    info = {"display_name": display_name(player), "tier": tier(session, player.id, now), "points": int(player.points)}
    return CardResult("ok", info, player.id, current.id)


def card_out(session: Session, clock: GamingDayClock, egm_id: str, card_id: str, now: dt.datetime) -> int | None:
    """The card taken out: closes the terminal's open session if it is this card's. Returns its points."""
    rs = open_at(session, egm_id)
    card = find_card(session, card_id)
    _present(session, egm_id, card_id, card.player_id if card else None, "out", "ok", now)
    if rs is None or card is None or rs.player_id != card.player_id:
        return None
    return close(session, clock, rs, now, "card_out")


def accrue_game(session: Session, clock: GamingDayClock, egm_id: str, now: dt.datetime, *, theme: str,
                paytable_id: str, wager_cents: int, win_cents: int) -> bool:
    """One game.end into the terminal's open session, if any (uncarded play stays uncarded)."""
    rs = open_at(session, egm_id)
    if rs is None:
        return False
    r = point_rules.current(session)
    edge = house_edge_bp(session, paytable_id)
    writer(session).add_sums(
        SessionDay.__table__, {"session_id": rs.id, "gaming_day": clock.day_of(now)},
        adds={"games": 1, "coin_in_cents": wager_cents, "coin_out_cents": win_cents,
              "theo_units": wager_cents * edge,
              "millipoints": wager_cents * 1000 // point_rules.cents_per_point(r, theme, paytable_id)},
        inserts={"player_id": rs.player_id, "egm_id": egm_id})
    rs.last_play_at = now
    return True


def terminal_offline(session: Session, clock: GamingDayClock, egm_id: str, now: dt.datetime) -> int | None:
    rs = open_at(session, egm_id)
    if rs is None:
        return None
    return close(session, clock, rs, now, "offline")


# ---- handpays of carded and excluded patrons ----------------------------------------------------

# How long after an excluded card was refused at a terminal its jackpot is still that patron's.
EXCLUDED_PLAY_WINDOW = dt.timedelta(hours=4)


def excluded_presence(session: Session, egm_id: str, now: dt.datetime) -> int | None:
    """The excluded player whose card was the last one presented at this terminal, within the window."""
    last = session.execute(select(CardPresentation).where(CardPresentation.egm_id == egm_id)
                           .order_by(CardPresentation.id.desc()).limit(1)).scalar_one_or_none()
    if last is None or last.action != "in" or last.status != "excluded" or last.at < now - EXCLUDED_PLAY_WINDOW:
        return None
    return last.player_id


def _flag(existing: str | None, flag: str) -> str:
    return flag if not existing else (existing if flag in existing else f"{existing}; {flag}")


def flag_handpay(session: Session, clock: GamingDayClock, handpay, now: dt.datetime) -> None:
    """A new handpay: names the carded player, and flags it when an excluded card was presented there."""
    rs = open_at(session, handpay.egm_id)
    if rs is not None and handpay.player_id is None:
        handpay.player_id = rs.player_id
    excluded = excluded_presence(session, handpay.egm_id, now)
    if excluded is None and rs is not None and active_exclusion(session, rs.player_id, clock.day_of(now)):
        excluded = rs.player_id
    if excluded is None:
        return
    handpay.player_id = excluded
    handpay.flagged = _flag(handpay.flagged, "excluded_player")
    raise_alert(session, "excluded_player",
                f"handpay slip {handpay.slip_number} at {handpay.egm_id}: an excluded player's card was presented",
                now, severity="critical", egm_id=handpay.egm_id, player_id=excluded,
                detail={"handpay_id": handpay.id, "amount_cents": handpay.amount_cents})


def flag_handpay_patron(session: Session, clock: GamingDayClock, handpay, patron: dict | None,
                        now: dt.datetime) -> None:
    """At payment: the patron's name and birth date match an excluded player → the handpay is flagged."""
    if not patron:
        return
    try:
        born = dt.date.fromisoformat(patron.get("birth_date", ""))
    except ValueError:
        return
    from cashier.models import Handpay

    candidates = session.execute(select(Player.id).where(
        func.lower(Player.first_name) == patron.get("first_name", "").strip().lower(),
        func.lower(Player.last_name) == patron.get("last_name", "").strip().lower(),
        Player.birth_date == born)).scalars().all()
    for pid in candidates:
        if active_exclusion(session, pid, clock.day_of(now)) is not None:
            session.execute(update(Handpay).where(Handpay.id == handpay.id)
                            .values(flagged=_flag(handpay.flagged, "excluded_player"), player_id=pid))
            raise_alert(session, "excluded_player",
                        f"handpay slip {handpay.slip_number} is being paid to excluded player #{pid}", now,
                        severity="critical", egm_id=handpay.egm_id, player_id=pid,
                        detail={"handpay_id": handpay.id, "amount_cents": handpay.amount_cents})
            return
