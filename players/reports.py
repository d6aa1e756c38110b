"""Player ratings per gaming day, for the reports framework (report `player-ratings`).

One row per (gaming_day, player), from the per-(session, gaming day) sums the rated sessions keep.
Time played of a session still open counts up to now, split over the gaming days it touched;
its points are the ones earned so far (credited when it closes). A session closed because the
player was excluded earned nothing (points 0).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import utcnow
from server.gamingday import GamingDayClock
from players.models import Player, RatedSession, SessionDay
from players.sessions import split_seconds


def player_ratings(session: Session, clock: GamingDayClock, start: dt.date, end: dt.date,
                   now: dt.datetime | None = None) -> list[dict]:
    """Rows for gaming days start..end inclusive, ordered by gaming day, then player id."""
    now = now or utcnow()
    rows = session.execute(
        select(SessionDay, RatedSession, Player)
        .join(RatedSession, RatedSession.id == SessionDay.session_id)
        .join(Player, Player.id == SessionDay.player_id)
        .where(SessionDay.gaming_day >= start, SessionDay.gaming_day <= end)
        .order_by(SessionDay.gaming_day, SessionDay.player_id, RatedSession.started_at)).all()
    out: dict[tuple[dt.date, int], dict] = {}
    for sd, rs, p in rows:
        key = (sd.gaming_day, p.id)
        r = out.get(key)
        if r is None:
            r = out[key] = {"gaming_day": sd.gaming_day.isoformat(), "player_id": p.id, "card_id": rs.card_id,
                            "player_name": f"{p.first_name} {p.last_name}", "sessions": 0, "games": 0,
                            "coin_in_cents": 0, "coin_out_cents": 0, "actual_win_cents": 0, "theo_win_cents": 0,
                            "points": 0, "seconds_played": 0, "avg_bet_cents": 0, "_theo_units": 0}
        r["card_id"] = rs.card_id  # the card of the day's latest session
        r["sessions"] += 1
        r["games"] += int(sd.games)
        r["coin_in_cents"] += int(sd.coin_in_cents)
        r["coin_out_cents"] += int(sd.coin_out_cents)
        r["_theo_units"] += int(sd.theo_units)
        if rs.ended_at is not None:
            r["points"] += int(sd.points)
            r["seconds_played"] += int(sd.seconds_played)
        else:
            r["points"] += int(sd.millipoints) // 1000
            r["seconds_played"] += dict(split_seconds(clock, rs.started_at, max(now, rs.started_at))).get(
                sd.gaming_day, 0)
    result = []
    for r in out.values():
        r["actual_win_cents"] = r["coin_in_cents"] - r["coin_out_cents"]
        r["theo_win_cents"] = r.pop("_theo_units") // 10000
        r["avg_bet_cents"] = r["coin_in_cents"] // r["games"] if r["games"] else 0
        result.append(r)
    return result
