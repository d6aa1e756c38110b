"""Play counted from game.end (and SAS game-end exceptions): live floor stats and theoretical win."""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from server.db import writer
from server.gamingday import GamingDayClock
from terminals.models import PlayDay, Terminal


def record_game(session: Session, clock: GamingDayClock, t: Terminal, now: dt.datetime, *, theme: str,
                paytable_id: str, denom_cents: int, wager_cents: int, win_cents: int,
                credits_after_cents: int | None) -> None:
    writer(session).add_sums(PlayDay.__table__,
                             {"egm_id": t.egm_id, "gaming_day": clock.day_of(now), "theme": theme,
                              "paytable_id": str(paytable_id), "denom_cents": denom_cents},
                             adds={"games": 1, "wager_cents": wager_cents, "win_cents": win_cents})
    if credits_after_cents is not None:
        t.current_credits_cents = credits_after_cents
    t.game_in_progress = False
